//! Retention of what oversight keeps beside the audit trail: privacy alerts, ended break-glass
//! sessions and first-access notifications older than `[alerts] retention_days` are removed;
//! a notification not yet delivered to the webhook is kept (nothing is lost), and so is every
//! `organisation_access` row (it is what makes an organisation's next access not its first).
//!
//! The audit trail has its own retention (`[audit] retention_days`), anchored by a signed
//! statement in the checkpoint file: `crate::audit::retention`.

use super::{Store, StoreError, err};

impl Store {
    /// Removes alerts, ended break-glass sessions and delivered notifications from before `before_us`; answers how many rows went.
    pub async fn forget_alerts_before(&self, before_us: i64) -> Result<u64, StoreError> {
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await.map_err(err("begin"))?;
            let mut removed = 0;
            for sql in [
                "DELETE FROM privacy_alert WHERE raised_at_us < $1",
                "DELETE FROM break_glass WHERE ends_at_us < $1",
                "DELETE FROM access_notification WHERE raised_at_us < $1 AND notification_id IN \
                 (SELECT notification_id FROM notification_outbox WHERE delivered_at_us IS NOT NULL)",
            ] {
                let done = sqlx::query(sql).bind(before_us).execute(&mut *tx).await;
                removed += done.map_err(err("apply retention"))?.rows_affected();
            }
            let orphans = sqlx::query(
                "DELETE FROM notification_outbox WHERE delivered_at_us IS NOT NULL AND notification_id NOT IN \
                 (SELECT notification_id FROM access_notification)",
            )
            .execute(&mut *tx)
            .await;
            removed += orphans.map_err(err("apply retention"))?.rows_affected();
            tx.commit().await.map_err(err("commit retention"))?;
            Ok(removed)
        })
    }
}
