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

use tideway_adapters::{NormalisedResource, SourceId};
use tideway_auth::Principal;
use tideway_policy::{Ask, Standing};
use tideway_profiles::NhsNumber;

use super::{RecordError, RecordService, facts_of, locate, recorded_now, released};
use crate::merge::merge_with;
use crate::sources::Asking;

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
    /// sources the locator knows to hold the patient.
    pub async fn population_record(
        &self,
        principal: &Principal,
        (nhs, id): (&NhsNumber, &str),
        ask: &Ask,
        request_id: &str,
    ) -> Result<PopulationRecord, RecordError> {
        let links = self
            .store
            .links(id, u64::MAX)
            .await
            .map_err(|cause| RecordError::PatientIndex { what: "read", cause })?;
        let held: Vec<(String, String)> =
            links.into_iter().filter_map(|l| l.local_id.map(|local| (l.source_id, local))).collect();
        let sources = self.federation.sources();
        let targets = locate::targets(sources.adapters(), &held, id, nhs);
        let asking = Asking::for_principal(request_id, principal);
        let answers = self.federation.fetch_records(&targets, &asking, self.federation.deadline()).await;
        let mut failures: Vec<(SourceId, &'static str)> = answers
            .iter()
            .filter_map(|a| {
                a.result
                    .as_ref()
                    .err()
                    .map(|e| (a.source.clone(), crate::telemetry::metrics::outcome_code(Some(e))))
            })
            .collect();
        // A source the patient is registered with that is not asked now (suspended, say) is a
        // gap in the export, reported as one.
        failures.extend(
            sources
                .not_asked::<()>()
                .filter(|a| held.iter().any(|(s, _)| s == a.source.as_str()))
                .map(|a| (a.source, "not-asked")),
        );
        let records: Vec<_> = answers
            .iter()
            .filter_map(|a| a.result.as_ref().ok().map(|r| (a.source.clone(), r.clone())))
            .collect();
        let directives = self.directives(id).await?;
        let facts = facts_of(&records);
        let ask = ask.clone().standing_as(Standing::Agreement);
        let decision = self.decide(principal, &ask, &directives, &facts);
        // Presented as every answer presents them: a restricted patient's address and practice
        // never reach de-identification, a deceased patient is marked so.
        let presented = decision.marks();
        let per_source = released(&records, &decision, |r| super::marks::present(presented, r));
        // The Provenance of merged facts is not exported: made and dropped, never remembered (a
        // walk of the whole population would fill the replica's memo with it).
        let recorded = recorded_now();
        let merged = merge_with(
            &per_source,
            id,
            |fact| crate::merge::provenance_for(fact, &recorded),
            crate::merge::with_codes_of,
        );
        let resources = merged.resources.into_iter().filter(|r| r.resource_type != "Provenance").collect();
        Ok(PopulationRecord { resources, sources: records.into_iter().map(|(s, _)| s).collect(), failures })
    }
}
