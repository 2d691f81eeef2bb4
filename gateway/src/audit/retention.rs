//! Retention of the audit trail (`[audit] retention_days`): the oldest records, every one made
//! before the retention period, are removed in batches, each batch only once it has been
//! checked and a signed retention anchor for its last record is durable in the checkpoint file.
//!
//! - **Checked first.** The records to be removed are fed to the verifier (from the anchor
//!   below them, or from the genesis hash) against every checkpoint the file holds. If the
//!   trail shows any damage, or the checkpoint file does, nothing is removed: retention never
//!   destroys the evidence of tampering. The error names the first damage, and
//!   `tideway audit verify` reports all of it.
//! - **Anchored before removal.** The anchor signs the last removed record's sequence number and
//!   hash and the cut-off instant, with the checkpoint key. If the removal then fails, the
//!   records are still there and the anchor only says they may go.
//! - **Never the head.** The newest record always stays, so the next append still follows it.
//! - **Noted in the store.** Each removal is noted in `audit_retention`; the append-only trigger
//!   lets a record go only at or below the newest such note, so no other delete succeeds.
//!
//! A database editor can remove records too, but cannot sign an anchor: `audit verify` reports
//! records missing without one as a gap.

use super::AuditError;
use super::chain::ChainHash;
use super::checkpoint::{CheckpointError, Checkpointer};
use super::verify::ChainVerifier;

/// Most records checked and removed in one batch (one transaction).
const BATCH: i64 = 5_000;

/// Microseconds in a day.
const DAY_US: i64 = 86_400_000_000;

impl Checkpointer {
    /// Removes the records made more than `days` days ago, as the module says; how many went.
    pub async fn apply_retention(&self, days: u64) -> Result<u64, CheckpointError> {
        let mut signed = self.last.lock().await;
        let period_us = i64::try_from(days).unwrap_or(i64::MAX).saturating_mul(DAY_US);
        let before_us = crate::epoch_us::now().saturating_sub(period_us);
        let path = self.file.path.clone();
        let fail = |e: AuditError| CheckpointError::at(&path, e);
        let file = self.file.clone();
        let (checkpoints, unreadable) = tokio::task::spawn_blocking(move || file.read())
            .await
            .map_err(|e| CheckpointError::at(&path, e))??;
        let mut verifier = ChainVerifier::new(checkpoints, &unreadable, Some(&self.key.verifying_key()));
        let mut removed = 0;
        while let Some((first, head)) = self.log.audit_span().await.map_err(fail)? {
            // The oldest records up to the first made in the period (a replica's clock behind
            // cannot make retention remove a newer one), never the head.
            let last = (head - 1).min(first.saturating_add(BATCH - 1));
            if last < first {
                break;
            }
            let batch = self.log.audit_range(first, last).await.map_err(fail)?;
            let old =
                batch.iter().take_while(|r| crate::epoch_us::of(r.stored.recorded_at) < before_us).count();
            let rows = &batch[..old];
            if rows.is_empty() {
                break;
            }
            rows.iter().for_each(|row| verifier.feed(row));
            if let Some(damage) = verifier.findings().first() {
                return Err(CheckpointError::at(
                    &path,
                    format!(
                        "audit records were not removed under retention: the trail is damaged ({damage}); \
                         run `tideway audit verify`"
                    ),
                ));
            }
            let Some((through, hash)) = rows.last().and_then(|r| {
                r.hash.as_deref().and_then(ChainHash::from_hex).map(|hash| (r.stored.seq, hash))
            }) else {
                break;
            };
            self.append(&self.key.sign_anchor(through, hash, before_us)).await?;
            signed.anchored_through = signed.anchored_through.max(Some(through));
            let gone = self.log.remove_through(through, before_us).await.map_err(fail)?;
            removed += gone;
            if gone == 0 {
                break;
            }
        }
        Ok(removed)
    }

    /// Applies retention now, then every hour until the runtime stops.
    pub fn spawn_retention(self: std::sync::Arc<Self>, days: u64) {
        crate::periodic::now_and_every(3_600, move || {
            let this = self.clone();
            async move { this.logged_retention(days).await }
        });
    }

    async fn logged_retention(&self, days: u64) {
        match self.apply_retention(days).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, days, "audit retention applied"),
            Err(e) => tracing::error!(error = %e, "audit retention could not be applied"),
        }
    }
}
