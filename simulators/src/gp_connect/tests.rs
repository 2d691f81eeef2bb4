//! The GP Connect simulator and adapter together: the shared conformance suite, and what only a
//! GP Connect provider does (Spine headers and JWTs refused, List warnings, the whole
//! population converting to R4).

use std::net::SocketAddr;

use async_trait::async_trait;
use serde_json::{Value, json};
use tideway_adapters::fhir_r4::mapping::Normaliser;
use tideway_adapters::gp_connect::mapping::convert_record;
use tideway_adapters::{ListWarningCode, SourceAdapter, SourceId, SystemKind};

use super::render::{self, Includes};
use super::simulator::{FaultConfig, RunningGpConnect, SimulatorConfig, start};
use crate::conformance::{
    self, BOROUGH, BOROUGHS, GATEWAY_ID, PER_BOROUGH, SEED, Simulated, Target, assert_references_resolve,
    ctx, link,
};
use crate::population::{PatientRecord, Scenario};

/// GP Connect under the shared suite.
struct GpConnect;

#[async_trait]
impl Target for GpConnect {
    fn kind(&self) -> SystemKind {
        SystemKind::GpConnect
    }

    async fn start(&self, faults: FaultConfig) -> std::io::Result<Box<dyn Simulated>> {
        Ok(Box::new(simulator(faults).await))
    }

    /// Restated from the simulator's documented mapping: the practice, its usual GP and
    /// surgery, one List per section, each medicine as statement + authorisation + Medication
    /// (and the issue for a prescription), results with a sample as a DiagnosticReport and
    /// Specimen per consultation, every observation and procedure as an Observation, referrals
    /// as ServiceRequests. GP Connect sends no `lastUpdated`.
    fn expected_entries(&self, r: &PatientRecord) -> Vec<(&'static str, String, Option<String>)> {
        let ods = &r.demographics.practice.ods_code;
        let mut out: Vec<(&'static str, String)> = vec![
            ("Organization", ods.clone()),
            ("Practitioner", format!("{ods}-gp")),
            ("PractitionerRole", format!("{ods}-gp-role")),
            ("Location", format!("{ods}-site")),
        ];
        for code in [
            "886921000000105",
            "1103671000000101",
            "933361000000108",
            "717711000000103",
            "1102181000000102",
            "1149501000000101",
            "887191000000108",
            "792931000000107",
            "826501000000100",
        ] {
            out.push(("List", format!("list-{code}")));
        }
        out.extend(r.allergies.iter().map(|a| ("AllergyIntolerance", a.id.clone())));
        for m in &r.medications {
            out.push(("MedicationStatement", m.id.clone()));
            out.push(("MedicationRequest", format!("{}-plan", m.id)));
            out.push(("Medication", format!("{}-med", m.id)));
        }
        for p in &r.prescriptions {
            out.push(("MedicationRequest", p.id.clone()));
            out.push(("MedicationRequest", format!("{}-plan", p.id)));
            out.push(("MedicationStatement", format!("{}-ms", p.id)));
            out.push(("Medication", format!("{}-med", p.id)));
        }
        out.extend(r.problems.iter().map(|p| ("Condition", p.id.clone())));
        out.extend(r.immunisations.iter().map(|i| ("Immunization", i.id.clone())));
        out.extend(r.encounters.iter().map(|e| ("Encounter", e.id.clone())));
        out.extend(r.referrals.iter().map(|f| ("ServiceRequest", f.id.clone())));
        for report in render::investigation_reports(r) {
            out.push(("DiagnosticReport", report.id.clone()));
            out.push(("Specimen", report.specimen_id.clone()));
        }
        out.extend(r.observations.iter().map(|o| ("Observation", o.id.clone())));
        out.extend(r.procedures.iter().map(|p| ("Observation", p.id.clone())));
        out.into_iter().map(|(ty, id)| (ty, id, None)).collect()
    }

    /// GP Connect does not page: the simulator's foreign `next` link is one the adapter never reads.
    fn next_links(&self) -> conformance::NextLinks {
        conformance::NextLinks::Ignored
    }
}

mod suite {
    crate::conformance_suite!(super::GpConnect);
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn simulator(faults: FaultConfig) -> RunningGpConnect {
    // The tests call the simulator with reqwest directly too, which needs a crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    start(SimulatorConfig {
        bind: any_port(),
        seed: SEED,
        borough_index: BOROUGH,
        borough_count: BOROUGHS,
        patients_per_borough: PER_BOROUGH,
        faults,
    })
    .await
    .unwrap()
}

fn adapter(base: url::Url) -> std::sync::Arc<dyn SourceAdapter> {
    tideway_adapters::registry::build(conformance::source_config(SystemKind::GpConnect, base)).unwrap()
}

/// The first patient of borough [`BOROUGH`] whose population index satisfies `pick`.
fn patient_where(pick: impl Fn(usize) -> bool) -> (usize, PatientRecord) {
    let pop = conformance::population();
    let index = pop.patients_in_borough(BOROUGH).into_iter().find(|&i| pick(i)).unwrap();
    (index, pop.record(BOROUGH, index).unwrap())
}

#[tokio::test]
async fn list_warnings_reach_the_record_for_the_patients_that_carry_them() {
    let sim = simulator(FaultConfig::default()).await;
    let a = adapter(sim.base_url());
    for (digit, code, sections) in [
        (1, ListWarningCode::ConfidentialItems, 1),
        (2, ListWarningCode::DataInTransit, 9),
        (4, ListWarningCode::DataAwaitingFiling, 2),
        (5, ListWarningCode::Unrecognised, 0),
    ] {
        let (_, facts) = patient_where(|i| i % 10 == digit);
        let nhs = &facts.demographics.nhs_number;
        let found = a.find_patient(nhs, GATEWAY_ID, &ctx()).await.unwrap().unwrap();
        let record = a.fetch_record(&link(nhs, &found.local_id), &ctx()).await.unwrap();
        assert!(record.rejected.is_empty(), "{:?}", record.rejected);
        assert_eq!(record.warnings.len(), sections, "{digit}: {:?}", record.warnings);
        assert!(record.warnings.iter().all(|w| w.code == code && w.section.is_some()));
        for list in record.resources.iter().filter(|r| r.resource_type == "List") {
            let list: Value = serde_json::from_slice(&list.json).unwrap();
            let warned = list["extension"].as_array().is_some_and(|e| !e.is_empty());
            if warned {
                let text = list["note"].to_string();
                assert!(text.contains("GP Connect warning"), "{text}");
            }
        }
    }
    sim.stop().await;
}

#[tokio::test]
async fn scenario_entries_come_through_converted() {
    let sim = simulator(FaultConfig::default()).await;
    let a = adapter(sim.base_url());
    for (scenario, code, ty) in [
        (Scenario::Sensitive, "86406008", "Condition"),
        (Scenario::PodiatryDiabetic, "371087003", "ServiceRequest"),
    ] {
        let (_, facts) = patient_where(|i| Scenario::of(i) == Some(scenario));
        let nhs = &facts.demographics.nhs_number;
        let found = a.find_patient(nhs, GATEWAY_ID, &ctx()).await.unwrap().unwrap();
        let record = a.fetch_record(&link(nhs, &found.local_id), &ctx()).await.unwrap();
        assert!(record.rejected.is_empty(), "{:?}", record.rejected);
        assert!(
            record
                .resources
                .iter()
                .any(|r| r.resource_type == ty && r.facts.codings.iter().any(|c| c.code == code)),
            "{scenario:?}: no {ty} coded {code}"
        );
        assert_references_resolve(&record, GATEWAY_ID);
        if scenario == Scenario::Sensitive {
            let open = record
                .resources
                .iter()
                .find(|r| r.resource_type == "Encounter" && r.facts.status.as_deref() == Some("in-progress"));
            assert!(open.unwrap().facts.care_providers.iter().any(|c| c == "ods:YOOH1"));
        }
    }
    sim.stop().await;
}

#[tokio::test]
async fn requests_without_spine_headers_or_with_a_bad_jwt_are_refused_with_spine_codes() {
    let sim = simulator(FaultConfig::default()).await;
    let url = sim.base_url().join("Patient/$gpc.getstructuredrecord").unwrap();
    let (_, facts) = patient_where(|_| true);
    let body = json!({"resourceType": "Parameters", "parameter": [{"name": "patientNHSNumber",
        "valueIdentifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": facts.demographics.nhs_number.as_str()}}]});
    let client = reqwest::Client::new();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let jwt = |exp: u64, alg: &str| {
        use base64::Engine;
        let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let claims = json!({"iss": "x", "sub": "u", "aud": url.as_str(), "iat": now, "exp": exp,
            "reason_for_request": "directcare", "requested_scope": "patient/*.read",
            "requested_record": {"resourceType": "Patient", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": facts.demographics.nhs_number.as_str()}]},
            "requesting_device": {"resourceType": "Device"}, "requesting_organization": {"resourceType": "Organization"},
            "requesting_practitioner": {"resourceType": "Practitioner", "id": "u"}});
        format!("{}.{}.", enc(json!({"alg": alg, "typ": "JWT"})), enc(claims))
    };
    let send = |headers: Vec<(&'static str, String)>, body: Value| {
        let mut r =
            client.post(url.clone()).header("content-type", "application/fhir+json").body(body.to_string());
        for (k, v) in headers {
            r = r.header(k, v);
        }
        async move {
            let resp = r.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let good = |token: String| {
        vec![
            ("Ssp-TraceID", "09a01679-2564-0fb4-5129-aecc81ea2706".to_owned()),
            ("Ssp-From", "200000000359".to_owned()),
            ("Ssp-To", sim.asid().to_owned()),
            ("Ssp-InteractionID", tideway_adapters::gp_connect::client::GET_STRUCTURED_RECORD.to_owned()),
            ("Authorization", format!("Bearer {token}")),
        ]
    };
    let spine = |v: &Value| v["issue"][0]["details"]["coding"][0]["code"].as_str().unwrap().to_owned();
    let (status, ok) = send(good(jwt(now + 300, "none")), body.clone()).await;
    assert_eq!((status, ok["type"].as_str()), (200, Some("collection")));
    for drop in 0..5 {
        let mut headers = good(jwt(now + 300, "none"));
        headers.remove(drop);
        let (status, outcome) = send(headers, body.clone()).await;
        assert_eq!((status, spine(&outcome).as_str()), (400, "BAD_REQUEST"), "without header {drop}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }
    for bad in [
        jwt(now + 301, "none"),
        jwt(now + 300, "RS256"),
        "not.a.jwt".into(),
        jwt(now.saturating_sub(10), "none"),
    ] {
        let (status, outcome) = send(good(bad), body.clone()).await;
        assert_eq!((status, spine(&outcome).as_str()), (400, "BAD_REQUEST"));
    }
    let mut bad_number = body.clone();
    bad_number["parameter"][0]["valueIdentifier"]["value"] = json!("1234567890");
    let (status, outcome) = send(good(jwt(now + 300, "none")), bad_number).await;
    assert_eq!((status, spine(&outcome).as_str()), (400, "INVALID_NHS_NUMBER"));
    let mut no_part = body.clone();
    no_part["parameter"].as_array_mut().unwrap().push(json!({"name": "includeAllergies"}));
    let (status, outcome) = send(good(jwt(now + 300, "none")), no_part).await;
    assert_eq!((status, spine(&outcome).as_str()), (422, "INVALID_PARAMETER"));
    let (status, outcome) = send(good(jwt(now + 300, "none")), json!({"resourceType": "Patient"})).await;
    assert_eq!((status, spine(&outcome).as_str()), (422, "INVALID_RESOURCE"));
    sim.stop().await;
}

#[tokio::test]
async fn an_unknown_patient_is_patient_not_found() {
    let sim = simulator(FaultConfig::default()).await;
    let a = adapter(sim.base_url());
    assert!(a.find_patient(&conformance::stranger(), "gw", &ctx()).await.unwrap().is_none());
    let err = a.fetch_record(&link(&conformance::stranger(), "x"), &ctx()).await.unwrap_err();
    assert_eq!(err, tideway_adapters::AdapterError::Status(404));
    sim.stop().await;
}

/// Every record of the borough, as the simulator renders it, converts with nothing rejected
/// and every entry accounted for.
#[test]
fn every_rendered_record_converts_to_r4_with_nothing_rejected() {
    let pop = conformance::population();
    let source = SourceId::parse("camden").unwrap();
    let base = url::Url::parse("http://127.0.0.1/gpc/").unwrap();
    let mut total = 0;
    for index in pop.patients_in_borough(BOROUGH) {
        let record = pop.record(BOROUGH, index).unwrap();
        let bundle = render::structured_record(&record, index, Includes::all());
        let entries = bundle["entry"].as_array().unwrap().clone();
        let n = Normaliser {
            source: &source,
            base_url: &base,
            patient_local_id: &record.local_id,
            gateway_patient_id: "gw",
        };
        let out = convert_record(&n, None, entries.clone());
        assert_eq!(out.accounted(), entries.len());
        assert!(out.record.rejected.is_empty(), "{}: {:?}", record.local_id, out.record.rejected);
        total += out.record.resources.len();
    }
    assert!(total > 1_000, "{total}");
}

/// The JWT names the user a call is made for (their SDS user id, role and organisation), as the
/// provider's own audit shows; a call made for no user names the gateway itself.
#[tokio::test]
async fn the_provider_is_told_which_user_asked_and_the_gateway_only_for_its_own_calls() {
    let sim = simulator(FaultConfig::default()).await;
    let a = adapter(sim.base_url());
    let (_, facts) = patient_where(|_| true);
    let nhs = &facts.demographics.nhs_number;
    let requester = tideway_adapters::Requester {
        user_id: "555021935107".into(),
        role: "R8000".into(),
        organisation: "RJ122".into(),
    };
    let found =
        a.find_patient(nhs, GATEWAY_ID, &ctx().for_requester(requester.clone())).await.unwrap().unwrap();
    a.fetch_record(&link(nhs, &found.local_id), &ctx().for_requester(requester)).await.unwrap();
    a.fetch_record(&link(nhs, &found.local_id), &ctx()).await.unwrap();
    let readers: Vec<Value> =
        reqwest::get(sim.base_url().join("_readers").unwrap()).await.unwrap().json().await.unwrap();
    let who: Vec<(&str, &str)> =
        readers.iter().map(|r| (r["user"].as_str().unwrap(), r["organisation"].as_str().unwrap())).collect();
    assert_eq!(who, [("555021935107", "RJ122"), ("555021935107", "RJ122"), ("tideway-gateway", "YTWAY")]);
    assert!(readers.iter().all(|r| r["device"] == "tideway-gateway"
        && r["from"] == tideway_adapters::gp_connect::client::DEFAULT_GATEWAY_ASID));
    sim.stop().await;
}
