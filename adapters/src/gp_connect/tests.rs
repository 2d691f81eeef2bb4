//! The GP Connect adapter against hand-made servers, and the record conversion on small
//! records. What every adapter must do against its simulator is in
//! `tideway_simulators::conformance`; the golden tests over GP Connect's own examples are in
//! `adapters/tests/gp_connect_golden.rs`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use serde_json::{Value, json};
use tideway_profiles::{NhsNumber, OdsCode};

use super::mapping::{ENTRY_NOT_SHOWN_DISPLAY, convert_record};
use super::{GpConnectAdapter, client};
use crate::fhir_r4::mapping::Normaliser;
use crate::{
    CallContext, ListWarningCode, PatientLink, RejectionKind, SourceAdapter, SourceConfig, SourceId,
    SystemKind,
};

const NHS: &str = "9434765919";

fn adapter(base: url::Url) -> GpConnectAdapter {
    GpConnectAdapter::new(SourceConfig {
        id: SourceId::parse("camden").unwrap(),
        name: "Camden practice".into(),
        kind: SystemKind::GpConnect,
        ods_code: OdsCode::parse("LBX01").unwrap(),
        base_url: base,
        timeout_ms: 5_000,
        max_body_bytes: 32 * 1024 * 1024,
        tls: None,
        attestation: None,
    })
    .unwrap()
}

fn ctx() -> CallContext {
    CallContext::with_timeout(Duration::from_secs(10), 32 * 1024 * 1024, "req-test-1")
}

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }
}

type Handler = Arc<dyn Fn(&Seen) -> HttpResponse + Send + Sync>;

async fn fake_server(handler: Handler) -> (url::Url, Arc<Mutex<Vec<Seen>>>, actix_web::dev::ServerHandle) {
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let server = HttpServer::new(move || {
        let (h, log) = (handler.clone(), log.clone());
        actix_web::App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let (h, log) = (h.clone(), log.clone());
            async move {
                let seen = Seen {
                    method: req.method().to_string(),
                    uri: req.uri().to_string(),
                    headers: req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect(),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                };
                log.lock().unwrap().push(seen.clone());
                h(&seen)
            }
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
    (url::Url::parse(&format!("http://127.0.0.1:{port}/gpc/")).unwrap(), seen, handle)
}

fn fhir_json(body: &Value) -> HttpResponse {
    HttpResponse::Ok().content_type("application/fhir+json").body(body.to_string())
}

fn patient(id: &str, nhs: &str) -> Value {
    json!({"resourceType": "Patient", "id": id,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "managingOrganization": {"reference": "Organization/org1"}})
}

fn bundle(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "collection",
        "entry": entries.into_iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()})
}

fn jwt_claims(authorization: &str) -> (Value, Value, String) {
    let token = authorization.strip_prefix("Bearer ").expect("a bearer token");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "three parts");
    let decode = |p: &str| -> Value {
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
    };
    (decode(parts[0]), decode(parts[1]), parts[2].to_owned())
}

#[tokio::test]
async fn the_record_request_carries_spine_headers_a_fresh_jwt_and_the_nhs_number_only_in_the_body() {
    let (base, seen, handle) = fake_server(Arc::new(|_s: &Seen| {
        fhir_json(&bundle(vec![patient("p1", NHS), json!({"resourceType": "Organization", "id": "org1"})]))
    }))
    .await;
    let a = adapter(base.clone());
    let nhs = NhsNumber::parse(NHS).unwrap();
    let found = a.find_patient(&nhs, "gw-1", &ctx()).await.unwrap().unwrap();
    assert_eq!(found.local_id, "p1");
    let link = PatientLink { gateway_id: "gw-1".into(), local_id: "p1".into(), nhs_number: nhs.clone() };
    a.fetch_record(&link, &ctx()).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let mut traces = Vec::new();
    for (s, clinical) in seen.iter().zip([false, true]) {
        assert_eq!((s.method.as_str(), s.uri.as_str()), ("POST", "/gpc/Patient/$gpc.getstructuredrecord"));
        assert!(!s.uri.contains(NHS));
        assert_eq!(s.header("ssp-interactionid"), client::GET_STRUCTURED_RECORD);
        assert_eq!(s.header("ssp-from"), client::DEFAULT_GATEWAY_ASID);
        assert_eq!(s.header("ssp-to"), client::asid_for(&OdsCode::parse("LBX01").unwrap()));
        assert_eq!(s.header("x-request-id"), "req-test-1");
        assert_eq!(s.header("content-type"), "application/fhir+json");
        traces.push(s.header("ssp-traceid").to_owned());
        let (header, claims, signature) = jwt_claims(s.header("authorization"));
        assert_eq!(header, json!({"alg": "none", "typ": "JWT"}));
        assert_eq!(signature, "", "unsigned");
        let (iat, exp) = (claims["iat"].as_u64().unwrap(), claims["exp"].as_u64().unwrap());
        assert!(exp > iat && exp - iat <= 300, "{iat} {exp}");
        assert_eq!(claims["reason_for_request"], "directcare");
        assert_eq!(claims["requested_scope"], "patient/*.read");
        assert_eq!(claims["aud"], format!("{base}Patient/$gpc.getstructuredrecord"));
        assert_eq!(claims["requested_record"]["identifier"][0]["value"], NHS);
        for claim in ["iss", "sub", "requesting_device", "requesting_organization", "requesting_practitioner"]
        {
            assert!(!claims[claim].is_null(), "{claim}");
        }
        assert_eq!(claims["sub"], claims["requesting_practitioner"]["id"]);
        let params = s.body["parameter"].as_array().unwrap();
        assert_eq!(params[0]["valueIdentifier"]["value"], NHS);
        let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        if clinical {
            assert_eq!(names.len(), 9, "{names:?}");
            assert!(names.contains(&"includeReferrals") && names.contains(&"includeUncategorisedData"));
            assert_eq!(params[1]["part"][0]["name"], "includeResolvedAllergies");
        } else {
            assert_eq!(names, ["patientNHSNumber"]);
        }
    }
    assert_ne!(traces[0], traces[1], "a fresh trace id per call");
    assert!(uuid::Uuid::parse_str(&traces[0]).is_ok());
    handle.stop(false).await;
}

#[tokio::test]
async fn patient_not_found_is_not_held_and_a_patient_with_another_number_is_refused() {
    let (base, _, handle) = fake_server(Arc::new(|s: &Seen| {
        if s.body["parameter"][0]["valueIdentifier"]["value"] == NHS {
            fhir_json(&bundle(vec![patient("p1", "9000000009")]))
        } else {
            HttpResponse::NotFound().content_type("application/fhir+json").body("{}")
        }
    }))
    .await;
    let a = adapter(base);
    assert!(a.find_patient(&NhsNumber::parse("9000000009").unwrap(), "gw", &ctx()).await.unwrap().is_none());
    let err = a.find_patient(&NhsNumber::parse(NHS).unwrap(), "gw", &ctx()).await.unwrap_err();
    assert!(matches!(err, crate::AdapterError::Malformed(_)), "{err:?}");
    assert!(!err.to_string().contains(NHS));
    handle.stop(false).await;
}

#[tokio::test]
async fn shared_reads_use_foundations_and_never_ask_for_a_practitioner_role() {
    let (base, seen, handle) = fake_server(Arc::new(|s: &Seen| {
        if s.uri.ends_with("/Practitioner/gp1") {
            fhir_json(&json!({"resourceType": "Practitioner", "id": "gp1", "name": [{"family": "Gilbert"}]}))
        } else {
            HttpResponse::NotFound().finish()
        }
    }))
    .await;
    let a = adapter(base);
    let read = a.read_shared("Practitioner", "gp1", &ctx()).await.unwrap().unwrap();
    assert_eq!(read.id, "camden.gp1");
    assert!(a.read_shared("PractitionerRole", "r1", &ctx()).await.unwrap().is_none());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("ssp-interactionid"),
        "urn:nhs:names:services:gpconnect:fhir:rest:read:practitioner-1"
    );
    let (_, claims, _) = jwt_claims(seen[0].header("authorization"));
    assert_eq!(claims["requested_scope"], "organization/*.read");
    handle.stop(false).await;
}

fn with_normaliser<T>(f: impl FnOnce(&Normaliser<'_>) -> T) -> T {
    let source = SourceId::parse("camden").unwrap();
    let base = url::Url::parse("https://camden.example/gpc/").unwrap();
    f(&Normaliser { source: &source, base_url: &base, patient_local_id: "p1", gateway_patient_id: "gw-1" })
}

fn allergy(id: &str) -> Value {
    json!({"resourceType": "AllergyIntolerance", "id": id, "clinicalStatus": "active",
        "verificationStatus": "confirmed", "assertedDate": "2020-01-01",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005"}]},
        "patient": {"reference": "Patient/p1"}})
}

fn allergy_list(extra: Value) -> Value {
    let mut list = json!({"resourceType": "List", "status": "current", "mode": "snapshot", "title": "Allergies",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "886921000000105"}]},
        "subject": {"reference": "Patient/p1"},
        "entry": [{"item": {"reference": "AllergyIntolerance/a1"}}, {"item": {"reference": "AllergyIntolerance/a2"}}]});
    if let (Some(l), Value::Object(extra)) = (list.as_object_mut(), extra) {
        l.extend(extra);
    }
    list
}

#[test]
fn list_warnings_reach_the_record_and_stay_readable_in_the_r4_list() {
    let entries: Vec<Value> = bundle(vec![
        patient("p1", NHS),
        allergy("a1"),
        allergy("a2"),
        allergy_list(json!({"extension": [
            {"url": super::stu3::WARNING_CODE_URL, "valueCode": "confidential-items"},
            {"url": super::stu3::WARNING_CODE_URL, "valueCode": "data-in-transit"}]})),
    ])["entry"]
        .as_array()
        .unwrap()
        .clone();
    let out = with_normaliser(|n| convert_record(n, None, entries));
    assert_eq!(out.accounted(), 4);
    assert!(out.record.rejected.is_empty(), "{:?}", out.record.rejected);
    let codes: Vec<_> = out.record.warnings.iter().map(|w| (w.section.as_deref(), w.code)).collect();
    assert_eq!(
        codes,
        [
            (Some("886921000000105"), ListWarningCode::ConfidentialItems),
            (Some("886921000000105"), ListWarningCode::DataInTransit)
        ]
    );
    let list = out.record.resources.iter().find(|r| r.resource_type == "List").unwrap();
    assert_eq!(list.id, "camden.list-886921000000105");
    let list: Value = serde_json::from_slice(&list.json).unwrap();
    assert_eq!(list["extension"][0]["valueCode"], "confidential-items");
    let notes: Vec<&str> =
        list["note"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect();
    assert!(notes.iter().any(|n| n.contains("confidentiality")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("transfer from previous GP practice")), "{notes:?}");
    assert_eq!(list["entry"][0]["item"]["reference"], "AllergyIntolerance/camden.a1");
    assert_eq!(list["subject"]["reference"], "Patient/gw-1");
    assert_eq!(out.record.resources[0].resource_type, "Patient");
}

#[test]
fn an_allergy_that_cannot_be_converted_is_reported_and_its_list_says_so() {
    let mut broken = allergy("a2");
    broken["criticality"] = json!("SECRET-severity");
    let entries: Vec<Value> =
        bundle(vec![patient("p1", NHS), allergy("a1"), broken, allergy_list(json!({}))])["entry"]
            .as_array()
            .unwrap()
            .clone();
    let out = with_normaliser(|n| convert_record(n, None, entries));
    assert_eq!(out.accounted(), 4);
    assert_eq!(out.record.rejected.len(), 1);
    assert_eq!(out.record.rejected[0].resource_type.as_deref(), Some("AllergyIntolerance"));
    assert!(!out.record.rejected[0].reason.contains("SECRET"));
    assert_eq!(out.record.warnings.len(), 1);
    assert_eq!(out.record.warnings[0].code, ListWarningCode::EntryNotShown);
    let list = out.record.resources.iter().find(|r| r.resource_type == "List").unwrap();
    let list: Value = serde_json::from_slice(&list.json).unwrap();
    assert_eq!(list["entry"][1]["item"], json!({"display": ENTRY_NOT_SHOWN_DISPLAY}));
    assert!(list["note"][0]["text"].as_str().unwrap().contains("incomplete"));
}

#[test]
fn a_list_about_another_nhs_number_is_another_patients_and_one_about_ours_is_tied_to_the_patient() {
    let by_number = |nhs: &str| {
        allergy_list(
            json!({"subject": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}},
            "entry": [{"item": {"reference": "AllergyIntolerance/a1"}}]}),
        )
    };
    let entries: Vec<Value> =
        bundle(vec![patient("p1", NHS), allergy("a1"), by_number(NHS), by_number("9000000009")])["entry"]
            .as_array()
            .unwrap()
            .clone();
    let out = with_normaliser(|n| convert_record(n, None, entries));
    assert_eq!(out.accounted(), 4);
    let lists: Vec<&str> =
        out.record.resources.iter().filter(|r| r.resource_type == "List").map(|r| r.id.as_str()).collect();
    assert_eq!(lists, ["camden.list-886921000000105"]);
    assert_eq!(out.record.rejected.len(), 1);
    assert_eq!(out.record.rejected[0].kind, RejectionKind::OtherPatient);
}

#[test]
fn asids_are_twelve_digits_and_stable() {
    let a = client::asid_for(&OdsCode::parse("LBX01").unwrap());
    assert_eq!(a.len(), 12);
    assert!(a.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(a, client::asid_for(&OdsCode::parse("LBX01").unwrap()));
    assert_ne!(a, client::asid_for(&OdsCode::parse("LBX02").unwrap()));
}
