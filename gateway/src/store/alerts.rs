//! Break-glass sessions and the privacy officer's alerts.
//!
//! A break-glass token opens one session, bound to the first patient it is used for and ending
//! at a fixed time; opening it raises an alert for the privacy officer in the same transaction,
//! so no emergency access is ever unseen. Both kept in SQLite and PostgreSQL alike.

use async_trait::async_trait;

use super::{Store, StoreError, err};

/// One break-glass session: an emergency-access token bound to one patient until it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlass {
    /// The access token's id (`jti`): one session per token.
    pub token_id: String,
    /// The gateway's id of the patient it is bound to.
    pub patient_id: String,
    /// When it was opened (microseconds since the epoch).
    pub opened_at_us: i64,
    /// When it ends (microseconds since the epoch).
    pub ends_at_us: i64,
    /// Who broke the glass: `client/user`.
    pub user: String,
    /// Their organisation's ODS code.
    pub organisation: String,
    /// Their national RBAC role.
    pub role: String,
    /// The reason they gave.
    pub reason: String,
    /// The request that opened it (`X-Request-ID`).
    pub request_id: String,
}

/// One alert for the privacy officer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacyAlert {
    /// Stable id.
    pub alert_id: String,
    /// What happened, e.g. `break-glass`.
    pub kind: String,
    /// When (microseconds since the epoch).
    pub raised_at_us: i64,
    /// The gateway's id of the patient concerned.
    pub patient_id: String,
    /// Who: `client/user`.
    pub user: String,
    /// Their organisation's ODS code.
    pub organisation: String,
    /// Their national RBAC role.
    pub role: String,
    /// The reason given.
    pub reason: String,
    /// The request concerned (`X-Request-ID`).
    pub request_id: String,
}

/// Where break-glass sessions and alerts are kept.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Opens `session` unless its token already has one, raising its alert in the same
    /// transaction; answers the token's session as stored (the earlier one, if there was one).
    async fn open_break_glass(&self, session: &BreakGlass) -> Result<BreakGlass, StoreError>;

    /// Alerts raised at or after `since_us`, oldest first, for one patient if given, at most
    /// `limit`.
    async fn alerts(
        &self,
        patient_id: Option<&str>,
        since_us: i64,
        limit: i64,
    ) -> Result<Vec<PrivacyAlert>, StoreError>;
}

type SessionRow = (String, String, i64, i64, String, String, String, String, String);
type AlertRow = (String, String, i64, String, String, String, String, String, String);

#[async_trait]
impl AlertStore for Store {
    async fn open_break_glass(&self, s: &BreakGlass) -> Result<BreakGlass, StoreError> {
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await.map_err(err("begin"))?;
            let opened = sqlx::query(
                "INSERT INTO break_glass (token_id, patient_id, opened_at_us, ends_at_us, user_name, organisation, \
                 role, reason, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (token_id) DO NOTHING",
            )
            .bind(&s.token_id)
            .bind(&s.patient_id)
            .bind(s.opened_at_us)
            .bind(s.ends_at_us)
            .bind(&s.user)
            .bind(&s.organisation)
            .bind(&s.role)
            .bind(&s.reason)
            .bind(&s.request_id)
            .execute(&mut *tx)
            .await
            .map_err(err("open break-glass"))?
            .rows_affected()
                == 1;
            if opened {
                sqlx::query(
                    "INSERT INTO privacy_alert (alert_id, kind, raised_at_us, patient_id, user_name, organisation, \
                     role, reason, request_id) VALUES ($1, 'break-glass', $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(format!("a{}", uuid::Uuid::new_v4().simple()))
                .bind(s.opened_at_us)
                .bind(&s.patient_id)
                .bind(&s.user)
                .bind(&s.organisation)
                .bind(&s.role)
                .bind(&s.reason)
                .bind(&s.request_id)
                .execute(&mut *tx)
                .await
                .map_err(err("raise alert"))?;
            }
            let row: SessionRow = sqlx::query_as(
                "SELECT token_id, patient_id, opened_at_us, ends_at_us, user_name, organisation, role, reason, \
                 request_id FROM break_glass WHERE token_id = $1",
            )
            .bind(&s.token_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(err("read break-glass"))?;
            tx.commit().await.map_err(err("commit break-glass"))?;
            Ok(session_of(row))
        })
    }

    async fn alerts(
        &self,
        patient_id: Option<&str>,
        since_us: i64,
        limit: i64,
    ) -> Result<Vec<PrivacyAlert>, StoreError> {
        let rows: Vec<AlertRow> = on_pool!(self, read, |p| sqlx::query_as(
            "SELECT alert_id, kind, raised_at_us, patient_id, user_name, organisation, role, reason, request_id \
             FROM privacy_alert WHERE raised_at_us >= $1 AND (CAST($2 AS TEXT) IS NULL OR patient_id = CAST($2 AS TEXT)) \
             ORDER BY raised_at_us, alert_id LIMIT $3",
        )
        .bind(since_us)
        .bind(patient_id)
        .bind(limit)
        .fetch_all(p)
        .await)
        .map_err(err("read alerts"))?;
        Ok(rows.into_iter().map(alert_of).collect())
    }
}

fn session_of(
    (token_id, patient_id, opened_at_us, ends_at_us, user, organisation, role, reason, request_id): SessionRow,
) -> BreakGlass {
    BreakGlass {
        token_id,
        patient_id,
        opened_at_us,
        ends_at_us,
        user,
        organisation,
        role,
        reason,
        request_id,
    }
}

fn alert_of(
    (alert_id, kind, raised_at_us, patient_id, user, organisation, role, reason, request_id): AlertRow,
) -> PrivacyAlert {
    PrivacyAlert { alert_id, kind, raised_at_us, patient_id, user, organisation, role, reason, request_id }
}
