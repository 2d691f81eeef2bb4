//! Delivers first-access notifications from the outbox to `[alerts] webhook_url`: each is
//! POSTed (a FHIR `Communication`, header `X-Tideway-Notification-Id` naming it, for the
//! receiver to drop a repeat) until the webhook accepts it with a 2xx, then marked delivered.
//! A failure waits `webhook_backoff_ms`, doubling with each attempt up to
//! `webhook_max_backoff_secs`, and is tried again, for as long as it takes: nothing is dropped.
//!
//! Before calling, the deliverer claims the row for the call's timeout and a margin, so two
//! replicas do not send it together; if the process dies mid-call the claim lapses and the
//! notification is sent again (delivery is at least once). The outbox is read every
//! `webhook_poll_ms`, and at once when this replica stores a notification.

use std::sync::Arc;
use std::time::Duration;

use super::{Oversight, notification_communication};
use crate::store::{AccessStore, DueDelivery, StoreError};

/// Notifications read from the outbox at a time.
const BATCH: i64 = 50;

/// How much longer than the call's timeout a claim lasts.
const CLAIM_MARGIN_US: i64 = 5_000_000;

/// The webhook deliverer of one replica.
pub struct Deliverer {
    store: Arc<dyn AccessStore>,
    http: reqwest::Client,
    url: url::Url,
    timeout: Duration,
    poll: Duration,
    backoff_ms: u64,
    max_backoff_ms: u64,
    wake: Arc<tokio::sync::Notify>,
}

impl Deliverer {
    /// The deliverer for `oversight`'s settings, when a webhook is configured.
    pub fn of(oversight: &Oversight) -> Result<Option<Self>, reqwest::Error> {
        let s = &oversight.settings;
        let Some(url) = s.webhook_url.clone() else { return Ok(None) };
        let timeout = Duration::from_millis(s.webhook_timeout_ms);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Some(Self {
            store: oversight.access.clone(),
            http,
            url,
            timeout,
            poll: Duration::from_millis(s.webhook_poll_ms),
            backoff_ms: s.webhook_backoff_ms,
            max_backoff_ms: s.webhook_max_backoff_secs.saturating_mul(1000),
            wake: oversight.waker(),
        }))
    }

    /// Delivers until the runtime stops.
    pub fn spawn(self) {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.deliver_due().await {
                    tracing::error!(error = %e, "the notification outbox could not be read");
                }
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(self.poll) => {}
                }
            }
        });
    }

    /// Sends every notification due now; returns how many were delivered.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let mut delivered = 0;
        loop {
            let now = crate::epoch_us::now();
            let due = self.store.due_deliveries(now, BATCH).await?;
            if due.is_empty() {
                return Ok(delivered);
            }
            let timeout_us = i64::try_from(self.timeout.as_micros()).unwrap_or(i64::MAX / 2);
            let mut claimed_any = false;
            for d in due {
                let id = &d.notification.notification_id;
                let lease = now.saturating_add(timeout_us).saturating_add(CLAIM_MARGIN_US);
                if !self.store.claim_delivery(id, d.next_attempt_us, lease).await? {
                    continue;
                }
                claimed_any = true;
                match self.send(&d).await {
                    Ok(()) => {
                        self.store.delivered(id, crate::epoch_us::now()).await?;
                        delivered += 1;
                    }
                    Err(why) => {
                        let attempts = d.attempts.saturating_add(1);
                        let wait = backoff_ms(self.backoff_ms, self.max_backoff_ms, attempts);
                        let wait_us = i64::try_from(wait).unwrap_or(i64::MAX).saturating_mul(1000);
                        let next = crate::epoch_us::now().saturating_add(wait_us);
                        tracing::warn!(attempts, reason = %why, "webhook delivery failed; will retry");
                        self.store.delivery_failed(id, attempts, next, &why).await?;
                    }
                }
            }
            if !claimed_any {
                // Everything due is another replica's for now.
                return Ok(delivered);
            }
        }
    }

    /// One call; the reason for a failure names the status or the kind of error, nothing else.
    async fn send(&self, d: &DueDelivery) -> Result<(), String> {
        let body = notification_communication(&d.notification).to_string();
        let answer = self
            .http
            .post(self.url.clone())
            .header("content-type", "application/fhir+json")
            .header("x-tideway-notification-id", &d.notification.notification_id)
            .body(body)
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("status {}", r.status().as_u16())),
            Err(e) if e.is_timeout() => Err("timed out".into()),
            Err(e) if e.is_connect() => Err("could not connect".into()),
            Err(_) => Err("request failed".into()),
        }
    }
}

/// The wait after the `attempts`th failure: `first_ms` doubled per attempt, at most `max_ms`.
fn backoff_ms(first_ms: u64, max_ms: u64, attempts: i64) -> u64 {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 63)).unwrap_or(63);
    first_ms.saturating_mul(1u64.checked_shl(doublings).unwrap_or(u64::MAX)).min(max_ms)
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn the_wait_doubles_from_the_first_and_stops_at_the_longest() {
        let waits: Vec<u64> = (1..=6).map(|a| backoff_ms(1000, 10_000, a)).collect();
        assert_eq!(waits, [1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(backoff_ms(1000, 10_000, 0), 1000);
        assert_eq!(backoff_ms(1000, 600_000, 10_000), 600_000, "no overflow");
    }
}
