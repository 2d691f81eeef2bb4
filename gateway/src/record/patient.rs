//! Looking a patient up: by NHS number in every source (the NHS-number search) or by the id
//! the gateway published, each source's Patient decided on as any resource, and the
//! requester's standing with the patient established on the way.

use tideway_adapters::{NormalisedResource, SourcePatient};
use tideway_auth::Principal;
use tideway_policy::{Ask, Directive, PatientMarks, Standing};
use tideway_profiles::{NhsNumber, ResourceFacts};

use super::report::SourceReport;
use super::{Opened, RecordError, RecordService, locate, marks, oversee, today};
use crate::audit::AuditedCall;
use crate::bundle::Notice;
use crate::sources::{Asking, SourceAnswer};

/// What a Patient look-up found.
#[derive(Debug)]
pub struct PatientAnswer {
    /// The representative Patient: the first source in registry order that holds one.
    pub patient: Option<NormalisedResource>,
    /// Sources that could not answer, for the outcome entry.
    pub notices: Vec<Notice>,
    /// The per-source report for the audit trail.
    pub report: SourceReport,
}

impl RecordService {
    /// Finds the patient with this NHS number in every source (the NHS-number search, decided
    /// as a search), publishing the gateway's id for them if any source holds them. A
    /// superseded number finds the patient under the number that replaced it, and says so.
    pub async fn find_by_nhs(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        asked: &NhsNumber,
    ) -> Result<PatientAnswer, RecordError> {
        self.admit(principal)?;
        let (current, superseded) = self.current_number(asked).await?;
        let nhs = &current;
        let gateway_id = self.ids.id_for(nhs);
        call.about_patient(&gateway_id);
        self.monitor_read(call, principal, &gateway_id).await?;
        call.intent(self.source_ids()).await?;
        let glass = self.bind_glass(call, principal, &gateway_id).await?;
        let directives = self.directives(&gateway_id).await?;
        let answer = self
            .find_everywhere(nhs, &gateway_id, &Asking::for_principal(call.request_id(), principal))
            .await?;
        if answer.0.is_none() {
            // Absent, to a requester who must show a relationship, looks as present would.
            if self.must_show_relationship(principal) {
                return Err(RecordError::RelationshipRequired);
            }
            return self.patient_answer(principal, &directives, Ask::everything(), answer);
        }
        self.remember(nhs, &gateway_id, &answer.1).await?;
        let (ask, notices) =
            self.stand(call, principal, glass.as_ref(), nhs, &gateway_id, &directives).await?;
        let standing = ask.standing();
        let patients = patients_of(&answer);
        let mut found = self.patient_answer(principal, &directives, ask.by_search(), answer)?;
        if found.patient.is_some() {
            let seen = oversee::Seen::Patients(patients);
            self.note_access(call, principal, (&gateway_id, nhs), standing, seen).await?;
        }
        found.notices.extend(notices);
        if superseded && found.patient.is_some() {
            found.notices.push(Notice::Superseded);
        }
        Ok(found)
    }

    /// The question for a Patient look-up, with the requester's standing: granted by an
    /// agreement without fetching, or shown from the patient's record (fetched through the
    /// cache, so the `$everything` that usually follows costs nothing more).
    pub(super) async fn stand(
        &self,
        call: &AuditedCall,
        principal: &Principal,
        glass: Option<&crate::store::BreakGlass>,
        nhs: &NhsNumber,
        id: &str,
        directives: &[Directive],
    ) -> Result<(Ask, Vec<Notice>), RecordError> {
        let mut notices = Vec::new();
        if !principal.breaks_glass() && self.policy.current().grants_relationship(principal, today()) {
            return Ok((Ask::everything().standing_as(Standing::Agreement), notices));
        }
        let fetched = self.fetch(nhs, id, call.request_id(), principal).await?;
        let standing = self.establish(principal, glass, directives, &fetched.facts(), &mut notices)?;
        Ok((Ask::everything().standing_as(standing), notices))
    }

    /// Reads the patient behind a published id from every source.
    pub async fn read_patient(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        id: &str,
    ) -> Result<PatientAnswer, RecordError> {
        let Opened { nhs, glass } = self.open(call, principal, id).await?;
        let directives = self.directives(id).await?;
        let answer =
            self.find_everywhere(&nhs, id, &Asking::for_principal(call.request_id(), principal)).await?;
        if answer.0.is_none() {
            return Err(self.absent(principal));
        }
        if let Err(e) = self.remember(&nhs, id, &answer.1).await {
            tracing::error!(error = %e, "patient index could not be written");
        }
        let (ask, notices) = self.stand(call, principal, glass.as_ref(), &nhs, id, &directives).await?;
        let standing = ask.standing();
        let patients = patients_of(&answer);
        let mut found = self.patient_answer(principal, &directives, ask, answer)?;
        if found.patient.is_none() {
            // Withheld reads as absent, as the search does.
            return Err(self.absent(principal));
        }
        self.note_access(call, principal, (id, &nhs), standing, oversee::Seen::Patients(patients)).await?;
        found.notices.extend(notices);
        Ok(found)
    }

    /// The answer for a patient no source holds: to a requester who must show a relationship,
    /// the same refusal as for a present patient.
    pub(super) fn absent(&self, principal: &Principal) -> RecordError {
        if self.must_show_relationship(principal) {
            RecordError::RelationshipRequired
        } else {
            RecordError::NotHeld
        }
    }

    pub(super) async fn find_everywhere(
        &self,
        nhs: &NhsNumber,
        gateway_id: &str,
        asking: &Asking,
    ) -> Result<FoundPatient, RecordError> {
        let answers = self.federation.find_patient(nhs, gateway_id, asking, self.federation.deadline()).await;
        let errors: Vec<_> = answers.iter().filter_map(|a| a.result.as_ref().err()).collect();
        let answered = answers.len() - errors.len();
        if let Some(e) = locate::all_failed(&errors, answered) {
            return Err(e);
        }
        let patient = answers
            .iter()
            .find_map(|a| a.result.as_ref().ok().and_then(|p| p.as_ref()).map(|p| p.resource.clone()));
        Ok((patient, answers))
    }

    /// The Patient goes through the same decision as any other resource.
    pub(super) fn patient_answer(
        &self,
        principal: &Principal,
        directives: &[Directive],
        ask: Ask,
        (mut patient, answers): FoundPatient,
    ) -> Result<PatientAnswer, RecordError> {
        let mut report = SourceReport::of_patients(&answers);
        if let Some(standing) = ask.standing() {
            report.standing(standing);
        }
        let mut notices: Vec<Notice> = answers.iter().filter_map(Notice::of_failure).collect();
        if let Some(p) = &patient {
            let facts = [p.facts.as_ref()];
            let decision = self.decide(principal, &ask, directives, &facts);
            report.withheld(&decision, &facts);
            if decision.releases(0) {
                // Marked as any source marks the patient, not only the representative's.
                let all: Vec<&ResourceFacts> = answers
                    .iter()
                    .filter_map(|a| a.result.as_ref().ok().and_then(|s| s.as_ref()))
                    .map(|s| s.resource.facts.as_ref())
                    .chain(facts)
                    .collect();
                let presented = PatientMarks::of(&all);
                notices.extend(marks::notices(&presented));
                patient = Some(marks::present(&presented, p));
            } else {
                // A patient withheld from this requester is not found, as an unknown one is not,
                // so a search does not tell a dissent from an absence.
                patient = None;
            }
        }
        notices.push(Notice::MayBeWithheld);
        Ok(PatientAnswer { patient, notices, report })
    }
}

pub(super) type FoundPatient = (Option<NormalisedResource>, Vec<SourceAnswer<Option<SourcePatient>>>);

/// Every source's Patient in a look-up's answers.
pub(super) fn patients_of((_, answers): &FoundPatient) -> Vec<NormalisedResource> {
    answers
        .iter()
        .filter_map(|a| a.result.as_ref().ok().and_then(Option::as_ref))
        .map(|p| p.resource.clone())
        .collect()
}
