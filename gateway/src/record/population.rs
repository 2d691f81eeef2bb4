//! One patient's record for secondary use (bulk export, the dashboards' aggregates): the same
//! federation, cache and decision as a clinical read, for a principal admitted to secondary
//! use, without the clinical read's look-ups.
//!
//! The population walked is the registered one (the registration feed and what the locator
//! learnt), so only the sources known to hold the patient are asked: a walk of the whole
//! region never asks 25 boroughs about each patient. The decision is taken once per patient
//! over every source's resources, under the patient's consent directives, with the standing an
//! agreement grants (secondary-use agreements grant it: no relationship with each patient is
//! shown, or needed, for de-identified data). The job that walks the population writes one
//! audit intent before its first patient and one outcome after its last.

use std::sync::Arc;

use tideway_adapters::{NormalisedResource, SourceId, SourceRecord};
use tideway_auth::Principal;
use tideway_policy::{Ask, Directive, Standing};
use tideway_profiles::NhsNumber;

use super::{RecordError, RecordService, facts_of, locate, recorded_now, released};
use crate::merge::merge_with;
use crate::sources::Asking;

/// The failure code of a source the patient is registered with that serves direct care only
/// (GP Connect), so is never asked for secondary use.
pub const DIRECT_CARE_ONLY: &str = "direct-care-only";

/// One patient's record as read for secondary use, before anything is released.
#[derive(Debug)]
pub struct PopulationRead {
    /// The gateway's id for the patient.
    id: String,
    /// Each answering source's record.
    records: Vec<(SourceId, Arc<SourceRecord>)>,
    /// The patient's consent directives.
    directives: Arc<Vec<Directive>>,
    /// Sources that could not answer, or were not asked, with the code of why (never patient
    /// data).
    pub failures: Vec<(SourceId, &'static str)>,
}

impl PopulationRead {
    /// What secondary use gets: `resources` (released from this read), with the read's sources
    /// and failures.
    pub fn into_record(self, resources: Vec<NormalisedResource>) -> PopulationRecord {
        let sources = self.records.into_iter().map(|(s, _)| s).collect();
        PopulationRecord { resources, sources, failures: self.failures }
    }
}

/// What secondary use gets of one patient's record.
#[derive(Debug)]
pub struct PopulationRecord {
    /// The released resources, merged (the patient first); no Provenance.
    pub resources: Vec<NormalisedResource>,
    /// The sources whose records were read.
    pub sources: Vec<SourceId>,
    /// Sources that could not answer, with the failure's code (never patient data).
    pub failures: Vec<(SourceId, &'static str)>,
}

impl RecordService {
    /// Whether `principal` may have population data at all (a secondary purpose, through an
    /// agreement in force that grants it).
    pub fn admit_secondary(&self, principal: &Principal) -> Result<(), RecordError> {
        if !self.policy.is_confirmed() {
            return Err(RecordError::PolicyUnconfirmed);
        }
        self.policy.current().admit_secondary(principal, super::today()).map_err(RecordError::Refused)
    }

    /// The patient's record as `principal` may have it for secondary use, asked of the
    /// sources the locator knows to hold the patient: [`Self::read_for_secondary_use`], then
    /// [`Self::release_for_secondary_use`] under `ask`.
    pub async fn population_record(
        &self,
        principal: &Principal,
        who: (&NhsNumber, &str),
        ask: &Ask,
        request_id: &str,
    ) -> Result<PopulationRecord, RecordError> {
        let read = self.read_for_secondary_use(principal, who, request_id).await?;
        let resources = self.release_for_secondary_use(principal, &read, ask);
        Ok(read.into_record(resources))
    }

    /// What the sources that hold the patient, and serve secondary use, answer for
    /// `principal`, with the patient's consent directives: nothing is released yet, so one
    /// read can be released under several questions.
    pub async fn read_for_secondary_use(
        &self,
        principal: &Principal,
        (nhs, id): (&NhsNumber, &str),
        request_id: &str,
    ) -> Result<PopulationRead, RecordError> {
        let links = self
            .store
            .links(id, u64::MAX)
            .await
            .map_err(|cause| RecordError::PatientIndex { what: "read", cause })?;
        let held: Vec<(String, String)> =
            links.into_iter().filter_map(|l| l.local_id.map(|local| (l.source_id, local))).collect();
        let sources = self.federation.sources();
        let (serving, direct_care_only): (Vec<_>, Vec<_>) =
            sources.adapters().iter().cloned().partition(|a| a.serves_secondary_use());
        let targets = locate::targets(&serving, &held, id, nhs);
        let asking = Asking::for_principal(request_id, principal);
        let answers = self.federation.fetch_records(&targets, &asking, self.federation.deadline()).await;
        let is_held = |source: &SourceId| held.iter().any(|(s, _)| s == source.as_str());
        let mut failures: Vec<(SourceId, &'static str)> = answers
            .iter()
            .filter_map(|a| {
                a.result
                    .as_ref()
                    .err()
                    .map(|e| (a.source.clone(), crate::telemetry::metrics::outcome_code(Some(e))))
            })
            .collect();
        // A source the patient is registered with that is not asked now (suspended, say, or
        // serving direct care only) is a gap in the export, reported as one.
        failures.extend(
            sources.not_asked::<()>().filter(|a| is_held(&a.source)).map(|a| (a.source, "not-asked")),
        );
        failures.extend(
            direct_care_only.iter().filter(|a| is_held(a.id())).map(|a| (a.id().clone(), DIRECT_CARE_ONLY)),
        );
        let records: Vec<_> =
            answers.into_iter().filter_map(|a| a.result.ok().map(|r| (a.source, r))).collect();
        let directives = self.directives(id).await?;
        Ok(PopulationRead { id: id.to_owned(), records, directives, failures })
    }

    /// The resources of `read` that `principal` may have under `ask`, merged (the patient
    /// first), without Provenance. Pure: releasing one read under several questions asks no
    /// source again.
    pub fn release_for_secondary_use(
        &self,
        principal: &Principal,
        read: &PopulationRead,
        ask: &Ask,
    ) -> Vec<NormalisedResource> {
        let facts = facts_of(&read.records);
        let ask = ask.clone().standing_as(Standing::Agreement);
        let decision = self.decide(principal, &ask, &read.directives, &facts);
        // Presented as every answer presents them: a restricted patient's address and practice
        // never reach de-identification, a deceased patient is marked so.
        let presented = decision.marks();
        let per_source = released(&read.records, &decision, |r| super::marks::present(presented, r));
        // The Provenance of merged facts is not exported: made and dropped, never remembered (a
        // walk of the whole population would fill the replica's memo with it).
        let recorded = recorded_now();
        let merged = merge_with(
            &per_source,
            &read.id,
            |fact| crate::merge::provenance_for(fact, &recorded),
            crate::merge::with_codes_of,
        );
        merged.resources.into_iter().filter(|r| r.resource_type != "Provenance").collect()
    }
}
