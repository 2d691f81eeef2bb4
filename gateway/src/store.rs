//! State kept by the gateway: the audit trail, the patient index and record locator, and used
//! client-assertion ids. SQLite by default (one file, no set-up), PostgreSQL to scale out.
//!
//! Both backends share one schema (see `schema_sqlite` / `schema_postgres`, checked equal by a
//! test) and one set of runtime-checked queries. Audit appends are durable before they return:
//! SQLite runs in WAL mode with `synchronous=FULL`; PostgreSQL commits synchronously.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};
use tideway_auth::replay::{ReplayGuard, ReplayStoreError};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::audit::AuditRecord;

/// A store operation failed. The message names the operation and the database's reason (which
/// names tables and constraints, never values).
#[derive(Debug, Clone, thiserror::Error)]
#[error("store: {op} failed: {detail}")]
pub struct StoreError {
    op: &'static str,
    detail: String,
}

impl StoreError {
    /// The store did not answer in time.
    pub fn timed_out(op: &'static str) -> Self {
        Self { op, detail: "timed out".into() }
    }
}

fn err(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError { op, detail: e.to_string() }
}

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
            .bind(r.request_id.clone())
            .bind(r.phase.as_str())
            .bind(r.action)
            .bind(r.client_id.clone())
            .bind(r.user_id.clone())
            .bind(r.role.clone())
            .bind(r.organisation.clone())
            .bind(r.purpose.clone())
            .bind(r.patient_id.clone())
            .bind(serde_json::to_string(&r.sources).unwrap_or_else(|_| "[]".into()))
            .bind(r.outcome.as_str())
            .bind(i32::from(r.http_status))
            .bind(i64::try_from(r.released).unwrap_or(i64::MAX))
            .bind(r.detail.to_string())
    }};
}

/// Most records committed in one SQLite transaction.
const AUDIT_BATCH: usize = 256;

/// The state store.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded SQLite: one writer connection (SQLite serialises writers anyway; competing
    /// writers only add lock waits to the tail) and a pool of readers (WAL lets them run beside
    /// the writer).
    Sqlite {
        /// The single writer.
        write: SqlitePool,
        /// Readers.
        read: SqlitePool,
        /// The group-commit audit writer's queue.
        audit: mpsc::Sender<PendingAudit>,
    },
    /// PostgreSQL.
    Postgres(PgPool),
}

const SCHEMA_SQLITE: &str = include_str!("../migrations/sqlite.sql");
const SCHEMA_POSTGRES: &str = include_str!("../migrations/postgres.sql");

/// What the record locator knows about one source and one patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLink {
    /// Registry id of the source.
    pub source_id: String,
    /// The source's id for the patient, or `None` when the source was asked and does not
    /// hold the patient.
    pub local_id: Option<String>,
}

impl Store {
    /// Connects and applies the schema.
    pub async fn connect(
        url: &SecretString,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let url = url.expose_secret();
        let store = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(err("parse sqlite url"))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(acquire_timeout.max(Duration::from_secs(5)))
                .foreign_keys(true);
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(acquire_timeout)
                .connect_with(opts.clone())
                .await
                .map_err(err("connect sqlite"))?;
            let read = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(acquire_timeout)
                .connect_with(opts.read_only(true).create_if_missing(false))
                .await
                .map_err(err("connect sqlite"))?;
            // Audit appends are group-committed: one task takes whatever is queued (up to
            // AUDIT_BATCH records), writes it in one transaction and answers each caller only
            // after the commit, so every append is still durable before it returns, but many
            // concurrent appends share one fsync.
            let (audit, queue) = mpsc::channel(4 * AUDIT_BATCH);
            tokio::spawn(sqlite_audit_writer(write.clone(), queue));
            Self::Sqlite { write, read, audit }
        } else {
            let opts = PgConnectOptions::from_str(url).map_err(err("parse postgres url"))?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(acquire_timeout)
                .connect_with(opts)
                .await
                .map_err(err("connect postgres"))?;
            Self::Postgres(pool)
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite { write: p, .. } => sqlx::raw_sql(SCHEMA_SQLITE).execute(p).await.map(drop),
            Self::Postgres(p) => sqlx::raw_sql(SCHEMA_POSTGRES).execute(p).await.map(drop),
        }
        .map_err(err("apply schema"))
    }

    /// Which backend this is (`sqlite` or `postgres`), for readiness and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite { read: p, .. } => sqlx::query("SELECT 1").execute(p).await.map(drop),
            Self::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(drop),
        }
        .map_err(err("ping"))
    }

    /// Appends one audit record durably and returns its sequence number.
    pub async fn append_audit(&self, r: &AuditRecord) -> Result<i64, StoreError> {
        let p = match self {
            Self::Sqlite { audit, .. } => {
                let (done, answer) = oneshot::channel();
                let queued = audit.send(PendingAudit { record: r.clone(), done }).await;
                if queued.is_err() {
                    return Err(StoreError {
                        op: "append audit",
                        detail: "the audit writer has stopped".into(),
                    });
                }
                return answer.await.unwrap_or_else(|_| {
                    Err(StoreError { op: "append audit", detail: "the audit writer has stopped".into() })
                });
            }
            Self::Postgres(p) => p,
        };
        bind_audit_record!(
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO audit_event (recorded_at_us, request_id, phase, action, client_id, user_id, role, \
                 organisation, purpose, patient_id, sources, outcome, http_status, released, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING seq",
            ),
            r
        )
        .fetch_one(p)
        .await
        .map_err(err("append audit"))
    }

    /// Audit records of one request, oldest first (for tests and the privacy officer's tools).
    pub async fn audit_for_request(&self, request_id: &str) -> Result<Vec<AuditRow>, StoreError> {
        let rows = match self {
            Self::Sqlite { read: p, .. } => sqlx::query(
                "SELECT seq, phase, action, client_id, user_id, organisation, purpose, patient_id, sources, \
                 outcome, http_status, released, detail FROM audit_event WHERE request_id = ?1 ORDER BY seq",
            )
            .bind(request_id)
            .fetch_all(p)
            .await
            .map_err(err("read audit"))?
            .iter()
            .map(AuditRow::from_sqlite)
            .collect::<Result<Vec<_>, _>>(),
            Self::Postgres(p) => sqlx::query(
                "SELECT seq, phase, action, client_id, user_id, organisation, purpose, patient_id, sources, \
                 outcome, http_status, released, detail FROM audit_event WHERE request_id = $1 ORDER BY seq",
            )
            .bind(request_id)
            .fetch_all(p)
            .await
            .map_err(err("read audit"))?
            .iter()
            .map(AuditRow::from_pg)
            .collect::<Result<Vec<_>, _>>(),
        };
        rows.map_err(err("decode audit"))
    }

    /// Records that `patient_id` is the opaque id of `nhs_number` (idempotent).
    pub async fn remember_patient(&self, patient_id: &str, nhs_number: &str) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        match self {
            Self::Sqlite { write: p, .. } => sqlx::query(
                // After a pseudonym-key change the NHS number gets a new id; the old mapping is
                // replaced rather than blocking the insert.
                "INSERT INTO patient_index (patient_id, nhs_number, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (nhs_number) DO UPDATE SET patient_id = excluded.patient_id, created_at = excluded.created_at",
            )
            .bind(patient_id)
            .bind(nhs_number)
            .bind(now)
            .execute(p)
            .await
            .map(drop),
            Self::Postgres(p) => sqlx::query(
                "INSERT INTO patient_index (patient_id, nhs_number, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (nhs_number) DO UPDATE SET patient_id = excluded.patient_id, created_at = excluded.created_at",
            )
            .bind(patient_id)
            .bind(nhs_number)
            .bind(now)
            .execute(p)
            .await
            .map(drop),
        }
        .map_err(err("remember patient"))
    }

    /// The NHS number behind an opaque patient id, if the gateway has published that id.
    pub async fn nhs_number_of(&self, patient_id: &str) -> Result<Option<String>, StoreError> {
        match self {
            Self::Sqlite { read: p, .. } => {
                sqlx::query_scalar("SELECT nhs_number FROM patient_index WHERE patient_id = ?1")
                    .bind(patient_id)
                    .fetch_optional(p)
                    .await
            }
            Self::Postgres(p) => {
                sqlx::query_scalar("SELECT nhs_number FROM patient_index WHERE patient_id = $1")
                    .bind(patient_id)
                    .fetch_optional(p)
                    .await
            }
        }
        .map_err(err("look up patient"))
    }

    /// Records what sources answered about a patient: held under a local id, or checked and
    /// not held (`local_id: None`). Sources not listed keep what was known before.
    pub async fn upsert_links(&self, patient_id: &str, links: &[SourceLink]) -> Result<(), StoreError> {
        if links.is_empty() {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        macro_rules! upsert {
            ($pool:expr, $sql:literal) => {{
                let mut tx = $pool.begin().await.map_err(err("begin"))?;
                for l in links {
                    sqlx::query($sql)
                        .bind(patient_id)
                        .bind(&l.source_id)
                        .bind(&l.local_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("upsert link"))?;
                }
                tx.commit().await.map_err(err("commit links"))
            }};
        }
        match self {
            Self::Sqlite { write: p, .. } => upsert!(
                p,
                "INSERT INTO patient_source (patient_id, source_id, local_id, seen_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (patient_id, source_id) DO UPDATE SET local_id = excluded.local_id, seen_at = excluded.seen_at"
            ),
            Self::Postgres(p) => upsert!(
                p,
                "INSERT INTO patient_source (patient_id, source_id, local_id, seen_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (patient_id, source_id) DO UPDATE SET local_id = excluded.local_id, seen_at = excluded.seen_at"
            ),
        }
    }

    /// Everything the record locator knows about a patient, one row per source checked.
    /// Rows older than `max_age_secs` are left out: the caller asks those sources again, so a
    /// patient who registers somewhere new is found without a new NHS-number search.
    pub async fn links(&self, patient_id: &str, max_age_secs: u64) -> Result<Vec<SourceLink>, StoreError> {
        let oldest =
            OffsetDateTime::now_utc().unix_timestamp() - i64::try_from(max_age_secs).unwrap_or(i64::MAX);
        let rows: Vec<(String, Option<String>)> =
            match self {
                Self::Sqlite { read: p, .. } => sqlx::query_as(
                    "SELECT source_id, local_id FROM patient_source WHERE patient_id = ?1 AND seen_at >= ?2 \
                 ORDER BY source_id",
                )
                .bind(patient_id)
                .bind(oldest)
                .fetch_all(p)
                .await,
                Self::Postgres(p) => sqlx::query_as(
                    "SELECT source_id, local_id FROM patient_source WHERE patient_id = $1 AND seen_at >= $2 \
                 ORDER BY source_id",
                )
                .bind(patient_id)
                .bind(oldest)
                .fetch_all(p)
                .await,
            }
            .map_err(err("read links"))?;
        Ok(rows.into_iter().map(|(source_id, local_id)| SourceLink { source_id, local_id }).collect())
    }

    /// Remembers a client assertion id until it expires; false if it was already used.
    pub async fn first_use_of_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let affected = match self {
            Self::Sqlite { write: p, .. } => {
                sqlx::query("DELETE FROM used_jti WHERE expires_at < ?1").bind(now).execute(p).await.map_err(err("purge jti"))?;
                sqlx::query(
                    "INSERT INTO used_jti (client_id, jti, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )
                .bind(client_id)
                .bind(jti)
                .bind(expires_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
            }
            Self::Postgres(p) => {
                sqlx::query("DELETE FROM used_jti WHERE expires_at < $1").bind(now).execute(p).await.map_err(err("purge jti"))?;
                sqlx::query(
                    "INSERT INTO used_jti (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(client_id)
                .bind(jti)
                .bind(expires_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
            }
        }
        .map_err(err("remember jti"))?;
        Ok(affected == 1)
    }
}

/// The SQLite group-commit writer: runs until every sender is dropped.
async fn sqlite_audit_writer(pool: SqlitePool, mut queue: mpsc::Receiver<PendingAudit>) {
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
    for p in batch {
        let seq: i64 = bind_audit_record!(
            sqlx::query_scalar(
                "INSERT INTO audit_event (recorded_at_us, request_id, phase, action, client_id, user_id, role, \
                 organisation, purpose, patient_id, sources, outcome, http_status, released, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) RETURNING seq",
            ),
            &p.record
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(err("append audit"))?;
        seqs.push(seq);
    }
    tx.commit().await.map_err(err("commit audit batch"))?;
    Ok(seqs)
}

/// An audit record as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Sequence number (gap-free per store, ascending).
    pub seq: i64,
    /// `intent` or `outcome`.
    pub phase: String,
    /// What was asked.
    pub action: String,
    /// Client.
    pub client_id: Option<String>,
    /// User.
    pub user_id: Option<String>,
    /// Organisation ODS code.
    pub organisation: Option<String>,
    /// Purpose of use.
    pub purpose: Option<String>,
    /// Opaque patient id.
    pub patient_id: Option<String>,
    /// Sources asked (JSON array text).
    pub sources: String,
    /// Outcome code.
    pub outcome: String,
    /// HTTP status answered.
    pub http_status: i32,
    /// Resources released.
    pub released: i64,
    /// Structured detail (JSON text).
    pub detail: String,
}

macro_rules! audit_row_from {
    ($name:ident, $row:ty) => {
        fn $name(r: &$row) -> Result<Self, sqlx::Error> {
            Ok(Self {
                seq: r.try_get("seq")?,
                phase: r.try_get("phase")?,
                action: r.try_get("action")?,
                client_id: r.try_get("client_id")?,
                user_id: r.try_get("user_id")?,
                organisation: r.try_get("organisation")?,
                purpose: r.try_get("purpose")?,
                patient_id: r.try_get("patient_id")?,
                sources: r.try_get("sources")?,
                outcome: r.try_get("outcome")?,
                http_status: r.try_get("http_status")?,
                released: r.try_get("released")?,
                detail: r.try_get("detail")?,
            })
        }
    };
}

impl AuditRow {
    audit_row_from!(from_sqlite, sqlx::sqlite::SqliteRow);
    audit_row_from!(from_pg, sqlx::postgres::PgRow);
}

/// The store as the auth crate's replay guard, so a replayed assertion is refused on every
/// replica.
#[derive(Debug, Clone)]
pub struct StoreReplayGuard(pub Store);

#[async_trait]
impl ReplayGuard for StoreReplayGuard {
    async fn first_use(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, ReplayStoreError> {
        self.0
            .first_use_of_jti(client_id, jti, expires_at.unix_timestamp())
            .await
            .map_err(|_| ReplayStoreError)
    }
}
