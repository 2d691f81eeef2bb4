//! The audit trail's table: durable appends (on SQLite through the writer thread of
//! [`super::audit_writer`], group-committed; on PostgreSQL one synchronous commit per record)
//! and reading a request's records back (through sqlx on both backends).

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Row;
use tokio::sync::oneshot;

use super::{Store, StoreError, err};
use crate::audit::chain::ChainHash;
use crate::audit::{
    AuditError, AuditLog, AuditOutcome, AuditPhase, AuditRecord, ChainedAudit, PatientWindow, StoredAudit,
    action_named,
};

/// The insert of one record with its place in the hash chain: the sequence number (`$1`), the
/// fifteen columns of the record in order, then `prev_hash` and `hash`. `$n` placeholders
/// in order of appearance, so SQLite (which numbers them so) binds the same text by position.
pub(super) const INSERT_AUDIT: &str = "INSERT INTO audit_event (seq, recorded_at_us, request_id, phase, action, client_id, user_id, role, \
     organisation, purpose, patient_id, sources, outcome, http_status, released, detail, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";

/// The chain's head: the last record's sequence number and hash. Read inside the writing
/// transaction, after its lock is taken, so no other writer can move it meanwhile.
pub(super) const SELECT_HEAD: &str = "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1";

/// The first link of a batch: the head's sequence number (0 when the trail is empty) and the
/// hash a new record follows. A head row without a hash (written before the chain existed, or
/// damaged) is followed from the genesis hash; `audit verify` reports it.
pub(super) fn chain_start(head: Option<(i64, Option<String>)>) -> (i64, ChainHash) {
    match head {
        None => (0, ChainHash::GENESIS),
        Some((seq, hash)) => {
            (seq, hash.as_deref().and_then(ChainHash::from_hex).unwrap_or(ChainHash::GENESIS))
        }
    }
}

/// Every column, for reading records back.
macro_rules! select_audit {
    ($rest:literal) => {
        concat!(
            "SELECT seq, recorded_at_us, request_id, phase, action, client_id, user_id, role, organisation, \
             purpose, patient_id, sources, outcome, http_status, released, detail, prev_hash, hash \
             FROM audit_event ",
            $rest
        )
    };
}

const SELECT_AUDIT: &str = select_audit!("WHERE request_id = $1 ORDER BY seq");

/// A page of the trail in sequence order: after a sequence number, recorded at or after an
/// instant, at most so many.
const SELECT_AUDIT_PAGE: &str =
    select_audit!("WHERE seq > $1 AND recorded_at_us >= $2 ORDER BY seq LIMIT $3");

/// One patient's outcome and disclosure records within `[from, to)` microseconds, newest first, at most so many.
const SELECT_AUDIT_FOR_PATIENT: &str = select_audit!(
    "WHERE patient_id = $1 AND phase IN ('outcome', 'disclosure') AND recorded_at_us >= $2 AND recorded_at_us < $3 \
     ORDER BY seq DESC LIMIT $4"
);

/// One record by its sequence number.
const SELECT_AUDIT_BY_SEQ: &str = select_audit!("WHERE seq = $1");

/// The records with sequence numbers from `$1` to `$2`, in order.
const SELECT_AUDIT_RANGE: &str = select_audit!("WHERE seq >= $1 AND seq <= $2 ORDER BY seq");

/// The first record's and the head's sequence numbers (both read off the primary key).
const SELECT_SPAN: &str = "SELECT MIN(seq), MAX(seq) FROM audit_event";

/// A removal under retention, noted where the append-only trigger looks before it lets a
/// record go.
const INSERT_RETENTION: &str = "INSERT INTO audit_retention (through_seq, before_us, removed_at_us) \
     VALUES ($1, $2, $3) ON CONFLICT (through_seq) DO NOTHING";

/// The sequence numbers of the records whose hash is this (a scan: only `audit verify` asks,
/// and only once it has found a broken link).
const SELECT_SEQ_BY_HASH: &str = "SELECT seq FROM audit_event WHERE hash = $1 ORDER BY seq";

/// An audit record waiting for the SQLite writer thread, and who to tell.
#[derive(Debug)]
pub struct PendingAudit {
    pub(super) record: Arc<AuditRecord>,
    pub(super) done: oneshot::Sender<Result<i64, StoreError>>,
}

impl PendingAudit {
    /// Tells the caller, after letting go of the record: a caller that hands its record over
    /// (`AuditLog::append_shared`) holds the only reference again when it wakes.
    pub(super) fn answer(self, result: Result<i64, StoreError>) {
        let Self { record, done } = self;
        drop(record);
        // A caller that went away still has its record written; nobody to tell.
        let _ = done.send(result);
    }
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

/// Runs `$query` (its values bound) on `$store`'s readers and decodes every row it answers as
/// a [`ChainedAudit`]: a `Result<Vec<ChainedAudit>, StoreError>`.
macro_rules! fetch_chained {
    ($store:expr, $query:expr) => {
        on_pool!($store, read, |p| $query
            .fetch_all(p)
            .await
            .map_err(err("read audit"))?
            .iter()
            .map(DecodeAuditRow::decode_chained)
            .collect::<Result<Vec<_>, _>>())
        .map_err(err("decode audit"))
    };
}

#[async_trait]
impl AuditLog for Store {
    async fn append_audit(&self, r: &AuditRecord) -> Result<i64, AuditError> {
        match self {
            Self::Sqlite { audit, .. } => audit.append(Arc::new(r.clone())).await,
            Self::Postgres { audit, .. } => audit.append(Arc::new(r.clone())).await,
        }
        .map_err(Into::into)
    }

    /// The writer holds the record until it is committed: handed over, it is not copied.
    async fn append_shared(&self, r: Arc<AuditRecord>) -> Result<i64, AuditError> {
        match self {
            Self::Sqlite { audit, .. } => audit.append(r).await,
            Self::Postgres { audit, .. } => audit.append(r).await,
        }
        .map_err(Into::into)
    }

    async fn chain_head(&self) -> Result<Option<(i64, Option<String>)>, AuditError> {
        self.audit_head().await.map_err(Into::into)
    }

    async fn audit_for_request(&self, request_id: &str) -> Result<Vec<StoredAudit>, AuditError> {
        self.read_request(request_id).await.map_err(Into::into)
    }

    async fn audit_for_patient(&self, w: &PatientWindow) -> Result<Vec<ChainedAudit>, AuditError> {
        Ok(fetch_chained!(
            self,
            sqlx::query(SELECT_AUDIT_FOR_PATIENT)
                .bind(&w.patient_id)
                .bind(w.from_us)
                .bind(w.to_us)
                .bind(w.limit)
        )?)
    }

    async fn audit_record(&self, seq: i64) -> Result<Option<ChainedAudit>, AuditError> {
        Ok(fetch_chained!(self, sqlx::query(SELECT_AUDIT_BY_SEQ).bind(seq))?.pop())
    }

    async fn audit_range(&self, first: i64, last: i64) -> Result<Vec<ChainedAudit>, AuditError> {
        Ok(fetch_chained!(self, sqlx::query(SELECT_AUDIT_RANGE).bind(first).bind(last))?)
    }

    async fn audit_span(&self) -> Result<Option<(i64, i64)>, AuditError> {
        let span: (Option<i64>, Option<i64>) =
            on_pool!(self, read, |p| sqlx::query_as(SELECT_SPAN).fetch_one(p).await)
                .map_err(err("read audit span"))?;
        Ok(span.0.zip(span.1))
    }

    async fn remove_through(&self, through_seq: i64, before_us: i64) -> Result<u64, AuditError> {
        let removed: Result<u64, StoreError> = on_pool!(self, write, |p| {
            let mut tx = p.begin().await.map_err(err("begin"))?;
            sqlx::query(INSERT_RETENTION)
                .bind(through_seq)
                .bind(before_us)
                .bind(crate::epoch_us::now())
                .execute(&mut *tx)
                .await
                .map_err(err("note audit retention"))?;
            let gone = sqlx::query("DELETE FROM audit_event WHERE seq <= $1")
                .bind(through_seq)
                .execute(&mut *tx)
                .await
                .map_err(err("apply audit retention"))?;
            tx.commit().await.map_err(err("commit audit retention"))?;
            Ok(gone.rows_affected())
        });
        Ok(removed?)
    }
}

impl Store {
    /// Up to `limit` records of the trail with sequence numbers above `after_seq`, recorded at
    /// or after `since_us` (microseconds since the epoch), in sequence order.
    pub async fn audit_page(
        &self,
        after_seq: i64,
        since_us: i64,
        limit: i64,
    ) -> Result<Vec<ChainedAudit>, StoreError> {
        fetch_chained!(self, sqlx::query(SELECT_AUDIT_PAGE).bind(after_seq).bind(since_us).bind(limit))
    }

    /// The chain's head: the last record's sequence number and stored hash, if any record.
    pub async fn audit_head(&self) -> Result<Option<(i64, Option<String>)>, StoreError> {
        on_pool!(self, read, |p| sqlx::query_as(SELECT_HEAD).fetch_optional(p).await)
            .map_err(err("read audit head"))
    }

    /// The sequence numbers of the records stored with `hash`.
    pub async fn audit_seqs_with_hash(&self, hash: &str) -> Result<Vec<i64>, StoreError> {
        on_pool!(self, read, |p| sqlx::query_scalar(SELECT_SEQ_BY_HASH).bind(hash).fetch_all(p).await)
            .map_err(err("read audit"))
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

/// Reading a [`StoredAudit`] from either backend's row type: every column is parsed back into
/// its typed field, and a value the gateway could not have written is a decode error.
trait DecodeAuditRow {
    fn decode_audit(&self) -> Result<StoredAudit, sqlx::Error>;

    fn decode_chained(&self) -> Result<ChainedAudit, sqlx::Error>;
}

fn bad(column: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("audit_event.{column} holds a value the gateway does not write").into())
}

macro_rules! audit_row_from {
    ($row:ty) => {
        impl DecodeAuditRow for $row {
            fn decode_audit(&self) -> Result<StoredAudit, sqlx::Error> {
                decode_as(self, Strictness::Strict)
            }

            /// Read as stored even where a value is one the gateway could not have written (an
            /// unknown action, phase or outcome, a status or count out of range): such a row is
            /// read with a stand-in value, so its hash no longer matches and `audit verify`
            /// reports it as edited, at its sequence number, instead of stopping.
            fn decode_chained(&self) -> Result<ChainedAudit, sqlx::Error> {
                Ok(ChainedAudit {
                    stored: decode_as(self, Strictness::Lenient)?,
                    prev_hash: self.try_get("prev_hash")?,
                    hash: self.try_get("hash")?,
                })
            }
        }
    };
}

/// Whether a value the gateway could not have written is an error or read as a stand-in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strictness {
    Strict,
    Lenient,
}

/// `parsed`, or (leniently) `stand_in` in its place, or (strictly) a decode error naming
/// `column`.
fn or_stand_in<T>(parsed: Option<T>, stand_in: T, column: &str, how: Strictness) -> Result<T, sqlx::Error> {
    match (parsed, how) {
        (Some(v), _) => Ok(v),
        (None, Strictness::Lenient) => Ok(stand_in),
        (None, Strictness::Strict) => Err(bad(column)),
    }
}

fn decode_as<R>(r: &R, how: Strictness) -> Result<StoredAudit, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'d> String: sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
    for<'d> Option<String>: sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
    for<'d> i64: sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
    for<'d> i32: sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
{
    let micros: i64 = r.try_get("recorded_at_us")?;
    let phase: String = r.try_get("phase")?;
    let action: String = r.try_get("action")?;
    let outcome: String = r.try_get("outcome")?;
    let status: i32 = r.try_get("http_status")?;
    let released: i64 = r.try_get("released")?;
    let sources: String = r.try_get("sources")?;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok();
    let record = AuditRecord {
        recorded_at: or_stand_in(at, time::OffsetDateTime::UNIX_EPOCH, "recorded_at_us", how)?,
        request_id: r.try_get("request_id")?,
        phase: or_stand_in(AuditPhase::parse(&phase), AuditPhase::Outcome, "phase", how)?,
        action: or_stand_in(action_named(&action), "unrecognised", "action", how)?,
        client_id: r.try_get("client_id")?,
        user_id: r.try_get("user_id")?,
        role: r.try_get("role")?,
        organisation: r.try_get("organisation")?,
        purpose: r.try_get("purpose")?,
        patient_id: r.try_get("patient_id")?,
        sources: sources.into(),
        outcome: or_stand_in(AuditOutcome::parse(&outcome), AuditOutcome::Error, "outcome", how)?,
        http_status: or_stand_in(u16::try_from(status).ok(), 0, "http_status", how)?,
        released: or_stand_in(u64::try_from(released).ok(), 0, "released", how)?,
        detail: r.try_get("detail")?,
    };
    Ok(StoredAudit { seq: r.try_get("seq")?, record })
}

audit_row_from!(sqlx::sqlite::SqliteRow);
audit_row_from!(sqlx::postgres::PgRow);
