//! Housekeeping, every ten minutes: misuse counts older than any window they serve are pruned
//! (so the tables stay bounded), and, with `[alerts] retention_days`, old alerts and delivered
//! notifications are removed (`store::retention`).

use std::time::Duration;

use crate::config::AlertSettings;
use crate::store::{MisuseStore as _, Store};

/// How often housekeeping runs.
const EVERY: Duration = Duration::from_secs(600);

/// A day, in microseconds.
const DAY_US: i64 = 86_400_000_000;

/// One round: prune misuse counts, apply retention.
pub async fn housekeep(store: &Store, settings: &AlertSettings, now_us: i64) {
    let window_us = i64::try_from(settings.sweep_window_secs).unwrap_or(0).saturating_mul(1_000_000);
    if let Err(e) = store.prune_misuse(now_us - window_us.max(DAY_US)).await {
        tracing::warn!(error = %e, "misuse counts could not be pruned");
    }
    crate::record::owners::prune(store, now_us).await;
    if let Some(days) = settings.retention_days {
        let keep_us = i64::try_from(days).unwrap_or(i64::MAX / DAY_US).saturating_mul(DAY_US);
        match store.forget_alerts_before(now_us.saturating_sub(keep_us)).await {
            Ok(removed) => tracing::info!(removed, "alert retention applied"),
            Err(e) => tracing::warn!(error = %e, "alert retention could not be applied"),
        }
    }
}

/// Runs [`housekeep`] every ten minutes until the runtime stops.
pub fn spawn_housekeeping(store: Store, settings: AlertSettings) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            housekeep(&store, &settings, crate::epoch_us::now()).await;
        }
    });
}
