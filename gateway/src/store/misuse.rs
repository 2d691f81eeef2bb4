//! What misuse monitoring counts, kept in the store so every replica counts the same users: the
//! last time each user read each patient, counted events (`$match` searches, kept as touches
//! of their own), break-glass
//! sessions per user, and the flags raised (one per user and kind while its window lasts), each
//! with its privacy-officer alert in the same transaction. Old rows are pruned.

use async_trait::async_trait;

use super::{PrivacyAlert, Store, StoreError, err};

/// Where misuse monitoring counts.
#[async_trait]
pub trait MisuseStore: Send + Sync {
    /// Notes that `user` read `patient_id` at `at_us`; answers how many different patients they
    /// have read since `since_us`, this one included.
    async fn touch_patient(
        &self,
        user: &str,
        patient_id: &str,
        at_us: i64,
        since_us: i64,
    ) -> Result<i64, StoreError>;

    /// Counts one event of `kind` by `user` at `at_us`; answers how many since `since_us`, this
    /// one included. Kept as touches of their own (user `{kind}:{user}`, a fresh key per
    /// event), so one table and one count serve both.
    async fn count_event(
        &self,
        user: &str,
        kind: &str,
        at_us: i64,
        since_us: i64,
    ) -> Result<i64, StoreError> {
        let key = format!("e{}", uuid::Uuid::new_v4().simple());
        self.touch_patient(&format!("{kind}:{user}"), &key, at_us, since_us).await
    }

    /// Break-glass sessions `user` opened since `since_us`.
    async fn break_glass_since(&self, user: &str, since_us: i64) -> Result<i64, StoreError>;

    /// Flags `alert.user` for `alert.kind` until `until_us` and stores the alert, in one
    /// transaction, unless a flag of that kind is still in force (then nothing is stored);
    /// whether it was raised now.
    async fn raise_flag(&self, alert: &PrivacyAlert, until_us: i64) -> Result<bool, StoreError>;

    /// The end of the latest flag on `user` still in force at `now_us`, if any.
    async fn flagged_until(&self, user: &str, now_us: i64) -> Result<Option<i64>, StoreError>;

    /// Removes touches and events older than `before_us` and flags that ended before it.
    async fn prune_misuse(&self, before_us: i64) -> Result<(), StoreError>;
}

#[async_trait]
impl MisuseStore for Store {
    async fn touch_patient(
        &self,
        user: &str,
        patient_id: &str,
        at_us: i64,
        since_us: i64,
    ) -> Result<i64, StoreError> {
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await.map_err(err("begin"))?;
            sqlx::query(
                "INSERT INTO misuse_touch (user_name, patient_id, last_at_us) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_name, patient_id) DO UPDATE SET last_at_us = excluded.last_at_us",
            )
            .bind(user)
            .bind(patient_id)
            .bind(at_us)
            .execute(&mut *tx)
            .await
            .map_err(err("note patient read"))?;
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM misuse_touch WHERE user_name = $1 AND last_at_us >= $2",
            )
            .bind(user)
            .bind(since_us)
            .fetch_one(&mut *tx)
            .await
            .map_err(err("count patient reads"))?;
            tx.commit().await.map_err(err("commit patient read"))?;
            Ok(n)
        })
    }

    async fn break_glass_since(&self, user: &str, since_us: i64) -> Result<i64, StoreError> {
        on_pool!(self, read, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM break_glass WHERE user_name = $1 AND opened_at_us >= $2"
        )
        .bind(user)
        .bind(since_us)
        .fetch_one(p)
        .await)
        .map_err(err("count break-glass sessions"))
    }

    async fn raise_flag(&self, a: &PrivacyAlert, until_us: i64) -> Result<bool, StoreError> {
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await.map_err(err("begin"))?;
            let raised = sqlx::query(
                "INSERT INTO misuse_flag (user_name, kind, raised_at_us, until_us) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_name, kind) DO UPDATE SET raised_at_us = excluded.raised_at_us, \
                 until_us = excluded.until_us WHERE misuse_flag.until_us <= excluded.raised_at_us",
            )
            .bind(&a.user)
            .bind(&a.kind)
            .bind(a.raised_at_us)
            .bind(until_us)
            .execute(&mut *tx)
            .await
            .map_err(err("raise misuse flag"))?
            .rows_affected()
                == 1;
            if raised {
                sqlx::query(
                    "INSERT INTO privacy_alert (alert_id, kind, raised_at_us, patient_id, user_name, organisation, \
                     role, reason, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&a.alert_id)
                .bind(&a.kind)
                .bind(a.raised_at_us)
                .bind(&a.patient_id)
                .bind(&a.user)
                .bind(&a.organisation)
                .bind(&a.role)
                .bind(&a.reason)
                .bind(&a.request_id)
                .execute(&mut *tx)
                .await
                .map_err(err("raise alert"))?;
            }
            tx.commit().await.map_err(err("commit misuse flag"))?;
            Ok(raised)
        })
    }

    async fn flagged_until(&self, user: &str, now_us: i64) -> Result<Option<i64>, StoreError> {
        on_pool!(self, read, |p| sqlx::query_scalar(
            "SELECT MAX(until_us) FROM misuse_flag WHERE user_name = $1 AND until_us > $2"
        )
        .bind(user)
        .bind(now_us)
        .fetch_one(p)
        .await)
        .map_err(err("read misuse flags"))
    }

    async fn prune_misuse(&self, before_us: i64) -> Result<(), StoreError> {
        on_pool!(self, write, |p| {
            for sql in [
                "DELETE FROM misuse_touch WHERE last_at_us < $1",
                "DELETE FROM misuse_flag WHERE until_us < $1",
            ] {
                sqlx::query(sql).bind(before_us).execute(p).await.map_err(err("prune misuse counts"))?;
            }
            Ok(())
        })
    }
}
