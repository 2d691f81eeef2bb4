//! Secondary use: de-identified population data for commissioning, planning, research and
//! public health, never a patient's record.
//!
//! - [`export`]: Bulk Data `$export` jobs (system level and per `Group`);
//! - [`aggregate`]: the dashboards' population figures (`MeasureReport`s);
//! - [`opt_out`]: the National Data Opt-out, applied to both;
//! - [`cohort`]: which patients a Group holds; [`projects`]: which pseudonym key applies.
//!
//! Only a principal with a secondary purpose of use, admitted by an agreement that grants it
//! (`Policy::admit_secondary`), is served; every patient's record is read through the record
//! service and decided on inside the walk; everything that leaves is de-identified by
//! [`tideway_deid`] (docs/deidentification.md) and every count suppressed below the threshold.

pub mod aggregate;
pub mod cohort;
pub mod export;
pub mod opt_out;
pub mod projects;
pub mod registrations;
mod settings;

use std::sync::Arc;

pub use settings::{AggregateSettings, ProjectSettings, SecondarySettings};

use crate::store::SecondaryStore;

/// What secondary use needs, held in the application state.
pub struct SecondaryUse {
    /// `[secondary]`.
    pub settings: SecondarySettings,
    /// Opt-outs, the registered population, jobs and figures.
    pub store: Arc<dyn SecondaryStore>,
    /// Each organisation's pseudonym project.
    pub projects: projects::Projects,
    /// Export jobs and their runners' limits.
    pub exports: export::Exports,
    /// The latest population figures, for the dashboard.
    pub figures: Arc<aggregate::LatestFigures>,
    /// Held while the figures are computed: one walk at a time, so an older walk can never
    /// store its figures over a newer one's.
    pub(crate) refreshing: tokio::sync::Mutex<()>,
}

/// Registry ids of the sources asked now, in registry order.
pub fn source_ids(state: &crate::state::AppState) -> Vec<String> {
    state.records.federation().sources().adapters().iter().map(|a| a.id().to_string()).collect()
}

/// The Group this gateway offers under `id`, judged against the code sets and the sources now.
pub fn group_named(state: &crate::state::AppState, id: &str) -> Option<cohort::Group> {
    cohort::Group::parse(id, state.records.policy.current().terminology(), &source_ids(state))
}

impl SecondaryUse {
    /// Secondary use as configured, over `store`.
    pub fn new(settings: SecondarySettings, store: Arc<dyn SecondaryStore>) -> Result<Self, String> {
        let projects = projects::Projects::new(&settings.projects)?;
        let exports = export::Exports::new(store.clone(), &settings);
        Ok(Self {
            settings,
            store,
            projects,
            exports,
            figures: Arc::default(),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }
}
