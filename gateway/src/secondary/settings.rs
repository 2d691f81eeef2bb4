//! `[secondary]`: the bulk export, the National Data Opt-out feed, the de-identification
//! projects and the dashboards' aggregates.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// `[secondary]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondarySettings {
    /// Where export jobs write their ndjson files (one folder per job). Created if missing.
    #[serde(default = "default_export_directory")]
    pub export_directory: PathBuf,
    /// The National Data Opt-out file feed: one NHS number a line (blank lines and `#`
    /// comments skipped, every number Mod 11 checked), the whole list each time. Read at start
    /// and every `opt_out_reload_secs`; a bad line keeps the list already loaded and names its
    /// line, never its number.
    #[serde(default)]
    pub opt_out_file: Option<PathBuf>,
    /// How often the opt-out file is read again.
    #[serde(default = "default_opt_out_reload_secs")]
    pub opt_out_reload_secs: u64,
    /// Counts below this in any published cell are suppressed (with complements, so they
    /// cannot be found by differencing).
    #[serde(default = "default_suppression_threshold")]
    pub suppression_threshold: u64,
    /// At most so many patients a second across all export work, so that clinical traffic is
    /// not starved.
    #[serde(default = "default_max_patients_per_sec")]
    pub max_patients_per_sec: u32,
    /// Patients fetched at once by one job.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How long a finished export job (its manifest and files) is kept after it finished;
    /// then it is removed and its status URL answers 404.
    #[serde(default = "default_export_retention_secs")]
    pub export_retention_secs: u64,
    /// Jobs run at once; later ones wait, queued.
    #[serde(default = "default_max_running_jobs")]
    pub max_running_jobs: usize,
    /// How the exported and counted data is de-identified (docs/deidentification.md).
    #[serde(default)]
    pub profile: tideway_deid::Profile,
    /// Dashboard projects: each has its own pseudonym key, so the same patient is linkable
    /// within a project and not across projects. An organisation exports under the project
    /// that names it; one named by none is refused.
    #[serde(default)]
    pub projects: Vec<ProjectSettings>,
    /// The population figures for the dashboards, computed every `aggregate_interval_secs`
    /// as this principal (an agreement must grant it secondary use); none without it.
    #[serde(default)]
    pub aggregates: Option<AggregateSettings>,
}

/// `[[secondary.projects]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSettings {
    /// The project's id (part of every pseudonym's derivation).
    pub id: String,
    /// The key's id; a new key gets a new id (rotation deliberately breaks linkage).
    pub key_id: String,
    /// The pseudonym key, at least 32 bytes.
    pub key: SecretString,
    /// ODS codes of the organisations exporting under this project.
    pub organisations: Vec<String>,
}

/// `[secondary.aggregates]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateSettings {
    /// The organisation the figures are computed for (an agreement must name it).
    pub organisation: String,
    /// Its role.
    pub role: String,
    /// Its purpose of use (secondary: HOPERAT, HRESCH or PUBHLTH).
    pub purpose: String,
    /// How often the figures are computed again.
    #[serde(default = "default_aggregate_interval_secs")]
    pub interval_secs: u64,
}

impl Default for SecondarySettings {
    fn default() -> Self {
        Self {
            export_directory: default_export_directory(),
            opt_out_file: None,
            opt_out_reload_secs: default_opt_out_reload_secs(),
            suppression_threshold: default_suppression_threshold(),
            max_patients_per_sec: default_max_patients_per_sec(),
            concurrency: default_concurrency(),
            max_running_jobs: default_max_running_jobs(),
            export_retention_secs: default_export_retention_secs(),
            profile: tideway_deid::Profile::default(),
            projects: Vec::new(),
            aggregates: None,
        }
    }
}

impl SecondarySettings {
    /// Checks what the types cannot; the message names the key, never a secret.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=86_400).contains(&self.opt_out_reload_secs) {
            return Err("secondary.opt_out_reload_secs must be between 1 and 86400".into());
        }
        if !(3..=1_000).contains(&self.suppression_threshold) {
            return Err("secondary.suppression_threshold must be between 3 and 1000".into());
        }
        if !(1..=1_000_000).contains(&self.max_patients_per_sec) || !(1..=64).contains(&self.concurrency) {
            return Err("secondary: max_patients_per_sec must be 1 to 1000000 and concurrency 1 to 64".into());
        }
        if !(1..=31_536_000).contains(&self.export_retention_secs) {
            return Err("secondary.export_retention_secs must be between 1 and 31536000 (a year)".into());
        }
        if !(1..=16).contains(&self.max_running_jobs) {
            return Err("secondary.max_running_jobs must be between 1 and 16".into());
        }
        let mut ids = std::collections::HashSet::new();
        let mut organisations = std::collections::HashSet::new();
        for p in &self.projects {
            if !ids.insert(&p.id) || p.id.is_empty() || p.key_id.is_empty() {
                return Err("secondary.projects: every project needs its own id and a key_id".into());
            }
            if p.key.expose_secret().len() < 32 {
                return Err(format!("secondary.projects '{}': key must be at least 32 bytes", p.id));
            }
            for o in &p.organisations {
                if tideway_profiles::OdsCode::parse(o).is_err()
                    || !organisations.insert(o.to_ascii_uppercase())
                {
                    return Err(format!(
                        "secondary.projects '{}': organisations must be ODS codes, each in one project",
                        p.id
                    ));
                }
            }
        }
        // Secondary use without the National Data Opt-out would ignore it: refused.
        if (!self.projects.is_empty() || self.aggregates.is_some()) && self.opt_out_file.is_none() {
            return Err(
                "secondary: exports and aggregates need the National Data Opt-out feed (opt_out_file)".into(),
            );
        }
        if let Some(a) = &self.aggregates {
            let purpose = tideway_auth::PurposeOfUse::parse(&a.purpose);
            if !purpose.is_some_and(tideway_auth::PurposeOfUse::is_secondary)
                || tideway_profiles::OdsCode::parse(&a.organisation).is_err()
                || tideway_auth::RoleCode::parse(&a.role).is_none()
            {
                return Err(
                    "secondary.aggregates: organisation must be an ODS code, role a national RBAC role \
                            and purpose HOPERAT, HRESCH or PUBHLTH"
                        .into(),
                );
            }
            if !(1..=86_400).contains(&a.interval_secs) {
                return Err("secondary.aggregates.interval_secs must be between 1 and 86400".into());
            }
        }
        Ok(())
    }
}

fn default_export_directory() -> PathBuf {
    PathBuf::from("tideway-exports")
}

fn default_opt_out_reload_secs() -> u64 {
    300
}

fn default_suppression_threshold() -> u64 {
    5
}

fn default_max_patients_per_sec() -> u32 {
    500
}

fn default_concurrency() -> usize {
    4
}

fn default_max_running_jobs() -> usize {
    1
}

fn default_export_retention_secs() -> u64 {
    86_400
}

fn default_aggregate_interval_secs() -> u64 {
    300
}
