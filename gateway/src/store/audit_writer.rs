//! The SQLite audit writer: one OS thread that owns one SQLite connection (rusqlite) and makes
//! every audit append of this process durable.
//!
//! Callers queue a [`PendingAudit`] (the record and a oneshot for its answer) on a bounded tokio
//! channel: `send().await` never blocks a runtime worker (a full queue is waited for, which is
//! the back-pressure), and when the thread is busy committing a send is a few atomic operations
//! with no system call. The thread parks in `blocking_recv_many`, takes whatever is queued (up
//! to [`AUDIT_BATCH`] records), writes it in one `BEGIN IMMEDIATE` transaction through a cached
//! prepared insert, and answers each caller with its sequence number only after `COMMIT`
//! returned (`synchronous=FULL` in WAL mode: the commit is fsynced). Many concurrent appends
//! share one fsync, and no record is ever answered `Ok` before it is durable. A batch that fails
//! anywhere is rolled back and every caller in it is answered with the error (the gateway fails
//! closed: 503, nothing released).
//!
//! Against the sqlx writer it replaces, a batch costs no hand-offs between the runtime and
//! sqlx's connection worker thread (one per statement and per `BEGIN`/`COMMIT`): the thread that
//! receives the records is the one that runs SQLite.
//!
//! The thread ends when the last handle is dropped: the queue closes, the thread commits what
//! was still queued (answering each caller as usual) and the drop waits for it, so a dropped
//! store has committed every record it accepted. If the thread dies, its queue closes with it
//! and every caller is answered "the audit writer has stopped".
//!
//! The hash chain ([`crate::audit::chain`]) is made here, in append order: each batch reads the
//! head (last sequence number and hash) once inside its transaction, numbers and links its
//! records from it, and writes each record's `seq`, `prev_hash` and `hash` in the same insert.
//! A rolled-back batch leaves the head as it was, so the chain never holds a link to a record
//! that was not committed.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::audit_log::{INSERT_AUDIT, PendingAudit, SELECT_HEAD, chain_start, each_audit_value};
use crate::audit::AuditRecord;

/// Most records committed in one transaction.
pub(super) const AUDIT_BATCH: usize = 256;

/// Records that may wait in the queue before senders wait for room.
const QUEUE: usize = 4 * AUDIT_BATCH;

fn stopped() -> StoreError {
    StoreError::other("append audit", "the audit writer has stopped")
}

fn failed(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError { op, detail: e.to_string() }
}

/// The SQLite audit writer thread's handle; clones share it, and the last one dropped stops the
/// thread once it has committed what was queued.
#[derive(Debug, Clone)]
pub struct SqliteAuditWriter(Arc<Running>);

#[derive(Debug)]
struct Running {
    queue: Option<mpsc::Sender<PendingAudit>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Closing the queue lets the thread commit what is queued and end.
        self.queue = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the audit writer thread panicked");
        }
    }
}

impl SqliteAuditWriter {
    /// Opens `path` (already created, in WAL mode, with the schema applied) on a new thread and
    /// starts writing. `busy_timeout` is how long a commit waits for another writer's lock.
    pub(super) async fn start(path: PathBuf, busy_timeout: Duration) -> Result<Self, StoreError> {
        let (queue, inbox) = mpsc::channel(QUEUE);
        let (ready, opened) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("tideway-audit".into())
            .spawn(move || match open(&path, busy_timeout) {
                Ok(conn) => {
                    if ready.send(Ok(())).is_ok() {
                        run(conn, inbox);
                    }
                }
                Err(e) => drop(ready.send(Err(e))),
            })
            .map_err(|e| StoreError::other("start audit writer", &e.to_string()))?;
        let writer = Self(Arc::new(Running { queue: Some(queue), thread: Some(thread) }));
        opened.await.unwrap_or_else(|_| Err(stopped()))?;
        Ok(writer)
    }

    /// Appends `record` durably and returns its sequence number.
    pub(super) async fn append(&self, record: Arc<AuditRecord>) -> Result<i64, StoreError> {
        let queue = self.0.queue.as_ref().ok_or_else(stopped)?;
        let (done, answer) = oneshot::channel();
        queue.send(PendingAudit { record, done }).await.map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// A writer whose queue is read by the test instead of a thread, to play a writer that
    /// stops.
    #[cfg(test)]
    pub(super) fn on_queue_for_tests(queue: mpsc::Sender<PendingAudit>) -> Self {
        Self(Arc::new(Running { queue: Some(queue), thread: None }))
    }
}

/// The writer's connection: the durability settings are checked, not assumed, and the insert
/// is prepared (so a missing or different `audit_event` table fails at start).
fn open(path: &std::path::Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let fail = failed("open audit writer");
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    let settle = || -> rusqlite::Result<(String, i64)> {
        conn.busy_timeout(busy_timeout)?;
        let mode = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        let sync = conn.pragma_query_value(None, "synchronous", |row| row.get(0))?;
        conn.prepare_cached(INSERT_AUDIT)?;
        Ok((mode, sync))
    };
    match settle().map_err(failed("open audit writer"))? {
        (mode, 2) if mode.eq_ignore_ascii_case("wal") => Ok(conn),
        _ => Err(StoreError::other("open audit writer", "could not set WAL mode with synchronous=FULL")),
    }
}

/// The thread's loop: runs until every handle is dropped and the queue is empty.
fn run(mut conn: Connection, mut inbox: mpsc::Receiver<PendingAudit>) {
    let mut batch = Vec::with_capacity(AUDIT_BATCH);
    while inbox.blocking_recv_many(&mut batch, AUDIT_BATCH) > 0 {
        match write_batch(&mut conn, &batch) {
            Ok(seqs) => {
                for (pending, seq) in batch.drain(..).zip(seqs) {
                    pending.answer(Ok(seq));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "audit batch could not be committed");
                if !conn.is_autocommit() {
                    // The rollback on drop failed too; try again so the next batch can begin.
                    let _ = conn.execute_batch("ROLLBACK");
                }
                for pending in batch.drain(..) {
                    pending.answer(Err(e.clone()));
                }
            }
        }
    }
}

/// Writes `batch` in one transaction, in order, each record linked to the one before it; the
/// sequence numbers, once committed. The head is read after `BEGIN IMMEDIATE` took the write
/// lock, so another process writing the same file cannot fork the chain.
fn write_batch(conn: &mut Connection, batch: &[PendingAudit]) -> Result<Vec<i64>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed("begin audit batch"))?;
    let head = tx
        .query_row(SELECT_HEAD, [], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Option<String>>(1)?)))
        .optional()
        .map_err(failed("read audit chain head"))?;
    let (mut seq, mut prev) = chain_start(head);
    let mut seqs = Vec::with_capacity(batch.len());
    {
        let mut insert = tx.prepare_cached(INSERT_AUDIT).map_err(failed("append audit"))?;
        for pending in batch {
            seq += 1;
            let hash = prev.then(&pending.record);
            let mut column = 1;
            insert.raw_bind_parameter(column, seq).map_err(failed("append audit"))?;
            each_audit_value!(&pending.record, |value| {
                column += 1;
                insert.raw_bind_parameter(column, value).map_err(failed("append audit"))?
            });
            for link in [prev, hash] {
                column += 1;
                insert.raw_bind_parameter(column, link.to_hex()).map_err(failed("append audit"))?;
            }
            // One row or a failure: a trigger that skipped the row must not be answered as
            // written.
            if insert.raw_execute().map_err(failed("append audit"))? != 1 {
                return Err(StoreError::other("append audit", "the store did not insert the record"));
            }
            seqs.push(seq);
            prev = hash;
        }
    }
    tx.commit().map_err(failed("commit audit batch"))?;
    Ok(seqs)
}
