//! Bulk export jobs as the dashboard shows them. The export service provides them through
//! [`ExportProgress`], set with [`super::DashboardFeeds::set_exports`].

use serde::{Deserialize, Serialize};

/// One export job: `{"id", "state", "progress"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportSummary {
    /// The job's id (as its status URL names it; never a patient's).
    pub id: String,
    /// Its state as the export service names it (for example `in-progress`, `completed`).
    pub state: String,
    /// How far it has got, from 0.0 (nothing yet) to 1.0 (done).
    pub progress: f64,
}

/// What the dashboard asks of the export service.
pub trait ExportProgress: Send + Sync {
    /// The jobs to show now, in the order to show them.
    fn jobs(&self) -> Vec<ExportSummary>;
}
