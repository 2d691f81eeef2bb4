//! Which organisations have read each patient's record, the notifications a first read sends
//! the patient's registered practices, and their webhook outbox.
//!
//! The first read by an organisation stores its `organisation_access` row, a notification per
//! registered practice and each notification's outbox row in one transaction, before anything
//! is released: no organisation gains access unseen, and no notification is lost between the
//! read and its delivery. Delivery claims an outbox row for a lease before calling the webhook,
//! so replicas do not send the same notification together, and one whose sender died is sent
//! again once the lease has passed.

use async_trait::async_trait;

use super::{Store, StoreError, err};

/// A first read of a patient's record by an organisation, and whom to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstAccess {
    /// The gateway's id of the patient.
    pub patient_id: String,
    /// The reading organisation's ODS code.
    pub organisation: String,
    /// Who read: `client/user`.
    pub user: String,
    /// Their national RBAC role.
    pub role: String,
    /// How they stood to the patient (`care`, `agreement`, `break-glass`...).
    pub standing: String,
    /// When (microseconds since the epoch).
    pub at_us: i64,
    /// The request (`X-Request-ID`).
    pub request_id: String,
    /// The registered practices to notify (`None`: no practice the record names, so the
    /// notification is for the privacy officer alone); empty when no one is to be told (the
    /// patient's own practice reading).
    pub recipients: Vec<Option<String>>,
}

/// One notification of a first access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessNotification {
    /// Stable id (also the webhook's idempotency key).
    pub notification_id: String,
    /// The gateway's id of the patient.
    pub patient_id: String,
    /// The organisation that read the record for the first time.
    pub organisation: String,
    /// The registered practice told (`None`: none the record names).
    pub practice: Option<String>,
    /// Who read: `client/user`.
    pub user: String,
    /// Their national RBAC role.
    pub role: String,
    /// How they stood to the patient.
    pub standing: String,
    /// When (microseconds since the epoch).
    pub raised_at_us: i64,
    /// The request (`X-Request-ID`).
    pub request_id: String,
}

/// A notification whose webhook delivery is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// The notification.
    pub notification: AccessNotification,
    /// Failed attempts so far.
    pub attempts: i64,
    /// When it became due (the claim must still see this value).
    pub next_attempt_us: i64,
}

/// Where first accesses, their notifications and the outbox are kept.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Whether `organisation` has read the record of `patient_id` before.
    async fn has_accessed(&self, patient_id: &str, organisation: &str) -> Result<bool, StoreError>;

    /// Stores the access with its notifications and outbox rows in one transaction, unless the
    /// organisation read the record before (then nothing is stored); whether it was the first.
    async fn record_first_access(&self, access: &FirstAccess) -> Result<bool, StoreError>;

    /// Notifications raised at or after `since_us`, oldest first: those for `practice` if
    /// given (else all), for one patient if given, at most `limit`.
    async fn notifications(
        &self,
        practice: Option<&str>,
        patient_id: Option<&str>,
        since_us: i64,
        limit: i64,
    ) -> Result<Vec<AccessNotification>, StoreError>;

    /// Undelivered notifications due at `now_us`, the longest waiting first, at most `limit`.
    async fn due_deliveries(&self, now_us: i64, limit: i64) -> Result<Vec<DueDelivery>, StoreError>;

    /// Claims a due delivery until `until_us`, if no one else claimed it since it was read as
    /// due at `seen_next_us`; whether this caller has it.
    async fn claim_delivery(&self, id: &str, seen_next_us: i64, until_us: i64) -> Result<bool, StoreError>;

    /// Marks a notification delivered.
    async fn delivered(&self, id: &str, at_us: i64) -> Result<(), StoreError>;

    /// Records a failed attempt (`attempts` in all) and when to try again.
    async fn delivery_failed(
        &self,
        id: &str,
        attempts: i64,
        next_attempt_us: i64,
        error: &str,
    ) -> Result<(), StoreError>;
}

type NotificationRow = (String, String, String, Option<String>, String, String, String, i64, String);
/// The columns of a [`NotificationRow`] (a macro, so the queries stay `'static` text).
macro_rules! notification_columns {
    () => {
        "n.notification_id, n.patient_id, n.organisation, n.practice, n.user_name, n.role, n.standing, \
         n.raised_at_us, n.request_id"
    };
}

#[async_trait]
impl AccessStore for Store {
    async fn has_accessed(&self, patient_id: &str, organisation: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = on_pool!(self, read, |p| sqlx::query_scalar(
            "SELECT first_at_us FROM organisation_access WHERE patient_id = $1 AND organisation = $2"
        )
        .bind(patient_id)
        .bind(organisation)
        .fetch_optional(p)
        .await)
        .map_err(err("read organisation access"))?;
        Ok(found.is_some())
    }

    async fn record_first_access(&self, a: &FirstAccess) -> Result<bool, StoreError> {
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await.map_err(err("begin"))?;
            let first = sqlx::query(
                "INSERT INTO organisation_access (patient_id, organisation, first_at_us, request_id) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (patient_id, organisation) DO NOTHING",
            )
            .bind(&a.patient_id)
            .bind(&a.organisation)
            .bind(a.at_us)
            .bind(&a.request_id)
            .execute(&mut *tx)
            .await
            .map_err(err("record organisation access"))?
            .rows_affected()
                == 1;
            if first {
                for practice in &a.recipients {
                    let id = format!("n{}", uuid::Uuid::new_v4().simple());
                    sqlx::query(
                        "INSERT INTO access_notification (notification_id, patient_id, organisation, practice, \
                         user_name, role, standing, raised_at_us, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(&id)
                    .bind(&a.patient_id)
                    .bind(&a.organisation)
                    .bind(practice.as_deref())
                    .bind(&a.user)
                    .bind(&a.role)
                    .bind(&a.standing)
                    .bind(a.at_us)
                    .bind(&a.request_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("store access notification"))?;
                    sqlx::query(
                        "INSERT INTO notification_outbox (notification_id, attempts, next_attempt_us) VALUES ($1, 0, $2)",
                    )
                    .bind(&id)
                    .bind(a.at_us)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("store notification outbox"))?;
                }
            }
            tx.commit().await.map_err(err("commit organisation access"))?;
            Ok(first)
        })
    }

    async fn notifications(
        &self,
        practice: Option<&str>,
        patient_id: Option<&str>,
        since_us: i64,
        limit: i64,
    ) -> Result<Vec<AccessNotification>, StoreError> {
        let sql = concat!(
            "SELECT ",
            notification_columns!(),
            " FROM access_notification n WHERE n.raised_at_us >= $1 \
             AND (CAST($2 AS TEXT) IS NULL OR n.practice = CAST($2 AS TEXT)) \
             AND (CAST($3 AS TEXT) IS NULL OR n.patient_id = CAST($3 AS TEXT)) \
             ORDER BY n.raised_at_us, n.notification_id LIMIT $4"
        );
        let rows: Vec<NotificationRow> = on_pool!(self, read, |p| sqlx::query_as(sql)
            .bind(since_us)
            .bind(practice)
            .bind(patient_id)
            .bind(limit)
            .fetch_all(p)
            .await)
        .map_err(err("read access notifications"))?;
        Ok(rows.into_iter().map(notification_of).collect())
    }

    async fn due_deliveries(&self, now_us: i64, limit: i64) -> Result<Vec<DueDelivery>, StoreError> {
        let sql = concat!(
            "SELECT ",
            notification_columns!(),
            ", o.attempts, o.next_attempt_us FROM notification_outbox o \
             JOIN access_notification n ON n.notification_id = o.notification_id \
             WHERE o.delivered_at_us IS NULL AND o.next_attempt_us <= $1 \
             ORDER BY o.next_attempt_us, o.notification_id LIMIT $2"
        );
        type DueRow = (String, String, String, Option<String>, String, String, String, i64, String, i64, i64);
        let rows: Vec<DueRow> =
            on_pool!(self, read, |p| sqlx::query_as(sql).bind(now_us).bind(limit).fetch_all(p).await)
                .map_err(err("read notification outbox"))?;
        Ok(rows
            .into_iter()
            .map(|(a, b, c, d, e, f, g, h, i, attempts, next_attempt_us)| DueDelivery {
                notification: notification_of((a, b, c, d, e, f, g, h, i)),
                attempts,
                next_attempt_us,
            })
            .collect())
    }

    async fn claim_delivery(&self, id: &str, seen_next_us: i64, until_us: i64) -> Result<bool, StoreError> {
        let claimed = on_pool!(self, write, |p| sqlx::query(
            "UPDATE notification_outbox SET next_attempt_us = $3 \
             WHERE notification_id = $1 AND next_attempt_us = $2 AND delivered_at_us IS NULL"
        )
        .bind(id)
        .bind(seen_next_us)
        .bind(until_us)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .map_err(err("claim notification delivery"))?;
        Ok(claimed == 1)
    }

    async fn delivered(&self, id: &str, at_us: i64) -> Result<(), StoreError> {
        on_pool!(self, write, |p| sqlx::query(
            "UPDATE notification_outbox SET delivered_at_us = $2, last_error = NULL WHERE notification_id = $1"
        )
        .bind(id)
        .bind(at_us)
        .execute(p)
        .await
        .map(drop))
        .map_err(err("mark notification delivered"))
    }

    async fn delivery_failed(
        &self,
        id: &str,
        attempts: i64,
        next_attempt_us: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, write, |p| sqlx::query(
            "UPDATE notification_outbox SET attempts = $2, next_attempt_us = $3, last_error = $4 \
             WHERE notification_id = $1 AND delivered_at_us IS NULL"
        )
        .bind(id)
        .bind(attempts)
        .bind(next_attempt_us)
        .bind(error)
        .execute(p)
        .await
        .map(drop))
        .map_err(err("record failed delivery"))
    }
}

fn notification_of(
    (notification_id, patient_id, organisation, practice, user, role, standing, raised_at_us, request_id): NotificationRow,
) -> AccessNotification {
    AccessNotification {
        notification_id,
        patient_id,
        organisation,
        practice,
        user,
        role,
        standing,
        raised_at_us,
        request_id,
    }
}
