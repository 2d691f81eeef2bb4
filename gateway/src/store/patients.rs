//! The patient index (opaque id -> NHS number) and the record locator (which sources hold a
//! patient, under which local id, or checked and not held).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Store, StoreError, err};

/// What the record locator knows about one source and one patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLink {
    /// Registry id of the source.
    pub source_id: String,
    /// The source's id for the patient, or `None` when the source was asked and does not
    /// hold the patient.
    pub local_id: Option<String>,
}

/// The patient index and record locator, as the record service uses them.
#[async_trait]
pub trait PatientIndex: Send + Sync {
    /// Records that `patient_id` is the opaque id of `nhs_number` (idempotent).
    async fn remember_patient(&self, patient_id: &str, nhs_number: &str) -> Result<(), StoreError>;

    /// The NHS number behind an opaque patient id, if the gateway has published that id.
    async fn nhs_number_of(&self, patient_id: &str) -> Result<Option<String>, StoreError>;

    /// Records what sources answered about a patient: held under a local id, or checked and
    /// not held (`local_id: None`). Sources not listed keep what was known before.
    async fn upsert_links(&self, patient_id: &str, links: &[SourceLink]) -> Result<(), StoreError>;

    /// Everything the locator knows about a patient, one row per source checked. Rows older
    /// than `max_age_secs` are left out: the caller asks those sources again, so a patient who
    /// registers somewhere new is found without a new NHS-number search.
    async fn links(&self, patient_id: &str, max_age_secs: u64) -> Result<Vec<SourceLink>, StoreError>;

    /// Records that the patient was seen under these `$match` keys (keyed hashes of
    /// demographics, see [`crate::identity::PatientIds::match_key`]); idempotent.
    async fn remember_match_keys(&self, patient_id: &str, keys: &[String]) -> Result<(), StoreError>;

    /// The patients seen under a `$match` key, most recently seen first, at most `limit`.
    async fn match_candidates(&self, key: &str, limit: i64) -> Result<Vec<String>, StoreError>;

    /// Records that each `(old, current)` NHS number pair's old number was superseded by the
    /// current one, as `origin` says (`feed`, or `source:{id}`). A later record replaces an
    /// earlier one.
    async fn record_supersessions(&self, pairs: &[(String, String)], origin: &str) -> Result<(), StoreError>;

    /// The number that superseded `old`, if one is known.
    async fn superseded_by(&self, old: &str) -> Result<Option<String>, StoreError>;
}

#[async_trait]
impl PatientIndex for Store {
    async fn remember_patient(&self, patient_id: &str, nhs_number: &str) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        // After a pseudonym-key change the NHS number gets a new id; the old mapping is replaced
        // rather than blocking the insert.
        on_pool!(self, write, |p| sqlx::query(
            "INSERT INTO patient_index (patient_id, nhs_number, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (nhs_number) DO UPDATE SET patient_id = excluded.patient_id, created_at = excluded.created_at",
        )
        .bind(patient_id)
        .bind(nhs_number)
        .bind(now)
        .execute(p)
        .await
        .map(drop))
        .map_err(err("remember patient"))
    }

    async fn nhs_number_of(&self, patient_id: &str) -> Result<Option<String>, StoreError> {
        on_pool!(self, read, |p| sqlx::query_scalar(
            "SELECT nhs_number FROM patient_index WHERE patient_id = $1"
        )
        .bind(patient_id)
        .fetch_optional(p)
        .await)
        .map_err(err("look up patient"))
    }

    async fn upsert_links(&self, patient_id: &str, links: &[SourceLink]) -> Result<(), StoreError> {
        if links.is_empty() {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await.map_err(err("begin"))?;
            for l in links {
                sqlx::query(
                    "INSERT INTO patient_source (patient_id, source_id, local_id, seen_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (patient_id, source_id) DO UPDATE SET local_id = excluded.local_id, seen_at = excluded.seen_at",
                )
                .bind(patient_id)
                .bind(&l.source_id)
                .bind(&l.local_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(err("upsert link"))?;
            }
            tx.commit().await.map_err(err("commit links"))
        })
    }

    async fn links(&self, patient_id: &str, max_age_secs: u64) -> Result<Vec<SourceLink>, StoreError> {
        let oldest =
            OffsetDateTime::now_utc().unix_timestamp() - i64::try_from(max_age_secs).unwrap_or(i64::MAX);
        let rows: Vec<(String, Option<String>)> = on_pool!(self, read, |p| sqlx::query_as(
            "SELECT source_id, local_id FROM patient_source WHERE patient_id = $1 AND seen_at >= $2 ORDER BY source_id",
        )
        .bind(patient_id)
        .bind(oldest)
        .fetch_all(p)
        .await)
        .map_err(err("read links"))?;
        Ok(rows.into_iter().map(|(source_id, local_id)| SourceLink { source_id, local_id }).collect())
    }

    async fn remember_match_keys(&self, patient_id: &str, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await.map_err(err("begin"))?;
            for k in keys {
                sqlx::query(
                    "INSERT INTO patient_match_key (match_key, patient_id, seen_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (match_key, patient_id) DO UPDATE SET seen_at = excluded.seen_at",
                )
                .bind(k)
                .bind(patient_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(err("remember match key"))?;
            }
            tx.commit().await.map_err(err("commit match keys"))
        })
    }

    async fn match_candidates(&self, key: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        on_pool!(self, read, |p| sqlx::query_scalar(
            "SELECT patient_id FROM patient_match_key WHERE match_key = $1 ORDER BY seen_at DESC, patient_id LIMIT $2",
        )
        .bind(key)
        .bind(limit)
        .fetch_all(p)
        .await)
        .map_err(err("read match keys"))
    }

    async fn record_supersessions(&self, pairs: &[(String, String)], origin: &str) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await.map_err(err("begin"))?;
            for (old, current) in pairs {
                sqlx::query(
                    "INSERT INTO nhs_number_supersession (old_nhs, current_nhs, origin, recorded_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (old_nhs) DO UPDATE SET current_nhs = excluded.current_nhs, origin = excluded.origin, \
                     recorded_at = excluded.recorded_at",
                )
                .bind(old)
                .bind(current)
                .bind(origin)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(err("record supersession"))?;
            }
            tx.commit().await.map_err(err("commit supersessions"))
        })
    }

    async fn superseded_by(&self, old: &str) -> Result<Option<String>, StoreError> {
        on_pool!(self, read, |p| sqlx::query_scalar(
            "SELECT current_nhs FROM nhs_number_supersession WHERE old_nhs = $1"
        )
        .bind(old)
        .fetch_optional(p)
        .await)
        .map_err(err("read supersession"))
    }
}
