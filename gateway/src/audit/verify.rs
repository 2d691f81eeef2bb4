//! Checking the audit trail: the chain record by record, then against the signed checkpoints.
//!
//! [`ChainVerifier`] is fed the stored records in sequence order (a page at a time, so a trail
//! of any length is checked in bounded memory) and reports every damage it finds, each at the
//! sequence number where it shows:
//! - `gap`: sequence numbers are missing (records deleted);
//! - `edited`: a record's content no longer matches its hash;
//! - `unchained`: a record has no valid hash or previous hash;
//! - `broken-link`: a record does not follow the record before it; the runner, which can ask
//!   the store, tells `reordered` (it follows another record of the trail) from `deleted` (the
//!   record it follows is gone and the rest renumbered, or was replaced);
//! - `rehashed`: the record a checkpoint signed has another hash now (the chain was rewritten);
//! - `truncated`: a checkpoint signed a record beyond the end of the trail;
//! - `forged-checkpoint` / `unreadable-checkpoint`: a checkpoint that does not verify with the
//!   configured key, or a line of the checkpoint file that is not a checkpoint.
//!
//! A trail whose oldest records retention removed starts from the newest verified retention
//! anchor below its first record: the first record kept must follow the hash the anchor
//! signed, and records missing after the anchor are a gap. Without such an anchor, a trail
//! that does not start at 1 has a gap from 1.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;

use super::chain::ChainHash;
use super::checkpoint::{Checkpoint, UnreadableLine};
use crate::store::ChainedAudit;

/// Most findings kept; a trail damaged everywhere is reported by its first ones and a count.
const MAX_FINDINGS: usize = 100;

/// What is wrong at a place in the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// Sequence numbers from the finding's up to `last` are missing.
    Gap {
        /// The last missing sequence number.
        last: i64,
    },
    /// The record's content does not match its hash.
    Edited,
    /// The record has no valid hash or previous hash.
    Unchained,
    /// The record does not follow the record before it; it names the hash it follows.
    BrokenLink {
        /// The previous hash the record carries.
        follows_hash: ChainHash,
    },
    /// The record follows another record of the trail than the one before it.
    Reordered {
        /// The record it follows in the chain.
        follows: i64,
    },
    /// The record it follows is not in the trail (deleted and renumbered, or replaced).
    Deleted,
    /// The record a checkpoint signed has another hash now.
    Rehashed {
        /// When that checkpoint was signed (microseconds since the epoch).
        signed_at_us: i64,
    },
    /// A checkpoint signed a record beyond the end of the trail.
    Truncated {
        /// The sequence number the checkpoint signed.
        checkpoint_seq: i64,
        /// When it was signed (microseconds since the epoch).
        signed_at_us: i64,
    },
    /// A checkpoint does not verify with the configured key.
    ForgedCheckpoint {
        /// The key id it names.
        key_id: String,
    },
    /// A line of the checkpoint file is not a checkpoint.
    UnreadableCheckpoint {
        /// Its line number, from 1.
        line: usize,
    },
}

impl Damage {
    /// The kind's stable name, as `audit verify` prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Gap { .. } => "gap",
            Self::Edited => "edited",
            Self::Unchained => "unchained",
            Self::BrokenLink { .. } => "broken-link",
            Self::Reordered { .. } => "reordered",
            Self::Deleted => "deleted",
            Self::Rehashed { .. } => "rehashed",
            Self::Truncated { .. } => "truncated",
            Self::ForgedCheckpoint { .. } => "forged-checkpoint",
            Self::UnreadableCheckpoint { .. } => "unreadable-checkpoint",
        }
    }
}

/// One damage, at the sequence number where it shows (none for a checkpoint file line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Where.
    pub seq: Option<i64>,
    /// What.
    pub damage: Damage,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "seq {seq}: {}: ", self.damage.kind())?,
            None => write!(f, "{}: ", self.damage.kind())?,
        }
        let at = |us: i64| crate::epoch_us::rfc3339_seconds(us);
        match &self.damage {
            Damage::Gap { last } => write!(f, "records up to seq {last} are missing"),
            Damage::Edited => f.write_str("the record's content does not match its hash"),
            Damage::Unchained => f.write_str("the record has no valid chain hash"),
            Damage::BrokenLink { .. } => f.write_str("the record does not follow the record before it"),
            Damage::Reordered { follows } => write!(f, "the record follows seq {follows} in the chain"),
            Damage::Deleted => {
                f.write_str("the record it follows in the chain is missing (deleted, or replaced)")
            }
            Damage::Rehashed { signed_at_us } => write!(
                f,
                "the record's hash differs from the checkpoint signed at {}: the chain was rewritten",
                at(*signed_at_us)
            ),
            Damage::Truncated { checkpoint_seq, signed_at_us } => write!(
                f,
                "the trail ends before seq {checkpoint_seq}, which a checkpoint signed at {} covers",
                at(*signed_at_us)
            ),
            Damage::ForgedCheckpoint { key_id } => {
                write!(f, "a checkpoint naming key {key_id} does not verify with the checkpoint key")
            }
            Damage::UnreadableCheckpoint { line } => {
                write!(f, "line {line} of the checkpoint file is not a checkpoint")
            }
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Records checked.
    pub records: u64,
    /// The last record's sequence number and stored hash.
    pub head: Option<(i64, Option<ChainHash>)>,
    /// Checkpoints that verified with the key.
    pub checkpoints: usize,
    /// The highest sequence number a verified checkpoint signed.
    pub latest_checkpoint: Option<i64>,
    /// Where the trail starts when retention removed its oldest records: the first sequence
    /// number kept, and the instant every removed record was made before (from the anchor).
    pub retained_from: Option<(i64, i64)>,
    /// The damage found, first by sequence number (at most [`MAX_FINDINGS`]).
    pub findings: Vec<Finding>,
    /// Damage found beyond those kept.
    pub more_findings: usize,
}

impl Report {
    /// Whether nothing was found.
    pub fn intact(&self) -> bool {
        self.findings.is_empty()
    }

    /// The first damage by sequence number (checkpoint file lines last).
    pub fn first(&self) -> Option<&Finding> {
        self.findings.first()
    }
}

/// Checks the trail fed to it in sequence order.
#[derive(Debug)]
pub struct ChainVerifier {
    /// Verified checkpoints (retention anchors too) by the sequence number they sign.
    checkpoints: BTreeMap<i64, Vec<Checkpoint>>,
    /// Verified retention anchors by the sequence number they sign: what records may have
    /// been removed up to, and the hash the first one kept follows.
    anchors: BTreeMap<i64, Checkpoint>,
    /// The sequence number the next record should have.
    next: i64,
    /// The previous record's stored hash (`None` before the first record, or after one with
    /// no valid hash, when the next link cannot be checked).
    previous: Option<ChainHash>,
    report: Report,
}

impl ChainVerifier {
    /// A verifier that checks against `checkpoints` signed by `key` (those that do not verify
    /// are findings), with `unreadable` lines of the checkpoint file reported.
    pub fn new(
        checkpoints: Vec<Checkpoint>,
        unreadable: &[UnreadableLine],
        key: Option<&VerifyingKey>,
    ) -> Self {
        let mut verifier = Self {
            checkpoints: BTreeMap::new(),
            anchors: BTreeMap::new(),
            next: 1,
            previous: None,
            report: Report::default(),
        };
        for c in checkpoints {
            if key.is_some_and(|k| c.verifies_with(k)) {
                if c.is_anchor() {
                    verifier.anchors.insert(c.seq, c.clone());
                }
                verifier.report.checkpoints += 1;
                verifier.report.latest_checkpoint = verifier.report.latest_checkpoint.max(Some(c.seq));
                verifier.checkpoints.entry(c.seq).or_default().push(c);
            } else {
                verifier.found(Some(c.seq), Damage::ForgedCheckpoint { key_id: c.key_id });
            }
        }
        for line in unreadable {
            verifier.found(None, Damage::UnreadableCheckpoint { line: line.0 });
        }
        verifier
    }

    fn found(&mut self, seq: Option<i64>, damage: Damage) {
        if self.report.findings.len() < MAX_FINDINGS {
            self.report.findings.push(Finding { seq, damage });
        } else {
            self.report.more_findings += 1;
        }
    }

    /// Checks the next record (records must come in ascending sequence order).
    pub fn feed(&mut self, row: &ChainedAudit) {
        let seq = row.stored.seq;
        if self.report.records == 0 {
            self.start_from_anchor_below(seq);
        }
        let gap = seq > self.next;
        if gap {
            self.found(Some(self.next), Damage::Gap { last: seq - 1 });
        }
        let stored = row.hash.as_deref().and_then(ChainHash::from_hex);
        let follows = row.prev_hash.as_deref().and_then(ChainHash::from_hex);
        match (follows, stored) {
            (Some(follows), Some(stored)) => {
                if follows.then(&row.stored.record) != stored {
                    self.found(Some(seq), Damage::Edited);
                }
                let expected = if seq == 1 { Some(ChainHash::GENESIS) } else { self.previous };
                if let Some(expected) = expected.filter(|_| !gap)
                    && expected != follows
                {
                    self.found(Some(seq), Damage::BrokenLink { follows_hash: follows });
                }
            }
            _ => self.found(Some(seq), Damage::Unchained),
        }
        let rewritten: Vec<i64> = self
            .checkpoints
            .get(&seq)
            .into_iter()
            .flatten()
            .filter(|c| stored != Some(c.hash))
            .map(|c| c.signed_at_us)
            .collect();
        for signed_at_us in rewritten {
            self.found(Some(seq), Damage::Rehashed { signed_at_us });
        }
        self.previous = stored;
        self.next = seq + 1;
        self.report.records += 1;
        self.report.head = Some((seq, stored));
    }

    /// The damage found so far (all but truncation, which shows only at the end).
    pub fn findings(&self) -> &[Finding] {
        &self.report.findings
    }

    /// Starts the chain from the newest retention anchor below the first record, if any.
    fn start_from_anchor_below(&mut self, first: i64) {
        if let Some((&seq, anchor)) = self.anchors.range(..first).next_back() {
            self.next = seq + 1;
            self.previous = Some(anchor.hash);
            self.report.retained_from = anchor.removes_before_us.map(|before| (seq + 1, before));
        }
    }

    /// The report, once every record has been fed.
    pub fn finish(mut self) -> Report {
        let end = self.report.head.map_or(0, |(seq, _)| seq);
        let beyond: Vec<(i64, i64)> = self
            .checkpoints
            .range(end + 1..)
            .flat_map(|(seq, cs)| cs.iter().map(move |c| (*seq, c.signed_at_us)))
            .collect();
        if let Some(&(checkpoint_seq, signed_at_us)) = beyond.last() {
            self.found(Some(end + 1), Damage::Truncated { checkpoint_seq, signed_at_us });
        }
        self.report.findings.sort_by_key(|f| (f.seq.is_none(), f.seq));
        self.report
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod tests;
