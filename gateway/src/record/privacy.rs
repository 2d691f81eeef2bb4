//! What the privacy officer reads: the alerts raised for them (break-glass today), as FHIR
//! `Communication`s, newest last. Only an organisation configured as a privacy office
//! (`[policy] privacy_officers`) with purpose of use `HOPERAT` may; every read is audited.

use serde_json::{Value, json};
use tideway_auth::Principal;

use super::{RecordError, RecordService};
use crate::audit::AuditedCall;
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

/// One alert as a FHIR R4 `Communication` to the privacy officer.
fn communication(a: &PrivacyAlert) -> Value {
    let sent = time::OffsetDateTime::from_unix_timestamp(a.raised_at_us / 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    json!({
        "resourceType": "Communication",
        "id": a.alert_id,
        "status": "completed",
        "category": [{"coding": [{"system": ALERT_KIND_SYSTEM, "code": a.kind, "display": "Break-glass access"}]}],
        "priority": "urgent",
        "subject": {"reference": format!("Patient/{}", a.patient_id)},
        "sent": sent,
        "recipient": [{"display": "Privacy officer"}],
        "payload": [{"contentString": format!(
            "{} (national RBAC role {}) at organisation {} broke the glass, giving the reason: {} (request {})",
            a.user, a.role, a.organisation, a.reason, a.request_id
        )}]
    })
}
