//! Bulk Data `$export` (HL7 FHIR Bulk Data Access, the asynchronous request pattern): jobs
//! kept in the store, run in the background with bounded memory, throttled, resumed after a
//! restart, and served only to the principal that started them.
//!
//! A job walks its cohort a page of patients at a time (in patient id order), reads each
//! patient's record through the record service (the one decision, per resource, inside the
//! job: consent, the agreement and the scopes), leaves out whoever is not in the group,
//! de-identifies what is released ([`tideway_deid`]) and appends it to one ndjson file per
//! type. After each page it syncs the files and records the cursor with their sizes.

mod job;
mod lease;
mod manifest;
mod output;
mod runner;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use job::{Job, JobOwner, JobParams, JobState, JobTally, LiveJobs};
pub use output::{FileSize, is_output_name};
pub use runner::{spawn, spawn_unfinished};

use crate::store::{ExportJobRow, SecondaryStore, StoreError};

/// Forgets expired jobs now and then every so often (a tenth of the retention, between a
/// second and ten minutes); failures are logged.
pub fn spawn_expiry(state: actix_web::web::Data<crate::state::AppState>) {
    let period = (state.secondary.settings.export_retention_secs / 10).clamp(1, 600);
    crate::periodic::now_and_every(period, move || {
        let state = state.clone();
        async move {
            match state.secondary.exports.expire(crate::epoch_us::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "export jobs past their retention were removed"),
                Err(e) => tracing::error!(error = %e, "expired export jobs could not be removed"),
            }
        }
    });
}

/// The export jobs: the store, where files go, and the runners' shared limits.
pub struct Exports {
    store: Arc<dyn SecondaryStore>,
    directory: PathBuf,
    /// Jobs cancelled while running: their runner stops at the next patient.
    cancelled: Mutex<HashSet<String>>,
    /// Jobs this replica has a run of (waiting for a runner or walking).
    walking: Mutex<HashSet<String>>,
    /// Set when the gateway stops: runners stop at the next page, leaving their jobs to be
    /// resumed by the next start.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// At most `max_running_jobs` jobs run at once.
    running: Arc<tokio::sync::Semaphore>,
    /// Paces patients across every job (`max_patients_per_sec`).
    pacer: Mutex<tokio::time::Instant>,
    /// The time one patient's turn takes at `max_patients_per_sec`.
    period: std::time::Duration,
    concurrency: usize,
    /// How long a finished job (its manifest and files) is kept.
    retention_us: i64,
    /// What the operations dashboard shows.
    live: Arc<LiveJobs>,
}

impl Exports {
    /// The jobs kept in `store`, writing under `directory`.
    pub fn new(store: Arc<dyn SecondaryStore>, settings: &super::SecondarySettings) -> Self {
        let period = std::time::Duration::from_secs(1) / settings.max_patients_per_sec.max(1);
        Self {
            store,
            directory: settings.export_directory.clone(),
            cancelled: Mutex::new(HashSet::new()),
            walking: Mutex::new(HashSet::new()),
            stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            running: Arc::new(tokio::sync::Semaphore::new(settings.max_running_jobs)),
            pacer: Mutex::new(tokio::time::Instant::now()),
            period,
            concurrency: settings.concurrency,
            retention_us: i64::try_from(settings.export_retention_secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000),
            live: Arc::default(),
        }
    }

    /// Stores a new job, queued.
    pub async fn create(
        &self,
        owner: &JobOwner,
        request: &str,
        params: &JobParams,
        patients_total: i64,
    ) -> Result<String, StoreError> {
        let now = crate::epoch_us::now();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let json =
            |v: serde_json::Result<String>| v.map_err(|_| StoreError::other("create export job", "encode"));
        let row = ExportJobRow {
            job_id: id.clone(),
            owner: json(serde_json::to_string(owner))?,
            request: request.to_owned(),
            params: json(serde_json::to_string(params))?,
            state: JobState::Queued.code().to_owned(),
            transaction_time: crate::epoch_us::rfc3339_seconds(now),
            cursor: None,
            patients_done: 0,
            patients_total,
            progress: json(serde_json::to_string(&JobTally::default()))?,
            created_us: now,
            updated_us: now,
        };
        self.store.create_export_job(&row).await?;
        self.note(&id, JobState::Queued, 0, patients_total);
        Ok(id)
    }

    /// The job with this id, if any.
    pub async fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        match self.store.export_job(id).await? {
            Some(row) => Job::of_row(row).map(Some),
            None => Ok(None),
        }
    }

    /// Cancels a queued or running job (its runner stops at the next patient and removes its
    /// files), or forgets a finished one and removes its files. Returns whether there was one.
    pub async fn cancel(&self, id: &str) -> Result<bool, StoreError> {
        self.note(id, JobState::Cancelled, 0, 0);
        if self.store.set_export_state(id, JobState::Cancelled.code()).await? {
            self.cancelled.lock().map(|mut c| c.insert(id.to_owned())).ok();
        } else if !self.store.remove_export_job(id).await? {
            return Ok(false);
        }
        self.remove_files(id).await;
        Ok(true)
    }

    /// Forgets every job that finished more than `export_retention_secs` before `now_us`, with
    /// its files: its status URL then answers 404, as a cancelled job's does. Returns how many
    /// were forgotten. Files are removed before the job, so a failure leaves the job to be tried
    /// again, never files without a job.
    pub async fn expire(&self, now_us: i64) -> Result<usize, StoreError> {
        let ids = self.store.finished_export_jobs(now_us.saturating_sub(self.retention_us)).await?;
        for id in &ids {
            self.remove_files(id).await;
            self.store.remove_export_job(id).await?;
            self.live.forget(id);
        }
        Ok(ids.len())
    }

    /// Waits for the next patient's turn under `max_patients_per_sec` (shared by every job and
    /// the aggregates' walk).
    pub async fn pace(&self) {
        // Each caller takes the next turn and waits for it; turns already past are not saved up,
        // so an idle spell never allows a burst above the rate.
        let turn = {
            let Ok(mut next) = self.pacer.lock() else { return };
            let now = tokio::time::Instant::now();
            let turn = (*next).max(now);
            *next = turn + self.period;
            turn
        };
        tokio::time::sleep_until(turn).await;
    }

    /// Notes that this replica starts a run of the job; `false` if it has one already.
    fn start_walking(&self, id: &str) -> bool {
        self.walking.lock().is_ok_and(|mut w| w.insert(id.to_owned()))
    }

    /// Notes that this replica's run of the job has ended.
    fn stop_walking(&self, id: &str) {
        if let Ok(mut w) = self.walking.lock() {
            w.remove(id);
        }
    }

    /// The flag that stops every runner at its next page (set when the gateway stops).
    pub fn stop_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.stopping.clone()
    }

    /// Whether the gateway is stopping.
    fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the job was cancelled since its runner started.
    fn is_cancelled(&self, id: &str) -> bool {
        self.cancelled.lock().map(|c| c.contains(id)).unwrap_or(true)
    }

    /// The folder of a job's files.
    pub fn folder(&self, id: &str) -> PathBuf {
        self.directory.join(id)
    }

    /// The path of one of a job's files, if `name` is one a job writes.
    pub fn file(&self, id: &str, name: &str) -> Option<PathBuf> {
        is_output_name(name).then(|| self.folder(id).join(name))
    }

    async fn remove_files(&self, id: &str) {
        match tokio::fs::remove_dir_all(self.folder(id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::error!(error = %e, "an export job's files could not be removed"),
        }
    }

    /// The jobs the operations dashboard shows.
    pub fn live(&self) -> Arc<LiveJobs> {
        self.live.clone()
    }

    /// Notes a job's state for the dashboard.
    pub(crate) fn note(&self, id: &str, state: JobState, done: i64, total: i64) {
        self.live.note(id, state, done, total);
    }
}
