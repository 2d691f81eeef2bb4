//! The source registry's rows: every source ever registered (a deregistered one stays, marked,
//! so the config list cannot bring it back at the next start), and the attestations of
//! consuming organisations. The rows hold the registration as JSON; the registry
//! (`crate::registry`) reads and judges them.

use async_trait::async_trait;

use super::{Store, StoreError, err};

/// One stored source registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSource {
    /// The source id.
    pub source_id: String,
    /// Its place in registry order (lower first).
    pub position: i64,
    /// `active`, `suspended` or `deregistered`.
    pub state: String,
    /// `config` (bootstrapped from `[[sources]]`) or `api`.
    pub origin: String,
    /// The registration (a `SourceConfig`) as JSON.
    pub config: String,
    /// When it last changed (microseconds since the epoch).
    pub updated_at_us: i64,
}

/// Where source registrations and organisations' attestations are kept.
#[async_trait]
pub trait SourceRegistryStore: Send + Sync {
    /// Every registration, deregistered ones included, in registry order.
    async fn registered_sources(&self) -> Result<Vec<StoredSource>, StoreError>;

    /// Adds `s` unless its id is stored already; whether it was added.
    async fn add_source_if_absent(&self, s: &StoredSource) -> Result<bool, StoreError>;

    /// Writes `s` over whatever is stored under its id.
    async fn put_source(&self, s: &StoredSource) -> Result<(), StoreError>;

    /// Forgets what the record locator learnt from `source_id` (its registration changed or
    /// ended: its local ids may mean nothing now).
    async fn forget_source_links(&self, source_id: &str) -> Result<(), StoreError>;

    /// Every consuming organisation's attestation: `(ODS code, JSON)`.
    async fn organisation_attestations(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Writes an organisation's attestation over any stored before.
    async fn put_organisation_attestation(
        &self,
        ods_code: &str,
        attestation: &str,
        at_us: i64,
    ) -> Result<(), StoreError>;
}

type Row = (String, i64, String, String, String, i64);

const UPSERT: &str = "INSERT INTO registered_source (source_id, position, state, origin, config, updated_at_us) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source_id) DO UPDATE SET position = excluded.position, \
     state = excluded.state, origin = excluded.origin, config = excluded.config, updated_at_us = excluded.updated_at_us";

const INSERT_NEW: &str = "INSERT INTO registered_source (source_id, position, state, origin, config, updated_at_us) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source_id) DO NOTHING";

impl Store {
    async fn write_source(&self, sql: &'static str, s: &StoredSource) -> Result<u64, StoreError> {
        on_pool!(self, write, |p| sqlx::query(sql)
            .bind(&s.source_id)
            .bind(s.position)
            .bind(&s.state)
            .bind(&s.origin)
            .bind(&s.config)
            .bind(s.updated_at_us)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(err("write source registration"))
    }
}

#[async_trait]
impl SourceRegistryStore for Store {
    async fn registered_sources(&self) -> Result<Vec<StoredSource>, StoreError> {
        let rows: Vec<Row> = on_pool!(self, read, |p| sqlx::query_as(
            "SELECT source_id, position, state, origin, config, updated_at_us FROM registered_source \
             ORDER BY position, source_id"
        )
        .fetch_all(p)
        .await)
        .map_err(err("read source registrations"))?;
        Ok(rows
            .into_iter()
            .map(|(source_id, position, state, origin, config, updated_at_us)| StoredSource {
                source_id,
                position,
                state,
                origin,
                config,
                updated_at_us,
            })
            .collect())
    }

    async fn add_source_if_absent(&self, s: &StoredSource) -> Result<bool, StoreError> {
        Ok(self.write_source(INSERT_NEW, s).await? > 0)
    }

    async fn put_source(&self, s: &StoredSource) -> Result<(), StoreError> {
        self.write_source(UPSERT, s).await.map(drop)
    }

    async fn forget_source_links(&self, source_id: &str) -> Result<(), StoreError> {
        on_pool!(self, write, |p| sqlx::query("DELETE FROM patient_source WHERE source_id = $1")
            .bind(source_id)
            .execute(p)
            .await
            .map(drop))
        .map_err(err("forget source links"))
    }

    async fn organisation_attestations(&self) -> Result<Vec<(String, String)>, StoreError> {
        on_pool!(self, read, |p| sqlx::query_as(
            "SELECT ods_code, attestation FROM organisation_attestation ORDER BY ods_code"
        )
        .fetch_all(p)
        .await)
        .map_err(err("read organisation attestations"))
    }

    async fn put_organisation_attestation(
        &self,
        ods_code: &str,
        attestation: &str,
        at_us: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, write, |p| sqlx::query(
            "INSERT INTO organisation_attestation (ods_code, attestation, updated_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (ods_code) DO UPDATE SET attestation = excluded.attestation, updated_at_us = excluded.updated_at_us"
        )
        .bind(ods_code)
        .bind(attestation)
        .bind(at_us)
        .execute(p)
        .await
        .map(drop))
        .map_err(err("write organisation attestation"))
    }
}
