//! The hash chain over the audit trail.
//!
//! Every stored record carries `prev_hash` (the hash of the record stored just before it, or
//! [`ChainHash::GENESIS`] for the first) and `hash`, the SHA-256 of a domain tag, the previous
//! hash and the record's columns as stored. Editing a record breaks its own hash; removing,
//! inserting or reordering records breaks the link of the record after the change; rewriting
//! the whole chain after an edit is caught against the signed checkpoints
//! ([`super::checkpoint`]), which were signed before the rewrite.
//!
//! The encoding is fixed (changing it is a new domain tag): the tag, the 32 bytes of the
//! previous hash, then each column in `audit_event` order as one presence byte (0 for NULL, 1
//! otherwise) followed, when present, by its UTF-8 length as four big-endian bytes and the
//! bytes. Numbers are written in decimal, the instant in whole microseconds since the epoch
//! (what the store keeps). The sequence number is not hashed: order is what the links carry,
//! and gaps in the numbering are checked on their own.

use sha2::{Digest, Sha256};

use super::AuditRecord;

/// What every hash starts with: names the encoding, so a hash of another kind of data can never
/// be passed off as a record's.
const DOMAIN: &[u8] = b"tideway-audit-chain-v1\0";

/// A link of the chain: 32 bytes of SHA-256, stored as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash([u8; 32]);

impl std::fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl std::fmt::Display for ChainHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl ChainHash {
    /// The previous hash of the first record.
    pub const GENESIS: Self = Self([0; 32]);

    /// As stored: 64 lower-case hex digits.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// A stored hash, or `None` if `text` is not 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0; 32];
        (text.len() == 64 && hex::decode_to_slice(text, &mut bytes).is_ok()).then_some(Self(bytes))
    }

    /// The raw bytes (what checkpoints sign).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash of `record` stored after the record whose hash is `self`.
    pub fn then(&self, record: &AuditRecord) -> Self {
        let mut digest = Sha256::new();
        digest.update(DOMAIN);
        digest.update(self.0);
        let mut column = |value: Option<&str>| match value {
            None => digest.update([0]),
            Some(text) => {
                digest.update([1]);
                // A column longer than 4 GiB cannot be stored; saturating keeps this total.
                digest.update(u32::try_from(text.len()).unwrap_or(u32::MAX).to_be_bytes());
                digest.update(text.as_bytes());
            }
        };
        column(Some(&crate::epoch_us::of(record.recorded_at).to_string()));
        for text in [record.request_id.as_str(), record.phase.as_str(), record.action] {
            column(Some(text));
        }
        for optional in [
            &record.client_id,
            &record.user_id,
            &record.role,
            &record.organisation,
            &record.purpose,
            &record.patient_id,
        ] {
            column(optional.as_deref());
        }
        column(Some(&record.sources));
        column(Some(record.outcome.as_str()));
        column(Some(&record.http_status.to_string()));
        column(Some(&record.released.to_string()));
        column(Some(&record.detail));
        Self(digest.finalize().into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod tests {
    use super::*;
    use crate::audit::{AuditOutcome, AuditPhase};

    fn record() -> AuditRecord {
        let mut r = AuditRecord::new("req-1", "patient-read", None);
        r.recorded_at = time::OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        r.phase = AuditPhase::Outcome;
        r.outcome = AuditOutcome::Success;
        r.http_status = 200;
        r.released = 3;
        r
    }

    #[test]
    fn hex_round_trips_and_rejects_what_is_not_a_hash() {
        let h = ChainHash::GENESIS.then(&record());
        assert_eq!(ChainHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(h.to_hex().len(), 64);
        assert_eq!(ChainHash::from_hex("00"), None);
        assert_eq!(ChainHash::from_hex(&"zz".repeat(32)), None);
    }

    #[test]
    fn every_column_and_the_previous_hash_change_the_hash() {
        let base = record();
        let h = ChainHash::GENESIS.then(&base);
        assert_eq!(h, ChainHash::GENESIS.then(&base.clone()), "hashing is deterministic");
        assert_ne!(h, h.then(&base), "the previous hash is part of it");
        let edits: Vec<fn(&mut AuditRecord)> = vec![
            |r| r.recorded_at += time::Duration::microseconds(1),
            |r| r.request_id.push('x'),
            |r| r.phase = AuditPhase::Intent,
            |r| r.action = "patient-search",
            |r| r.client_id = Some(String::new()),
            |r| r.user_id = Some("u".into()),
            |r| r.role = Some("R8000".into()),
            |r| r.organisation = Some("RJ122".into()),
            |r| r.purpose = Some("TREAT".into()),
            |r| r.patient_id = Some("p1".into()),
            |r| r.sources = "[\"b\"]".into(),
            |r| r.outcome = AuditOutcome::Denied,
            |r| r.http_status = 403,
            |r| r.released = 4,
            |r| r.detail = "{}".into(),
        ];
        for (n, edit) in edits.into_iter().enumerate() {
            let mut changed = base.clone();
            edit(&mut changed);
            assert_ne!(ChainHash::GENESIS.then(&changed), h, "edit {n} went unnoticed");
        }
    }

    #[test]
    fn moving_text_between_columns_changes_the_hash() {
        let mut a = record();
        a.client_id = Some("ab".into());
        a.user_id = Some("c".into());
        let mut b = record();
        b.client_id = Some("a".into());
        b.user_id = Some("bc".into());
        assert_ne!(ChainHash::GENESIS.then(&a), ChainHash::GENESIS.then(&b));
        let mut c = record();
        c.client_id = None;
        let mut d = record();
        d.client_id = Some(String::new());
        assert_ne!(ChainHash::GENESIS.then(&c), ChainHash::GENESIS.then(&d), "NULL is not empty");
    }
}
