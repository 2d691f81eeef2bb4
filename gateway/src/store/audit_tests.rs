//! The audit table against real databases: the SQLite writer thread (order, concurrency,
//! failures answered as errors, a stopped writer, shutdown) and the PostgreSQL insert.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::{AuditLog, SqliteAuditWriter, Store};
use crate::audit::{AuditOutcome, AuditPhase, AuditRecord};

/// A fresh SQLite file in the temp directory, removed when dropped.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("tideway-audit-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn url(&self) -> SecretString {
        format!("sqlite://{}", self.0.join("store.db").display()).into()
    }

    async fn store(&self) -> Store {
        Store::connect(&self.url(), 2, Duration::from_secs(5)).await.unwrap()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A record with every column set (some to `None`), at a whole microsecond (what is stored).
fn record(request_id: &str, n: u16) -> AuditRecord {
    let mut r = AuditRecord::new(request_id, "patient-everything", None);
    r.recorded_at =
        OffsetDateTime::from_unix_timestamp_nanos(1_767_225_600_123_456_000 + i128::from(n) * 1_000).unwrap();
    r.phase = if n.is_multiple_of(2) { AuditPhase::Intent } else { AuditPhase::Outcome };
    r.client_id = Some(format!("client-{n}"));
    r.user_id = (!n.is_multiple_of(3)).then(|| "555021935107".to_owned());
    r.role = Some("R8000".into());
    r.organisation = Some("RJ122".into());
    r.purpose = (!n.is_multiple_of(2)).then(|| "TREAT".to_owned());
    r.patient_id = Some(format!("p{n:032}"));
    r.sources = Arc::from(r#"["borough-00","borough-01"]"#);
    r.outcome = if n.is_multiple_of(2) { AuditOutcome::Pending } else { AuditOutcome::Partial };
    r.http_status = 200 + n;
    r.released = u64::from(n) * 7;
    r.detail = format!(r#"{{"note":"Zoë's ☃ n={n}"}}"#);
    r
}

fn same(a: &AuditRecord, b: &AuditRecord) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

async fn appends_ascend_and_read_back(store: &Store) {
    let written: Vec<AuditRecord> = (0..12).map(|n| record("req-order", n)).collect();
    let mut seqs = Vec::new();
    for r in &written {
        seqs.push(store.append_audit(r).await.unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "ascending: {seqs:?}");
    let read = store.audit_for_request("req-order").await.unwrap();
    assert_eq!(read.iter().map(|s| s.seq).collect::<Vec<_>>(), seqs);
    for (stored, r) in read.iter().zip(&written) {
        assert!(same(&stored.record, r), "read back as written:\n{:?}\n{r:?}", stored.record);
    }
}

#[tokio::test]
async fn sqlite_appends_get_ascending_seqs_and_read_back_identical() {
    let db = TempDb::new();
    appends_ascend_and_read_back(&db.store().await).await;
}

#[tokio::test]
async fn a_handed_over_record_is_let_go_of_before_the_answer() {
    let db = TempDb::new();
    let store = db.store().await;
    let shared = Arc::new(record("req-shared", 1));
    let seq = store.append_shared(shared.clone()).await.unwrap();
    assert_eq!(Arc::strong_count(&shared), 1, "the writer holds no copy once it has answered");
    let read = store.audit_for_request("req-shared").await.unwrap();
    assert_eq!(read.iter().map(|s| s.seq).collect::<Vec<_>>(), [seq]);
    assert!(same(&read[0].record, &shared));
}

#[tokio::test]
async fn postgres_appends_get_ascending_seqs_and_read_back_identical() {
    use sqlx::Connection;
    let base = std::env::var("TIDEWAY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base).await.expect("PostgreSQL is required for this test");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut conn).await.unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}").into();
    appends_ascend_and_read_back(&Store::connect(&url, 2, Duration::from_secs(5)).await.unwrap()).await;
}

/// `count` tasks, each appending one record of `request_id` and answering its seq.
fn spawn_appends(store: &Store, request_id: &'static str, count: u16) -> Vec<tokio::task::JoinHandle<i64>> {
    (0..count)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.append_audit(&record(request_id, n)).await.unwrap() })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_distinct_seqs_and_are_all_readable() {
    let db = TempDb::new();
    let store = db.store().await;
    let tasks = spawn_appends(&store, "req-many", 200);
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 200, "every append its own sequence number");
    let read = store.audit_for_request("req-many").await.unwrap();
    assert_eq!(read.iter().map(|s| s.seq).collect::<Vec<_>>(), seqs, "every append readable, in order");
}

fn sqlite_write(store: &Store) -> &sqlx::SqlitePool {
    let Store::Sqlite { write, .. } = store else { panic!("a SQLite store") };
    write
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_answers_every_caller_with_an_error_and_commits_nothing() {
    let db = TempDb::new();
    let store = db.store().await;
    // Records of `poison` abort their whole batch; the others succeed when batched apart.
    sqlx::raw_sql(
        "CREATE TRIGGER poison BEFORE INSERT ON audit_event WHEN NEW.request_id = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .execute(sqlite_write(&store))
    .await
    .unwrap();
    let tasks: Vec<_> = (0..60u16)
        .map(|n| {
            let store = store.clone();
            let id = if n.is_multiple_of(10) { "poison".to_owned() } else { format!("good-{n}") };
            tokio::spawn(async move { (id.clone(), store.append_audit(&record(&id, n)).await) })
        })
        .collect();
    let mut failed = 0;
    for t in tasks {
        let (id, answer) = t.await.unwrap();
        let rows = store.audit_for_request(&id).await.unwrap();
        match answer {
            Ok(seq) => assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [seq], "{id}"),
            Err(e) => {
                failed += 1;
                assert!(e.to_string().contains("could not be written"), "{e}");
                assert!(id == "poison" || rows.is_empty(), "{id}: an error means nothing was kept");
            }
        }
    }
    assert!(failed >= 6, "every poisoned record fails");
    assert!(store.audit_for_request("poison").await.unwrap().is_empty());

    // A trigger that skips the row silently is a failure too, not the previous row's seq.
    sqlx::raw_sql(
        "CREATE TRIGGER skip BEFORE INSERT ON audit_event WHEN NEW.request_id = 'skip' \
         BEGIN SELECT RAISE(IGNORE); END",
    )
    .execute(sqlite_write(&store))
    .await
    .unwrap();
    assert!(store.append_audit(&record("skip", 1)).await.is_err());

    // The table gone, as a failing disk or a revoked grant would leave it: errors, no panic;
    // and the writer carries on once the table is back.
    sqlx::raw_sql("DROP TABLE audit_event").execute(sqlite_write(&store)).await.unwrap();
    let e = store.append_audit(&record("gone", 1)).await.unwrap_err();
    assert!(e.to_string().contains("audit_event"), "{e}");
    sqlx::raw_sql(super::SCHEMA_SQLITE).execute(sqlite_write(&store)).await.unwrap();
    assert!(store.append_audit(&record("back", 1)).await.is_ok());
}

/// `store` with its audit writer replaced by one on `queue`.
fn with_writer(store: &Store, queue: mpsc::Sender<super::PendingAudit>) -> Store {
    let Store::Sqlite { write, read, .. } = store.clone() else { panic!("a SQLite store") };
    Store::Sqlite { write, read, audit: SqliteAuditWriter::on_queue_for_tests(queue) }
}

/// The error an append to `store` is answered with, within five seconds.
async fn answer_of(store: &Store, request_id: &str) -> crate::audit::AuditError {
    let record = record(request_id, 1);
    tokio::time::timeout(Duration::from_secs(5), store.append_audit(&record))
        .await
        .expect("no hang")
        .unwrap_err()
}

#[tokio::test]
async fn a_stopped_writer_answers_an_error_not_a_hang() {
    let db = TempDb::new();
    let store = db.store().await;

    // Its queue closed (the thread gone).
    let (queue, inbox) = mpsc::channel(1);
    drop(inbox);
    let closed = with_writer(&store, queue);
    let e = answer_of(&closed, "closed").await;
    assert!(e.to_string().contains("the audit writer has stopped"), "{e}");

    // It took the record and died before answering.
    let (queue, mut inbox) = mpsc::channel(1);
    let dying = with_writer(&store, queue);
    let thread = std::thread::spawn(move || drop(inbox.blocking_recv()));
    let e = answer_of(&dying, "dying").await;
    assert!(e.to_string().contains("the audit writer has stopped"), "{e}");
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_commits_what_was_acknowledged_and_closes_the_file() {
    let db = TempDb::new();
    let store = db.store().await;
    let tasks = spawn_appends(&store, "req-drop", 100);
    // Half the callers go away mid-append: their records may or may not be kept.
    for t in tasks.iter().step_by(2) {
        t.abort();
    }
    drop(store);
    let mut acknowledged = Vec::new();
    for t in tasks {
        if let Ok(seq) = t.await {
            acknowledged.push(seq);
        }
    }
    assert!(acknowledged.len() >= 50);
    // Every store handle is gone: the writer thread has ended. A new store sees every
    // acknowledged record.
    let again = db.store().await;
    let kept: Vec<i64> = again.audit_for_request("req-drop").await.unwrap().iter().map(|r| r.seq).collect();
    assert!(acknowledged.iter().all(|s| kept.contains(s)), "acknowledged {acknowledged:?}, kept {kept:?}");
}

#[tokio::test]
async fn an_in_memory_sqlite_store_is_refused_with_an_error() {
    let e =
        Store::connect(&"sqlite::memory:".to_owned().into(), 1, Duration::from_secs(1)).await.unwrap_err();
    assert!(e.to_string().contains("must be a file"), "{e}");
}
