//! The FHIR R4 adapter against its simulator (and a few hand-made misbehaving servers), over
//! real HTTP on port 0.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tideway_profiles::{NhsNumber, OdsCode};

use super::FhirR4Adapter;
use super::from_dir::{FromDir, assign_nhs_numbers};
use super::simulator::{FaultConfig, PopulationSpec, RunningSimulator, SimulatorConfig, start};
use crate::population::Population;
use crate::{
    AdapterError, CallContext, PatientLink, SourceAdapter, SourceConfig, SourceId, SourceRecord, SystemKind,
};

const SEED: u64 = 42;
const BOROUGHS: usize = 3;
const PER_BOROUGH: usize = 50;

fn population() -> Population {
    Population::new(SEED, BOROUGHS, PER_BOROUGH)
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn simulator(faults: FaultConfig) -> RunningSimulator {
    let population = PopulationSpec::Synthetic {
        seed: SEED,
        borough_index: 0,
        borough_count: BOROUGHS,
        patients_per_borough: PER_BOROUGH,
    };
    start(SimulatorConfig { bind: any_port(), population, faults }).await.unwrap()
}

fn adapter(base: url::Url) -> FhirR4Adapter {
    FhirR4Adapter::new(SourceConfig {
        id: SourceId::parse("camden").unwrap(),
        name: "Camden exchange".into(),
        kind: SystemKind::FhirR4,
        ods_code: OdsCode::parse("LBX01").unwrap(),
        base_url: base,
        timeout_ms: 5_000,
        max_body_bytes: 32 * 1024 * 1024,
    })
    .unwrap()
}

fn ctx() -> CallContext {
    CallContext::with_timeout(Duration::from_secs(10), 32 * 1024 * 1024, "req-test-1")
}

type Handler = Arc<dyn Fn(&HttpRequest) -> HttpResponse + Send + Sync>;

/// A one-route server answering every request with `handler`.
async fn fake_server(handler: Handler) -> (url::Url, actix_web::dev::ServerHandle) {
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

fn fhir_json(body: &Value) -> HttpResponse {
    HttpResponse::Ok().content_type("application/fhir+json").body(body.to_string())
}

fn link(local: &str) -> PatientLink {
    PatientLink { gateway_id: "gw-0001".into(), local_id: local.into() }
}

fn parse(json: &[u8]) -> Value {
    serde_json::from_slice(json).unwrap()
}

/// Every `reference` in `value` that is not a contained (`#x`) one.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("reference", Value::String(s)) if !s.starts_with('#') => out.push(s.clone()),
                    _ => references(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// Checks every reference in the record points at a returned resource.
fn assert_references_resolve(record: &SourceRecord, gateway_id: &str) {
    let present: HashSet<String> =
        record.resources.iter().map(|r| format!("{}/{}", r.resource_type, r.id)).collect();
    assert!(present.contains(&format!("Patient/{gateway_id}")));
    for r in &record.resources {
        let mut refs = Vec::new();
        references(&parse(&r.json), &mut refs);
        for reference in refs {
            assert!(
                present.contains(&reference),
                "{} {} has dangling reference {reference}",
                r.resource_type,
                r.id
            );
            if reference.starts_with("Patient/") {
                assert_eq!(reference, format!("Patient/{gateway_id}"));
            }
        }
    }
}

#[tokio::test]
async fn finds_and_fetches_a_synthetic_patient() {
    let sim = simulator(FaultConfig::default()).await;
    let pop = population();
    let index = pop.patients_in_borough(0)[7];
    let nhs = pop.nhs_number(index).unwrap();
    let a = adapter(sim.base_url());

    let found = a.find_patient(&nhs, "gw-0001", &ctx()).await.unwrap().unwrap();
    assert_eq!(found.local_id, pop.local_id(0, index));
    assert_eq!(found.resource.id, "gw-0001");
    let patient = parse(&found.resource.json);
    assert_eq!(patient["meta"]["source"], "urn:tideway:source:camden");
    assert_eq!(patient["identifier"][0]["value"], nhs.as_str());

    let record = a.fetch_record(&link(&found.local_id), &ctx()).await.unwrap();
    let original = pop.record(0, index).unwrap().resources;
    assert!(record.rejected.is_empty(), "{:?}", record.rejected);
    assert_eq!(record.resources.len(), original.len());
    for (got, want) in record.resources.iter().zip(&original) {
        assert_eq!(got.resource_type, want["resourceType"].as_str().unwrap());
        if got.resource_type != "Patient" {
            assert_eq!(got.id, format!("camden.{}", want["id"].as_str().unwrap()));
        }
        assert_eq!(got.last_updated(), want["meta"]["lastUpdated"].as_str());
    }
    assert_references_resolve(&record, "gw-0001");
    assert_eq!(sim.hits().patient_searches, 1);
    assert_eq!(sim.hits().record_fetches, 1);
    sim.stop().await;
}

#[tokio::test]
async fn a_patient_the_source_does_not_hold_is_none() {
    let sim = simulator(FaultConfig::default()).await;
    let a = adapter(sim.base_url());
    let stranger = NhsNumber::parse("9434765919").unwrap();
    assert!(a.find_patient(&stranger, "gw-x", &ctx()).await.unwrap().is_none());
    // In the population, but held only by another borough.
    let pop = population();
    let elsewhere = (0..pop.patient_count()).find(|&i| !pop.holds(0, i)).unwrap();
    let nhs = pop.nhs_number(elsewhere).unwrap();
    assert!(a.find_patient(&nhs, "gw-x", &ctx()).await.unwrap().is_none());
    assert_eq!(sim.hits().patient_searches, 2);
    sim.stop().await;
}

#[tokio::test]
async fn pages_are_followed_to_the_end() {
    let sim = simulator(FaultConfig::default()).await;
    let pop = population();
    let index = pop.patients_in_borough(0)[3];
    let a = adapter(sim.base_url()).with_page_size(3);
    let local = pop.local_id(0, index);
    let record = a.fetch_record(&link(&local), &ctx()).await.unwrap();
    let expected = pop.record(0, index).unwrap().resources.len();
    assert_eq!(record.resources.len(), expected);
    assert_eq!(sim.hits().record_fetches as usize, expected.div_ceil(3));
    assert!(expected > 3);

    let limited = adapter(sim.base_url()).with_page_size(3).with_max_pages(1);
    assert!(matches!(limited.fetch_record(&link(&local), &ctx()).await, Err(AdapterError::Malformed(_))));

    // The byte cap holds for the whole record, however small each page is.
    let whole: usize = record.resources.iter().map(|r| r.json.len()).sum();
    let mut small = ctx();
    small.max_body_bytes = whole / 2;
    let capped = adapter(sim.base_url()).with_page_size(3).fetch_record(&link(&local), &small).await;
    assert_eq!(capped.unwrap_err(), AdapterError::TooLarge(whole / 2));
    sim.stop().await;
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused() {
    let (base, handle) = fake_server(Arc::new(|_req: &HttpRequest| {
        fhir_json(&json!({"resourceType": "Bundle", "type": "searchset",
            "link": [{"relation": "next", "url": "http://elsewhere.example/fhir/Patient/p1/$everything?page=2"}],
            "entry": [{"resource": {"resourceType": "Patient", "id": "p1"}}]}))
    }))
    .await;
    let result = adapter(base).fetch_record(&link("p1"), &ctx()).await;
    assert_eq!(result.unwrap_err(), AdapterError::ForeignLink);
    handle.stop(false).await;
}

#[tokio::test]
async fn a_redirect_is_never_followed() {
    let (base, handle) = fake_server(Arc::new(|_req: &HttpRequest| {
        HttpResponse::Found().insert_header(("Location", "http://elsewhere.example/")).finish()
    }))
    .await;
    let a = adapter(base);
    assert_eq!(a.fetch_record(&link("p1"), &ctx()).await.unwrap_err(), AdapterError::ForeignLink);
    let nhs = NhsNumber::parse("9434765919").unwrap();
    assert_eq!(a.find_patient(&nhs, "gw", &ctx()).await.unwrap_err(), AdapterError::ForeignLink);
    handle.stop(false).await;
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
async fn a_hanging_source_times_out_at_the_deadline() {
    let sim = simulator(FaultConfig { hang_rate: 1.0, ..FaultConfig::default() }).await;
    let a = adapter(sim.base_url());
    let started = Instant::now();
    let short = CallContext::with_timeout(Duration::from_millis(300), 1024 * 1024, "req-hang");
    assert_eq!(a.fetch_record(&link("b00-p000000"), &short).await.unwrap_err(), AdapterError::Timeout);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(290) && took < Duration::from_millis(1500), "{took:?}");
    let stopping = Instant::now();
    sim.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn an_oversized_answer_is_cut_off_at_the_cap() {
    let sim = simulator(FaultConfig { oversized_rate: 1.0, ..FaultConfig::default() }).await;
    let a = adapter(sim.base_url());
    let small = CallContext::with_timeout(Duration::from_secs(10), 1024 * 1024, "req-big");
    let started = Instant::now();
    assert_eq!(
        a.fetch_record(&link("b00-p000000"), &small).await.unwrap_err(),
        AdapterError::TooLarge(1024 * 1024)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    sim.stop().await;
}

#[tokio::test]
async fn a_truncated_answer_is_malformed() {
    let sim = simulator(FaultConfig { malformed_rate: 1.0, ..FaultConfig::default() }).await;
    let err = adapter(sim.base_url()).fetch_record(&link("b00-p000000"), &ctx()).await.unwrap_err();
    assert_eq!(err, AdapterError::Malformed("response body is not JSON".into()));
    sim.stop().await;
}

#[tokio::test]
async fn a_failing_source_gives_its_status() {
    let sim = simulator(FaultConfig { fail_rate: 1.0, ..FaultConfig::default() }).await;
    let a = adapter(sim.base_url());
    let err = a.fetch_record(&link("b00-p000000"), &ctx()).await.unwrap_err();
    assert_eq!(err, AdapterError::Status(500));
    assert!(err.is_transient());
    let body = reqwest::get(sim.base_url().join("metadata").unwrap()).await.unwrap();
    assert_eq!(body.status().as_u16(), 500);
    let outcome: Value = body.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    sim.stop().await;
}

#[tokio::test]
async fn latency_is_added_and_faults_replay_by_seed() {
    let sim = simulator(FaultConfig { latency_ms: 200, ..FaultConfig::default() }).await;
    let started = Instant::now();
    adapter(sim.base_url()).fetch_record(&link("b00-p000000"), &ctx()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    sim.stop().await;

    let faults = FaultConfig { fail_rate: 0.5, seed: 9, ..FaultConfig::default() };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sim = simulator(faults.clone()).await;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(
                reqwest::get(sim.base_url().join("metadata").unwrap()).await.unwrap().status().as_u16(),
            );
        }
        assert_eq!(sim.hits().total, 20);
        sim.stop().await;
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].contains(&500) && runs[0].contains(&200));
}

#[tokio::test]
async fn an_unreachable_source_is_reported_as_such() {
    let port = std::net::TcpListener::bind(any_port()).unwrap().local_addr().unwrap().port();
    let base = url::Url::parse(&format!("http://127.0.0.1:{port}/fhir/")).unwrap();
    assert_eq!(adapter(base).fetch_record(&link("p"), &ctx()).await.unwrap_err(), AdapterError::Unreachable);
}

#[test]
fn fault_config_rejects_unknown_fields_and_defaults_to_none() {
    let none: FaultConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(none, FaultConfig::default());
    let some: FaultConfig = serde_json::from_str(r#"{"fail_rate": 0.25, "latency_ms": 10}"#).unwrap();
    assert_eq!(some.fail_rate, 0.25);
    assert!(serde_json::from_str::<FaultConfig>(r#"{"fail_rat": 0.25}"#).is_err());
}

#[tokio::test]
async fn decimals_and_extensions_survive_byte_for_byte() {
    let sim = simulator(FaultConfig::default()).await;
    let pop = population();
    let index = pop.patients_in_borough(0)[0];
    let original = pop.record(0, index).unwrap();
    let record = adapter(sim.base_url()).fetch_record(&link(&original.local_id), &ctx()).await.unwrap();
    let mut checked = 0;
    for want in original.resources.iter().filter(|r| r["resourceType"] == "Observation") {
        let id = format!("camden.{}", want["id"].as_str().unwrap());
        let got = record.resources.iter().find(|r| r.id == id).unwrap();
        let text = std::str::from_utf8(&got.json).unwrap();
        let quantity =
            format!("\"valueQuantity\":{}", serde_json::to_string(&want["valueQuantity"]).unwrap());
        assert!(text.contains(&quantity), "{quantity} not in {text}");
        if let Some(ext) = want.get("extension") {
            let ext = format!("\"extension\":{}", serde_json::to_string(ext).unwrap());
            assert!(text.contains(&ext));
            assert!(text.contains("\"valueDecimal\":0.10"));
            checked += 1;
        }
    }
    assert!(checked >= 1);
    assert!(std::str::from_utf8(&record.resources[0].json).is_ok());
    sim.stop().await;
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

#[tokio::test]
async fn the_simulator_answers_reads_and_searches() {
    let sim = simulator(FaultConfig::default()).await;
    let pop = population();
    let index = pop.patients_in_borough(0)[2];
    let nhs = pop.nhs_number(index).unwrap();
    let local = pop.local_id(0, index);
    let base = sim.base_url();
    let client = reqwest::Client::new();
    let get = |path: String| {
        let url = base.join(&path).unwrap();
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.headers()["content-type"], "application/fhir+json");
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, meta) = get("metadata".into()).await;
    assert_eq!((status, meta["fhirVersion"].as_str()), (200, Some("4.0.1")));
    assert!(tideway_profiles::validate::check_r4_value(&meta).is_ok());
    let (_, found) =
        get(format!("Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{}", nhs.as_str())).await;
    assert_eq!(found["entry"][0]["resource"]["id"], local.as_str());
    let (status, patient) = get(format!("Patient/{local}")).await;
    assert_eq!((status, patient["id"].as_str()), (200, Some(local.as_str())));
    let record = pop.record(0, index).unwrap().resources;
    for ty in ["Condition", "Observation", "Encounter", "MedicationStatement", "Immunization"] {
        let (_, bundle) = get(format!("{ty}?patient={local}")).await;
        let want = record.iter().filter(|r| r["resourceType"] == ty).count();
        assert_eq!(bundle["entry"].as_array().map_or(0, Vec::len), want, "{ty}");
        assert!(tideway_profiles::validate::check_r4_value(&bundle).is_ok());
    }
    let (status, everything) = get(format!("Patient/{local}/$everything?_count=4")).await;
    assert_eq!(status, 200);
    assert!(tideway_profiles::validate::check_r4_value(&everything).is_ok());
    assert_eq!(everything["entry"][0]["search"]["mode"], "match");
    assert!(everything["entry"][0]["fullUrl"].as_str().unwrap().starts_with(base.as_str()));
    let (status, _) = get("Patient/nobody".into()).await;
    assert_eq!(status, 404);
    let (status, bad) = get("Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|1234567890".into()).await;
    assert_eq!((status, bad["resourceType"].as_str()), (400, Some("OperationOutcome")));
    sim.stop().await;
}

fn synthea_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/synthea-r4");
    assert!(
        dir.is_dir(),
        "the Synthea sample bundles are expected at {} (the shared data folder next to the repo)",
        dir.display()
    );
    dir
}

/// Every `(resourceType, id)` of each patient file, read independently of the loader.
fn original_entries(dir: &std::path::Path, file: &str) -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Slim {
        entry: Vec<SlimEntry>,
    }
    #[derive(serde::Deserialize)]
    struct SlimEntry {
        #[serde(rename = "fullUrl")]
        full_url: String,
        resource: SlimResource,
    }
    #[derive(serde::Deserialize)]
    struct SlimResource {
        #[serde(rename = "resourceType")]
        resource_type: String,
    }
    let slim: Slim = serde_json::from_slice(&std::fs::read(dir.join(file)).unwrap()).unwrap();
    slim.entry
        .into_iter()
        .map(|e| (e.resource.resource_type, e.full_url.trim_start_matches("urn:uuid:").to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_synthea_patient_comes_back_whole_with_resolving_references() {
    let dir = synthea_dir();
    let assigned = assign_nhs_numbers(&dir).unwrap();
    assert_eq!(assigned.len(), 57);
    let loaded = Arc::new(
        tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || FromDir::load(&dir)
        })
        .await
        .unwrap()
        .unwrap(),
    );
    let sim = start(SimulatorConfig {
        bind: any_port(),
        population: PopulationSpec::Loaded(loaded),
        faults: FaultConfig::default(),
    })
    .await
    .unwrap();
    let a = adapter(sim.base_url()).with_page_size(1000);
    let mut rejected: HashMap<String, usize> = HashMap::new();
    for (k, (nhs, local, file)) in assigned.iter().enumerate() {
        let gateway_id = format!("gw-{k}");
        let found = a.find_patient(nhs, &gateway_id, &ctx()).await.unwrap().unwrap();
        assert_eq!(&found.local_id, local, "{file}");
        let record = a.fetch_record(&link_for(&gateway_id, local), &ctx()).await.unwrap();
        for r in &record.rejected {
            *rejected.entry(format!("{:?}: {}", r.resource_type, r.reason)).or_default() += 1;
        }
        let got: HashSet<(String, String)> =
            record.resources.iter().map(|r| (r.resource_type.clone(), r.id.clone())).collect();
        for (ty, id) in original_entries(&dir, file) {
            let want = if ty == "Patient" { gateway_id.clone() } else { format!("camden.{id}") };
            assert!(
                got.contains(&(ty.clone(), want)),
                "{file}: {ty} {id} missing (rejected: {:?})",
                record.rejected
            );
        }
        assert_references_resolve(&record, &gateway_id);
        let patient = parse(&record.resources[0].json);
        let identifiers = patient["identifier"].as_array().unwrap();
        assert!(identifiers.len() > 1, "original identifiers are kept");
        assert!(identifiers.iter().any(|i| i["value"] == nhs.as_str()));
    }
    assert!(rejected.is_empty(), "Synthea resources rejected: {rejected:#?}");
    sim.stop().await;
}

fn link_for(gateway_id: &str, local: &str) -> PatientLink {
    PatientLink { gateway_id: gateway_id.into(), local_id: local.into() }
}

#[test]
fn every_resource_of_every_synthea_file_is_valid_r4_as_shipped() {
    let dir = synthea_dir();
    let mut failures = Vec::new();
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bundle: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for e in bundle["entry"].as_array().unwrap() {
            count += 1;
            if let Err(err) = tideway_profiles::validate::check_r4_value(&e["resource"]) {
                failures.push(format!("{} {}: {err}", e["resource"]["resourceType"], e["fullUrl"]));
            }
        }
    }
    assert!(count > 12_000, "{count}");
    assert!(failures.is_empty(), "{failures:#?}");
}
