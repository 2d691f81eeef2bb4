//! The audit trail as FHIR R4 `AuditEvent`s, shaped after IHE Basic Audit Log Patterns
//! (BALP): a RESTful event (`rest` with the FHIR interaction as subtype; `/token` as DICOM
//! "User Authentication"), the client application and the user as agents (the user is the
//! requestor, with their national RBAC role, organisation and purpose of use), the gateway as
//! the observer, and as entities the patient, the request id (`X-Request-ID`, as BALP's
//! `XrequestId` entity) and each source asked. What was released is counts only; the detail
//! holds identifiers and reason codes, never clinical content. Each event carries its place in
//! the hash chain as an extension, so an exported trail can be checked again elsewhere.
//!
//! Claims BALP's shape, not its profiles: no `meta.profile` is asserted.

use serde_json::{Value, json};

use super::{AuditOutcome, AuditPhase};
use crate::store::ChainedAudit;

/// The extension that places an event in the chain (`seq`, `prev-hash`, `hash`, `phase`).
pub const CHAIN_EXTENSION_URL: &str = "https://fhir.tideway.london/StructureDefinition/audit-chain";
/// The system of registered client ids.
pub const CLIENT_ID_SYSTEM: &str = "https://fhir.tideway.london/Id/client-id";
/// The system of request ids.
pub const REQUEST_ID_SYSTEM: &str = "https://fhir.tideway.london/Id/request-id";
/// The system of registered source ids.
pub const SOURCE_ID_SYSTEM: &str = "https://fhir.tideway.london/Id/source-id";
const SDS_USER_ID: &str = "https://fhir.nhs.uk/Id/sds-user-id";
const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// How an action is written: the FHIR interaction (BALP's subtype) and the CRUDE action code.
fn interaction(action: &str) -> (Option<&'static str>, &'static str) {
    match action {
        "patient-read" | "read" | "agreement-read" | "source-read" | "organisation-read" => {
            (Some("read"), "R")
        }
        "patient-search" | "search" | "page" | "alerts" => (Some("search-type"), "E"),
        "patient-everything" | "policy-simulate" | "patient-match" => (Some("operation"), "E"),
        "consent" | "agreement-publish" => (Some("create"), "C"),
        "agreement-approve" | "source-change" | "organisation-change" => (Some("update"), "U"),
        "source-register" => (Some("create"), "C"),
        "source-deregister" => (Some("delete"), "D"),
        _ => (None, "E"),
    }
}

fn coding(system: &str, code: &str) -> Value {
    json!({ "system": system, "code": code })
}

fn identifier(system: &str, value: &str) -> Value {
    json!({ "identifier": { "system": system, "value": value } })
}

/// The stored record as an `AuditEvent`.
pub fn audit_event(row: &ChainedAudit) -> Value {
    let r = &row.stored.record;
    let (subtype, action) = interaction(r.action);
    let event_type = if r.action == "token" {
        json!({ "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110114", "display": "User Authentication" })
    } else {
        json!({ "system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation" })
    };
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": format!("audit-{}", row.stored.seq),
        "extension": [chain_extension(row)],
        "type": event_type,
        "action": action,
        "recorded": recorded(r.recorded_at),
        "agent": agents(row),
        "source": {
            "observer": { "display": "Tideway gateway" },
            "type": [coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4")]
        },
        "entity": entities(row),
    });
    let obj = event.as_object_mut();
    if let Some(obj) = obj {
        if let Some(code) = subtype {
            obj.insert("subtype".into(), json!([coding("http://hl7.org/fhir/restful-interaction", code)]));
        }
        if let Some(code) = outcome_code(r.phase, r.outcome) {
            obj.insert("outcome".into(), json!(code));
            obj.insert(
                "outcomeDesc".into(),
                json!(format!("{} (HTTP {})", r.outcome.as_str(), r.http_status)),
            );
        }
        if let Some(purpose) = &r.purpose {
            let mut why = json!({ "coding": [coding(tideway_auth::PURPOSE_OF_USE_SYSTEM, purpose)] });
            // Break-glass: the reason the user gave is the event's why.
            let detail: Value = serde_json::from_str(&r.detail).unwrap_or_default();
            if let (Some(reason), Some(why)) = (detail["break_glass_reason"].as_str(), why.as_object_mut()) {
                why.insert("text".into(), json!(reason));
            }
            obj.insert("purposeOfEvent".into(), json!([why]));
        }
    }
    event
}

fn recorded(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// FHIR's outcome codes: none for an intent (its outcome is not known yet).
fn outcome_code(phase: AuditPhase, outcome: AuditOutcome) -> Option<&'static str> {
    match (phase, outcome) {
        (AuditPhase::Intent, _) | (_, AuditOutcome::Pending) => None,
        (_, AuditOutcome::Success) => Some("0"),
        (_, AuditOutcome::Partial | AuditOutcome::Denied) => Some("4"),
        (_, AuditOutcome::Error) => Some("8"),
    }
}

fn chain_extension(row: &ChainedAudit) -> Value {
    let mut parts = vec![
        json!({ "url": "seq", "valueString": row.stored.seq.to_string() }),
        json!({ "url": "phase", "valueCode": row.stored.record.phase.as_str() }),
    ];
    for (url, hash) in [("prev-hash", &row.prev_hash), ("hash", &row.hash)] {
        if let Some(hash) = hash {
            parts.push(json!({ "url": url, "valueString": hash }));
        }
    }
    json!({ "url": CHAIN_EXTENSION_URL, "extension": parts })
}

fn agents(row: &ChainedAudit) -> Value {
    let r = &row.stored.record;
    let mut agents = Vec::new();
    let application = json!({ "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110150", "display": "Application" });
    match &r.client_id {
        Some(client) => agents.push(json!({
            "type": { "coding": [application] },
            "who": identifier(CLIENT_ID_SYSTEM, client),
            "requestor": r.user_id.is_none(),
        })),
        None => agents.push(json!({
            "type": { "coding": [application] },
            "who": { "display": "unauthenticated client" },
            "requestor": true,
        })),
    }
    if let Some(user) = &r.user_id {
        let mut agent = json!({
            "type": { "coding": [coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP")] },
            "who": identifier(SDS_USER_ID, user),
            "requestor": true,
        });
        if let Some(obj) = agent.as_object_mut() {
            if let Some(role) = &r.role {
                obj.insert(
                    "role".into(),
                    json!([{ "coding": [coding(tideway_auth::ROLE_CODE_SYSTEM, role)] }]),
                );
            }
            if let Some(purpose) = &r.purpose {
                obj.insert(
                    "purposeOfUse".into(),
                    json!([{ "coding": [coding(tideway_auth::PURPOSE_OF_USE_SYSTEM, purpose)] }]),
                );
            }
        }
        agents.push(agent);
    }
    if let Some(org) = &r.organisation {
        agents.push(json!({
            "type": { "coding": [coding("http://terminology.hl7.org/CodeSystem/v3-RoleClass", "PROV")] },
            "who": identifier(ODS, org),
            "requestor": false,
        }));
    }
    Value::Array(agents)
}

fn entities(row: &ChainedAudit) -> Value {
    let r = &row.stored.record;
    let mut entities = vec![json!({
        "what": identifier(REQUEST_ID_SYSTEM, &r.request_id),
        "type": coding("https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType", "XrequestId"),
        "detail": [
            { "type": "action", "valueString": r.action },
            { "type": "released", "valueString": r.released.to_string() },
            { "type": "detail", "valueString": r.detail },
        ],
    })];
    if let Some(patient) = &r.patient_id {
        entities.push(json!({
            "what": { "reference": format!("Patient/{patient}") },
            "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1"),
            "role": coding("http://terminology.hl7.org/CodeSystem/object-role", "1"),
        }));
    }
    let detail: Value = serde_json::from_str(&r.detail).unwrap_or_default();
    // A count of unauthenticated refusals names the requests it counted (the first of them).
    if r.action == "unauthenticated" {
        for id in detail["request_ids"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            entities.push(json!({
                "what": identifier(REQUEST_ID_SYSTEM, id),
                "type": coding("https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType", "XrequestId"),
            }));
        }
    }
    // What a search or a read asked (resource type and parameter names only), as BALP's
    // query entity: role 24 (Query), the query base64-encoded.
    if let Some(query) = detail["query"].as_str() {
        use base64::Engine as _;
        entities.push(json!({
            "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2"),
            "role": coding("http://terminology.hl7.org/CodeSystem/object-role", "24"),
            "query": base64::engine::general_purpose::STANDARD.encode(query),
        }));
    }
    let sources: Vec<String> = serde_json::from_str(&r.sources).unwrap_or_default();
    for source in sources {
        entities.push(json!({
            "what": identifier(SOURCE_ID_SYSTEM, &source),
            "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2"),
            "role": coding("http://terminology.hl7.org/CodeSystem/object-role", "3"),
        }));
    }
    Value::Array(entities)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod tests {
    use super::*;
    use crate::audit::{AuditRecord, StoredAudit};

    #[test]
    fn an_outcome_names_who_why_what_and_its_place_in_the_chain() {
        let mut record = AuditRecord::new("req-9", "patient-everything", None);
        record.client_id = Some("epr".into());
        record.user_id = Some("555021935107".into());
        record.role = Some("R8000".into());
        record.organisation = Some("RJ122".into());
        record.purpose = Some("TREAT".into());
        record.patient_id = Some("p0123".into());
        record.sources = r#"["borough-00","borough-01"]"#.into();
        record.outcome = AuditOutcome::Partial;
        record.http_status = 200;
        record.released = 12;
        let row = ChainedAudit {
            stored: StoredAudit { seq: 42, record },
            prev_hash: Some("a".repeat(64)),
            hash: Some("b".repeat(64)),
        };
        let e = audit_event(&row);
        assert_eq!(e["id"], "audit-42");
        assert_eq!(e["action"], "E");
        assert_eq!(e["subtype"][0]["code"], "operation");
        assert_eq!(e["outcome"], "4");
        assert_eq!(e["purposeOfEvent"][0]["coding"][0]["code"], "TREAT");
        assert_eq!(e["agent"][1]["who"]["identifier"]["value"], "555021935107");
        assert_eq!(e["agent"][1]["role"][0]["coding"][0]["code"], "R8000");
        assert_eq!(e["agent"][2]["who"]["identifier"]["value"], "RJ122");
        assert_eq!(e["entity"][0]["what"]["identifier"]["value"], "req-9");
        assert_eq!(e["entity"][1]["what"]["reference"], "Patient/p0123");
        assert_eq!(e["entity"][3]["what"]["identifier"]["value"], "borough-01");
        assert_eq!(e["extension"][0]["extension"][0]["valueString"], "42");
        assert_eq!(e["extension"][0]["extension"][3]["valueString"], "b".repeat(64));
    }

    #[test]
    fn an_intent_has_no_outcome_and_an_unauthenticated_refusal_names_no_one() {
        let mut record = AuditRecord::new("req-1", "search", None);
        record.phase = AuditPhase::Intent;
        let row = ChainedAudit { stored: StoredAudit { seq: 1, record }, prev_hash: None, hash: None };
        let e = audit_event(&row);
        assert!(e.get("outcome").is_none());
        assert_eq!(e["agent"].as_array().unwrap().len(), 1);
        assert_eq!(e["agent"][0]["who"]["display"], "unauthenticated client");
    }
}
