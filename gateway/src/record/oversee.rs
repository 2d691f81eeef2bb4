//! Where the read pipeline meets oversight: first-access notifications and misuse monitoring.
//!
//! A read that releases a patient's record to an organisation that never read it before stores
//! the organisation's access and a notification to each of the patient's registered practices
//! (as the record's Patient resources name them) in one transaction, before the answer's audit
//! outcome and before anything leaves; if that cannot be stored, nothing is released (503). If
//! the process dies after the store and before the answer, the practice is told of an access
//! that released nothing, never the other way round. The patient's own practice reading is
//! recorded without a notification; the patient's own app (`PATRQT`) is no organisation gaining
//! access and is not recorded.
//!
//! Every patient read is counted for misuse monitoring once the requester is admitted and
//! before anything is looked up, so a flagged user under `[alerts] rate_limit` learns nothing
//! (429, audited like any refusal).

use serde_json::Value;
use tideway_adapters::NormalisedResource;
use tideway_auth::{Principal, PurposeOfUse};
use tideway_policy::{Standing, registered_practices};
use tideway_profiles::{NhsNumber, ResourceFacts};

use super::{RecordError, RecordService};
use crate::audit::AuditedCall;
use crate::oversight::{Actor, notification_communication};
use crate::sources::Asking;
use crate::store::FirstAccess;

/// What a read has at hand to tell the patient's registered practice from.
pub(super) enum Seen<'a> {
    /// The whole record decided on (its Organizations resolve the Patient's references).
    Record(&'a [&'a ResourceFacts]),
    /// The Patient resources the sources answered (references are read from the sources).
    Patients(Vec<NormalisedResource>),
    /// Nothing: the record is fetched, through the cache (a page link).
    Nothing,
}

impl RecordService {
    /// Notes that `principal`'s organisation is being given the record of `patient_id`: on its
    /// first access, stores it with the notifications before returning. The practice is worked
    /// out from `seen` on a first access only.
    pub(super) async fn note_access(
        &self,
        call: &AuditedCall,
        principal: &Principal,
        (patient_id, nhs): (&str, &NhsNumber),
        standing: Option<Standing>,
        seen: Seen<'_>,
    ) -> Result<(), RecordError> {
        // The patient's own app reading their own record is no organisation's first access;
        // PATRQT for anyone else's record is overseen as any read.
        if principal.purpose == PurposeOfUse::PatientRequest && principal.user_id == nhs.as_str() {
            return Ok(());
        }
        let organisation = principal.organisation.as_str();
        let oversight = &self.oversight;
        if oversight.knows_accessed(patient_id, organisation) {
            return Ok(());
        }
        if oversight.access.has_accessed(patient_id, organisation).await.map_err(RecordError::Oversight)? {
            oversight.remember_accessed(patient_id, organisation);
            return Ok(());
        }
        let practices = match seen {
            Seen::Record(facts) => registered_practices(facts),
            Seen::Patients(patients) => {
                let patients: Vec<&NormalisedResource> = patients.iter().collect();
                self.practices_named(&patients, &Asking::for_principal(call.request_id(), principal)).await
            }
            // Sources that cannot answer now leave the practice unknown: the privacy officer is
            // told instead, and the read goes on.
            Seen::Nothing => match self.fetch(nhs, patient_id, call.request_id(), principal).await {
                Ok(fetched) => registered_practices(&fetched.facts()),
                Err(_) => Vec::new(),
            },
        };
        let recipients = if practices.iter().any(|p| p == organisation) {
            Vec::new()
        } else if practices.is_empty() {
            vec![None]
        } else {
            practices.into_iter().map(Some).collect()
        };
        let actor = Actor::of(principal, call.request_id());
        let access = FirstAccess {
            patient_id: patient_id.to_owned(),
            organisation: organisation.to_owned(),
            user: actor.user,
            role: actor.role,
            standing: standing.map_or("unknown", Standing::code).to_owned(),
            at_us: crate::epoch_us::of(call.recorded_at()),
            request_id: actor.request_id,
            recipients,
        };
        let first = oversight.access.record_first_access(&access).await.map_err(RecordError::Oversight)?;
        if first && !access.recipients.is_empty() {
            oversight.notification_stored();
        }
        oversight.remember_accessed(patient_id, organisation);
        Ok(())
    }

    /// Counts `principal`'s read of `patient_id` for misuse monitoring; refused when the user
    /// is flagged and rate limiting is on.
    pub(super) async fn monitor_read(
        &self,
        call: &AuditedCall,
        principal: &Principal,
        patient_id: &str,
    ) -> Result<(), RecordError> {
        self.monitor(call, principal, Watched::Read(patient_id)).await
    }

    /// Judges a break-glass session `principal` has just opened for `patient_id`.
    pub(super) async fn monitor_break_glass(
        &self,
        call: &AuditedCall,
        principal: &Principal,
        patient_id: &str,
    ) -> Result<(), RecordError> {
        self.monitor(call, principal, Watched::BreakGlass(patient_id)).await
    }

    /// The hook for patient matching (`Patient/$match`): call once per search, after the
    /// requester is admitted and before any source is asked. It counts the search towards
    /// `[alerts] match_searches` (a `match-trawl` alert past it) and answers
    /// [`RecordError::MisuseLimited`] (429) when the user is flagged and rate limiting is on.
    /// Each patient a match then releases should go through the pipeline's reads, which count
    /// towards `sweep_patients` and notify first accesses.
    pub async fn note_match(&self, call: &AuditedCall, principal: &Principal) -> Result<(), RecordError> {
        self.monitor(call, principal, Watched::Match).await
    }

    async fn monitor(
        &self,
        call: &AuditedCall,
        principal: &Principal,
        what: Watched<'_>,
    ) -> Result<(), RecordError> {
        let actor = Actor::of(principal, call.request_id());
        let now = crate::epoch_us::now();
        let o = &self.oversight;
        let wait = match what {
            Watched::Read(patient) => o.patient_read(&actor, patient, now).await,
            Watched::BreakGlass(patient) => o.break_glass_opened(&actor, patient, now).await,
            Watched::Match => o.matched(&actor, now).await,
        };
        match wait.map_err(RecordError::Oversight)? {
            Some(retry_after_secs) => Err(RecordError::MisuseLimited { retry_after_secs }),
            None => Ok(()),
        }
    }

    /// First-access notifications raised at or after `since_us` (for one patient if given), at
    /// most `limit`, as `Communication`s: those addressed to the requester's organisation, or
    /// all of them for a privacy officer.
    pub async fn access_notifications(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        patient_id: Option<&str>,
        since_us: i64,
        limit: i64,
    ) -> Result<Vec<Value>, RecordError> {
        let practice = (!self.is_privacy_officer(principal)).then(|| principal.organisation.as_str());
        if let Some(p) = patient_id {
            call.about_patient(p);
        }
        call.intent("[]".into()).await?;
        let found = self
            .oversight
            .access
            .notifications(practice, patient_id, since_us, limit)
            .await
            .map_err(RecordError::Oversight)?;
        Ok(found.iter().map(notification_communication).collect())
    }
}

/// What misuse monitoring is told of.
enum Watched<'a> {
    /// A read of this patient.
    Read(&'a str),
    /// A break-glass session just opened for this patient.
    BreakGlass(&'a str),
    /// A patient-matching search.
    Match,
}
