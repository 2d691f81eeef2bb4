//! Fan-out behaviour when sources fail: partial answers name the missing source.

use tideway_gateway::store::AuditLog as _;
use tideway_simulators::fhir_r4::simulator::FaultConfig;
use tideway_tests::{FixtureApp, Options, TestApp};

fn failing() -> FaultConfig {
    FaultConfig { fail_rate: 1.0, ..FaultConfig::default() }
}

fn hanging() -> FaultConfig {
    FaultConfig { hang_rate: 1.0, ..FaultConfig::default() }
}

#[tokio::test]
async fn a_failing_borough_is_named_and_the_others_still_answer() {
    // Borough 1 fails every request; find a patient held by borough 0 and borough 1.
    let opts = Options { boroughs: 3, faults: vec![(1, failing())], ..Options::default() };
    let app = TestApp::spawn(opts).await;
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0, 1]);
    let found = app.get(&tideway_tests::nhs_search(nhs.as_str()), Some(&token)).await;
    assert_eq!(found.status, 200, "{}", found.body);
    let oo = found.outcome_entry().expect("outcome entry naming the failed source");
    let text = oo.to_string();
    assert!(text.contains("borough-01"), "{text}");
    assert!(oo["issue"].as_array().unwrap().iter().any(|i| i["code"] == "incomplete"));
    let id = found.matches()[0]["id"].as_str().unwrap().to_owned();
    let all = app.get(&format!("/Patient/{id}/$everything?_count=1000"), Some(&token)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(all.matches().iter().any(|r| r["meta"]["source"] == "urn:tideway:source:borough-00"));
    assert!(all.matches().iter().all(|r| r["meta"]["source"] != "urn:tideway:source:borough-01"));
    assert!(all.outcome_entry().unwrap().to_string().contains("borough-01"));
    app.stop().await;
}

#[tokio::test]
async fn every_source_failing_is_502_and_every_source_hanging_is_504() {
    let app = TestApp::spawn(Options {
        boroughs: 2,
        faults: vec![(0, failing()), (1, failing())],
        ..Options::default()
    })
    .await;
    let token = app.token().await;
    let nhs = app.population.nhs_number(0).unwrap();
    let a = app.get(&tideway_tests::nhs_search(nhs.as_str()), Some(&token)).await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert_eq!(a.issue_code(), "exception");
    app.stop().await;

    let opts = Options {
        boroughs: 2,
        faults: vec![(0, hanging()), (1, hanging())],
        source_timeout_ms: 300,
        request_deadline_ms: 600,
        ..Options::default()
    };
    let app = TestApp::spawn(opts).await;
    let token = app.token().await;
    let a = app.get(&tideway_tests::nhs_search(nhs.as_str()), Some(&token)).await;
    assert_eq!(a.status, 504, "{}", a.body);
    assert_eq!(a.issue_code(), "timeout");
    app.stop().await;
}

#[tokio::test]
async fn the_same_fact_from_several_boroughs_appears_once_with_its_origins_in_provenance() {
    let app = TestApp::spawn(Options { boroughs: 3, patients: 40, ..Options::default() }).await;
    let token = app.token().await;
    // Allergies are recorded alike in every borough holding the patient; find such a patient
    // with at least one allergy.
    let mut checked = 0;
    for nhs in app.population.patients_in_several_boroughs(20) {
        let index = app.population.patient_index(&nhs).unwrap();
        let holders = app.population.boroughs_of(index);
        let id = app.patient_id(&token, nhs.as_str()).await;
        let all = app.get(&format!("/Patient/{id}/$everything?_count=1000"), Some(&token)).await;
        assert_eq!(all.status, 200);
        let allergies: Vec<_> =
            all.matches().into_iter().filter(|r| r["resourceType"] == "AllergyIntolerance").collect();
        if allergies.is_empty() {
            continue;
        }
        // One entry per distinct allergy (code and date), however many boroughs recorded it.
        let mut codes: Vec<String> =
            allergies.iter().map(|a| format!("{}{}", a["code"]["coding"], a["recordedDate"])).collect();
        let n = codes.len();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), n, "duplicate allergy entries were not merged");
        let provenance: Vec<_> =
            all.resources().into_iter().filter(|r| r["resourceType"] == "Provenance").collect();
        for a in &allergies {
            let target = format!("AllergyIntolerance/{}", a["id"].as_str().unwrap());
            let p = provenance
                .iter()
                .find(|p| p["target"][0]["reference"] == target.as_str())
                .unwrap_or_else(|| panic!("no Provenance for {target}"));
            let entities = p["entity"].as_array().unwrap();
            assert_eq!(entities.len(), holders.len(), "every borough that reported the allergy is named");
            for b in &holders {
                assert!(p.to_string().contains(&format!("borough-{b:02}")), "{p}");
            }
        }
        checked += 1;
    }
    assert!(checked > 0, "fixture: some patient in several boroughs has an allergy");
    app.stop().await;
}

#[tokio::test]
async fn at_the_overall_deadline_the_answer_has_what_arrived_and_names_the_rest() {
    // Borough 1 hangs; its own timeout is long, so only the overall deadline can end the wait.
    let opts = Options {
        boroughs: 3,
        faults: vec![(1, hanging())],
        source_timeout_ms: 30_000,
        request_deadline_ms: 1_500,
        ..Options::default()
    };
    let app = TestApp::spawn(opts).await;
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0, 1]);
    let started = std::time::Instant::now();
    let found = app.get(&tideway_tests::nhs_search(nhs.as_str()), Some(&token)).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the hung borough must not hold the request"
    );
    let oo = found.outcome_entry().expect("the hung borough is named");
    assert!(oo.to_string().contains("borough-01"));
    assert!(oo["issue"].as_array().unwrap().iter().any(|i| i["code"] == "timeout"), "{oo}");
    assert_eq!(found.matches().len(), 1, "the patient from the boroughs that answered");
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_resource_is_withheld_and_named_while_the_rest_is_served() {
    let FixtureApp { app, token, id, .. } = FixtureApp::spawn("invalid-entry", Options::default()).await;
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let types: Vec<&str> = all.matches().iter().map(|r| r["resourceType"].as_str().unwrap()).collect();
    assert!(types.contains(&"Condition"));
    assert!(!types.contains(&"Observation"), "the invalid Observation must not be passed on");
    let oo = all.outcome_entry().expect("the withheld resource is reported").to_string();
    assert!(oo.contains("synthea") && oo.contains("not valid FHIR R4") && oo.contains("Observation"), "{oo}");
    assert!(!oo.contains("colour") && !oo.contains("blue"), "no source content in the report: {oo}");
    let rows = app.state.store.audit_for_request(&all.header("x-request-id").unwrap()).await.unwrap();
    assert!(rows[1].detail.contains("\"rejected\":1"), "{}", rows[1].detail);
    app.stop().await;
}

#[tokio::test]
async fn garbage_and_oversized_answers_are_named_and_never_passed_on() {
    let opts = Options {
        boroughs: 3,
        faults: vec![
            (1, FaultConfig { malformed_rate: 1.0, ..FaultConfig::default() }),
            (2, FaultConfig { oversized_rate: 1.0, ..FaultConfig::default() }),
        ],
        ..Options::default()
    };
    let app = TestApp::spawn(opts).await;
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0]);
    let found = app.get(&tideway_tests::nhs_search(nhs.as_str()), Some(&token)).await;
    assert_eq!(found.status, 200, "{}", found.body);
    let oo = found.outcome_entry().expect("the failing sources are named").to_string();
    assert!(oo.contains("borough-01") && oo.contains("malformed"), "{oo}");
    assert!(oo.contains("borough-02") && oo.contains("exceeded"), "{oo}");
    assert_eq!(found.matches().len(), 1);
    assert!(found.raw.len() < 64 * 1024, "nothing of the oversized answer is passed on");
    app.stop().await;
}

#[tokio::test]
async fn stale_record_locator_answers_are_asked_again() {
    let app = TestApp::spawn(Options { boroughs: 3, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0, 1]);
    let id = app.patient_id(&token, nhs.as_str()).await;
    // Pretend borough-01 said long ago that it did not hold the patient (as if the patient
    // registered there later).
    use sqlx::Connection;
    let path = app.sqlite_path.clone().unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query("UPDATE patient_source SET local_id = NULL, seen_at = 0 WHERE source_id = 'borough-01'")
        .execute(&mut conn)
        .await
        .unwrap();
    let all = app.get(&format!("/Patient/{id}/$everything?_count=1000"), Some(&token)).await;
    assert_eq!(all.status, 200);
    assert!(
        all.matches().iter().any(|r| r["meta"]["source"] == "urn:tideway:source:borough-01"),
        "an answer older than locator_max_age_secs is asked again"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_read_by_id_whose_source_fails_says_so_instead_of_not_found() {
    let mut app = TestApp::spawn(Options { boroughs: 2, cache: false, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0, 1]);
    let id = app.patient_id(&token, nhs.as_str()).await;
    let all = app.get(&format!("/Patient/{id}/$everything?_count=1000"), Some(&token)).await;
    let key = |r: &&serde_json::Value| {
        format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap())
    };
    let matches = all.matches();
    let from = |source: &str| {
        matches
            .iter()
            .find(|r| r["resourceType"] == "Condition" && r["id"].as_str().unwrap().starts_with(source))
            .map(key)
            .expect("a Condition from that source")
    };
    let (first, second) = (from("borough-00."), from("borough-01."));
    assert_eq!(app.get(&format!("/{first}"), Some(&token)).await.status, 200);
    // The first borough's exchange goes down: its Condition cannot be read, and the answer says
    // why (a 502, never a 404 an EPR could take for a deletion); the other borough's still reads.
    app.simulators.remove(0).stop().await;
    let a = app.get(&format!("/{first}"), Some(&token)).await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert!(a.body["issue"][0]["diagnostics"].as_str().unwrap().contains("source that holds this resource"));
    assert_eq!(app.get(&format!("/{second}"), Some(&token)).await.status, 200);
    app.stop().await;
}
