//! The record service: the one read pipeline.
//!
//! Locator -> federation (-> cache -> adapter) -> decide -> merge -> page. Every clinical read
//! (`$everything`, type searches, `Patient/{id}`, the NHS-number search and page links) enters
//! here once; nothing else reaches the federation or the merge. The audit intent is written
//! here, after the patient is known and before any source is asked, so no path can skip it.
//! The policy decision ([`tideway_policy::decide`]) is taken once per answer, after the cache
//! (which holds only sources' normalised answers) and before the merge, so a fact cannot vanish
//! with a copy it was folded into and no Provenance names an entry the requester cannot see.

mod by_id;
mod consent;
mod demographics;
mod error;
mod locate;
mod marks;
mod matching;
mod memo;
mod oversee;
pub mod owners;
mod paging;
mod patient;
mod population;
mod privacy;
mod read;
mod report;
mod shared;
mod standing;
mod supersession;

use std::sync::Arc;

use tideway_adapters::{NormalisedResource, SourceRecord};
use tideway_auth::Principal;
use tideway_policy::{Ask, Decision, Directive, read_consent};
use tideway_profiles::ResourceFacts;

pub use demographics::{Grade, MATCH_GRADE_URL, MatchQuery};
pub use error::RecordError;
pub use matching::{Candidate, MatchAnswer};
pub use memo::ReplicaMemo;
pub use paging::Page;
pub use patient::PatientAnswer;
pub use population::{DIRECT_CARE_ONLY, PopulationRead, PopulationRecord};
pub use privacy::Hypothesis;
use read::Opened;
pub use read::RecordAnswer;
pub use shared::SHARED_TYPES;
pub use supersession::parse_feed as parse_supersession_feed;

use crate::identity::PatientIds;
use crate::merge::SourceResources;
use crate::pages::PageStore;
use crate::sources::Federation;
use crate::store::{AlertStore, ConsentStore, PatientIndex, StoreError};

/// The facts of every resource of these sources' records, in order: what one decision is over.
fn facts_of(records: &[(tideway_adapters::SourceId, Arc<SourceRecord>)]) -> Vec<&ResourceFacts> {
    records.iter().flat_map(|(_, r)| r.resources.iter().map(|x| x.facts.as_ref())).collect()
}

/// The read pipeline and what it needs.
pub struct RecordService {
    /// The sources, with their cache.
    pub federation: Federation,
    /// The patient index and record locator.
    pub store: Arc<dyn PatientIndex>,
    /// Opaque patient ids.
    pub ids: PatientIds,
    /// Page snapshots.
    pub pages: PageStore,
    /// Public base URL (for page links), no trailing slash.
    pub base_url: String,
    /// How long the locator's answers are trusted.
    pub locator_max_age_secs: u64,
    /// This replica's memory of the index and locator.
    pub memo: ReplicaMemo,
    /// The sharing agreements and code sets every answer is decided under.
    pub policy: Arc<crate::agreements::PolicyInForce>,
    /// Patients' consent directives.
    pub consents: Arc<dyn ConsentStore>,
    /// Break-glass sessions and the privacy officer's alerts.
    pub alerts: Arc<dyn AlertStore>,
    /// How long one break-glass session lasts.
    pub break_glass_secs: u64,
    /// Organisations whose privacy officers (`HOPERAT`) read consents and alerts and run the
    /// policy simulator.
    pub privacy_officers: Vec<tideway_profiles::OdsCode>,
    /// First-access notifications and misuse monitoring.
    pub oversight: Arc<crate::oversight::Oversight>,
}

impl RecordService {
    /// The sources (for readiness and the audit trail).
    pub fn federation(&self) -> &Federation {
        &self.federation
    }

    /// Refuses a requester whom no sharing agreement in force lets read records, before
    /// anything about the patient is looked up, so the refusal is the same whether or not the
    /// patient exists.
    pub fn admit(&self, principal: &Principal) -> Result<(), RecordError> {
        if !self.policy.is_confirmed() {
            return Err(RecordError::PolicyUnconfirmed);
        }
        self.policy.current().admit(principal, today()).map_err(RecordError::Refused)
    }

    /// The one decision over `resources` for `principal`, today, under the patient's
    /// directives.
    fn decide(
        &self,
        principal: &Principal,
        ask: &Ask,
        directives: &[Directive],
        resources: &[&ResourceFacts],
    ) -> Decision {
        let decision = self.policy.current().decide(principal, ask, today(), directives, resources);
        let by_consent = |(r, _): &(tideway_policy::Reason, usize)| {
            matches!(r, tideway_policy::Reason::ConsentDenied | tideway_policy::Reason::ConsentRequired)
        };
        if decision.withheld_counts().iter().any(by_consent) {
            crate::telemetry::metrics::policy_denial(crate::telemetry::metrics::Denial::Consent);
        }
        decision
    }

    /// The patient's active consent directives: read from the store (or, when this process is
    /// the store's only writer, this replica's memory of it under the current consent epoch), so
    /// a change holds on the very next request. Unreadable: nothing is released.
    async fn directives(&self, patient_id: &str) -> Result<Arc<Vec<Directive>>, RecordError> {
        if let Some(known) = self.memo.consents(patient_id) {
            return Ok(known);
        }
        let epoch = self.memo.consents_epoch();
        let versions = self.consents.current_consents(patient_id).await.map_err(RecordError::Consent)?;
        let mut out = Vec::with_capacity(versions.len());
        for v in versions {
            let stored = consent::stored_body(&v)?;
            let summary = read_consent(&stored).map_err(|_| {
                RecordError::Consent(StoreError::other("read consent", "a stored consent no longer reads"))
            })?;
            out.extend(summary.directive);
        }
        let out = Arc::new(out);
        self.memo.remember_consents(patient_id, out.clone(), epoch);
        Ok(out)
    }

    /// Whether `principal` is a privacy officer of an organisation the gateway trusts as one.
    pub fn is_privacy_officer(&self, principal: &Principal) -> bool {
        principal.purpose == tideway_auth::PurposeOfUse::Operations
            && self.privacy_officers.contains(&principal.organisation)
    }

    /// Registry ids of every source this request asks, as a JSON array, for the audit trail.
    pub fn source_ids(&self) -> Arc<str> {
        self.federation.sources().source_ids_json()
    }
}

/// Each source's resources that `decision` (taken over [`facts_of`] `records`) releases, as
/// `present` presents them.
fn released(
    records: &[(tideway_adapters::SourceId, Arc<SourceRecord>)],
    decision: &Decision,
    present: impl Fn(&NormalisedResource) -> NormalisedResource,
) -> Vec<SourceResources> {
    let mut first = 0;
    records
        .iter()
        .map(|(source, record)| {
            let offset = first;
            first += record.resources.len();
            SourceResources {
                source: source.clone(),
                resources: record
                    .resources
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| decision.releases(offset + i))
                    .map(|(_, r)| present(r))
                    .collect(),
            }
        })
        .collect()
}

/// Today, in UTC: the day agreements are judged in force on.
fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// The Provenance `recorded` instant for a merge made now, to the second.
fn recorded_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
