//! State kept by the gateway, one module per table group: the audit trail (`audit_log`), the
//! patient index and record locator (`patients`), used client-assertion ids (`replay`), patients'
//! consents (`consents`), published sharing-agreement versions with their approvals
//! (`agreements`), first accesses with their notifications and outbox (`access`), misuse
//! monitoring's counts (`misuse`), the source registry with organisations' attestations
//! (`sources`), and secondary use's opt-outs, export jobs and population figures (`secondary`).
//! [`memory`] holds in-memory fakes of the traits the record service and audit trail use.
//! SQLite by default (one file, no set-up), PostgreSQL to scale out.
//!
//! Both backends share one schema (`migrations/sqlite.sql` / `migrations/postgres.sql`, checked
//! equal by a test) and one set of runtime-checked sqlx queries. Audit appends are durable
//! before they return: SQLite runs in WAL mode with `synchronous=FULL`, and its appends go
//! through `audit_writer`, a thread of its own with its own connection (rusqlite) that
//! group-commits whatever is queued; PostgreSQL commits each append synchronously. Everything
//! else, audit reads included, goes through sqlx: on SQLite one writer connection (patient
//! index, record locator, assertion ids; the audit thread is the only other writer) and a pool
//! of readers.

use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// Runs `$body` with `$p` bound to this backend's pool (`read` or `write` for SQLite), so each
/// query is written once for both backends (their SQL is the same: `$n` placeholders in order).
macro_rules! on_pool {
    ($store:expr, $kind:ident, |$p:ident| $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite { $kind: $p, .. } => $body,
            $crate::store::Store::Postgres { pool: $p, .. } => $body,
        }
    };
}

mod access;
mod agreements;
mod alerts;
mod audit_chain;
#[cfg(test)]
mod audit_chain_tests;
mod audit_log;
#[cfg(test)]
mod audit_tests;
mod audit_writer;
mod clients;
mod consents;
mod export_jobs;
#[cfg(test)]
mod export_jobs_tests;
pub mod memory;
mod misuse;
mod owners;
mod patients;
mod postgres_audit_writer;
mod replay;
mod retention;
mod secondary;
mod sources;
#[cfg(test)]
pub(crate) mod test_db;

pub use crate::audit::AuditLog;
pub use crate::audit::ChainedAudit;
pub use access::{AccessNotification, AccessStore, DueDelivery, FirstAccess};
pub use agreements::{AgreementStore, Approval, PublishedVersion};
pub use alerts::{AlertStore, BreakGlass, PrivacyAlert};
pub use audit_log::PendingAudit;
pub use audit_writer::SqliteAuditWriter;
pub use clients::ClientStateStore;
pub use consents::{ConsentStore, ConsentVersion};
pub use export_jobs::{ExportJobRow, ExportJobStore, JobProgress};
pub use misuse::MisuseStore;
pub use owners::ResourceOwners;
pub use patients::{PatientIndex, SourceLink};
pub use replay::StoreReplayGuard;
pub use secondary::{Cohort, SecondaryStore};
pub use sources::{SourceRegistryStore, StoredSource};

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

    /// A failure of `op` for a reason of our own (no database message).
    pub fn other(op: &'static str, detail: &str) -> Self {
        Self { op, detail: detail.to_owned() }
    }
}

impl From<StoreError> for crate::audit::AuditError {
    fn from(e: StoreError) -> Self {
        Self::new(e.to_string())
    }
}

fn err(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError { op, detail: e.to_string() }
}

/// The state store.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded SQLite: one sqlx writer connection (SQLite serialises writers anyway; competing
    /// writers only add lock waits to the tail), a pool of readers (WAL lets them run beside
    /// the writer), and the audit writer thread, the one other writer.
    Sqlite {
        /// The sqlx writer (schema, patient index, record locator, assertion ids).
        write: SqlitePool,
        /// Readers.
        read: SqlitePool,
        /// The group-commit audit writer: appends to `audit_event`.
        audit: audit_writer::SqliteAuditWriter,
    },
    /// PostgreSQL: a pool, and the group-commit audit writer task.
    Postgres {
        /// The pool (everything but audit appends).
        pool: PgPool,
        /// The group-commit audit writer: appends to `audit_event`.
        audit: postgres_audit_writer::PostgresAuditWriter,
    },
}

const SCHEMA_SQLITE: &str = include_str!("../../migrations/sqlite.sql");
const SCHEMA_POSTGRES: &str = include_str!("../../migrations/postgres.sql");

impl Store {
    /// Connects and applies the schema.
    pub async fn connect(
        url: &SecretString,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let url = url.expose_secret();
        if url.starts_with("sqlite:") {
            let busy_timeout = acquire_timeout.max(Duration::from_secs(5));
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(err("parse sqlite url"))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(busy_timeout)
                .foreign_keys(true);
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(acquire_timeout)
                .connect_with(opts.clone())
                .await
                .map_err(err("connect sqlite"))?;
            sqlx::raw_sql(SCHEMA_SQLITE).execute(&write).await.map_err(err("apply schema"))?;
            let read = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(acquire_timeout)
                .connect_with(opts.read_only(true).create_if_missing(false))
                .await
                .map_err(err("connect sqlite"))?;
            // The audit writer opens the very file the sqlx writer has open (SQLite's own
            // resolution of the URL), so it must be a file: a private in-memory database could
            // not be shared.
            let file: String =
                sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                    .fetch_one(&write)
                    .await
                    .map_err(err("locate sqlite file"))?;
            if file.is_empty() {
                return Err(StoreError::other("connect sqlite", "the store must be a file, not in memory"));
            }
            let audit = audit_writer::SqliteAuditWriter::start(file.into(), busy_timeout).await?;
            Ok(Self::Sqlite { write, read, audit })
        } else {
            let opts = PgConnectOptions::from_str(url).map_err(err("parse postgres url"))?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(acquire_timeout)
                .connect_with(opts)
                .await
                .map_err(err("connect postgres"))?;
            sqlx::raw_sql(SCHEMA_POSTGRES).execute(&pool).await.map_err(err("apply schema"))?;
            let audit = postgres_audit_writer::PostgresAuditWriter::start(pool.clone());
            Ok(Self::Postgres { pool, audit })
        }
    }

    /// Which backend this is (`sqlite` or `postgres`), for readiness and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, read, |p| sqlx::query("SELECT 1").execute(p).await.map(drop)).map_err(err("ping"))
    }
}
