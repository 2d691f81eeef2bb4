//! An export job as the gateway works with it: its state, owner, parameters and tally (read
//! from its stored row), and the live list of jobs the operations dashboard shows.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tideway_auth::{Principal, PurposeOfUse, RoleCode};
use tideway_profiles::OdsCode;

use super::FileSize;
use crate::dashboard::exports::{ExportProgress, ExportSummary};
use crate::store::{ExportJobRow, StoreError};

/// A job's state as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a free runner.
    Queued,
    /// Walking its cohort.
    Running,
    /// Done: the manifest is served.
    Completed,
    /// Stopped by a failure that made the export unusable.
    Failed,
    /// Cancelled by its owner; its files are gone.
    Cancelled,
}

impl JobState {
    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state a stored code names.
    pub fn parse(code: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Completed, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|s| s.code() == code)
    }
}

/// Who started a job: only they are served its status and files, and the job decides as them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOwner {
    /// Registered client.
    pub client_id: String,
    /// End user.
    pub user_id: String,
    /// National RBAC role.
    pub role: String,
    /// Organisation (ODS code).
    pub organisation: String,
    /// Purpose of use code.
    pub purpose: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

impl JobOwner {
    /// The owner of a job `principal` starts.
    pub fn of(principal: &Principal) -> Self {
        Self {
            client_id: principal.client_id.clone(),
            user_id: principal.user_id.clone(),
            role: principal.role.as_str().to_owned(),
            organisation: principal.organisation.as_str().to_owned(),
            purpose: principal.purpose.code().to_owned(),
            scopes: principal.scopes.clone(),
        }
    }

    /// Whether `principal` is the one who started the job (the same user of the same client,
    /// organisation and purpose; a fresh token of theirs will do).
    pub fn is(&self, principal: &Principal) -> bool {
        self.client_id == principal.client_id
            && self.user_id == principal.user_id
            && self.organisation == principal.organisation.as_str()
            && self.purpose == principal.purpose.code()
    }

    /// The principal the job decides as (its token id is the job's).
    pub fn principal(&self, job_id: &str) -> Option<Principal> {
        Some(Principal {
            client_id: self.client_id.clone(),
            user_id: self.user_id.clone(),
            role: RoleCode::parse(&self.role)?,
            organisation: OdsCode::parse(&self.organisation).ok()?,
            purpose: PurposeOfUse::parse(&self.purpose)?,
            scopes: self.scopes.clone(),
            token_id: job_id.to_owned(),
            break_glass_reason: None,
        })
    }
}

/// What a job was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobParams {
    /// The Group id, for a group export.
    pub group: Option<String>,
    /// `_type`: only these types (else every exported type the scopes allow).
    pub types: Vec<String>,
    /// `_since`: only resources changed after this instant.
    pub since: Option<String>,
}

/// How far a job has got: outputs and failures, counts only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTally {
    /// Each type's file size at the cursor.
    pub outputs: BTreeMap<String, FileSize>,
    /// Patients whose record was read (some of it may have been withheld or outside the group).
    pub patients_read: u64,
    /// Patients in the group whose data was written.
    pub patients_exported: u64,
    /// Per source, per failure code, how many patients' records it could not give.
    pub source_failures: BTreeMap<String, BTreeMap<String, u64>>,
    /// Patients left out because their record could not be decided on (a store failure,
    /// say): nothing of theirs is written.
    pub patients_left_out: u64,
    /// Why the job failed, when it did (no patient data).
    pub failure: Option<String>,
    /// The last patient written (the cursor), while the job runs.
    #[serde(default, skip_serializing)]
    pub cursor: Option<String>,
    /// Patients walked, while the job runs.
    #[serde(default, skip_serializing)]
    pub done: i64,
}

/// A job as the HTTP layer sees it.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// Who started it.
    pub owner: JobOwner,
    /// The kick-off URL.
    pub request: String,
    /// What was asked.
    pub params: JobParams,
    /// Its state.
    pub state: JobState,
    /// The manifest's `transactionTime`.
    pub transaction_time: String,
    /// The last patient written, when any.
    pub cursor: Option<String>,
    /// Patients walked, of how many.
    pub patients_done: i64,
    /// Patients in the cohort at the start.
    pub patients_total: i64,
    /// Outputs and failures.
    pub tally: JobTally,
}

impl Job {
    pub(super) fn of_row(row: ExportJobRow) -> Result<Self, StoreError> {
        let bad = || StoreError::other("read export job", "a stored export job no longer reads");
        Ok(Self {
            owner: serde_json::from_str(&row.owner).map_err(|_| bad())?,
            params: serde_json::from_str(&row.params).map_err(|_| bad())?,
            state: JobState::parse(&row.state).ok_or_else(bad)?,
            tally: serde_json::from_str(&row.progress).map_err(|_| bad())?,
            id: row.job_id,
            request: row.request,
            transaction_time: row.transaction_time,
            cursor: row.cursor,
            patients_done: row.patients_done,
            patients_total: row.patients_total,
        })
    }

    /// `X-Progress`: how far it has got, in patients.
    pub fn progress_text(&self) -> String {
        let percent =
            if self.patients_total > 0 { self.patients_done * 100 / self.patients_total } else { 0 };
        format!(
            "{}: {} of {} patients ({percent}%)",
            self.state.code(),
            self.patients_done,
            self.patients_total
        )
    }
}

/// The newest jobs as the operations dashboard shows them, kept as runners report.
#[derive(Default)]
pub struct LiveJobs(Mutex<Vec<ExportSummary>>);

/// At most so many jobs are shown.
const SHOWN: usize = 20;

impl LiveJobs {
    pub(super) fn forget(&self, id: &str) {
        if let Ok(mut jobs) = self.0.lock() {
            jobs.retain(|j| j.id != id);
        }
    }

    pub(super) fn note(&self, id: &str, state: JobState, done: i64, total: i64) {
        let progress = match state {
            JobState::Completed => 1.0,
            _ if total > 0 => done as f64 / total as f64,
            _ => 0.0,
        };
        self.forget(id);
        let Ok(mut jobs) = self.0.lock() else { return };
        if state != JobState::Cancelled {
            jobs.insert(0, ExportSummary { id: id.to_owned(), state: state.code().to_owned(), progress });
            jobs.truncate(SHOWN);
        }
    }
}

impl ExportProgress for LiveJobs {
    fn jobs(&self) -> Vec<ExportSummary> {
        self.0.lock().map(|j| j.clone()).unwrap_or_default()
    }
}
