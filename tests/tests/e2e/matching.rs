//! `POST /Patient/$match` over HTTP: candidates across the sources with a score and a match
//! grade, certain matches only unless asked otherwise, decided and audited as any Patient
//! search, and every kind of bad input a 400 OperationOutcome that repeats no patient data.

use reqwest::Method;
use serde_json::{Value, json};
use tideway_auth::PurposeOfUse;
use tideway_gateway::store::AuditLog as _;
use tideway_profiles::{NhsNumber, systems};
use tideway_simulators::population::Scenario;
use tideway_tests::{Answer, Options, StoreKind, TestApp, nhs_search, user};

const MATCH_GRADE: &str = "http://hl7.org/fhir/StructureDefinition/match-grade";

/// The population's patient `nhs` as a client would describe them.
fn described(app: &TestApp, nhs: &NhsNumber, with_number: bool) -> Value {
    let index = app.population.patient_index(nhs).unwrap();
    let d = app.population.record(app.population.home_borough(index), index).unwrap().demographics;
    let mut p = json!({
        "resourceType": "Patient",
        // Spelled as a clerk might type it: capitals, and the postcode without its space.
        "name": [{"family": d.family.to_uppercase(), "given": [d.given]}],
        "birthDate": d.birth_date,
        "gender": match d.gender { tideway_simulators::population::Gender::Female => "female", _ => "male" },
        "address": [{"postalCode": d.address.postcode.replace(' ', "")}]
    });
    if with_number {
        p["identifier"] = json!([{"system": systems::NHS_NUMBER, "value": nhs.as_str()}]);
    }
    p
}

fn parameters(patient: Value, extra: &[Value]) -> Value {
    let mut parameter = vec![json!({"name": "resource", "resource": patient})];
    parameter.extend(extra.iter().cloned());
    json!({"resourceType": "Parameters", "parameter": parameter})
}

async fn post_match(app: &TestApp, token: &str, body: &Value) -> Answer {
    app.send_json(Method::POST, "/Patient/$match", token, body).await
}

fn grades(a: &Answer) -> Vec<(String, String, f64)> {
    a.matches()
        .iter()
        .zip(a.body["entry"].as_array().unwrap())
        .map(|(r, e)| {
            assert_eq!(e["search"]["extension"][0]["url"], MATCH_GRADE);
            (
                r["id"].as_str().unwrap().to_owned(),
                e["search"]["extension"][0]["valueCode"].as_str().unwrap().to_owned(),
                e["search"]["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// A patient of no scenario, with no restriction and no date of death.
fn plain(app: &TestApp, skip: usize) -> NhsNumber {
    let pop = &app.population;
    (0..pop.patient_count())
        .filter(|i| Scenario::of(*i).is_none() && !pop.is_restricted(*i) && pop.date_of_death(*i).is_none())
        .filter(|i| pop.boroughs_of(*i).len() > 1)
        .nth(skip)
        .and_then(|i| pop.nhs_number(i))
        .unwrap()
}

#[tokio::test]
async fn a_patient_described_with_their_nhs_number_is_a_certain_match_audited_as_a_match() {
    let app = TestApp::spawn(Options::default()).await;
    let token = app.token().await;
    let nhs = plain(&app, 0);
    let found = post_match(&app, &token, &parameters(described(&app, &nhs, true), &[])).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!((found.body["type"].as_str(), found.body["total"].as_u64()), (Some("searchset"), Some(1)));
    let id = app.patient_id(&token, nhs.as_str()).await;
    assert_eq!(grades(&found), [(id.clone(), "certain".to_owned(), 1.0)]);
    assert_eq!(found.body["entry"][0]["fullUrl"], format!("{}/Patient/{id}", app.base_url));
    assert!(found.says_may_be_withheld());
    assert!(found.warnings().is_empty(), "the sources agree: {:?}", found.warnings());
    let rows = app.state.store.audit_for_request(&found.header("x-request-id").unwrap()).await.unwrap();
    assert!(
        rows.iter().all(|r| r.action == "patient-match"),
        "{:?}",
        rows.iter().map(|r| r.action).collect::<Vec<_>>()
    );
    assert_eq!(rows.last().unwrap().patient_id.as_deref(), Some(id.as_str()));
    assert!(!rows.last().unwrap().detail.contains(nhs.as_str()), "the audit detail names no NHS number");
    // The wrong birth date with the right number is no certain match.
    let mut wrong = described(&app, &nhs, true);
    wrong["birthDate"] = json!("1901-01-01");
    let none = post_match(&app, &token, &parameters(wrong.clone(), &[])).await;
    assert_eq!((none.status, none.body["total"].as_u64()), (200, Some(0)), "{}", none.body);
    let asked = json!({"name": "onlyCertainMatches", "valueBoolean": false});
    let still_none = post_match(&app, &token, &parameters(wrong, &[asked])).await;
    assert_eq!(
        still_none.body["total"], 0,
        "a different birth date is certainly not them: {}",
        still_none.body
    );
    app.stop().await;
}

#[tokio::test]
async fn demographics_alone_find_a_patient_the_gateway_has_never_seen_and_never_certainly() {
    for kind in [StoreKind::Sqlite, StoreKind::Postgres] {
        demographics_alone_on(kind).await;
    }
}

/// The boroughs are FHIR R4 exchanges, which search their patients by birth date, family name
/// and gender: a patient the gateway has never looked up is found, as a probable match.
async fn demographics_alone_on(kind: StoreKind) {
    let app = TestApp::spawn(Options { store: kind, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = plain(&app, 1);
    let uncertain = json!({"name": "onlyCertainMatches", "valueBoolean": false});
    let asked = parameters(described(&app, &nhs, false), &[uncertain]);
    let before = app.simulators.iter().map(|s| s.hits().patient_searches).sum::<u64>();
    let unseen = post_match(&app, &token, &asked).await;
    assert_eq!(unseen.status, 200, "{}", unseen.body);
    let searches = app.simulators.iter().map(|s| s.hits().patient_searches).sum::<u64>() - before;
    assert!(searches >= app.simulators.len() as u64, "every borough was searched ({searches} searches)");
    let id = app.patient_id(&token, nhs.as_str()).await;
    let got = grades(&unseen);
    assert_eq!(got.len(), 1, "{}", unseen.body);
    assert_eq!((got[0].0.as_str(), got[0].1.as_str()), (id.as_str(), "probable"));
    assert!(got[0].2 > 0.5 && got[0].2 < 1.0, "{got:?}");
    let said = unseen.outcome_entry().unwrap().to_string();
    assert!(
        !said.contains("cannot be searched") && !said.contains("is missing from this answer"),
        "every source searched: {said}"
    );
    // By default only certain matches come back, and without a number none is certain.
    let default = post_match(&app, &token, &parameters(described(&app, &nhs, false), &[])).await;
    assert_eq!(default.body["total"], 0, "{}", default.body);
    app.stop().await;
}

/// The GP systems' dialects cannot search by demographics: a patient they alone hold is found
/// by demographics only once the gateway has seen them, and the answer names the sources that
/// could not be searched.
#[tokio::test]
async fn a_patient_held_only_where_no_search_reaches_is_found_once_seen_and_the_gap_is_named() {
    use tideway_simulators::kinds::regional_mix;
    let app =
        TestApp::spawn(Options { boroughs: 12, patients: 10, regional: true, ..Options::default() }).await;
    let token = app.token().await;
    let searchable = |b: usize| matches!(regional_mix(b).as_str(), "fhir-r4" | "social-care");
    let pop = &app.population;
    let index = (0..pop.patient_count())
        .filter(|i| Scenario::of(*i).is_none() && !pop.is_restricted(*i) && pop.date_of_death(*i).is_none())
        .find(|i| pop.boroughs_of(*i).iter().all(|b| !searchable(*b)))
        .expect("a patient held only by GP systems");
    let nhs = pop.nhs_number(index).unwrap();
    let uncertain = json!({"name": "onlyCertainMatches", "valueBoolean": false});
    let asked = parameters(described(&app, &nhs, false), &[uncertain]);
    let unseen = post_match(&app, &token, &asked).await;
    assert_eq!((unseen.status, unseen.body["total"].as_u64()), (200, Some(0)), "{}", unseen.body);
    let said = unseen.outcome_entry().unwrap().to_string();
    for b in (0..12).filter(|b| !searchable(*b)) {
        let source = app.settings.sources[b].id.as_str();
        assert!(said.contains(&format!("'{source}'")), "{source} is named as not searchable: {said}");
    }
    assert!(said.contains("cannot be searched by demographics"), "{said}");
    let id = app.patient_id(&token, nhs.as_str()).await;
    let seen = post_match(&app, &token, &asked).await;
    let got = grades(&seen);
    assert_eq!(got.len(), 1, "{}", seen.body);
    assert_eq!((got[0].0.as_str(), got[0].1.as_str()), (id.as_str(), "probable"));
    app.stop().await;
}

#[tokio::test]
async fn match_is_decided_as_a_patient_search_for_whoever_asks() {
    let app = TestApp::spawn(Options::default()).await;
    let nhs = plain(&app, 2);
    let body = parameters(described(&app, &nhs, true), &[]);
    // A service that must show a relationship finds no one it has none with, rather than a
    // refusal that would tell it the patient exists.
    let podiatrist = app.token_for(&user("YPOD1", "R8003", PurposeOfUse::Treat)).await;
    let none = post_match(&app, &podiatrist, &body).await;
    assert_eq!((none.status, none.body["total"].as_u64()), (200, Some(0)), "{}", none.body);
    let nobody = app.token_for(&user("Y9999", "R8000", PurposeOfUse::Treat)).await;
    let refused = post_match(&app, &nobody, &body).await;
    assert_eq!((refused.status, refused.issue_code()), (403, "forbidden"), "{}", refused.body);
    let glass = app.token_for(&user("YOOH1", "R8000", PurposeOfUse::EmergencyTreat)).await;
    let glass_refused = post_match(&app, &glass, &body).await;
    assert_eq!(glass_refused.status, 403, "{}", glass_refused.body);
    // A restricted patient is matched, without whereabouts, and the score does not depend on
    // their postcode.
    let token = app.token().await;
    let restricted = app.population.restricted_patients(1).remove(0);
    let right = described(&app, &restricted, true);
    let mut elsewhere = right.clone();
    elsewhere["address"] = json!([{"postalCode": "ZZ99 9ZZ"}]);
    let a = post_match(&app, &token, &parameters(right, &[])).await;
    let b = post_match(&app, &token, &parameters(elsewhere, &[])).await;
    assert_eq!(grades(&a), grades(&b), "{} / {}", a.body, b.body);
    assert_eq!(grades(&a).len(), 1);
    assert!(a.matches()[0].get("address").is_none(), "{}", a.body);
    assert_eq!(a.matches()[0]["meta"]["security"][0]["code"], "R");
    let caps = app.get("/metadata", None).await;
    let ops = caps.body["rest"][0]["resource"][0]["operation"].to_string();
    assert!(ops.contains("Patient-match"), "{ops}");
    app.stop().await;
}

#[tokio::test]
async fn bad_match_requests_are_400_outcomes_that_repeat_no_patient_data() {
    let app = TestApp::spawn(Options::default()).await;
    let token = app.token().await;
    let nhs = plain(&app, 0);
    let good = described(&app, &nhs, true);
    let mut bad_number = good.clone();
    bad_number["identifier"][0]["value"] = json!("9434765918");
    let count = |n: i64| json!({"name": "count", "valueInteger": n});
    let cases = [
        ("not Parameters", json!({"resourceType": "Patient"})),
        ("no resource", json!({"resourceType": "Parameters", "parameter": [count(1)]})),
        (
            "not a Patient",
            json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": {"resourceType": "Practitioner"}}]}),
        ),
        ("bad NHS number", parameters(bad_number, &[])),
        ("count 0", parameters(good.clone(), &[count(0)])),
        ("count 21", parameters(good.clone(), &[count(21)])),
        (
            "unknown parameter",
            parameters(good.clone(), &[json!({"name": "onlySingleMatch", "valueBoolean": true})]),
        ),
        ("too little", parameters(json!({"resourceType": "Patient", "gender": "female"}), &[])),
    ];
    for (what, body) in cases {
        let a = post_match(&app, &token, &body).await;
        assert_eq!(a.status, 400, "{what}: {}", a.body);
        assert_eq!(a.body["resourceType"], "OperationOutcome", "{what}");
        let text = a.body.to_string();
        assert!(!text.contains("9434765918") && !text.contains(nhs.as_str()), "{what}: {text}");
    }
    let not_json = app.post_text("/Patient/$match", Some(&token), "resource=x").await;
    assert_eq!(not_json.status, 415, "{}", not_json.body);
    let get = app.get("/Patient/$match", Some(&token)).await;
    assert_eq!(get.status, 405, "{}", get.body);
    // A plain NHS-number search still works beside it.
    assert_eq!(app.get(&nhs_search(nhs.as_str()), Some(&token)).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn sources_that_disagree_on_a_candidate_are_flagged_by_field_never_by_value() {
    let app = TestApp::spawn(Options::default()).await;
    let token = app.token().await;
    let nhs = app.population.conflicting_patients(1).remove(0);
    let index = app.population.patient_index(&nhs).unwrap();
    let (current, old) =
        (app.population.person(index).unwrap().family, app.population.outdated_family_name(index).unwrap());
    let found = post_match(&app, &token, &parameters(described(&app, &nhs, true), &[])).await;
    assert_eq!(found.status, 200, "{}", found.body);
    let id = app.patient_id(&token, nhs.as_str()).await;
    assert_eq!(grades(&found), [(id.clone(), "certain".to_owned(), 1.0)], "one source agrees on every field");
    let warnings = found.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let said = warnings[0]["diagnostics"].as_str().unwrap();
    assert_eq!(warnings[0]["severity"], "warning");
    assert!(said.contains(&format!("Patient/{id}")) && said.contains("disagree on: family;"), "{said}");
    for name in [current, old] {
        assert!(!said.to_lowercase().contains(&name.to_lowercase()), "a name in the warning: {said}");
    }
    app.stop().await;
}

/// Repeated `$match` searches by one user beyond `[alerts] match_searches` raise a match-trawl
/// alert for the privacy officer, and with `rate_limit` the user's further searches get 429.
#[tokio::test]
async fn match_trawling_is_alerted_and_paused() {
    use tideway_gateway::config::AlertSettings;
    let alerts = AlertSettings { match_searches: 2, rate_limit: true, ..AlertSettings::default() };
    let app = TestApp::spawn(Options { alerts, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].clone();
    let body = parameters(described(&app, &nhs, true), &[]);
    for _ in 0..2 {
        assert_eq!(post_match(&app, &token, &body).await.status, 200);
    }
    let trawling = post_match(&app, &token, &body).await;
    assert_eq!((trawling.status, trawling.issue_code()), (429, "throttled"), "{}", trawling.body);
    let officer =
        app.token_for(&user(tideway_tests::PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    let listed = app.get("/alerts", Some(&officer)).await;
    let trawl: Vec<_> = listed
        .matches()
        .into_iter()
        .filter(|c| c["category"][0]["coding"][0]["code"] == "match-trawl")
        .collect();
    assert_eq!(trawl.len(), 1, "{}", listed.body);
    app.stop().await;
}

/// What `$match` releases is overseen as any read: an organisation's first access to a
/// candidate's record notifies the patient's registered practice.
#[tokio::test]
async fn a_first_access_through_match_notifies_the_practice() {
    let app = TestApp::spawn(Options::default()).await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].clone();
    let practice = app.token_for(&user(&app.practice_of(&nhs), "R8000", PurposeOfUse::Treat)).await;
    // Another hospital's search is the first access; the match is this hospital's.
    let other = app.token_for(&tideway_tests::other_clinician()).await;
    let id = app.patient_id(&other, nhs.as_str()).await;
    let path = format!("/notifications?patient={id}");
    assert_eq!(app.get(&path, Some(&practice)).await.body["total"], 1);
    let hospital = app.token().await;
    let found = post_match(&app, &hospital, &parameters(described(&app, &nhs, true), &[])).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(found.matches().iter().any(|p| p["id"] == id.as_str()), "{}", found.body);
    let listed = app.get(&path, Some(&practice)).await;
    let senders: Vec<&Value> = listed.matches().iter().map(|n| &n["sender"]["identifier"]["value"]).collect();
    assert_eq!(senders, ["RKE", "RJ122"], "the hospital's first access, through $match: {}", listed.body);
    app.stop().await;
}

/// Two patients of the population of no scenario, unrestricted and alive, born on one day.
fn born_the_same_day(app: &TestApp) -> (NhsNumber, NhsNumber) {
    let pop = &app.population;
    let mut first_born = std::collections::HashMap::new();
    (0..pop.patient_count())
        .filter(|i| Scenario::of(*i).is_none() && !pop.is_restricted(*i) && pop.date_of_death(*i).is_none())
        .find_map(|i| {
            let born = pop.record(pop.home_borough(i), i)?.demographics.birth_date;
            let earlier = *first_born.entry(born).or_insert(i);
            (earlier != i).then(|| Some((pop.nhs_number(earlier)?, pop.nhs_number(i)?))).flatten()
        })
        .expect("the test population has two plain patients born on one day")
}

#[tokio::test]
async fn a_demographic_match_is_in_the_access_history_of_the_patient_it_returned_and_no_other() {
    // Enough patients that two share a birthday.
    let app = TestApp::spawn(Options { boroughs: 2, patients: 300, ..Options::default() }).await;
    let token = app.token().await;
    let (returned, considered) = born_the_same_day(&app);
    let returned_id = app.patient_id(&token, returned.as_str()).await;
    let considered_id = app.patient_id(&token, considered.as_str()).await;
    // Both are candidates by birth date; only the one whose name is given is returned.
    let uncertain = json!({"name": "onlyCertainMatches", "valueBoolean": false});
    let found = post_match(&app, &token, &parameters(described(&app, &returned, false), &[uncertain])).await;
    assert_eq!(found.status, 200, "{}", found.body);
    let got: Vec<String> = grades(&found).into_iter().map(|(id, ..)| id).collect();
    assert_eq!(got, std::slice::from_ref(&returned_id), "{}", found.body);
    let request = found.header("x-request-id").unwrap();

    let officer =
        app.token_for(&user(tideway_tests::PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    let matched_in = |history: &Answer| {
        history
            .resources()
            .into_iter()
            .filter(|e| e["resourceType"] == "AuditEvent")
            .filter(|e| e["entity"][0]["what"]["identifier"]["value"] == request.as_str())
            .count()
    };
    let history = app.get(&format!("/AuditEvent?patient={returned_id}"), Some(&officer)).await;
    assert_eq!(history.status, 200, "{}", history.body);
    assert_eq!(matched_in(&history), 1, "the match that returned them: {}", history.body);
    let other = app.get(&format!("/AuditEvent?patient={considered_id}"), Some(&officer)).await;
    assert_eq!(other.status, 200, "{}", other.body);
    assert_eq!(matched_in(&other), 0, "a patient considered but not returned was not disclosed");

    // The request's own records: intent, one disclosure per patient returned, then outcome.
    let rows = app.state.store.audit_for_request(&request).await.unwrap();
    let phases: Vec<&str> = rows.iter().map(|r| r.phase.as_str()).collect();
    assert_eq!(phases, ["intent", "disclosure", "outcome"]);
    assert_eq!(rows[1].patient_id.as_deref(), Some(returned_id.as_str()));
    assert_eq!((rows[1].released, rows[2].released), (1, 1));
    assert_eq!(rows[2].patient_id, None, "the request itself names no one patient");
    app.stop().await;
}
