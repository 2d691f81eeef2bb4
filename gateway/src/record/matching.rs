//! `Patient/$match` (IHE PDQm ITI-119): candidates found across the sources, each decided as
//! any Patient search is, scored against what was asked.
//!
//! With an NHS number every source is asked for it ([`tideway_adapters::SourceAdapter::find`]).
//! Without one, the candidates are the patients the gateway's own demographic index has seen
//! with the birth date asked (kept as a keyed hash, [`crate::identity::PatientIds::match_key`]),
//! then those the sources that can search by demographics find by birth date, family name and
//! gender ([`tideway_adapters::SourceAdapter::search`]: FHIR R4 and social care; the GP
//! systems' dialects cannot, and are named in a notice); every source is then asked by each
//! candidate's NHS number, and each candidate scored and decided on as any Patient search. At
//! most 20 candidates are considered: a `$match` is never a sweep.

use serde_json::Value;
use tideway_adapters::{DemographicQuery, NormalisedResource};
use tideway_auth::Principal;
use tideway_policy::PatientMarks;
use tideway_profiles::{NhsNumber, ResourceFacts};

use super::demographics::{Demographics, Grade, MatchQuery, conflicts, score};
use super::{RecordError, RecordService};
use crate::audit::AuditedCall;
use crate::bundle::Notice;
use crate::sources::Asking;

/// The most patients one demographic look-up considers: a `$match` is never a sweep.
const MAX_CANDIDATES: i64 = 20;

/// One candidate, as this requester may see them.
#[derive(Debug)]
pub struct Candidate {
    /// The Patient, presented (restricted details withheld, deceased marked).
    pub patient: NormalisedResource,
    /// The score, 0 to 1.
    pub score: f64,
    /// The match grade.
    pub grade: Grade,
}

/// What a `$match` found.
#[derive(Debug)]
pub struct MatchAnswer {
    /// Candidates, best first.
    pub candidates: Vec<Candidate>,
    /// What the requester should know: sources that failed, conflicting demographics, marks.
    pub notices: Vec<Notice>,
    /// Audit detail: candidates by opaque id and grade, and whether a source failed.
    pub detail: Value,
    /// Some source could not answer.
    pub partial: bool,
}

impl RecordService {
    /// Finds the patients `query` describes, across the sources, as `principal` may see them.
    pub async fn match_patients(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        query: &MatchQuery,
    ) -> Result<MatchAnswer, RecordError> {
        self.admit(principal)?;
        if principal.breaks_glass() {
            return Err(RecordError::MatchBreakGlass);
        }
        let (mut numbers, superseded) = self.match_numbers(query).await?;
        if let [only] = numbers.as_slice() {
            call.about_patient(&self.ids.id_for(only));
        }
        // Durable before any source is asked, by number or by demographics.
        call.intent(self.source_ids()).await?;
        // Repeated $match trawling is misuse monitoring's to see (and, when configured, stop).
        self.note_match(call, principal).await?;
        let mut candidates = Vec::new();
        let mut notices = Vec::new();
        let mut partial = false;
        if superseded {
            notices.push(Notice::Superseded);
        }
        let mut audited = Vec::new();
        let asking = Asking::for_principal(call.request_id(), principal);
        if query.nhs.is_none() {
            let searched = self.search_sources(query, &asking, &mut numbers).await;
            partial |= searched.iter().any(|n| matches!(n, Notice::SourceFailed { .. }));
            notices.extend(searched);
        }
        for nhs in &numbers {
            let id = self.ids.id_for(nhs);
            let found = self.find_everywhere(nhs, &id, &asking).await?;
            if found.0.is_none() {
                continue;
            }
            self.remember(nhs, &id, &found.1).await?;
            let directives = self.directives(&id).await?;
            // A patient the requester has no standing with is not found, as by the NHS-number
            // search.
            let (ask, _) = match self.stand(call, principal, None, nhs, &id, &directives).await {
                Ok(stood) => stood,
                Err(RecordError::RelationshipRequired) => continue,
                Err(e) => return Err(e),
            };
            let held: Vec<&NormalisedResource> = found
                .1
                .iter()
                .filter_map(|a| a.result.as_ref().ok().and_then(|p| p.as_ref()))
                .map(|p| &p.resource)
                .collect();
            let facts: Vec<&ResourceFacts> = held.iter().map(|p| p.facts.as_ref()).collect();
            let restricted = PatientMarks::of(&facts).restricted;
            let seen: Vec<Demographics> = held.iter().filter_map(|p| demographics(p)).collect();
            let (points, grade) = score(query, &seen, restricted);
            let patients: Vec<NormalisedResource> = held.iter().map(|p| (*p).clone()).collect();
            let standing = ask.standing();
            let answer = self.patient_answer(principal, &directives, ask.by_search(), found)?;
            partial |= answer.report.is_partial();
            notices.extend(answer.notices.into_iter().filter(|n| *n != Notice::MayBeWithheld));
            let Some(patient) = answer.patient else { continue };
            if grade == Grade::CertainlyNot || (query.only_certain && grade != Grade::Certain) {
                continue;
            }
            let disagree = conflicts(&seen);
            if !disagree.is_empty() {
                notices.push(Notice::ConflictingDemographics { patient_id: id.clone(), fields: disagree });
            }
            audited.push(serde_json::json!({"patient": id, "grade": grade.code()}));
            candidates.push((
                Candidate { patient, score: points, grade },
                id,
                nhs.clone(),
                standing,
                patients,
            ));
        }
        // Best first: by grade, then score; the registry order of discovery breaks ties.
        candidates.sort_by(|(a, ..), (b, ..)| a.grade.cmp(&b.grade).then(b.score.total_cmp(&a.score)));
        candidates.truncate(query.count);
        // What is released is overseen as any read: an organisation's first access to each
        // candidate's record is stored, with its notifications, before the answer leaves.
        let mut released = Vec::with_capacity(candidates.len());
        for (candidate, id, nhs, standing, patients) in candidates {
            self.note_access(
                call,
                principal,
                (&id, &nhs),
                standing,
                super::oversee::Seen::Patients(patients),
            )
            .await?;
            call.discloses(&id);
            released.push(candidate);
        }
        let candidates = released;
        let mut unique = Vec::new();
        for n in notices {
            if !unique.contains(&n) {
                unique.push(n);
            }
        }
        unique.push(Notice::MayBeWithheld);
        let detail = serde_json::json!({
            "considered": numbers.len(),
            "candidates": audited,
            "returned": candidates.len(),
            "only_certain": query.only_certain,
        });
        Ok(MatchAnswer { candidates, notices: unique, detail, partial })
    }

    /// The NHS numbers to ask the sources about: the one given (or the one that superseded
    /// it, and whether it did), or the patients the demographic index has seen with the birth
    /// date asked.
    async fn match_numbers(&self, query: &MatchQuery) -> Result<(Vec<NhsNumber>, bool), RecordError> {
        if let Some(nhs) = &query.nhs {
            let (current, superseded) = self.current_number(nhs).await?;
            return Ok((vec![current], superseded));
        }
        let Some(birth) = &query.birth_date else { return Ok((Vec::new(), false)) };
        let ids = self
            .store
            .match_candidates(&self.ids.match_key(birth), MAX_CANDIDATES)
            .await
            .map_err(|cause| RecordError::PatientIndex { what: "read", cause })?;
        let mut out = Vec::new();
        for id in ids {
            match self.resolve(&id).await {
                Ok(nhs) => out.push(nhs),
                Err(RecordError::UnknownPatient) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((out, false))
    }

    /// Asks every source that can search its patients by demographics for those `query`
    /// describes, adding the NHS numbers found to `numbers` (the gateway's own candidates come
    /// first; never more than [`MAX_CANDIDATES`] in all). What could not be searched is said in
    /// the notices returned.
    async fn search_sources(
        &self,
        query: &MatchQuery,
        asking: &Asking,
        numbers: &mut Vec<NhsNumber>,
    ) -> Vec<Notice> {
        let (Some(birth_date), Some(family)) = (&query.birth_date, &query.family) else { return Vec::new() };
        let wanted = usize::try_from(MAX_CANDIDATES).unwrap_or(usize::MAX);
        let search = DemographicQuery {
            birth_date: birth_date.clone(),
            family: family.clone(),
            gender: query.gender.clone(),
            limit: wanted,
        };
        let answers = self.federation.search_patients(&search, asking, self.federation.deadline()).await;
        let mut notices: Vec<Notice> = answers.iter().filter_map(Notice::of_failure).collect();
        let not_searchable: Vec<_> =
            answers.iter().filter(|a| matches!(a.result, Ok(None))).map(|a| a.source.clone()).collect();
        if !not_searchable.is_empty() {
            notices.push(Notice::NotSearchable { sources: not_searchable });
        }
        for found in answers.into_iter().filter_map(|a| a.result.ok().flatten()) {
            for nhs in found {
                if numbers.len() >= wanted {
                    break;
                }
                if !numbers.contains(&nhs) {
                    numbers.push(nhs);
                }
            }
        }
        notices
    }

    /// Adds the patient's birth dates, as keys, to the demographic index.
    pub(super) async fn remember_demographics(
        &self,
        gateway_id: &str,
        patients: &[&NormalisedResource],
    ) -> Result<(), RecordError> {
        let mut keys: Vec<String> = patients
            .iter()
            .filter_map(|p| demographics(p)?.birth_date)
            .map(|d| self.ids.match_key(&d))
            .collect();
        keys.sort();
        keys.dedup();
        self.store
            .remember_match_keys(gateway_id, &keys)
            .await
            .map_err(|cause| RecordError::PatientIndex { what: "written", cause })
    }
}

/// What a source's Patient says, read from its stored JSON.
fn demographics(patient: &NormalisedResource) -> Option<Demographics> {
    let value: Value = serde_json::from_slice(&patient.json).ok()?;
    Some(Demographics::of(&value))
}
