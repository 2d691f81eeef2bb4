//! Patients' consent directives, every version kept: a new version is a new row, nothing is
//! ever overwritten, and the current directive is the highest version of each consent id.

use async_trait::async_trait;

use super::{Store, StoreError, err};

/// One stored version of a Consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentVersion {
    /// The Consent's id.
    pub consent_id: String,
    /// Its version, from 1.
    pub version: i64,
    /// The gateway's id of the patient it is about.
    pub patient_id: String,
    /// `Consent.status` of this version.
    pub status: String,
    /// When this version was recorded (microseconds since the epoch).
    pub recorded_at_us: i64,
    /// Who recorded it: `client/user@organisation`.
    pub recorded_by: String,
    /// The Consent as recorded (JSON, with `id` and `meta` set by the gateway).
    pub body: String,
}

/// Where consent versions are kept.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Adds a version. Fails if that version of that consent already exists (someone else
    /// recorded it first): the caller reads again and retries, nothing is overwritten.
    async fn add_consent_version(&self, v: &ConsentVersion) -> Result<(), StoreError>;

    /// Every version of one consent, oldest first.
    async fn consent_versions(&self, consent_id: &str) -> Result<Vec<ConsentVersion>, StoreError>;

    /// The current version of every consent about a patient.
    async fn current_consents(&self, patient_id: &str) -> Result<Vec<ConsentVersion>, StoreError>;
}

/// The columns, in [`ConsentVersion`] order.
macro_rules! consent_columns {
    () => {
        "consent_id, version, patient_id, status, recorded_at_us, recorded_by, body"
    };
}

type Row = (String, i64, String, String, i64, String, String);

fn from_row(
    (consent_id, version, patient_id, status, recorded_at_us, recorded_by, body): Row,
) -> ConsentVersion {
    ConsentVersion { consent_id, version, patient_id, status, recorded_at_us, recorded_by, body }
}

#[async_trait]
impl ConsentStore for Store {
    async fn add_consent_version(&self, v: &ConsentVersion) -> Result<(), StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO consent_version (",
            consent_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        );
        on_pool!(self, write, |p| sqlx::query(SQL)
            .bind(&v.consent_id)
            .bind(v.version)
            .bind(&v.patient_id)
            .bind(&v.status)
            .bind(v.recorded_at_us)
            .bind(&v.recorded_by)
            .bind(&v.body)
            .execute(p)
            .await
            .map(drop))
        .map_err(err("add consent version"))
    }

    async fn consent_versions(&self, consent_id: &str) -> Result<Vec<ConsentVersion>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            consent_columns!(),
            " FROM consent_version WHERE consent_id = $1 ORDER BY version"
        );
        let rows: Vec<Row> =
            on_pool!(self, read, |p| sqlx::query_as(SQL).bind(consent_id).fetch_all(p).await)
                .map_err(err("read consent versions"))?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    async fn current_consents(&self, patient_id: &str) -> Result<Vec<ConsentVersion>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            consent_columns!(),
            " FROM consent_version c WHERE c.patient_id = $1 AND c.version = ",
            "(SELECT MAX(m.version) FROM consent_version m WHERE m.consent_id = c.consent_id) ORDER BY c.consent_id"
        );
        let rows: Vec<Row> =
            on_pool!(self, read, |p| sqlx::query_as(SQL).bind(patient_id).fetch_all(p).await)
                .map_err(err("read consents"))?;
        Ok(rows.into_iter().map(from_row).collect())
    }
}
