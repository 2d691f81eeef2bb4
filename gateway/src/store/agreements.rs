//! Published sharing-agreement versions and the data controllers' approvals of them. Nothing is
//! ever overwritten: a version is published once, each controller approves it once, and which
//! version is in force is worked out from these rows (`crate::agreements`).

use async_trait::async_trait;

use super::{Store, StoreError, err};

/// One published version of an agreement, as its publisher sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedVersion {
    /// The agreement's id.
    pub agreement_id: String,
    /// Its version.
    pub version: i64,
    /// The TOML text, exactly as published.
    pub body: String,
    /// Who published it: `client/user`.
    pub published_by: String,
    /// The publisher's organisation (ODS code).
    pub published_org: String,
    /// When (microseconds since the epoch).
    pub published_at_us: i64,
}

/// One data controller's approval of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The agreement's id.
    pub agreement_id: String,
    /// The version approved.
    pub version: i64,
    /// The approving data controller (ODS code).
    pub ods_code: String,
    /// The user who approved it.
    pub user_id: String,
    /// When (microseconds since the epoch).
    pub approved_at_us: i64,
}

/// Where published agreement versions and approvals are kept.
#[async_trait]
pub trait AgreementStore: Send + Sync {
    /// Adds a version unless a version as high or higher of that agreement is stored already
    /// (then `false`: nothing is written).
    async fn publish_agreement(&self, v: &PublishedVersion) -> Result<bool, StoreError>;

    /// Adds an approval unless that controller approved that version already (then `false`).
    async fn approve_agreement(&self, a: &Approval) -> Result<bool, StoreError>;

    /// Every published version, by id then version.
    async fn published_agreements(&self) -> Result<Vec<PublishedVersion>, StoreError>;

    /// Every approval, by id, version, then controller.
    async fn agreement_approvals(&self) -> Result<Vec<Approval>, StoreError>;
}

type VersionRow = (String, i64, String, String, String, i64);
type ApprovalRow = (String, i64, String, String, i64);

#[async_trait]
impl AgreementStore for Store {
    async fn publish_agreement(&self, v: &PublishedVersion) -> Result<bool, StoreError> {
        // One statement, so two publishers racing cannot both add a version.
        const SQL: &str = "INSERT INTO agreement_version \
            (agreement_id, version, body, published_by, published_org, published_at_us) \
            SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS \
            (SELECT 1 FROM agreement_version WHERE agreement_id = $1 AND version >= $2) \
            ON CONFLICT DO NOTHING";
        on_pool!(self, write, |p| sqlx::query(SQL)
            .bind(&v.agreement_id)
            .bind(v.version)
            .bind(&v.body)
            .bind(&v.published_by)
            .bind(&v.published_org)
            .bind(v.published_at_us)
            .execute(p)
            .await
            .map(|r| r.rows_affected() == 1))
        .map_err(err("publish agreement"))
    }

    async fn approve_agreement(&self, a: &Approval) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO agreement_approval \
            (agreement_id, version, ods_code, user_id, approved_at_us) VALUES ($1, $2, $3, $4, $5) \
            ON CONFLICT DO NOTHING";
        on_pool!(self, write, |p| sqlx::query(SQL)
            .bind(&a.agreement_id)
            .bind(a.version)
            .bind(&a.ods_code)
            .bind(&a.user_id)
            .bind(a.approved_at_us)
            .execute(p)
            .await
            .map(|r| r.rows_affected() == 1))
        .map_err(err("approve agreement"))
    }

    async fn published_agreements(&self) -> Result<Vec<PublishedVersion>, StoreError> {
        const SQL: &str = "SELECT agreement_id, version, body, published_by, published_org, published_at_us \
            FROM agreement_version ORDER BY agreement_id, version";
        let rows: Vec<VersionRow> = on_pool!(self, read, |p| sqlx::query_as(SQL).fetch_all(p).await)
            .map_err(err("read agreement versions"))?;
        Ok(rows
            .into_iter()
            .map(|(agreement_id, version, body, published_by, published_org, published_at_us)| {
                PublishedVersion { agreement_id, version, body, published_by, published_org, published_at_us }
            })
            .collect())
    }

    async fn agreement_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        const SQL: &str = "SELECT agreement_id, version, ods_code, user_id, approved_at_us \
            FROM agreement_approval ORDER BY agreement_id, version, ods_code";
        let rows: Vec<ApprovalRow> = on_pool!(self, read, |p| sqlx::query_as(SQL).fetch_all(p).await)
            .map_err(err("read agreement approvals"))?;
        Ok(rows
            .into_iter()
            .map(|(agreement_id, version, ods_code, user_id, approved_at_us)| Approval {
                agreement_id,
                version,
                ods_code,
                user_id,
                approved_at_us,
            })
            .collect())
    }
}
