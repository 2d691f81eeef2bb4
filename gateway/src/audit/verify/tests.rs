//! The verifier against chains built here and damaged in each way it must notice.

use proptest::prelude::*;

use super::*;
use crate::audit::checkpoint::CheckpointKey;
use crate::audit::{AuditRecord, StoredAudit};

fn record(n: i64) -> AuditRecord {
    let mut r = AuditRecord::new(&format!("req-{n}"), "patient-read", None);
    r.recorded_at = time::OffsetDateTime::from_unix_timestamp(1_767_225_600 + n).unwrap_or(r.recorded_at);
    r.patient_id = Some(format!("p{n}"));
    r.released = u64::try_from(n).unwrap_or_default();
    r
}

/// A well-formed chain of `len` records, numbered from 1.
fn chain(len: i64) -> Vec<ChainedAudit> {
    let mut prev = ChainHash::GENESIS;
    (1..=len)
        .map(|seq| {
            let record = record(seq);
            let hash = prev.then(&record);
            let row = ChainedAudit {
                stored: StoredAudit { seq, record },
                prev_hash: Some(prev.to_hex()),
                hash: Some(hash.to_hex()),
            };
            prev = hash;
            row
        })
        .collect()
}

/// Recomputes every hash from the first record on, as someone rewriting the database would.
fn rehash(rows: &mut [ChainedAudit]) {
    rehash_from(rows, ChainHash::GENESIS);
}

fn key() -> CheckpointKey {
    let path = std::env::temp_dir().join(format!("tideway-verify-key-{}", uuid::Uuid::new_v4().simple()));
    let key = CheckpointKey::generate(&path).unwrap();
    let _ = std::fs::remove_file(path);
    key
}

fn head_of(rows: &[ChainedAudit], seq: i64) -> ChainHash {
    let row = rows.iter().find(|r| r.stored.seq == seq).unwrap();
    ChainHash::from_hex(row.hash.as_deref().unwrap()).unwrap()
}

fn verify(rows: &[ChainedAudit], checkpoints: Vec<Checkpoint>, key: Option<&CheckpointKey>) -> Report {
    let verifying = key.map(CheckpointKey::verifying_key);
    let mut v = ChainVerifier::new(checkpoints, &[], verifying.as_ref());
    for row in rows {
        v.feed(row);
    }
    v.finish()
}

fn first(report: &Report) -> (Option<i64>, &'static str) {
    let f = report.first().unwrap();
    (f.seq, f.damage.kind())
}

#[test]
fn an_intact_chain_with_its_checkpoints_verifies() {
    let rows = chain(10);
    let key = key();
    let checkpoints = vec![key.sign(4, head_of(&rows, 4)), key.sign(10, head_of(&rows, 10))];
    let report = verify(&rows, checkpoints, Some(&key));
    assert!(report.intact(), "{:?}", report.findings);
    assert_eq!(report.records, 10);
    assert_eq!(report.checkpoints, 2);
    assert_eq!(report.latest_checkpoint, Some(10));
    assert_eq!(report.head.map(|h| h.0), Some(10));
    assert!(verify(&[], vec![], None).intact(), "an empty trail is intact");
}

#[test]
fn an_edited_record_is_named() {
    let mut rows = chain(6);
    rows[3].stored.record.released = 99;
    let report = verify(&rows, vec![], None);
    assert_eq!(first(&report), (Some(4), "edited"));
    assert_eq!(report.findings.len(), 1, "the next link still holds: {:?}", report.findings);
}

#[test]
fn a_deleted_record_is_a_gap() {
    let mut rows = chain(6);
    rows.remove(2);
    let report = verify(&rows, vec![], None);
    assert_eq!(report.findings, vec![Finding { seq: Some(3), damage: Damage::Gap { last: 3 } }]);
    let mut first_gone = chain(3);
    first_gone.remove(0);
    assert_eq!(first(&verify(&first_gone, vec![], None)), (Some(1), "gap"));
}

#[test]
fn a_deletion_hidden_by_renumbering_breaks_the_link() {
    let mut rows = chain(6);
    rows.remove(2);
    for (n, row) in rows.iter_mut().enumerate() {
        row.stored.seq = i64::try_from(n).unwrap() + 1;
    }
    let report = verify(&rows, vec![], None);
    assert_eq!(first(&report), (Some(3), "broken-link"));
}

#[test]
fn swapped_records_break_the_links() {
    let mut rows = chain(6);
    let (a, b) = (rows[2].clone(), rows[3].clone());
    rows[2] = ChainedAudit { stored: StoredAudit { seq: 3, record: b.stored.record }, ..b };
    rows[3] = ChainedAudit { stored: StoredAudit { seq: 4, record: a.stored.record }, ..a };
    let report = verify(&rows, vec![], None);
    assert_eq!(first(&report), (Some(3), "broken-link"));
    assert!(
        matches!(report.findings[0].damage, Damage::BrokenLink { follows_hash } if follows_hash == head_of(&chain(6), 3))
    );
}

#[test]
fn rewriting_the_chain_after_an_edit_is_caught_by_a_checkpoint() {
    let original = chain(8);
    let key = key();
    let checkpoints = vec![key.sign(5, head_of(&original, 5))];
    let mut rows = original;
    rows[1].stored.record.detail = "{\"reason\":\"nothing to see\"}".into();
    rehash(&mut rows);
    assert!(verify(&rows, vec![], None).intact(), "without checkpoints a rewrite cannot be seen");
    let report = verify(&rows, checkpoints, Some(&key));
    assert_eq!(first(&report), (Some(5), "rehashed"));
}

#[test]
fn truncation_is_caught_by_a_later_checkpoint() {
    let original = chain(8);
    let key = key();
    let checkpoints = vec![key.sign(7, head_of(&original, 7))];
    let mut rows = original;
    rows.truncate(5);
    let report = verify(&rows, checkpoints, Some(&key));
    assert_eq!(
        report.findings,
        vec![Finding {
            seq: Some(6),
            damage: Damage::Truncated { checkpoint_seq: 7, signed_at_us: report_signed_at(&report) }
        }]
    );
    assert_eq!(
        verify(&[], vec![key.sign(1, ChainHash::GENESIS)], Some(&key)).first().map(|f| f.seq),
        Some(Some(1))
    );
}

fn report_signed_at(report: &Report) -> i64 {
    match report.findings.first().map(|f| &f.damage) {
        Some(Damage::Truncated { signed_at_us, .. }) => *signed_at_us,
        _ => -1,
    }
}

#[test]
fn a_checkpoint_that_does_not_verify_is_forged() {
    let rows = chain(4);
    let key = key();
    let mut forged = key.sign(4, head_of(&rows, 4));
    forged.seq = 3;
    let report = verify(&rows, vec![forged], Some(&key));
    assert_eq!(first(&report), (Some(3), "forged-checkpoint"));
    let other = self::key();
    let report = verify(&rows, vec![other.sign(4, head_of(&rows, 4))], Some(&key));
    assert_eq!(first(&report), (Some(4), "forged-checkpoint"));
    assert_eq!(report.checkpoints, 0);
}

#[test]
fn a_record_without_hashes_is_unchained_and_the_next_link_is_not_judged_on_it() {
    let mut rows = chain(4);
    rows[1].hash = None;
    let report = verify(&rows, vec![], None);
    assert_eq!(report.findings, vec![Finding { seq: Some(2), damage: Damage::Unchained }]);
}

#[test]
fn a_trail_whose_oldest_records_were_removed_under_a_signed_anchor_verifies_from_it() {
    let all = chain(10);
    let key = key();
    let anchor = key.sign_anchor(4, head_of(&all, 4), 1_700_000_000_000_000);
    let kept = &all[4..];
    let report = verify(kept, vec![anchor.clone()], Some(&key));
    assert!(report.intact(), "{:?}", report.findings);
    assert_eq!(report.retained_from, Some((5, 1_700_000_000_000_000)));
    assert_eq!(report.records, 6);

    // An older anchor and a later one: the newest below the first record kept counts.
    let older = key.sign_anchor(2, head_of(&all, 2), 1_600_000_000_000_000);
    assert!(verify(kept, vec![older.clone(), anchor.clone()], Some(&key)).intact());
    // Records kept that an anchor also covers (the removal did not happen): still intact.
    assert!(verify(&all, vec![anchor.clone()], Some(&key)).intact());

    // Records removed past the anchor are a gap where it ends.
    let report = verify(&all[6..], vec![anchor.clone()], Some(&key));
    assert_eq!(report.findings, vec![Finding { seq: Some(5), damage: Damage::Gap { last: 6 } }]);
    // Without an anchor, removal is a gap from the start; only the oldest anchor: from it.
    assert_eq!(first(&verify(kept, vec![], Some(&key))), (Some(1), "gap"));
    assert_eq!(first(&verify(kept, vec![older], Some(&key))), (Some(3), "gap"));
    // A checkpoint is not an anchor, and cannot be made into one.
    let checkpoint = key.sign(4, head_of(&all, 4));
    assert_eq!(first(&verify(kept, vec![checkpoint.clone()], Some(&key))), (Some(1), "gap"));
    let mut passed_off = checkpoint;
    passed_off.removes_before_us = Some(1_700_000_000_000_000);
    let report = verify(kept, vec![passed_off], Some(&key));
    let kinds: Vec<_> = report.findings.iter().map(|f| (f.seq, f.damage.kind())).collect();
    assert_eq!(kinds, [(Some(1), "gap"), (Some(4), "forged-checkpoint")]);
    // An anchor signed by another key does not count.
    let other = self::key().sign_anchor(4, head_of(&all, 4), 1_700_000_000_000_000);
    let report = verify(kept, vec![other], Some(&key));
    assert_eq!(first(&report), (Some(1), "gap"));
    // The first record kept must follow the hash the anchor signed.
    let mut replaced = kept.to_vec();
    replaced[0].stored.record.released = 77;
    rehash_from(&mut replaced, ChainHash::GENESIS);
    assert_eq!(first(&verify(&replaced, vec![anchor], Some(&key))), (Some(5), "broken-link"));
}

/// Recomputes the hashes of `rows` as a chain following `prev`.
fn rehash_from(rows: &mut [ChainedAudit], mut prev: ChainHash) {
    for row in rows {
        let hash = prev.then(&row.stored.record);
        row.prev_hash = Some(prev.to_hex());
        row.hash = Some(hash.to_hex());
        prev = hash;
    }
}

#[derive(Debug, Clone)]
enum Tamper {
    Edit(usize),
    Delete(usize),
    DeleteRenumber(usize),
    Swap(usize),
    Truncate(usize),
    EditRehash(usize),
}

fn tamper() -> impl Strategy<Value = (i64, Tamper)> {
    (3i64..40).prop_flat_map(|len| {
        let last = usize::try_from(len).unwrap_or(3) - 1;
        let i = 0..last;
        (
            Just(len),
            prop_oneof![
                i.clone().prop_map(Tamper::Edit),
                i.clone().prop_map(Tamper::Delete),
                i.clone().prop_map(Tamper::DeleteRenumber),
                i.clone().prop_map(Tamper::Swap),
                (1..last).prop_map(Tamper::Truncate),
                i.prop_map(Tamper::EditRehash),
            ],
        )
    })
}

proptest! {
    /// Whatever one damage is done to a chain whose head was checkpointed, the check finds it.
    #[test]
    fn any_single_damage_is_found((len, damage) in tamper()) {
        let original = chain(len);
        let key = key();
        let checkpoints = vec![key.sign(len, head_of(&original, len))];
        let mut rows = original;
        match damage {
            Tamper::Edit(i) => rows[i].stored.record.user_id = Some("someone-else".into()),
            Tamper::Delete(i) => { rows.remove(i); }
            Tamper::DeleteRenumber(i) => {
                rows.remove(i);
                for row in &mut rows[i..] { row.stored.seq -= 1; }
            }
            Tamper::Swap(i) => {
                let (a, b) = (rows[i].stored.seq, rows[i + 1].stored.seq);
                rows.swap(i, i + 1);
                rows[i].stored.seq = a;
                rows[i + 1].stored.seq = b;
            }
            Tamper::Truncate(keep) => rows.truncate(keep),
            Tamper::EditRehash(i) => {
                rows[i].stored.record.outcome = crate::audit::AuditOutcome::Denied;
                rehash(&mut rows);
            }
        }
        let report = verify(&rows, checkpoints, Some(&key));
        prop_assert!(!report.intact());
    }

    /// Checking is deterministic and an intact chain of any length passes.
    #[test]
    fn intact_chains_pass(len in 0i64..60) {
        let rows = chain(len);
        prop_assert!(verify(&rows, vec![], None).intact());
    }
}
