//! The audit trail's table: durable appends (group-committed on SQLite, synchronous commit on
//! PostgreSQL) and reading a request's records back.

use async_trait::async_trait;
use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError, err};
use crate::audit::{AuditError, AuditLog, AuditOutcome, AuditPhase, AuditRecord, StoredAudit, action_named};

const INSERT_AUDIT_HEAD: &str = "INSERT INTO audit_event (recorded_at_us, request_id, phase, action, client_id, \
     user_id, role, organisation, purpose, patient_id, sources, outcome, http_status, released, detail)";

/// Columns an audit record binds.
const AUDIT_COLUMNS: usize = 15;

const SELECT_AUDIT: &str = "SELECT seq, recorded_at_us, request_id, phase, action, client_id, user_id, role, \
     organisation, purpose, patient_id, sources, outcome, http_status, released, detail FROM audit_event \
     WHERE request_id = $1 ORDER BY seq";

/// An audit record waiting for the SQLite group-commit writer, and who to tell.
#[derive(Debug)]
pub struct PendingAudit {
    record: AuditRecord,
    done: oneshot::Sender<Result<i64, StoreError>>,
}

/// Binds an audit record's fifteen columns, in `audit_event` order, to a query.
macro_rules! bind_audit_record {
    ($query:expr, $r:expr) => {{
        let r: &AuditRecord = $r;
        $query
            .bind(i64::try_from(r.recorded_at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX))
            .bind(r.request_id.as_str())
            .bind(r.phase.as_str())
            .bind(r.action)
            .bind(r.client_id.as_deref())
            .bind(r.user_id.as_deref())
            .bind(r.role.as_deref())
            .bind(r.organisation.as_deref())
            .bind(r.purpose.as_deref())
            .bind(r.patient_id.as_deref())
            .bind(&*r.sources)
            .bind(r.outcome.as_str())
            .bind(i32::from(r.http_status))
            .bind(i64::try_from(r.released).unwrap_or(i64::MAX))
            .bind(r.detail.as_str())
    }};
}

/// Most records committed in one SQLite transaction.
pub(super) const AUDIT_BATCH: usize = 256;

#[async_trait]
impl AuditLog for Store {
    async fn append_audit(&self, r: &AuditRecord) -> Result<i64, AuditError> {
        self.append(r).await.map_err(Into::into)
    }

    async fn audit_for_request(&self, request_id: &str) -> Result<Vec<StoredAudit>, AuditError> {
        self.read_request(request_id).await.map_err(Into::into)
    }
}

impl Store {
    async fn append(&self, r: &AuditRecord) -> Result<i64, StoreError> {
        let stopped = || StoreError::other("append audit", "the audit writer has stopped");
        match self {
            Self::Sqlite { audit, .. } => {
                let (done, answer) = oneshot::channel();
                audit.send(PendingAudit { record: r.clone(), done }).await.map_err(|_| stopped())?;
                answer.await.unwrap_or_else(|_| Err(stopped()))
            }
            Self::Postgres(p) => bind_audit_record!(sqlx::query_scalar::<_, i64>(single_row_insert()), r)
                .fetch_one(p)
                .await
                .map_err(err("append audit")),
        }
    }

    async fn read_request(&self, request_id: &str) -> Result<Vec<StoredAudit>, StoreError> {
        on_pool!(self, read, |p| sqlx::query(SELECT_AUDIT)
            .bind(request_id)
            .fetch_all(p)
            .await
            .map_err(err("read audit"))?
            .iter()
            .map(DecodeAuditRow::decode_audit)
            .collect::<Result<Vec<_>, _>>())
        .map_err(err("decode audit"))
    }
}

/// The SQLite group-commit writer: runs until every sender is dropped.
pub(super) async fn sqlite_audit_writer(pool: SqlitePool, mut queue: mpsc::Receiver<PendingAudit>) {
    let mut batch = Vec::with_capacity(AUDIT_BATCH);
    while queue.recv_many(&mut batch, AUDIT_BATCH).await > 0 {
        match write_audit_batch(&pool, &batch).await {
            Ok(seqs) => {
                for (pending, seq) in batch.drain(..).zip(seqs) {
                    // A caller that went away still has its record written; nobody to tell.
                    let _ = pending.done.send(Ok(seq));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "audit batch could not be committed");
                for pending in batch.drain(..) {
                    let _ = pending.done.send(Err(e.clone()));
                }
            }
        }
    }
}

async fn write_audit_batch(pool: &SqlitePool, batch: &[PendingAudit]) -> Result<Vec<i64>, StoreError> {
    let mut tx = pool.begin().await.map_err(err("begin audit batch"))?;
    let mut seqs = Vec::with_capacity(batch.len());
    let mut rest = batch;
    while !rest.is_empty() {
        // Multi-row inserts in a few fixed sizes: one statement per chunk instead of one per
        // record, and each size's statement stays prepared.
        let Some((size, sql)) = multi_row_inserts().iter().find(|(size, _)| *size <= rest.len()) else {
            break;
        };
        let (chunk, tail) = rest.split_at(*size);
        let mut query = sqlx::query_scalar::<_, i64>(sql.as_str());
        for p in chunk {
            query = bind_audit_record!(query, &p.record);
        }
        let mut got = query.fetch_all(&mut *tx).await.map_err(err("append audit"))?;
        // SQLite returns RETURNING rows in no promised order; the rows of one INSERT get
        // ascending sequence numbers in VALUES order, so sorting pairs them up again.
        got.sort_unstable();
        if got.len() != chunk.len() {
            return Err(StoreError::other("append audit", "the store returned the wrong number of rows"));
        }
        seqs.extend(got);
        rest = tail;
    }
    tx.commit().await.map_err(err("commit audit batch"))?;
    Ok(seqs)
}

/// The one-row insert, for PostgreSQL.
fn single_row_insert() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| insert_rows(1, '$'))
}

/// SQLite's multi-row inserts for 64, 16, 4 and 1 rows, largest first. SQLite gets `?n`
/// placeholders: sqlx maps those to positions directly, while `$n` costs a pattern match per
/// parameter on every bind.
fn multi_row_inserts() -> &'static [(usize, String)] {
    static SQL: std::sync::OnceLock<Vec<(usize, String)>> = std::sync::OnceLock::new();
    SQL.get_or_init(|| [64, 16, 4, 1].into_iter().map(|rows| (rows, insert_rows(rows, '?'))).collect())
}

/// `INSERT ... VALUES (...), (...) RETURNING seq` for `rows` rows, placeholders `{mark}n`.
fn insert_rows(rows: usize, mark: char) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> =
                (1..=AUDIT_COLUMNS).map(|c| format!("{mark}{}", r * AUDIT_COLUMNS + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!("{INSERT_AUDIT_HEAD} VALUES {} RETURNING seq", values.join(", "))
}

/// Reading a [`StoredAudit`] from either backend's row type: every column is parsed back into
/// its typed field, and a value the gateway could not have written is a decode error.
trait DecodeAuditRow {
    fn decode_audit(&self) -> Result<StoredAudit, sqlx::Error>;
}

fn bad(column: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("audit_event.{column} holds a value the gateway does not write").into())
}

macro_rules! audit_row_from {
    ($row:ty) => {
        impl DecodeAuditRow for $row {
            fn decode_audit(&self) -> Result<StoredAudit, sqlx::Error> {
                let r = self;
                let micros: i64 = r.try_get("recorded_at_us")?;
                let phase: String = r.try_get("phase")?;
                let action: String = r.try_get("action")?;
                let outcome: String = r.try_get("outcome")?;
                let status: i32 = r.try_get("http_status")?;
                let released: i64 = r.try_get("released")?;
                let sources: String = r.try_get("sources")?;
                let record = AuditRecord {
                    recorded_at: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
                        .map_err(|_| bad("recorded_at_us"))?,
                    request_id: r.try_get("request_id")?,
                    phase: AuditPhase::parse(&phase).ok_or_else(|| bad("phase"))?,
                    action: action_named(&action).ok_or_else(|| bad("action"))?,
                    client_id: r.try_get("client_id")?,
                    user_id: r.try_get("user_id")?,
                    role: r.try_get("role")?,
                    organisation: r.try_get("organisation")?,
                    purpose: r.try_get("purpose")?,
                    patient_id: r.try_get("patient_id")?,
                    sources: sources.into(),
                    outcome: AuditOutcome::parse(&outcome).ok_or_else(|| bad("outcome"))?,
                    http_status: u16::try_from(status).map_err(|_| bad("http_status"))?,
                    released: u64::try_from(released).map_err(|_| bad("released"))?,
                    detail: r.try_get("detail")?,
                };
                Ok(StoredAudit { seq: r.try_get("seq")?, record })
            }
        }
    };
}

audit_row_from!(sqlx::sqlite::SqliteRow);
audit_row_from!(sqlx::postgres::PgRow);
