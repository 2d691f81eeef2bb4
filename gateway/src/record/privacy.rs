//! What the privacy officer reads: the alerts raised for them (break-glass and misuse), as FHIR
//! `Communication`s, newest last, and who accessed a patient's record, as the audit trail's
//! `AuditEvent`s, newest first. Only an organisation configured as a privacy office
//! (`[policy] privacy_officers`) with purpose of use `HOPERAT` may; every read is audited.

use serde_json::{Value, json};
use tideway_auth::Principal;

use super::{RecordError, RecordService};
use crate::audit::{AuditTrail, AuditedCall, PatientWindow, balp};
use crate::store::PrivacyAlert;

/// The code system of alert kinds.
pub const ALERT_KIND_SYSTEM: &str = "https://fhir.tideway.london/CodeSystem/privacy-alert";

impl RecordService {
    /// Alerts raised at or after `since_us` (for one patient if given), at most `limit`.
    pub async fn privacy_alerts(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        patient_id: Option<&str>,
        since_us: i64,
        limit: i64,
    ) -> Result<Vec<Value>, RecordError> {
        if !self.is_privacy_officer(principal) {
            return Err(RecordError::NotPrivacyOfficer);
        }
        if let Some(p) = patient_id {
            call.about_patient(p);
        }
        call.intent("[]".into()).await?;
        let alerts = self.alerts.alerts(patient_id, since_us, limit).await.map_err(RecordError::Alerts)?;
        Ok(alerts.iter().map(communication).collect())
    }
}

impl RecordService {
    /// Who accessed the patient's record: the outcome records of requests about them, as
    /// BALP-style `AuditEvent`s, newest first. For a privacy officer, or for the patient's
    /// own app (purpose of use `PATRQT` with the patient's NHS number as the user, as NHS login
    /// asserts it) about that patient only.
    pub async fn access_history(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        trail: &AuditTrail,
        query: &PatientWindow,
    ) -> Result<Vec<Value>, RecordError> {
        call.about_patient(&query.patient_id);
        if !self.is_privacy_officer(principal) && !self.is_the_patient(principal, &query.patient_id).await? {
            return Err(RecordError::NotPrivacyOfficer);
        }
        call.intent("[]".into()).await?;
        let rows = trail.for_patient(query).await?;
        Ok(rows.iter().map(balp::audit_event).collect())
    }

    /// Whether `principal` is the patient's own app acting for the patient `patient_id` names.
    async fn is_the_patient(&self, principal: &Principal, patient_id: &str) -> Result<bool, RecordError> {
        if principal.purpose != tideway_auth::PurposeOfUse::PatientRequest {
            return Ok(false);
        }
        match self.resolve(patient_id).await {
            Ok(nhs) => Ok(principal.user_id == nhs.as_str()),
            Err(RecordError::UnknownPatient | RecordError::NotHeld) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One record of the audit trail by its sequence number, as an `AuditEvent`.
    pub async fn audit_event(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        trail: &AuditTrail,
        seq: i64,
    ) -> Result<Option<Value>, RecordError> {
        if !self.is_privacy_officer(principal) {
            return Err(RecordError::NotPrivacyOfficer);
        }
        call.intent("[]".into()).await?;
        let row = trail.record(seq).await?;
        if let Some(patient) = row.as_ref().and_then(|r| r.stored.patient_id.as_deref()) {
            call.about_patient(patient);
        }
        Ok(row.as_ref().map(balp::audit_event))
    }
}

/// One alert as a FHIR R4 `Communication` to the privacy officer. A misuse alert's reason is
/// the gateway's own description of what was counted; break-glass gives the user's reason.
fn communication(a: &PrivacyAlert) -> Value {
    let sent = crate::epoch_us::rfc3339_seconds(a.raised_at_us);
    let who = format!("{} (national RBAC role {}) at organisation {}", a.user, a.role, a.organisation);
    let (display, text) = match a.kind.as_str() {
        "break-glass" => {
            ("Break-glass access", format!("{who} broke the glass, giving the reason: {}", a.reason))
        }
        "patient-sweep" => ("Many patients read", format!("{who} {}", a.reason)),
        "match-trawl" => ("Many patient-matching searches", format!("{who} {}", a.reason)),
        "break-glass-pattern" => ("Break-glass more often than plausible", format!("{who} {}", a.reason)),
        _ => ("Alert", format!("{who}: {}", a.reason)),
    };
    let mut c = json!({
        "resourceType": "Communication",
        "id": a.alert_id,
        "status": "completed",
        "category": [{"coding": [{"system": ALERT_KIND_SYSTEM, "code": a.kind, "display": display}]}],
        "priority": "urgent",
        "sent": sent,
        "recipient": [{"display": "Privacy officer"}],
        "payload": [{"contentString": format!("{text} (request {})", a.request_id)}]
    });
    // A match-trawl alert is about no one patient.
    if !a.patient_id.is_empty() {
        c["subject"] = json!({"reference": format!("Patient/{}", a.patient_id)});
    }
    c
}

/// Who the policy simulator asks about: a role at an organisation, for a purpose.
#[derive(Debug, Clone)]
pub struct Hypothesis {
    /// National RBAC role.
    pub role: tideway_auth::RoleCode,
    /// ODS code of the organisation.
    pub organisation: tideway_profiles::OdsCode,
    /// Purpose of use (`ETREAT` simulates breaking the glass, without opening a session).
    pub purpose: tideway_auth::PurposeOfUse,
}

impl Hypothesis {
    /// The requester it describes, with every read scope (the simulator asks what the
    /// agreements and consent allow, not what one client's scopes do).
    fn principal(&self) -> Principal {
        Principal {
            client_id: "policy-simulator".into(),
            user_id: "simulated".into(),
            role: self.role.clone(),
            organisation: self.organisation.clone(),
            purpose: self.purpose,
            scopes: vec!["system/*.read".into()],
            token_id: "simulated".into(),
            break_glass_reason: (self.purpose == tideway_auth::PurposeOfUse::EmergencyTreat)
                .then(|| "simulated".to_owned()),
        }
    }
}

impl RecordService {
    /// What `who` would receive of the record of the patient with NHS number `nhs`, and why the
    /// rest would be withheld, as a FHIR `Parameters` of counts: by section and source for what
    /// would be released; by reason, agreement, section and source for what would not. Nothing
    /// of the record itself is in the answer. Asked by a privacy officer, audited as theirs.
    pub async fn simulate(
        &self,
        call: &mut AuditedCall,
        officer: &Principal,
        nhs: &tideway_profiles::NhsNumber,
        who: &Hypothesis,
    ) -> Result<Value, RecordError> {
        if !self.is_privacy_officer(officer) {
            return Err(RecordError::NotPrivacyOfficer);
        }
        let hypothetical = who.principal();
        let today = super::today();
        let policy = self.policy.current();
        let mut out = Vec::new();
        if policy.admit(&hypothetical, today).is_err() {
            out.push(json!({"name": "admitted", "valueBoolean": false}));
            out.push(json!({"name": "refusal", "valueString": "no sharing agreement in force grants this role and purpose of use at this organisation"}));
            call.intent("[]".into()).await?;
            return Ok(parameters(out));
        }
        out.push(json!({"name": "admitted", "valueBoolean": true}));
        let id = self.ids.id_for(nhs);
        call.about_patient(&id);
        call.intent(self.source_ids()).await?;
        let directives = self.directives(&id).await?;
        let fetched = match self.fetch(nhs, &id, call.request_id(), officer).await {
            Ok(f) => f,
            // Absent (to a requester who must show a relationship, absence reads as a refusal).
            Err(RecordError::NotHeld | RecordError::RelationshipRequired) => {
                out.push(json!({"name": "found", "valueBoolean": false}));
                return Ok(parameters(out));
            }
            Err(e) => return Err(e),
        };
        out.push(json!({"name": "found", "valueBoolean": true}));
        let facts = fetched.facts();
        let Some(standing) = policy.standing(&hypothetical, today, &directives, &facts) else {
            out.push(
                json!({"name": "refusal", "valueString": "relationship required; break-glass available"}),
            );
            return Ok(parameters(out));
        };
        out.push(json!({"name": "standing", "valueCode": standing.code()}));
        let ask = tideway_policy::Ask::everything().standing_as(standing);
        let decision = policy.decide(&hypothetical, &ask, today, &directives, &facts);
        for label in decision.agreements() {
            out.push(json!({"name": "agreement", "valueString": label}));
        }
        let mut released: std::collections::BTreeMap<(String, String), usize> = Default::default();
        for f in decision.released(&facts) {
            *released.entry((section_code(f.section), f.source.clone().unwrap_or_default())).or_default() +=
                1;
        }
        for ((section, source), count) in released {
            out.push(json!({"name": "released", "part": [
                {"name": "section", "valueCode": section},
                {"name": "source", "valueString": source},
                {"name": "count", "valueInteger": count}
            ]}));
        }
        for w in decision.withheld_detail(&facts) {
            let mut part = vec![json!({"name": "reason", "valueCode": w.reason})];
            if let Some(a) = &w.agreement {
                part.push(json!({"name": "agreement", "valueString": a}));
            }
            part.push(json!({"name": "section", "valueCode": section_code(Some(w.section))}));
            if let Some(s) = &w.source {
                part.push(json!({"name": "source", "valueString": s}));
            }
            part.push(json!({"name": "count", "valueInteger": w.count}));
            out.push(json!({"name": "withheld", "part": part}));
        }
        Ok(parameters(out))
    }
}

fn parameters(parameter: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": parameter})
}

/// A section's agreement-file name (`unclassified` when the resource has none).
fn section_code(section: Option<tideway_profiles::Section>) -> String {
    serde_json::to_value(section.unwrap_or(tideway_profiles::Section::Unclassified))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
