//! A first-access notification as a FHIR R4 `Communication` from the gateway to the patient's
//! registered practice: what `GET /notifications` answers and the webhook receives. It names the
//! patient by the gateway's opaque id only, never by NHS number, name or address.

use serde_json::{Value, json};
use tideway_profiles::systems;

use crate::store::AccessNotification;

/// The code system of notification kinds.
pub const NOTIFICATION_KIND_SYSTEM: &str = "https://fhir.tideway.london/CodeSystem/access-notification";

/// One notification as a `Communication`.
pub fn notification_communication(n: &AccessNotification) -> Value {
    let recipient = match &n.practice {
        Some(ods) => json!({"identifier": {"system": systems::ODS_ORGANIZATION_CODE, "value": ods}}),
        None => json!({"display": "Privacy officer (no registered practice named in the record)"}),
    };
    json!({
        "resourceType": "Communication",
        "id": n.notification_id,
        "status": "completed",
        "category": [{"coding": [{
            "system": NOTIFICATION_KIND_SYSTEM,
            "code": "first-access",
            "display": "First access to the record by an organisation"
        }]}],
        "priority": "routine",
        "subject": {"reference": format!("Patient/{}", n.patient_id)},
        "sent": crate::epoch_us::rfc3339_seconds(n.raised_at_us),
        "sender": {"identifier": {"system": systems::ODS_ORGANIZATION_CODE, "value": n.organisation}},
        "recipient": [recipient],
        "payload": [{"contentString": format!(
            "Organisation {} accessed this patient's record through the gateway for the first time: user {} \
             (national RBAC role {}), standing {} (request {})",
            n.organisation, n.user, n.role, n.standing, n.request_id
        )}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_names_the_patient_by_opaque_id_and_the_practice_by_ods_code() {
        let n = AccessNotification {
            notification_id: "n1".into(),
            patient_id: "p0123".into(),
            organisation: "YOOH1".into(),
            practice: Some("F80005".into()),
            user: "c/u".into(),
            role: "R8000".into(),
            standing: "care".into(),
            raised_at_us: 0,
            request_id: "r1".into(),
        };
        let c = notification_communication(&n);
        assert_eq!(c["subject"]["reference"], "Patient/p0123");
        assert_eq!(c["recipient"][0]["identifier"]["value"], "F80005");
        assert_eq!(c["sender"]["identifier"]["value"], "YOOH1");
        assert_eq!(c["sent"], "1970-01-01T00:00:00Z");
        let unknown = notification_communication(&AccessNotification { practice: None, ..n });
        assert!(unknown["recipient"][0]["display"].as_str().unwrap().starts_with("Privacy officer"));
    }
}
