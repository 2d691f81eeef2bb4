//! A run's lease on its export job, so that replicas sharing a store never walk one job at
//! once: a run takes the lease before it walks, renews it as it goes, and gives it up when it
//! stops. A lease a dead replica held lapses, and the next replica to look resumes the job from
//! its cursor.
//!
//! The lease is renewed before a page's progress is recorded, and checked at each page and
//! within one once 30 s have passed since the last renewal, not on every file write: a run that stalls for longer than [`LEASE`] and then wakes
//! mid-page could append a few lines before it finds the lease gone. The run that took over
//! cuts the files back to the recorded sizes when it resumes, so only lines written after that
//! could survive; fencing each write with the lease would close the gap.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{SecondaryStore, StoreError};

/// How long a lease lasts unless renewed.
pub const LEASE: Duration = Duration::from_secs(120);

/// A lease is renewed once this much of it has passed (well before it lapses: a single
/// patient's read is held to the federation deadline, far shorter).
const RENEW_AFTER: Duration = Duration::from_secs(30);

/// One run's hold on one job.
pub struct Lease<'a> {
    store: &'a dyn SecondaryStore,
    job_id: &'a str,
    /// This run's own token: another run, on this replica or another, is another holder.
    holder: String,
    renewed: Mutex<Instant>,
}

impl<'a> Lease<'a> {
    /// Takes the job's lease for a new run; `None` while another run holds it.
    pub async fn take(store: &'a dyn SecondaryStore, job_id: &'a str) -> Result<Option<Self>, StoreError> {
        let lease = Self {
            store,
            job_id,
            holder: uuid::Uuid::new_v4().to_string(),
            renewed: Mutex::new(Instant::now()),
        };
        Ok(lease.renew().await?.then_some(lease))
    }

    /// Renews the lease now. `false` when another run holds the job (this one stalled past
    /// [`LEASE`] and was taken over): the run must stop writing at once.
    pub async fn renew(&self) -> Result<bool, StoreError> {
        let now = crate::epoch_us::now();
        let lease_us = i64::try_from(LEASE.as_micros()).unwrap_or(i64::MAX);
        let held =
            self.store.lease_export_job(self.job_id, &self.holder, now, now.saturating_add(lease_us)).await?;
        if held && let Ok(mut at) = self.renewed.lock() {
            *at = Instant::now();
        }
        Ok(held)
    }

    /// Renews the lease if it is due; `false` when it is lost.
    pub async fn keep(&self) -> Result<bool, StoreError> {
        let due = self.renewed.lock().map_or(true, |at| at.elapsed() >= RENEW_AFTER);
        if due { self.renew().await } else { Ok(true) }
    }

    /// Gives the lease up (a failure is logged: the lease then lapses by itself).
    pub async fn release(self) {
        if let Err(e) = self.store.release_export_job(self.job_id, &self.holder).await {
            tracing::error!(error = %e, "an export job's lease could not be given up; it lapses");
        }
    }
}
