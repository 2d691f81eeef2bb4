//! Patient identity over HTTP: restricted (S-flagged) patients' whereabouts and registered
//! practice never leave the gateway, whoever asks, when any one source flags them; deceased
//! patients are marked and the answer says so.

use serde_json::Value;
use tideway_auth::PurposeOfUse;
use tideway_profiles::NhsNumber;
use tideway_tests::{Answer, Options, PRIVACY_OFFICE, TestApp, nhs_search, user};

use crate::relationship::audit_detail;

const RESTRICTED: &str = "This patient's record is restricted";
const DECEASED: &str = "The patient is recorded as deceased";

/// The outcome entry's issue whose diagnostics begin with `start`, if any.
fn issue<'a>(a: &'a Answer, start: &str) -> Option<&'a Value> {
    a.outcome_entry()?
        .get("issue")?
        .as_array()?
        .iter()
        .find(|i| i["diagnostics"].as_str().is_some_and(|d| d.starts_with(start)))
}

/// What the population holds about where the patient is and who their practice is.
struct Whereabouts {
    postcode: String,
    street: String,
    practice_ods: String,
    practice_name: String,
}

fn whereabouts(app: &TestApp, nhs: &NhsNumber) -> Whereabouts {
    let index = app.population.patient_index(nhs).unwrap();
    let home = app.population.home_borough(index);
    let d = app.population.record(home, index).unwrap().demographics;
    Whereabouts {
        postcode: d.address.postcode,
        street: d.address.line,
        practice_ods: d.practice.ods_code,
        practice_name: d.practice.name,
    }
}

/// Checks one answer carries nothing of the patient's whereabouts or practice.
fn assert_nothing_of(w: &Whereabouts, what: &str, a: &Answer) {
    assert_eq!(a.status, 200, "{what}: {}", a.body);
    let text = a.body.to_string();
    for (name, secret) in [("postcode", &w.postcode), ("street", &w.street), ("practice", &w.practice_name)] {
        assert!(!text.contains(secret.as_str()), "{what}: the {name} left the gateway: {text}");
    }
    let patients: Vec<&Value> = if a.body["resourceType"] == "Patient" {
        vec![&a.body]
    } else {
        a.resources().into_iter().filter(|r| r["resourceType"] == "Patient").collect()
    };
    assert!(!patients.is_empty(), "{what}: the patient is answered");
    for p in patients {
        for gone in ["address", "telecom", "generalPractitioner", "managingOrganization"] {
            assert!(p.get(gone).is_none(), "{what}: Patient.{gone} left: {p}");
        }
        assert_eq!(p["meta"]["security"][0]["code"], "R", "{what}: labelled restricted: {p}");
        assert!(p.get("name").is_some() && p.get("birthDate").is_some(), "{what}: who they are stays");
    }
    let practice = a
        .resources()
        .into_iter()
        .any(|r| r["resourceType"] == "Organization" && r.to_string().contains(w.practice_ods.as_str()));
    assert!(!practice, "{what}: the practice's Organization left");
}

#[tokio::test]
async fn a_patient_restricted_at_one_source_has_no_whereabouts_or_practice_in_any_answer_to_anyone() {
    let app = TestApp::spawn(Options::default()).await;
    let nhs = app.population.restricted_patients(1).remove(0);
    let index = app.population.patient_index(&nhs).unwrap();
    // Only the second borough holding the patient flags them; the home borough (whose Patient
    // represents them) does not.
    assert_eq!(app.population.boroughs_of(index).len(), 2, "fixture: held twice");
    assert_ne!(app.population.flagged_by(index), Some(app.population.home_borough(index)));
    let w = whereabouts(&app, &nhs);
    let hospital = app.token().await;
    let practice = app.token_for(&user("F80001", "R8000", PurposeOfUse::Treat)).await;
    let glass = app.token_for(&user("YOOH1", "R8000", PurposeOfUse::EmergencyTreat)).await;
    let id = app.patient_id(&hospital, nhs.as_str()).await;
    for (who, token) in [("hospital", &hospital), ("a GP practice", &practice), ("break-glass", &glass)] {
        let found = app.get(&nhs_search(nhs.as_str()), Some(token)).await;
        assert_nothing_of(&w, &format!("{who}: search"), &found);
        let said = issue(&found, RESTRICTED).unwrap_or_else(|| panic!("{who}: says so: {}", found.body));
        assert_eq!(
            (said["severity"].as_str(), said["code"].as_str()),
            (Some("information"), Some("suppressed"))
        );
        assert!(found.says_may_be_withheld(), "{who}: and the usual notice stays");
        assert_nothing_of(
            &w,
            &format!("{who}: read"),
            &app.get(&format!("/Patient/{id}"), Some(token)).await,
        );
        let all = app.get(&format!("/Patient/{id}/$everything"), Some(token)).await;
        assert_nothing_of(&w, &format!("{who}: $everything"), &all);
        assert!(issue(&all, RESTRICTED).is_some(), "{who}: $everything says so");
        assert!(all.matches().iter().any(|r| r["resourceType"] == "Condition"), "{who}: the record flows");
        let detail = audit_detail(&app, &all).await;
        assert!(detail["withheld"]["restricted"].as_u64().unwrap_or(0) >= 1, "{who}: audited: {detail}");
    }
    // The privacy officer's simulator counts what the restriction withholds, and shows nothing.
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    let query =
        format!("/policy/simulate?patient={}&role=R8000&organisation=RJ122&purpose=TREAT", nhs.as_str());
    let simulated = app.get(&query, Some(&officer)).await;
    assert_eq!(simulated.status, 200, "{}", simulated.body);
    let text = simulated.body.to_string();
    assert!(text.contains("\"valueCode\":\"restricted\""), "{text}");
    assert!(!text.contains(w.postcode.as_str()) && !text.contains(w.practice_name.as_str()));
    // Page by page, too.
    let mut next = Some(format!("/Patient/{id}/$everything?_count=2"));
    let mut pages = 0;
    while let Some(link) = next {
        let page = app.get(&link, Some(&hospital)).await;
        let text = page.body.to_string();
        assert!(
            !text.contains(w.postcode.as_str()) && !text.contains(w.practice_name.as_str()),
            "page {pages}"
        );
        assert!(issue(&page, RESTRICTED).is_some(), "every page says so");
        next = page.next_link();
        pages += 1;
    }
    assert!(pages > 2, "several pages");
    // An unflagged patient's whereabouts flow as before.
    let plain = app.population.nhs_number(index + 1).unwrap();
    let plain_w = whereabouts(&app, &plain);
    let found = app.get(&nhs_search(plain.as_str()), Some(&hospital)).await;
    assert_eq!(found.matches()[0]["address"][0]["postalCode"], plain_w.postcode.as_str());
    assert!(issue(&found, RESTRICTED).is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_patient_recorded_as_deceased_anywhere_is_answered_as_deceased_with_a_notice() {
    let app = TestApp::spawn(Options::default()).await;
    let nhs = app.population.deceased_patients(1).remove(0);
    let index = app.population.patient_index(&nhs).unwrap();
    let died = app.population.date_of_death(index).unwrap();
    let token = app.token().await;
    let found = app.get(&nhs_search(nhs.as_str()), Some(&token)).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.matches()[0]["deceasedDateTime"], died.as_str());
    let said = issue(&found, DECEASED).unwrap_or_else(|| panic!("says so: {}", found.body));
    assert_eq!(
        (said["severity"].as_str(), said["code"].as_str()),
        (Some("information"), Some("informational"))
    );
    let id = found.matches()[0]["id"].as_str().unwrap().to_owned();
    let read = app.get(&format!("/Patient/{id}"), Some(&token)).await;
    assert_eq!(read.body["deceasedDateTime"], died.as_str());
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;
    let patient = all.matches().into_iter().find(|r| r["resourceType"] == "Patient").cloned().unwrap();
    assert_eq!(patient["deceasedDateTime"], died.as_str());
    assert!(issue(&all, DECEASED).is_some(), "{}", all.body);
    // The living are not marked.
    let living = app.population.nhs_number(index - 1).unwrap();
    let alive = app.get(&nhs_search(living.as_str()), Some(&token)).await;
    assert!(alive.matches()[0].get("deceasedDateTime").is_none());
    assert!(issue(&alive, DECEASED).is_none());
    app.stop().await;
}

#[tokio::test]
async fn the_gp_systems_flags_reach_the_gateway_from_their_own_formats() {
    // Boroughs 0, 1, 2 run SystmOne, EMIS and Vision: the restricted patient is flagged by the
    // Vision practice only, the deceased one by the SystmOne practice only.
    let app = TestApp::spawn(Options { regional: true, ..Options::default() }).await;
    let token = app.token().await;
    let restricted = app.population.restricted_patients(1).remove(0);
    let w = whereabouts(&app, &restricted);
    let id = app.patient_id(&token, restricted.as_str()).await;
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;
    assert_nothing_of(&w, "regional $everything", &all);
    assert!(issue(&all, RESTRICTED).is_some());
    let deceased = app.population.deceased_patients(1).remove(0);
    let died = app.population.date_of_death(app.population.patient_index(&deceased).unwrap()).unwrap();
    let found = app.get(&nhs_search(deceased.as_str()), Some(&token)).await;
    assert_eq!(found.matches()[0]["deceasedDateTime"], died.as_str(), "{}", found.body);
    app.stop().await;
}
