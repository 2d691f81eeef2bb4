//! Recording and reading patients' consent directives (FHIR `Consent`, every version kept).
//!
//! Only the patient's registered practice (the organisation the patient's record names as
//! `generalPractitioner`, by its ODS identifier) or the patient's own app (purpose of use
//! `PATRQT`, with the patient's NHS number as the user, as NHS login asserts it) may record or
//! read a patient's consents; a privacy officer (`HOPERAT`) may read
//! them. A recorded version is never changed: `PUT` adds the next version (withdrawal is a
//! version with `status = inactive`), and the decision reads the current versions on every
//! request, so a change holds from the very next one, for cached answers and page links too.

use serde_json::{Value, json};
use tideway_auth::{Principal, PurposeOfUse};
use tideway_policy::read_consent;
use tideway_profiles::systems;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{RecordError, RecordService};
use crate::audit::AuditedCall;
use crate::sources::Asking;
use crate::store::ConsentVersion;

/// Reading or writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

impl RecordService {
    /// Records a new consent (`id` `None`) or the next version of consent `id`, returning the
    /// stored resource.
    pub async fn record_consent(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        mut body: Value,
        id: Option<&str>,
    ) -> Result<Value, RecordError> {
        let summary = read_consent(&body).map_err(RecordError::BadConsent)?;
        let earlier = match id {
            Some(id) => {
                if body.get("id").and_then(Value::as_str).is_some_and(|given| given != id) {
                    return Err(RecordError::BadConsent(tideway_policy::ConsentError {
                        element: "Consent.id".into(),
                        message: "must match the id in the URL".into(),
                    }));
                }
                let versions = self.consents.consent_versions(id).await.map_err(RecordError::Consent)?;
                let last = versions.last().cloned().ok_or(RecordError::NoSuchResource)?;
                if last.patient_id != summary.patient_id {
                    return Err(RecordError::BadConsent(tideway_policy::ConsentError {
                        element: "Consent.patient".into(),
                        message: "a consent cannot be moved to another patient".into(),
                    }));
                }
                Some(last)
            }
            None => None,
        };
        self.authorise(call, principal, &summary.patient_id, Access::Write).await?;
        let consent_id = id.map_or_else(|| format!("c{}", uuid::Uuid::new_v4().simple()), str::to_owned);
        let version = earlier.map_or(1, |e| e.version + 1);
        let now = OffsetDateTime::now_utc();
        if let Some(obj) = body.as_object_mut() {
            obj.insert("id".into(), json!(consent_id));
            obj.insert(
                "meta".into(),
                json!({"versionId": version.to_string(), "lastUpdated": now.format(&Rfc3339).unwrap_or_default()}),
            );
        }
        let stored = ConsentVersion {
            consent_id,
            version,
            patient_id: summary.patient_id,
            status: summary.status,
            recorded_at_us: crate::epoch_us::of(now),
            recorded_by: format!(
                "{}/{}@{}",
                principal.client_id,
                principal.user_id,
                principal.organisation.as_str()
            ),
            body: body.to_string(),
        };
        // Another writer may have added the same version meanwhile: nothing is overwritten.
        self.consents.add_consent_version(&stored).await.map_err(|_| RecordError::ConsentConflict)?;
        // Before the write is acknowledged, so the next request reads the change.
        self.memo.consents_changed();
        Ok(body)
    }

    /// Every version of consent `id`, oldest first, or only the current one.
    pub async fn consent_versions(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        id: &str,
        history: bool,
    ) -> Result<Vec<Value>, RecordError> {
        let versions = self.consents.consent_versions(id).await.map_err(RecordError::Consent)?;
        let patient = versions.last().map(|v| v.patient_id.clone()).ok_or(RecordError::NoSuchResource)?;
        self.authorise(call, principal, &patient, Access::Read).await?;
        let keep = if history { versions.len() } else { 1 };
        versions.iter().rev().take(keep).rev().map(stored_body).collect()
    }

    /// The current version of every consent about patient `patient_id`.
    pub async fn consents_of(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        patient_id: &str,
    ) -> Result<Vec<Value>, RecordError> {
        self.authorise(call, principal, patient_id, Access::Read).await?;
        let current = self.consents.current_consents(patient_id).await.map_err(RecordError::Consent)?;
        current.iter().map(stored_body).collect()
    }

    /// Whether `principal` may read or write the consents of `patient_id`: the patient's own
    /// app, a privacy officer (read), or the patient's registered practice as the sources'
    /// Patient record names it. Writes the audit intent before any source is asked.
    async fn authorise(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        patient_id: &str,
        access: Access,
    ) -> Result<(), RecordError> {
        let nhs = self.resolve(patient_id).await?;
        call.about_patient(patient_id);
        call.intent(self.source_ids()).await?;
        match principal.purpose {
            // The patient's own app acts for the patient it authenticated (NHS login carries
            // the NHS number as the user): for anyone else's record it may do nothing.
            PurposeOfUse::PatientRequest if principal.user_id == nhs.as_str() => return Ok(()),
            PurposeOfUse::PatientRequest => return Err(RecordError::ConsentForbidden),
            PurposeOfUse::Operations if access == Access::Read && self.is_privacy_officer(principal) => {
                return Ok(());
            }
            _ => {}
        }
        let asking = Asking::for_principal(call.request_id(), principal);
        let (patient, _) = self.find_everywhere(&nhs, patient_id, &asking).await?;
        let patient = patient.ok_or(RecordError::NotHeld)?;
        let own = principal.organisation.as_str();
        if self.practices_named(&[&patient], &asking).await.iter().any(|p| p.eq_ignore_ascii_case(own)) {
            return Ok(());
        }
        Err(RecordError::ConsentForbidden)
    }

    /// The ODS codes of the registered practices these Patient resources name
    /// (`generalPractitioner`, by ODS identifier, or by reference to an Organization read from
    /// its source), sorted and without repeats.
    pub(super) async fn practices_named(
        &self,
        patients: &[&tideway_adapters::NormalisedResource],
        asking: &Asking,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for patient in patients.iter().filter(|p| p.resource_type == "Patient") {
            out.extend(
                patient.facts.care_providers.iter().filter_map(|c| c.strip_prefix("ods:")).map(str::to_owned),
            );
            let Ok(value) = serde_json::from_slice::<Value>(&patient.json) else { continue };
            for reference in value["generalPractitioner"].as_array().into_iter().flatten() {
                let Some((source, local)) = reference["reference"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("Organization/"))
                    .and_then(|id| id.split_once('.'))
                else {
                    continue;
                };
                let Some(adapter) = self.federation.sources().adapter(source).cloned() else { continue };
                let answer = self.federation.read_shared(&adapter, "Organization", local, asking).await;
                if let Ok(Some(org)) = answer.result {
                    out.extend(ods_code_of(&org.json));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// An Organization's ODS code (its identifier in the ODS system).
fn ods_code_of(organization: &[u8]) -> Option<String> {
    let v = serde_json::from_slice::<Value>(organization).ok()?;
    v["identifier"].as_array().into_iter().flatten().find_map(|i| {
        (i["system"].as_str() == Some(systems::ODS_ORGANIZATION_CODE))
            .then(|| i["value"].as_str().map(str::to_owned))
            .flatten()
    })
}

/// A stored version's JSON; a row that does not parse is a store fault (nothing is released).
pub(super) fn stored_body(v: &ConsentVersion) -> Result<Value, RecordError> {
    serde_json::from_str(&v.body).map_err(|_| {
        RecordError::Consent(crate::store::StoreError::other("read consent", "a stored consent is not JSON"))
    })
}
