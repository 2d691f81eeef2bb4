//! Signed checkpoints of the audit chain: now and then the gateway signs the chain's head
//! (sequence number and hash) with an Ed25519 key held outside the database, and appends the
//! signed checkpoint to a file kept apart from the store. Someone able to rewrite the database
//! can recompute every hash after an edit, or cut the tail off, and leave a chain that checks;
//! they cannot sign a checkpoint for it, and the checkpoints signed before the damage no longer
//! match: `audit verify` reports the re-hashing or the truncation.
//!
//! The key file holds the 32-byte Ed25519 seed in base64 (one line); `tideway audit keygen`
//! writes one readable by its owner only. A checkpoint is one JSON line:
//! `{"seq":…,"hash":"…","signed_at_us":…,"key_id":"…","signature":"…"}`. The signature covers
//! a domain tag, the sequence number (8 bytes, big-endian), the 32 bytes of the hash and the
//! signing instant in microseconds (8 bytes, big-endian); the key id is the first 8 bytes of
//! the SHA-256 of the public key, in hex.
//!
//! A **retention anchor** is a checkpoint with one more field, `removes_before_us`: signed
//! before `[audit] retention_days` removes the oldest records, it says that the records up to
//! `seq` (every one made before that instant) may be gone, and that the first record kept
//! follows `hash`. Verification starts from the newest anchor below the first record kept
//! instead of the genesis hash; records removed without one are a gap. An anchor's signature
//! covers its own domain tag and the instant too, so a checkpoint cannot be passed off as one.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AuditLog;
use super::chain::ChainHash;

/// What every signed message starts with.
const DOMAIN: &[u8] = b"tideway-audit-checkpoint-v1\0";

/// What every signed retention anchor starts with.
const ANCHOR_DOMAIN: &[u8] = b"tideway-audit-retention-v1\0";

/// A checkpoint file or key file could not be read or written. Names the file and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {cause}")]
pub struct CheckpointError {
    path: PathBuf,
    cause: String,
}

impl CheckpointError {
    pub(super) fn at(path: &Path, cause: impl std::fmt::Display) -> Self {
        Self { path: path.to_owned(), cause: cause.to_string() }
    }
}

/// The key checkpoints are signed with.
pub struct CheckpointKey {
    signing: SigningKey,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointKey({})", self.key_id())
    }
}

impl CheckpointKey {
    /// Reads the key in `path` (base64 of a 32-byte seed).
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let text = std::fs::read_to_string(path).map_err(|e| CheckpointError::at(path, e))?;
        let seed: [u8; 32] = STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| CheckpointError::at(path, "not a checkpoint key (base64 of 32 bytes)"))?;
        Ok(Self { signing: SigningKey::from_bytes(&seed) })
    }

    /// Makes a new key and writes it to `path`, which must not exist yet (readable by its
    /// owner only, where the system has modes).
    pub fn generate(path: &Path) -> Result<Self, CheckpointError> {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| CheckpointError::at(path, e))?;
        writeln!(file, "{}", STANDARD.encode(seed))
            .and_then(|()| file.sync_all())
            .map_err(|e| CheckpointError::at(path, e))?;
        Ok(Self { signing: SigningKey::from_bytes(&seed) })
    }

    /// The public half, which verifies what this key signs.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The key's id, as checkpoints name it.
    pub fn key_id(&self) -> String {
        key_id(&self.verifying_key())
    }

    /// Signs the head `(seq, hash)` now.
    pub fn sign(&self, seq: i64, hash: ChainHash) -> Checkpoint {
        self.sign_statement(seq, hash, None)
    }

    /// Signs a retention anchor now: the records up to `seq`, whose last has `hash`, were all
    /// made before `before_us` and may be removed.
    pub fn sign_anchor(&self, seq: i64, hash: ChainHash, before_us: i64) -> Checkpoint {
        self.sign_statement(seq, hash, Some(before_us))
    }

    fn sign_statement(&self, seq: i64, hash: ChainHash, removes_before_us: Option<i64>) -> Checkpoint {
        let signed_at_us = crate::epoch_us::now();
        let signature = self.signing.sign(&message(seq, &hash, signed_at_us, removes_before_us));
        Checkpoint { seq, hash, signed_at_us, key_id: self.key_id(), signature, removes_before_us }
    }
}

/// The id of a public key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

fn message(seq: i64, hash: &ChainHash, signed_at_us: i64, removes_before_us: Option<i64>) -> Vec<u8> {
    let mut m = Vec::with_capacity(ANCHOR_DOMAIN.len() + 56);
    m.extend_from_slice(if removes_before_us.is_some() { ANCHOR_DOMAIN } else { DOMAIN });
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash.as_bytes());
    m.extend_from_slice(&signed_at_us.to_be_bytes());
    if let Some(before_us) = removes_before_us {
        m.extend_from_slice(&before_us.to_be_bytes());
    }
    m
}

/// A signed statement that the chain's record `seq` had hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The sequence number of the head signed.
    pub seq: i64,
    /// Its hash.
    pub hash: ChainHash,
    /// When it was signed, in microseconds since the epoch.
    pub signed_at_us: i64,
    /// The id of the key that signed it.
    pub key_id: String,
    /// The signature.
    pub signature: Signature,
    /// Set on a retention anchor: the records up to `seq` may be removed, every one having
    /// been made before this instant (microseconds since the epoch).
    pub removes_before_us: Option<i64>,
}

/// A checkpoint as a line of the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    seq: i64,
    hash: String,
    signed_at_us: i64,
    key_id: String,
    signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    removes_before_us: Option<i64>,
}

impl Checkpoint {
    /// Whether `key` signed exactly this.
    pub fn verifies_with(&self, key: &VerifyingKey) -> bool {
        key_id(key) == self.key_id
            && key
                .verify(
                    &message(self.seq, &self.hash, self.signed_at_us, self.removes_before_us),
                    &self.signature,
                )
                .is_ok()
    }

    /// Whether this is a retention anchor.
    pub fn is_anchor(&self) -> bool {
        self.removes_before_us.is_some()
    }

    fn to_line(&self) -> String {
        let line = Line {
            seq: self.seq,
            hash: self.hash.to_hex(),
            signed_at_us: self.signed_at_us,
            key_id: self.key_id.clone(),
            signature: STANDARD.encode(self.signature.to_bytes()),
            removes_before_us: self.removes_before_us,
        };
        serde_json::to_string(&line).unwrap_or_default()
    }

    fn from_line(text: &str) -> Option<Self> {
        let line: Line = serde_json::from_str(text).ok()?;
        let signature: [u8; 64] = STANDARD.decode(&line.signature).ok()?.try_into().ok()?;
        Some(Self {
            seq: line.seq,
            hash: ChainHash::from_hex(&line.hash)?,
            signed_at_us: line.signed_at_us,
            key_id: line.key_id,
            signature: Signature::from_bytes(&signature),
            removes_before_us: line.removes_before_us,
        })
    }
}

/// A line of the checkpoint file that is not a checkpoint, by its line number (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnreadableLine(pub usize);

/// The file checkpoints are appended to.
#[derive(Debug, Clone)]
pub struct CheckpointFile {
    pub(super) path: PathBuf,
}

impl CheckpointFile {
    /// The checkpoint file at `path` (created by the first append).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Appends `checkpoint` as a line and makes it durable.
    pub fn append(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let fail = |e: std::io::Error| CheckpointError::at(&self.path, e);
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(fail)?;
        writeln!(file, "{}", checkpoint.to_line()).and_then(|()| file.sync_data()).map_err(fail)
    }

    /// Every checkpoint in the file, in file order, and the lines that were not checkpoints.
    /// A file that does not exist holds none.
    pub fn read(&self) -> Result<(Vec<Checkpoint>, Vec<UnreadableLine>), CheckpointError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(CheckpointError::at(&self.path, e)),
        };
        let mut checkpoints = Vec::new();
        let mut unreadable = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match Checkpoint::from_line(line) {
                Some(c) => checkpoints.push(c),
                None => unreadable.push(UnreadableLine(n + 1)),
            }
        }
        Ok((checkpoints, unreadable))
    }

    /// What the file says was signed: its last checkpoint that is not a retention anchor, and
    /// the highest sequence number an anchor covers.
    pub(super) fn signed(&self) -> Result<Signed, CheckpointError> {
        let (all, _) = self.read()?;
        let anchored_through = all.iter().filter(|c| c.is_anchor()).map(|c| c.seq).max();
        let checkpoint = all.into_iter().rev().find(|c| !c.is_anchor());
        Ok(Signed { checkpoint, anchored_through })
    }
}

/// What this process knows it (or the process before it) signed last.
#[derive(Debug, Default)]
pub(super) struct Signed {
    /// The last checkpoint in the file.
    pub(super) checkpoint: Option<Checkpoint>,
    /// The highest sequence number a retention anchor in the file covers.
    pub(super) anchored_through: Option<i64>,
}

/// Signs the chain's head into the checkpoint file, when it has moved since the last one.
pub struct Checkpointer {
    pub(super) key: CheckpointKey,
    pub(super) file: CheckpointFile,
    pub(super) log: Arc<dyn AuditLog>,
    /// What was signed last (from the file at start); held while signing or applying
    /// retention, so one runs at a time.
    pub(super) last: tokio::sync::Mutex<Signed>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Checkpointer({:?}, {})", self.key, self.file.path.display())
    }
}

impl Checkpointer {
    /// A checkpointer signing `log`'s head with the key in `key_path` into `file_path`.
    pub fn new(key_path: &Path, file_path: PathBuf, log: Arc<dyn AuditLog>) -> Result<Self, CheckpointError> {
        let key = CheckpointKey::load(key_path)?;
        let file = CheckpointFile::new(file_path);
        let last = tokio::sync::Mutex::new(file.signed()?);
        Ok(Self { key, file, log, last })
    }

    /// Signs the head if records were added since the last checkpoint; the checkpoint written.
    /// A trail that no longer holds what the last checkpoint signed is not signed again: that
    /// is an error (and `tideway_audit_trail_damaged` is 1) until an operator has looked.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let mut last = self.last.lock().await;
        if let Some(damage) = self.damage_since(&last).await? {
            return Err(CheckpointError::at(
                &self.file.path,
                format!("the head was not signed: {damage}; run `tideway audit verify`"),
            ));
        }
        let head = self.log.chain_head().await.map_err(|e| CheckpointError::at(&self.file.path, e))?;
        let Some((seq, Some(hash))) = head else { return Ok(None) };
        let signed_before = last.checkpoint.as_ref().map(|c| c.seq);
        let Some(hash) = ChainHash::from_hex(&hash).filter(|_| signed_before != Some(seq)) else {
            return Ok(None);
        };
        let checkpoint = self.key.sign(seq, hash);
        self.append(&checkpoint).await?;
        last.checkpoint = Some(checkpoint.clone());
        Ok(Some(checkpoint))
    }

    /// Appends `checkpoint` to the file, off the runtime's threads.
    pub(super) async fn append(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let (file, signed) = (self.file.clone(), checkpoint.clone());
        tokio::task::spawn_blocking(move || file.append(&signed))
            .await
            .map_err(|e| CheckpointError::at(&self.file.path, e))?
    }

    /// Checkpoints now (what a process that was killed appended since the last checkpoint),
    /// then every `secs` seconds until the runtime stops.
    pub fn spawn_every(self: Arc<Self>, secs: u64) {
        crate::periodic::now_and_every(secs, move || {
            let this = self.clone();
            async move { this.logged_checkpoint().await }
        });
    }

    async fn logged_checkpoint(&self) {
        if let Err(e) = self.checkpoint().await {
            tracing::error!(error = %e, "audit checkpoint could not be written");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tideway-checkpoint-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn a_generated_key_loads_back_and_its_checkpoints_verify_only_as_signed() {
        let path = temp("key");
        let key = CheckpointKey::generate(&path).unwrap();
        assert!(CheckpointKey::generate(&path).is_err(), "an existing key is never overwritten");
        let loaded = CheckpointKey::load(&path).unwrap();
        assert_eq!(loaded.key_id(), key.key_id());
        let hash = ChainHash::GENESIS.then(&crate::audit::AuditRecord::new("r", "read", None));
        let c = key.sign(7, hash);
        assert!(c.verifies_with(&loaded.verifying_key()));
        let mut moved = c.clone();
        moved.seq = 8;
        assert!(!moved.verifies_with(&key.verifying_key()), "the sequence number is signed");
        let mut rehashed = c.clone();
        rehashed.hash = ChainHash::GENESIS;
        assert!(!rehashed.verifies_with(&key.verifying_key()), "the hash is signed");
        let other = CheckpointKey::generate(&temp("other")).unwrap();
        assert!(!c.verifies_with(&other.verifying_key()));
        std::fs::write(&path, "not a key").unwrap();
        assert!(CheckpointKey::load(&path).is_err());
    }

    #[test]
    fn the_file_keeps_checkpoints_in_order_and_names_unreadable_lines() {
        let key = CheckpointKey::generate(&temp("key")).unwrap();
        let file = CheckpointFile::new(temp("checkpoints.jsonl"));
        assert_eq!(file.signed().unwrap().checkpoint, None);
        let first = key.sign(1, ChainHash::GENESIS);
        let second = key.sign(5, ChainHash::GENESIS.then(&crate::audit::AuditRecord::new("r", "read", None)));
        file.append(&first).unwrap();
        std::fs::OpenOptions::new().append(true).open(&file.path).unwrap().write_all(b"garbage\n").unwrap();
        file.append(&second).unwrap();
        let (all, unreadable) = file.read().unwrap();
        assert_eq!(all, vec![first, second.clone()]);
        assert_eq!(unreadable, vec![UnreadableLine(2)]);
        assert_eq!(file.signed().unwrap().checkpoint, Some(second.clone()));
        let anchor = key.sign_anchor(3, ChainHash::GENESIS, 0);
        file.append(&anchor).unwrap();
        let signed = file.signed().unwrap();
        assert_eq!(signed.checkpoint, Some(second), "an anchor is not the last checkpoint");
        assert_eq!(signed.anchored_through, Some(3));
    }
}
