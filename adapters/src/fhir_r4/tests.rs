//! The FHIR R4 adapter against hand-made servers that misbehave in ways only an R4 source can.
//! What every adapter must do against its simulator is in `tideway_simulators::conformance`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tideway_profiles::{NhsNumber, OdsCode};

use super::FhirR4Adapter;
use crate::{AdapterError, CallContext, PatientLink, SourceAdapter, SourceConfig, SourceId, SystemKind};

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A `camden` source of `kind` at `base`.
pub(crate) fn config(kind: SystemKind, base: url::Url) -> SourceConfig {
    SourceConfig {
        id: SourceId::parse("camden").unwrap(),
        name: "Camden exchange".into(),
        kind,
        ods_code: OdsCode::parse("LBX01").unwrap(),
        base_url: base,
        timeout_ms: 5_000,
        max_body_bytes: 32 * 1024 * 1024,
        tls: None,
        attestation: None,
    }
}

fn adapter(base: url::Url) -> FhirR4Adapter {
    FhirR4Adapter::new(config(SystemKind::FhirR4, base)).unwrap()
}

pub(crate) fn ctx() -> CallContext {
    CallContext::with_timeout(Duration::from_secs(10), 32 * 1024 * 1024, "req-test-1")
}

pub(crate) type Handler = Arc<dyn Fn(&HttpRequest) -> HttpResponse + Send + Sync>;

/// A one-route server answering every request with `handler`.
pub(crate) async fn fake_server(handler: Handler) -> (url::Url, actix_web::dev::ServerHandle) {
    let listener = std::net::TcpListener::bind(any_port()).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let h = handler.clone();
        actix_web::App::new().default_service(web::to(move |req: HttpRequest| {
            let h = h.clone();
            async move { h(&req) }
        }))
    })
    .workers(1)
    .shutdown_timeout(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (url::Url::parse(&format!("http://127.0.0.1:{port}/fhir/")).unwrap(), handle)
}

pub(crate) fn fhir_json(body: &Value) -> HttpResponse {
    HttpResponse::Ok().content_type("application/fhir+json").body(body.to_string())
}

pub(crate) fn link(local: &str) -> PatientLink {
    let nhs_number = NhsNumber::parse("9434765919").unwrap();
    PatientLink { gateway_id: "gw-0001".into(), local_id: local.into(), nhs_number }
}

#[tokio::test]
async fn the_nhs_number_travels_in_the_body_with_correlation_headers() {
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let (base, handle) = fake_server(Arc::new(move |req: &HttpRequest| {
        let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        log.lock().unwrap().push(format!(
            "{} {} {} {}",
            req.method(),
            req.uri(),
            header("x-request-id"),
            header("accept")
        ));
        fhir_json(&json!({"resourceType": "Bundle", "type": "searchset", "entry": []}))
    }))
    .await;
    let nhs = NhsNumber::parse("9434765919").unwrap();
    assert!(adapter(base).find_patient(&nhs, "gw", &ctx()).await.unwrap().is_none());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec!["POST /fhir/Patient/_search req-test-1 application/fhir+json".to_owned()]);
    handle.stop(false).await;
}

#[tokio::test]
async fn a_demographic_search_keeps_only_valid_numbers_of_patients_born_on_the_day_asked() {
    let uris: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let log = uris.clone();
    // A server that ignores the parameters, answering with whoever it has.
    let (base, handle) = fake_server(Arc::new(move |req: &HttpRequest| {
        log.lock().unwrap().push(format!("{} {}", req.method(), req.uri()));
        let patient = |id: &str, born: &str, nhs: &str| {
            json!({"resource": {"resourceType": "Patient", "id": id, "birthDate": born,
                "identifier": [{"system": tideway_profiles::systems::NHS_NUMBER, "value": nhs}]},
                "search": {"mode": "match"}})
        };
        fhir_json(&json!({"resourceType": "Bundle", "type": "searchset", "entry": [
            patient("a", "1958-09-23", "943 476 5919"),
            patient("b", "1971-01-02", "9434765870"),
            patient("c", "1958-09-23", "9434765918"),
            patient("d", "1958-09-23", "9434765919"),
            {"resource": {"resourceType": "Patient", "id": "e", "birthDate": "1958-09-23",
                "identifier": [{"system": tideway_profiles::systems::NHS_NUMBER, "value": "9434765870", "use": "old"}]},
                "search": {"mode": "match"}},
            {"resource": {"resourceType": "OperationOutcome", "issue": []}, "search": {"mode": "outcome"}}]}))
    }))
    .await;
    let query = crate::DemographicQuery {
        birth_date: "1958-09-23".into(),
        family: "evans".into(),
        gender: Some("female".into()),
        limit: 20,
    };
    let found = adapter(base).search_patients(&query, &ctx()).await.unwrap().unwrap();
    let numbers: Vec<&str> = found.iter().map(NhsNumber::as_str).collect();
    assert_eq!(numbers, ["9434765919"], "born that day, a valid current number, once");
    assert_eq!(*uris.lock().unwrap(), ["POST /fhir/Patient/_search"], "nothing asked in the URL");
    handle.stop(false).await;
}

#[tokio::test]
async fn two_matches_are_ambiguous() {
    let (base, handle) = fake_server(Arc::new(|_req: &HttpRequest| {
        fhir_json(&json!({"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": {"resourceType": "Patient", "id": "a"}, "search": {"mode": "match"}},
            {"resource": {"resourceType": "Patient", "id": "b"}, "search": {"mode": "match"}}]}))
    }))
    .await;
    let nhs = NhsNumber::parse("9434765919").unwrap();
    let err = adapter(base).find_patient(&nhs, "gw", &ctx()).await.unwrap_err();
    assert_eq!(err, AdapterError::Malformed("ambiguous".into()));
    handle.stop(false).await;
}

#[tokio::test]
async fn an_invalid_resource_is_rejected_and_named_while_the_rest_pass() {
    let (base, handle) = fake_server(Arc::new(|_req: &HttpRequest| {
        fhir_json(&json!({"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female"}, "search": {"mode": "match"}},
            {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}}},
            {"resource": {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p1"}, "severity": "SECRET-TEXT"}},
            {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "incomplete"}]}, "search": {"mode": "outcome"}}
        ]}))
    }))
    .await;
    let record = adapter(base).fetch_record(&link("p1"), &ctx()).await.unwrap();
    let ids: Vec<&str> = record.resources.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["gw-0001", "camden.c1"]);
    assert_eq!(record.rejected.len(), 1);
    assert_eq!(record.rejected[0].resource_type.as_deref(), Some("Condition"));
    assert!(!record.rejected[0].reason.contains("SECRET"));
    handle.stop(false).await;
}

/// The adapter's golden test: a hand-written `$everything` answer of edge cases (a Read v2 code
/// to map, an invalid resource, another patient's entry, the practice, an outcome entry) goes in
/// over HTTP; the normalised record is compared with the committed snapshot
/// (`adapters/tests/golden/fhir-r4/edge-cases.r4.json`; `UPDATE_GOLDEN=1` rewrites it), and every
/// entry but the outcome is a resource or a rejection.
#[tokio::test]
async fn the_edge_case_answer_normalises_to_its_snapshot_with_every_entry_accounted_for() {
    let path = crate::gp_record::golden::dir("fhir-r4").join("edge-cases.bundle.json");
    let bundle: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let entries = bundle["entry"].as_array().unwrap().len();
    let (base, handle) = fake_server(Arc::new(move |_| fhir_json(&bundle))).await;
    let record = adapter(base).fetch_record(&link("p1"), &ctx()).await.unwrap();
    handle.stop(true).await;
    crate::gp_record::golden::compare("fhir-r4", "edge-cases", &record);
    assert_eq!(record.resources.len() + record.rejected.len(), entries - 1, "all but the outcome entry");
    let kinds: Vec<crate::RejectionKind> = record.rejected.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [crate::RejectionKind::Invalid, crate::RejectionKind::OtherPatient]);
}
