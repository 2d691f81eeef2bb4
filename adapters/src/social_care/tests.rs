//! The social care adapter against a hand-made council server: what it accepts, what it
//! refuses and why, and the mark it puts on everything it passes on. What every adapter must do
//! against its simulator is in `tideway_simulators::conformance`.

use std::sync::Arc;

use actix_web::HttpRequest;
use serde_json::{Value, json};
use tideway_profiles::{NhsNumber, Section, systems};

use super::mapping::{NOT_CARRIED, social_care_tag};
use crate::fhir_r4::tests::{config, ctx, fake_server, fhir_json, link};
use crate::{RejectionKind, SourceAdapter, SystemKind};

/// Built through the registry, as the gateway builds it.
fn adapter(base: url::Url) -> Arc<dyn SourceAdapter> {
    crate::registry::build(config(SystemKind::SocialCare, base)).unwrap()
}

fn council_record() -> Value {
    let patient = json!({"reference": "Patient/person1"});
    let entry = |r: Value| json!({"resource": r, "search": {"mode": "match"}});
    json!({"resourceType": "Bundle", "type": "searchset", "entry": [
        entry(json!({"resourceType": "Patient", "id": "person1",
            "identifier": [{"system": systems::NHS_NUMBER, "value": "9434765919"}]})),
        entry(json!({"resourceType": "Organization", "id": "la00",
            "identifier": [{"system": systems::ODS_ORGANIZATION_CODE, "value": "YLA01"}]})),
        entry(json!({"resourceType": "EpisodeOfCare", "id": "eoc1", "status": "active", "patient": patient,
            "managingOrganization": {"reference": "Organization/la00"}})),
        entry(json!({"resourceType": "ServiceRequest", "id": "ref1", "status": "revoked", "intent": "order",
            "subject": patient, "performer": [{"reference": "Organization/la00"}]})),
        // A source claiming its own origin for a resource: Tideway's mark replaces it.
        entry(json!({"resourceType": "Task", "id": "task1", "status": "rejected", "intent": "order",
            "meta": {"tag": [{"system": systems::RECORD_ORIGIN, "code": "health"}]},
            "businessStatus": {"text": "Closed: no eligible needs"},
            "statusReason": {"text": "Needs do not meet the national eligibility criteria"},
            "focus": {"reference": "ServiceRequest/ref1"}, "for": patient,
            "owner": {"reference": "Organization/la00"}})),
        entry(json!({"resourceType": "Condition", "id": "c1", "subject": patient, "code": {"text": "SECRET-DIAGNOSIS"}})),
        entry(json!({"resourceType": "Consent", "id": "k1", "status": "active", "patient": patient})),
        entry(json!({"resourceType": "Task", "id": "task2", "status": "requested", "intent": "order",
            "for": {"reference": "Patient/person2"}})),
        {"resource": {"resourceType": "OperationOutcome", "issue": []}, "search": {"mode": "outcome"}}
    ]})
}

#[tokio::test]
async fn only_what_a_social_care_record_carries_passes_each_entry_accounted_for() {
    let (base, handle) = fake_server(Arc::new(|_req: &HttpRequest| fhir_json(&council_record()))).await;
    let record = adapter(base).fetch_record(&link("person1"), &ctx()).await.unwrap();
    let kept: Vec<(&str, &str)> =
        record.resources.iter().map(|r| (r.resource_type.as_str(), r.id.as_str())).collect();
    assert_eq!(
        kept,
        [
            ("Patient", "gw-0001"),
            ("Organization", "camden.la00"),
            ("EpisodeOfCare", "camden.eoc1"),
            ("ServiceRequest", "camden.ref1"),
            ("Task", "camden.task1"),
        ]
    );
    let rejected: Vec<(Option<&str>, RejectionKind, &str)> =
        record.rejected.iter().map(|r| (r.resource_type.as_deref(), r.kind, r.reason.as_str())).collect();
    assert_eq!(
        rejected,
        [
            (Some("Condition"), RejectionKind::NotCarried, NOT_CARRIED),
            (Some("Consent"), RejectionKind::NotCarried, NOT_CARRIED),
            (Some("Task"), RejectionKind::OtherPatient, "entry is about another patient"),
        ]
    );
    let entries = council_record()["entry"].as_array().unwrap().len() - 1;
    assert_eq!(record.resources.len() + record.rejected.len(), entries, "every entry is accounted for");
    handle.stop(false).await;
}

#[tokio::test]
async fn everything_passed_on_is_marked_as_social_care_and_the_task_keeps_its_status() {
    let (base, handle) = fake_server(Arc::new(|_req: &HttpRequest| fhir_json(&council_record()))).await;
    let record = adapter(base).fetch_record(&link("person1"), &ctx()).await.unwrap();
    for r in &record.resources {
        let json: Value = serde_json::from_slice(&r.json).unwrap();
        assert_eq!(json["meta"]["tag"], json!([social_care_tag()]), "{} {}", r.resource_type, r.id);
        let want = match r.resource_type.as_str() {
            "Patient" => Section::Demographics,
            "Organization" => Section::Administrative,
            _ => Section::SocialCare,
        };
        assert_eq!(r.facts.section, Some(want), "{}", r.resource_type);
    }
    let task = record.resources.iter().find(|r| r.resource_type == "Task").unwrap();
    let task: Value = serde_json::from_slice(&task.json).unwrap();
    assert_eq!(task["status"], "rejected");
    assert_eq!(task["businessStatus"]["text"], "Closed: no eligible needs");
    assert_eq!(task["statusReason"]["text"], "Needs do not meet the national eligibility criteria");
    assert_eq!(task["focus"]["reference"], "ServiceRequest/camden.ref1");
    assert_eq!(task["for"]["reference"], "Patient/gw-0001");
    assert_eq!(task["owner"]["reference"], "Organization/camden.la00");
    handle.stop(false).await;
}

#[tokio::test]
async fn the_council_patient_found_by_nhs_number_is_marked_too() {
    let (base, handle) = fake_server(Arc::new(|_req: &HttpRequest| {
        fhir_json(&json!({"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": council_record()["entry"][0]["resource"].clone(), "search": {"mode": "match"}}]}))
    }))
    .await;
    let nhs = NhsNumber::parse("9434765919").unwrap();
    let found = adapter(base).find_patient(&nhs, "gw-0001", &ctx()).await.unwrap().unwrap();
    assert_eq!(found.local_id, "person1");
    let patient: Value = serde_json::from_slice(&found.resource.json).unwrap();
    assert_eq!(patient["meta"]["tag"], json!([social_care_tag()]));
    assert_eq!(found.resource.facts.section, Some(Section::Demographics));
    handle.stop(false).await;
}
