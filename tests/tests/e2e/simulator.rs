//! The policy simulator over HTTP: a privacy officer asks what a role at an organisation would
//! see of a patient's record and why, and gets counts only; nothing of the record leaves, no
//! break-glass session opens, and the question is audited as the officer's.

use serde_json::Value;
use tideway_auth::PurposeOfUse;
use tideway_gateway::store::AuditLog;
use tideway_simulators::population::Scenario;
use tideway_tests::{Options, PRIVACY_OFFICE, TestApp, user};

/// The values of every parameter called `name`.
fn params<'a>(answer: &'a Value, name: &str) -> Vec<&'a Value> {
    answer["parameter"].as_array().into_iter().flatten().filter(|p| p["name"] == name).collect()
}

/// The value of part `name` of a parameter.
fn part<'a>(parameter: &'a Value, name: &str) -> &'a Value {
    let p = parameter["part"].as_array().and_then(|parts| parts.iter().find(|p| p["name"] == name));
    p.map_or(&Value::Null, |p| {
        p.as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.starts_with("value")).map(|(_, v)| v))
            .unwrap_or(&Value::Null)
    })
}

fn simulate(nhs: &str, role: &str, organisation: &str, purpose: &str) -> String {
    format!("/policy/simulate?patient={nhs}&role={role}&organisation={organisation}&purpose={purpose}")
}

#[tokio::test]
async fn the_simulator_tells_a_privacy_officer_what_a_service_would_see_and_why_in_counts_only() {
    let app = TestApp::spawn(Options::default()).await;
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    let diabetic = app.population.scenario_patients(Scenario::PodiatryDiabetic, 1)[0].as_str().to_owned();
    let hits = app.simulator_hits();

    // The podiatry service, referred this patient: its standing, its agreement, what it would
    // receive by section, and what not and why.
    let a = app.get(&simulate(&diabetic, "R8003", "YPOD1", "TREAT"), Some(&officer)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["resourceType"], "Parameters");
    assert_eq!(params(&a.body, "admitted")[0]["valueBoolean"], true);
    assert_eq!(params(&a.body, "standing")[0]["valueCode"], "care");
    assert!(params(&a.body, "agreement").iter().any(|p| p["valueString"] == "podiatry@1"), "{}", a.body);
    let released = params(&a.body, "released");
    assert!(released.iter().any(|p| part(p, "section") == "problems"), "the foot ulcer: {}", a.body);
    let withheld = params(&a.body, "withheld");
    assert!(
        withheld.iter().any(|p| part(p, "reason") == "not-included" && part(p, "agreement") == "podiatry@1"),
        "the depression, withheld under podiatry@1: {}",
        a.body
    );
    // Counts only: no code, display or id of the record is in the answer.
    let text = a.body.to_string();
    for leak in ["35489007", "371087003", "Depressive", "ulcer", "Patient/"] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    assert!(app.simulator_hits() > hits, "the simulator decides on the real record");

    // The same service, for a patient it has no referral for: refused, and it says why.
    let other = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let a = app.get(&simulate(&other, "R8003", "YPOD1", "TREAT"), Some(&officer)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(params(&a.body, "refusal")[0]["valueString"], "relationship required; break-glass available");
    // An organisation no agreement names is not admitted at all.
    let a = app.get(&simulate(&other, "R8000", "YNONE", "TREAT"), Some(&officer)).await;
    assert_eq!(params(&a.body, "admitted")[0]["valueBoolean"], false, "{}", a.body);
    // Simulating break-glass decides as break-glass would, but opens no session and raises no
    // alert.
    let a = app.get(&simulate(&other, "R8000", "YOOH1", "ETREAT"), Some(&officer)).await;
    assert_eq!(params(&a.body, "standing")[0]["valueCode"], "break-glass", "{}", a.body);
    assert!(!params(&a.body, "released").is_empty());
    let alerts = app.get("/alerts", Some(&officer)).await;
    assert_eq!(alerts.status, 200, "{}", alerts.body);
    assert_eq!(alerts.body["total"], 0, "a simulation is not an access: {}", alerts.body);

    // The officer's question is audited as theirs, about that patient, releasing nothing.
    let rows = app.state.store.audit_for_request(&a.header("x-request-id").unwrap()).await.unwrap();
    let outcome = rows.last().unwrap();
    assert_eq!(outcome.action, "policy-simulate");
    assert_eq!(outcome.organisation.as_deref(), Some(PRIVACY_OFFICE));
    assert!(outcome.patient_id.is_some());
    assert_eq!(outcome.released, 0);
    assert!(outcome.detail.contains("YOOH1"), "{}", outcome.detail);
    app.stop().await;
}

#[tokio::test]
async fn only_a_privacy_office_may_simulate_and_bad_questions_name_the_parameter() {
    let app = TestApp::spawn(Options::default()).await;
    let nhs = app.population.scenario_patients(Scenario::PodiatryDiabetic, 1)[0].as_str().to_owned();
    let path = simulate(&nhs, "R8003", "YPOD1", "TREAT");
    for who in [
        user("RJ122", "R8000", PurposeOfUse::Treat),
        user("RJ122", "R8000", PurposeOfUse::Operations),
        user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Treat),
    ] {
        let token = app.token_for(&who).await;
        let a = app.get(&path, Some(&token)).await;
        assert_eq!(a.status, 403, "{:?}: {}", who.organisation, a.body);
    }
    assert_eq!(app.get(&path, None).await.status, 401);
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    for (query, element) in [
        ("/policy/simulate?role=R8003&organisation=YPOD1&purpose=TREAT".to_owned(), "patient"),
        (simulate("1234567890", "R8003", "YPOD1", "TREAT"), "patient"),
        (simulate(&nhs, "nurse", "YPOD1", "TREAT"), "role"),
        (simulate(&nhs, "R8003", "not an ods code", "TREAT"), "organisation"),
        (simulate(&nhs, "R8003", "YPOD1", "SPY"), "purpose"),
    ] {
        let a = app.get(&query, Some(&officer)).await;
        assert_eq!(a.status, 400, "{query}: {}", a.body);
        assert_eq!(a.body["resourceType"], "OperationOutcome");
        assert_eq!(a.body["issue"][0]["expression"][0], element, "{query}: {}", a.body);
    }
    app.stop().await;
}
