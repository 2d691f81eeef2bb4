//! The audit trail's table: durable appends (on SQLite through the writer thread of
//! [`super::audit_writer`], group-committed; on PostgreSQL one synchronous commit per record)
//! and reading a request's records back (through sqlx on both backends).

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{PgPool, Row};
use tokio::sync::oneshot;

use super::{Store, StoreError, err};
use crate::audit::{AuditError, AuditLog, AuditOutcome, AuditPhase, AuditRecord, StoredAudit, action_named};

/// The insert of one record, `$n` placeholders in column order (SQLite numbers `$n` parameters
/// in order of appearance, so the same text binds by position there too).
macro_rules! insert_audit {
    () => {
        "INSERT INTO audit_event (recorded_at_us, request_id, phase, action, client_id, user_id, role, \
         organisation, purpose, patient_id, sources, outcome, http_status, released, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    };
}

/// SQLite's insert: the sequence number is the row id the insert reports.
pub(super) const INSERT_AUDIT: &str = insert_audit!();

/// PostgreSQL's insert, answering the sequence number.
const INSERT_AUDIT_RETURNING_SEQ: &str = concat!(insert_audit!(), " RETURNING seq");

const SELECT_AUDIT: &str = "SELECT seq, recorded_at_us, request_id, phase, action, client_id, user_id, role, \
     organisation, purpose, patient_id, sources, outcome, http_status, released, detail FROM audit_event \
     WHERE request_id = $1 ORDER BY seq";

/// An audit record waiting for the SQLite writer thread, and who to tell.
#[derive(Debug)]
pub struct PendingAudit {
    pub(super) record: Arc<AuditRecord>,
    pub(super) done: oneshot::Sender<Result<i64, StoreError>>,
}

/// Runs `$body` once per column of an audit record, in `audit_event` (and placeholder) order,
/// with `$value` bound to that column's value: one list of the fifteen columns for sqlx's
/// builder (PostgreSQL) and rusqlite's positional binds (the SQLite writer).
macro_rules! each_audit_value {
    ($record:expr, |$value:ident| $body:expr) => {{
        let r: &$crate::audit::AuditRecord = $record;
        let micros = $crate::epoch_us::of(r.recorded_at);
        let released = i64::try_from(r.released).unwrap_or(i64::MAX);
        let status = i32::from(r.http_status);
        {
            let $value = micros;
            $body;
        }
        for $value in [r.request_id.as_str(), r.phase.as_str(), r.action] {
            $body;
        }
        for $value in [&r.client_id, &r.user_id, &r.role, &r.organisation, &r.purpose, &r.patient_id] {
            let $value = $value.as_deref();
            $body;
        }
        for $value in [&*r.sources, r.outcome.as_str()] {
            $body;
        }
        {
            let $value = status;
            $body;
        }
        {
            let $value = released;
            $body;
        }
        {
            let $value = r.detail.as_str();
            $body;
        }
    }};
}
pub(super) use each_audit_value;

#[async_trait]
impl AuditLog for Store {
    async fn append_audit(&self, r: &AuditRecord) -> Result<i64, AuditError> {
        match self {
            Self::Sqlite { audit, .. } => audit.append(Arc::new(r.clone())).await,
            Self::Postgres(p) => append_postgres(p, r).await,
        }
        .map_err(Into::into)
    }

    /// SQLite's writer thread holds the record until it is committed: handed over, it is not
    /// copied.
    async fn append_shared(&self, r: Arc<AuditRecord>) -> Result<i64, AuditError> {
        match self {
            Self::Sqlite { audit, .. } => audit.append(r).await,
            Self::Postgres(p) => append_postgres(p, &r).await,
        }
        .map_err(Into::into)
    }

    async fn audit_for_request(&self, request_id: &str) -> Result<Vec<StoredAudit>, AuditError> {
        self.read_request(request_id).await.map_err(Into::into)
    }
}

/// PostgreSQL's append: one insert, committed before it returns.
async fn append_postgres(p: &PgPool, r: &AuditRecord) -> Result<i64, StoreError> {
    let mut query = sqlx::query_scalar::<_, i64>(INSERT_AUDIT_RETURNING_SEQ);
    each_audit_value!(r, |value| query = query.bind(value));
    query.fetch_one(p).await.map_err(err("append audit"))
}

impl Store {
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
