//! The hash chain against real databases: appends from concurrent callers (and, on
//! PostgreSQL, from two replicas) form one intact chain, the table refuses changes, and every
//! kind of damage done behind the gateway's back is named by `verify_audit`, at the right
//! place, on both backends.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AssertSqlSafe;

use super::test_db::{Backend, Dir, store_url};
use super::{AuditLog, ChainedAudit, Store};
use crate::audit::AuditRecord;
use crate::audit::chain::ChainHash;
use crate::audit::checkpoint::{CheckpointFile, CheckpointKey, Checkpointer};
use crate::audit::verify::{ChainVerifier, Report};

fn record(n: usize) -> AuditRecord {
    let mut r = AuditRecord::new(&format!("req-{n}"), "patient-read", None);
    r.patient_id = Some(format!("p{n:032}"));
    r.client_id = Some("epr".into());
    r.released = n as u64;
    r.detail = format!(r#"{{"n":{n},"note":"Zoë ☃"}}"#);
    r
}

/// Runs `sql` on the store as someone with direct access would: the append-only triggers
/// dropped first, as they would have to be.
async fn behind_the_gateways_back(store: &Store, sql: &str) {
    let drop_guards = match store {
        Store::Sqlite { .. } => {
            "DROP TRIGGER IF EXISTS audit_event_no_update; DROP TRIGGER IF EXISTS audit_event_no_delete;"
        }
        Store::Postgres { .. } => {
            "DROP TRIGGER IF EXISTS audit_event_no_change ON audit_event; \
             DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event;"
        }
    };
    with_the_guards(store, AssertSqlSafe(format!("{drop_guards} {sql}"))).await.unwrap();
}

/// Runs `sql` on the store as it stands (the append-only triggers in place, unless dropped).
async fn with_the_guards(store: &Store, sql: impl sqlx::SqlSafeStr) -> Result<(), sqlx::Error> {
    match store {
        Store::Sqlite { write, .. } => sqlx::raw_sql(sql).execute(write).await.map(drop),
        Store::Postgres { pool, .. } => sqlx::raw_sql(sql).execute(pool).await.map(drop),
    }
}

/// Every record of the trail, as stored.
async fn all_rows(store: &Store) -> Vec<ChainedAudit> {
    store.audit_page(i64::MIN, i64::MIN, 1_000_000).await.unwrap()
}

/// Recomputes every hash from the first record on and writes them back, as someone hiding an
/// edit would.
async fn rewrite_chain(store: &Store) {
    let mut prev = ChainHash::GENESIS;
    let mut sql = String::new();
    for row in all_rows(store).await {
        let hash = prev.then(&row.stored.record);
        sql.push_str(&format!(
            "UPDATE audit_event SET prev_hash = '{prev}', hash = '{hash}' WHERE seq = {};",
            row.stored.seq
        ));
        prev = hash;
    }
    behind_the_gateways_back(store, &sql).await;
}

fn checkpointer_of(key: &std::path::Path, file: &std::path::Path, store: &Store) -> Checkpointer {
    Checkpointer::new(key, file.to_owned(), Arc::new(store.clone())).unwrap()
}

struct Trail {
    store: Store,
    dir: Dir,
    key: std::path::PathBuf,
    file: std::path::PathBuf,
}

impl Trail {
    /// A store holding `records` records, checkpointed after the `checkpoint_at`th.
    async fn new(backend: Backend, records: usize, checkpoint_at: usize) -> Self {
        let dir = Dir::new();
        let store =
            Store::connect(&store_url(backend, &dir).await, 2, Duration::from_secs(10)).await.unwrap();
        let key = dir.0.join("key");
        let file = dir.0.join("checkpoints.jsonl");
        CheckpointKey::generate(&key).unwrap();
        let checkpointer = checkpointer_of(&key, &file, &store);
        for n in 1..=records {
            store.append_audit(&record(n)).await.unwrap();
            if n == checkpoint_at {
                assert!(checkpointer.checkpoint().await.unwrap().is_some());
                assert!(checkpointer.checkpoint().await.unwrap().is_none(), "nothing new, nothing signed");
            }
        }
        Self { store, dir, key, file }
    }

    /// A checkpointer for this trail, as the gateway makes one at (re)start.
    fn checkpointer(&self) -> Checkpointer {
        checkpointer_of(&self.key, &self.file, &self.store)
    }

    async fn verify(&self) -> Report {
        let key = CheckpointKey::load(&self.key).unwrap();
        let (checkpoints, unreadable) = CheckpointFile::new(self.file.clone()).read().unwrap();
        self.store
            .verify_audit(ChainVerifier::new(checkpoints, &unreadable, Some(&key.verifying_key())))
            .await
            .unwrap()
    }

    async fn first_damage(&self) -> (Option<i64>, &'static str) {
        let report = self.verify().await;
        let first = report.first().unwrap_or_else(|| panic!("damage went unnoticed: {report:?}"));
        (first.seq, first.damage.kind())
    }
}

async fn concurrent_appends_form_one_intact_chain(backend: Backend) {
    let trail = Trail::new(backend, 3, 3).await;
    let tasks: Vec<_> = (0..150)
        .map(|n| {
            let store = trail.store.clone();
            tokio::spawn(async move { store.append_audit(&record(100 + n)).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let report = trail.verify().await;
    assert!(report.intact(), "{backend:?}: {:?}", report.findings);
    assert_eq!(report.records, 153);
    assert_eq!(report.checkpoints, 1);
    let _ = &trail.dir;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_appends_form_one_intact_chain() {
    concurrent_appends_form_one_intact_chain(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_appends_form_one_intact_chain() {
    concurrent_appends_form_one_intact_chain(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_replicas_appending_at_once_keep_one_chain() {
    let dir = Dir::new();
    let url = store_url(Backend::Postgres, &dir).await;
    let a = Store::connect(&url, 2, Duration::from_secs(10)).await.unwrap();
    let b = Store::connect(&url, 2, Duration::from_secs(10)).await.unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { store.append_audit(&record(n)).await.unwrap() })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<i64>>(), "one gap-free numbering across replicas");
    let report = a.verify_audit(ChainVerifier::new(Vec::new(), &[], None)).await.unwrap();
    assert!(report.intact(), "{:?}", report.findings);
    assert_eq!(report.records, 200);
}

async fn the_table_refuses_changes(backend: Backend) {
    let trail = Trail::new(backend, 2, 2).await;
    let attempts =
        ["UPDATE audit_event SET released = 9 WHERE seq = 1", "DELETE FROM audit_event WHERE seq = 2"];
    for sql in attempts {
        let e = with_the_guards(&trail.store, sql).await.expect_err(sql);
        assert!(e.to_string().contains("append-only"), "{backend:?}: {e}");
    }
    if let Store::Postgres { pool, .. } = &trail.store {
        let e = sqlx::raw_sql("TRUNCATE audit_event").execute(pool).await.expect_err("truncate");
        assert!(e.to_string().contains("append-only"), "{e}");
    }
    assert!(trail.verify().await.intact());
}

#[tokio::test]
async fn sqlite_refuses_changes_to_the_trail() {
    the_table_refuses_changes(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_refuses_changes_to_the_trail() {
    the_table_refuses_changes(Backend::Postgres).await;
}

async fn every_kind_of_damage_is_named(backend: Backend) {
    // An edit.
    let t = Trail::new(backend, 20, 20).await;
    behind_the_gateways_back(&t.store, "UPDATE audit_event SET released = 999 WHERE seq = 5;").await;
    assert_eq!(t.first_damage().await, (Some(5), "edited"), "{backend:?}");

    // A value the gateway never writes: still reported as an edit at its place, not a stop.
    let t = Trail::new(backend, 6, 6).await;
    behind_the_gateways_back(
        &t.store,
        "UPDATE audit_event SET action = 'made-up', phase = 'x' WHERE seq = 2;",
    )
    .await;
    assert_eq!(t.first_damage().await, (Some(2), "edited"), "{backend:?}");

    // A deletion.
    let t = Trail::new(backend, 20, 20).await;
    behind_the_gateways_back(&t.store, "DELETE FROM audit_event WHERE seq = 7;").await;
    assert_eq!(t.first_damage().await, (Some(7), "gap"), "{backend:?}");

    // A deletion hidden by renumbering the rest.
    let t = Trail::new(backend, 20, 20).await;
    behind_the_gateways_back(
        &t.store,
        "DELETE FROM audit_event WHERE seq = 4; \
         UPDATE audit_event SET seq = -(seq - 1) WHERE seq > 4; \
         UPDATE audit_event SET seq = -seq WHERE seq < 0;",
    )
    .await;
    assert_eq!(t.first_damage().await, (Some(4), "deleted"), "{backend:?}");

    // Two records swapped.
    let t = Trail::new(backend, 20, 20).await;
    behind_the_gateways_back(
        &t.store,
        "UPDATE audit_event SET seq = -8 WHERE seq = 8; \
         UPDATE audit_event SET seq = 8 WHERE seq = 9; \
         UPDATE audit_event SET seq = 9 WHERE seq = -8;",
    )
    .await;
    let report = t.verify().await;
    assert_eq!(t.first_damage().await, (Some(8), "reordered"), "{backend:?}");
    assert!(report.findings[0].to_string().contains("follows seq 9"), "{}", report.findings[0]);

    // The tail cut off after a checkpoint.
    let t = Trail::new(backend, 20, 18).await;
    behind_the_gateways_back(&t.store, "DELETE FROM audit_event WHERE seq > 15;").await;
    assert_eq!(t.first_damage().await, (Some(16), "truncated"), "{backend:?}");

    // An edit hidden by rewriting every hash after a checkpoint.
    let t = Trail::new(backend, 20, 12).await;
    behind_the_gateways_back(&t.store, "UPDATE audit_event SET patient_id = 'someone-else' WHERE seq = 3;")
        .await;
    rewrite_chain(&t.store).await;
    assert!(
        t.store.verify_audit(ChainVerifier::new(Vec::new(), &[], None)).await.unwrap().intact(),
        "without its checkpoints a rewritten chain checks"
    );
    assert_eq!(t.first_damage().await, (Some(12), "rehashed"), "{backend:?}");

    // A forged checkpoint line.
    let t = Trail::new(backend, 5, 5).await;
    let text = std::fs::read_to_string(&t.file).unwrap().replace("\"seq\":5", "\"seq\":4");
    std::fs::write(&t.file, text).unwrap();
    assert_eq!(t.first_damage().await, (Some(4), "forged-checkpoint"), "{backend:?}");
}

#[tokio::test]
async fn sqlite_names_every_kind_of_damage() {
    every_kind_of_damage_is_named(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_names_every_kind_of_damage() {
    every_kind_of_damage_is_named(Backend::Postgres).await;
}

/// Record `n`, made `days` days ago.
fn aged(n: usize, days: i64) -> AuditRecord {
    let mut r = record(n);
    r.recorded_at -= time::Duration::days(days);
    r
}

async fn retention_removes_only_old_records_and_anchors_what_it_removed(backend: Backend) {
    let t = Trail::new(backend, 0, 0).await;
    let checkpointer = t.checkpointer();
    for n in 1..=6 {
        t.store.append_audit(&aged(n, 40)).await.unwrap();
    }
    // One record made in the period, then old again (a replica's clock behind): retention
    // keeps everything from the first record made in the period on.
    t.store.append_audit(&record(7)).await.unwrap();
    t.store.append_audit(&aged(8, 40)).await.unwrap();
    t.store.append_audit(&record(9)).await.unwrap();
    assert!(checkpointer.checkpoint().await.unwrap().is_some());

    assert_eq!(checkpointer.apply_retention(30).await.unwrap(), 6, "{backend:?}");
    assert_eq!(checkpointer.apply_retention(30).await.unwrap(), 0, "{backend:?}: nothing more is old");
    let kept: Vec<i64> = all_rows(&t.store).await.iter().map(|r| r.stored.seq).collect();
    assert_eq!(kept, [7, 8, 9], "{backend:?}");
    let report = t.verify().await;
    assert!(report.intact(), "{backend:?}: {:?}", report.findings);
    assert_eq!(report.retained_from.map(|r| r.0), Some(7), "{backend:?}");
    assert_eq!(report.records, 3);

    // The trail goes on from its head; the table still refuses any other removal.
    t.store.append_audit(&record(10)).await.unwrap();
    assert!(t.verify().await.intact(), "{backend:?}");
    let refused = with_the_guards(&t.store, "DELETE FROM audit_event WHERE seq = 7").await;
    assert!(refused.expect_err("a delete above the retention horizon").to_string().contains("append-only"));

    // Records removed past the anchor without one are a gap where the anchor ends.
    behind_the_gateways_back(&t.store, "DELETE FROM audit_event WHERE seq = 7;").await;
    assert_eq!(t.first_damage().await, (Some(7), "gap"), "{backend:?}");
}

#[tokio::test]
async fn sqlite_retention_removes_only_old_records_and_anchors_what_it_removed() {
    retention_removes_only_old_records_and_anchors_what_it_removed(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_retention_removes_only_old_records_and_anchors_what_it_removed() {
    retention_removes_only_old_records_and_anchors_what_it_removed(Backend::Postgres).await;
}

async fn retention_keeps_the_head_and_never_removes_a_damaged_trail(backend: Backend) {
    // Every record old: all but the head go.
    let t = Trail::new(backend, 0, 0).await;
    let checkpointer = t.checkpointer();
    for n in 1..=3 {
        t.store.append_audit(&aged(n, 40)).await.unwrap();
    }
    assert_eq!(checkpointer.apply_retention(30).await.unwrap(), 2, "{backend:?}");
    assert_eq!(all_rows(&t.store).await.len(), 1);
    assert_eq!(t.verify().await.retained_from.map(|r| r.0), Some(3), "{backend:?}");

    // An edited record among the old ones: nothing is removed, and the error names it.
    let t = Trail::new(backend, 0, 0).await;
    let checkpointer = t.checkpointer();
    for n in 1..=5 {
        t.store.append_audit(&aged(n, 40)).await.unwrap();
    }
    t.store.append_audit(&record(6)).await.unwrap();
    behind_the_gateways_back(&t.store, "UPDATE audit_event SET released = 999 WHERE seq = 3;").await;
    let e = checkpointer.apply_retention(30).await.expect_err("a damaged trail is not removed");
    assert!(e.to_string().contains("seq 3: edited"), "{backend:?}: {e}");
    assert_eq!(all_rows(&t.store).await.len(), 6, "{backend:?}: the evidence stays");
    let (checkpoints, _) = CheckpointFile::new(t.file.clone()).read().unwrap();
    assert!(checkpoints.iter().all(|c| !c.is_anchor()), "no anchor was signed");
}

#[tokio::test]
async fn sqlite_retention_keeps_the_head_and_never_removes_a_damaged_trail() {
    retention_keeps_the_head_and_never_removes_a_damaged_trail(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_retention_keeps_the_head_and_never_removes_a_damaged_trail() {
    retention_keeps_the_head_and_never_removes_a_damaged_trail(Backend::Postgres).await;
}

async fn damage_since_the_last_checkpoint_is_found_at_once(backend: Backend) {
    let restart = Trail::checkpointer;
    let damage = |c: Checkpointer| async move {
        c.damage_since_last_checkpoint().await.unwrap().map(|f| (f.seq, f.damage.kind()))
    };
    // Intact, with records added since: nothing to say.
    let t = Trail::new(backend, 8, 6).await;
    assert_eq!(damage(restart(&t)).await, None, "{backend:?}");
    let fresh = Trail::new(backend, 3, 0).await;
    assert_eq!(damage(restart(&fresh)).await, None, "{backend:?}: never checkpointed");

    // The chain rewritten after an edit: the signed record's hash changed, and the head is
    // not signed over it.
    behind_the_gateways_back(&t.store, "UPDATE audit_event SET released = 5 WHERE seq = 2;").await;
    rewrite_chain(&t.store).await;
    let checkpointer = restart(&t);
    let e = checkpointer.checkpoint().await.expect_err("a rewritten chain is not signed");
    assert!(e.to_string().contains("seq 6: rehashed"), "{backend:?}: {e}");
    assert_eq!(damage(checkpointer).await, Some((Some(6), "rehashed")), "{backend:?}");

    // The tail cut off below the checkpoint; the signed record deleted.
    let t = Trail::new(backend, 8, 6).await;
    behind_the_gateways_back(&t.store, "DELETE FROM audit_event WHERE seq >= 5;").await;
    assert_eq!(damage(restart(&t)).await, Some((Some(5), "truncated")), "{backend:?}");
    let t = Trail::new(backend, 8, 6).await;
    behind_the_gateways_back(&t.store, "DELETE FROM audit_event WHERE seq = 6;").await;
    assert_eq!(damage(restart(&t)).await, Some((Some(6), "gap")), "{backend:?}");

    // Removed under retention, past the checkpoint: accounted for by the anchor.
    let t = Trail::new(backend, 0, 0).await;
    let checkpointer = restart(&t);
    for n in 1..=4 {
        t.store.append_audit(&aged(n, 40)).await.unwrap();
    }
    checkpointer.checkpoint().await.unwrap();
    t.store.append_audit(&record(5)).await.unwrap();
    assert_eq!(checkpointer.apply_retention(30).await.unwrap(), 4);
    assert_eq!(damage(restart(&t)).await, None, "{backend:?}");
    assert!(checkpointer.checkpoint().await.unwrap().is_some(), "{backend:?}: signing goes on");
}

#[tokio::test]
async fn sqlite_damage_since_the_last_checkpoint_is_found_at_once() {
    damage_since_the_last_checkpoint_is_found_at_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_damage_since_the_last_checkpoint_is_found_at_once() {
    damage_since_the_last_checkpoint_is_found_at_once(Backend::Postgres).await;
}
