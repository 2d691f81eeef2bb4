//! The FHIR R4 simulator and adapter together: the shared conformance suite, and what only an
//! R4 exchange does (paging, reads and type searches, byte-exact decimals, Synthea bundles).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use tideway_adapters::fhir_r4::FhirR4Adapter;
use tideway_adapters::{AdapterError, PatientLink, SourceAdapter, SystemKind};
use tideway_profiles::NhsNumber;

use super::from_dir::{FromDir, assign_nhs_numbers};
use super::render;
use super::simulator::{FaultConfig, PopulationSpec, RunningSimulator, SimulatorConfig, start};
use crate::conformance::{
    self, BOROUGH, BOROUGHS, PER_BOROUGH, SEED, Simulated, Target, assert_references_resolve, ctx, link,
};
use crate::population::Population;

/// The FHIR R4 system under the shared suite.
struct FhirR4;

#[async_trait]
impl Target for FhirR4 {
    fn kind(&self) -> SystemKind {
        SystemKind::FhirR4
    }

    async fn start(&self, faults: FaultConfig) -> std::io::Result<Box<dyn Simulated>> {
        Ok(Box::new(simulator(faults).await))
    }
}

mod suite {
    crate::conformance_suite!(super::FhirR4);
}

fn population() -> Population {
    conformance::population()
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn simulator(faults: FaultConfig) -> RunningSimulator {
    // The tests call the simulator with reqwest directly too, which needs a crypto provider
    // installed (the binaries install ring at start); losing the race to install it is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let population = PopulationSpec::Synthetic {
        seed: SEED,
        borough_index: BOROUGH,
        borough_count: BOROUGHS,
        patients_per_borough: PER_BOROUGH,
    };
    start(SimulatorConfig { bind: any_port(), population, faults }).await.unwrap()
}

/// This adapter type itself (not through the registry), for what only it can be asked: paging.
fn adapter(base: url::Url) -> FhirR4Adapter {
    FhirR4Adapter::new(conformance::source_config(SystemKind::FhirR4, base)).unwrap()
}

fn parse(json: &[u8]) -> Value {
    serde_json::from_slice(json).unwrap()
}

#[tokio::test]
async fn pages_are_followed_to_the_end() {
    let sim = simulator(FaultConfig::default()).await;
    let pop = population();
    let index = pop.patients_in_borough(0)[3];
    let a = adapter(sim.base_url()).with_page_size(3);
    let local = pop.local_id(0, index);
    let record = a.fetch_record(&link(&conformance::stranger(), &local), &ctx()).await.unwrap();
    let expected = render::resources(&pop.record(0, index).unwrap()).len();
    assert_eq!(record.resources.len(), expected);
    assert_eq!(sim.hits().record_fetches as usize, expected.div_ceil(3));
    assert!(expected > 3);

    let limited = adapter(sim.base_url()).with_page_size(3).with_max_pages(1);
    assert!(matches!(
        limited.fetch_record(&link(&conformance::stranger(), &local), &ctx()).await,
        Err(AdapterError::Malformed(_))
    ));

    // The byte cap holds for the whole record, however small each page is.
    let whole: usize = record.resources.iter().map(|r| r.json.len()).sum();
    let mut small = ctx();
    small.max_body_bytes = whole / 2;
    let capped = adapter(sim.base_url())
        .with_page_size(3)
        .fetch_record(&link(&conformance::stranger(), &local), &small)
        .await;
    assert_eq!(capped.unwrap_err(), AdapterError::TooLarge(whole / 2));
    sim.stop().await;
}

#[tokio::test]
async fn latency_is_added_and_faults_replay_by_seed() {
    let sim = simulator(FaultConfig { latency_ms: 200, ..FaultConfig::default() }).await;
    let started = Instant::now();
    adapter(sim.base_url())
        .fetch_record(&link(&conformance::stranger(), "b00-p000000"), &ctx())
        .await
        .unwrap();
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
async fn decimals_and_extensions_survive_byte_for_byte() {
    let sim = simulator(FaultConfig::default()).await;
    let pop = population();
    let index = pop.patients_in_borough(0)[0];
    let original = pop.record(0, index).unwrap();
    let record = adapter(sim.base_url())
        .fetch_record(&link(&conformance::stranger(), &original.local_id), &ctx())
        .await
        .unwrap();
    let original = render::resources(&original);
    let mut checked = 0;
    for want in original.iter().filter(|r| r["resourceType"] == "Observation") {
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
    let record = render::resources(&pop.record(0, index).unwrap());
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
        let record = a.fetch_record(&link_for(&gateway_id, nhs, local), &ctx()).await.unwrap();
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

fn link_for(gateway_id: &str, nhs: &NhsNumber, local: &str) -> PatientLink {
    PatientLink { gateway_id: gateway_id.into(), local_id: local.into(), nhs_number: nhs.clone() }
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

#[tokio::test]
async fn a_failing_simulator_answers_with_an_operation_outcome() {
    let sim = simulator(FaultConfig { fail_rate: 1.0, ..FaultConfig::default() }).await;
    let body = reqwest::get(sim.base_url().join("metadata").unwrap()).await.unwrap();
    assert_eq!(body.status().as_u16(), 500);
    let outcome: Value = body.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    sim.stop().await;
}
