//! Every source system through the real gateway: boroughs running the regional mix (SystmOne,
//! EMIS, Vision, GP Connect, FHIR R4, social care), their records assembled into one answer,
//! every body collected for the independent validator.

use std::collections::BTreeSet;

use serde_json::Value;
use tideway_simulators::kinds::regional_mix;
use tideway_tests::{Options, TestApp};

/// Twelve boroughs of ten patients: every kind of the mix runs at least once.
fn mix() -> Options {
    Options { boroughs: 12, patients: 10, regional: true, ..Options::default() }
}

/// `$everything`, every page, as one list of entries (the outcome entries included).
async fn everything(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let mut url = format!("/Patient/{id}/$everything");
    let mut out = Vec::new();
    for _ in 0..50 {
        let page = app.get(&url, Some(token)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        out.extend(page.body["entry"].as_array().cloned().unwrap_or_default());
        let next = page.body["link"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["relation"] == "next"))
            .and_then(|l| l["url"].as_str())
            .map(str::to_owned);
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    out
}

fn kind_of_source(source: &str) -> Option<&'static str> {
    let borough: usize = source.strip_prefix("urn:tideway:source:borough-")?.parse().ok()?;
    Some(regional_mix(borough).as_str())
}

#[tokio::test]
async fn a_record_held_by_three_systems_comes_back_as_one_answer_from_all_three() {
    let app = TestApp::spawn(mix()).await;
    let token = app.token().await;
    let kinds: BTreeSet<&str> = (0..12).map(|i| regional_mix(i).as_str()).collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    // Patients 0, 10, 20... are held by their home borough and the two after it.
    for index in [0, 10, 30, 40] {
        let nhs = app.population.nhs_number(index).unwrap();
        let id = app.patient_id(&token, nhs.as_str()).await;
        let entries = everything(&app, &token, &id).await;
        let seen: BTreeSet<&str> = entries
            .iter()
            .filter_map(|e| e["resource"]["meta"]["source"].as_str())
            .filter_map(kind_of_source)
            .collect();
        let held: BTreeSet<&str> =
            app.population.boroughs_of(index).into_iter().map(|b| regional_mix(b).as_str()).collect();
        assert!(held.len() >= 3, "patient {index}: {held:?}");
        // Social care holds only some of a borough's residents; every GP system holds them all.
        for kind in held.iter().filter(|k| **k != "social-care") {
            assert!(seen.contains(kind), "patient {index}: {kind} missing from {seen:?}");
        }
        let outcome: Vec<&Value> = entries.iter().filter(|e| e["search"]["mode"] == "outcome").collect();
        let text = outcome.iter().map(|e| e.to_string()).collect::<String>();
        assert!(!text.contains("is missing from this answer"), "every source answered: {text}");
        assert!(!text.contains("not valid FHIR R4"), "nothing rejected: {text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_gp_connect_warning_reaches_the_clinician_with_the_record() {
    let app = TestApp::spawn(mix()).await;
    let token = app.token().await;
    let gpc = (0..12).find(|i| regional_mix(*i).as_str() == "gp-connect").unwrap();
    // The GP Connect simulator marks every List of patients whose index ends in 2 as still in
    // transit from a previous practice.
    let index = (gpc * 10..gpc * 10 + 10).find(|i| i % 10 == 2).unwrap();
    let nhs = app.population.nhs_number(index).unwrap();
    let id = app.patient_id(&token, nhs.as_str()).await;
    let entries = everything(&app, &token, &id).await;
    let outcome = entries.iter().find(|e| e["search"]["mode"] == "outcome").expect("an outcome");
    let text = outcome.to_string();
    assert!(text.contains(&format!("source 'borough-{gpc:02}' warns")), "{text}");
    assert!(text.contains("data-in-transit") && text.contains("still being transferred"), "{text}");
    let lists = entries.iter().filter(|e| e["resource"]["resourceType"] == "List").count();
    assert!(lists > 0, "the section Lists come with the record");
    app.stop().await;
}

/// Sensitive entries recorded in a system's own codes are withheld through the gateway as their
/// SNOMED CT twins are: the out-of-hours GP caring for a patient whose home practice runs EMIS
/// (or Vision) gets the record without the HIV, chlamydia, gender reassignment, termination or
/// IVF entries, however each system coded them.
#[tokio::test]
async fn sensitive_entries_in_every_dialect_are_withheld_from_the_out_of_hours_gp() {
    use tideway_auth::PurposeOfUse;
    use tideway_simulators::population::Scenario;
    let app = TestApp::spawn(mix()).await;
    let ooh = app.token_for(&tideway_tests::user("YOOH1", "R8000", PurposeOfUse::Treat)).await;
    let sensitive = ["86406008", "105629000", "407377005", "10383002", "52637005", "43C3."];
    let mut checked = BTreeSet::new();
    for home in 0..12 {
        let kind = regional_mix(home).as_str();
        if kind == "social-care" || checked.contains(kind) {
            continue;
        }
        let Some(index) = (home * 10..home * 10 + 10).find(|i| Scenario::of(*i) == Some(Scenario::Sensitive))
        else {
            continue;
        };
        let nhs = app.population.nhs_number(index).unwrap();
        let found = app.get(&tideway_tests::nhs_search(nhs.as_str()), Some(&ooh)).await;
        assert_eq!(found.status, 200, "{kind}: {}", found.body);
        let id = found.matches()[0]["id"].as_str().unwrap().to_owned();
        let entries = everything(&app, &ooh, &id).await;
        let from_home: Vec<&Value> = entries
            .iter()
            .filter(|e| e["resource"]["meta"]["source"] == format!("urn:tideway:source:borough-{home:02}"))
            .collect();
        assert!(from_home.len() > 1, "{kind}: the home practice's record is shared");
        for e in &entries {
            let text = e["resource"].to_string();
            for code in sensitive {
                assert!(
                    !text.contains(&format!("\"code\":\"{code}\"")),
                    "{kind}: {code} reached the out-of-hours GP"
                );
            }
        }
        checked.insert(kind);
    }
    assert!(
        checked.is_superset(&["systmone", "emis", "vision", "gp-connect"].into_iter().collect()),
        "{checked:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_full_url_of_a_type_search_over_every_system_reads_back() {
    let app = TestApp::spawn(mix()).await;
    let token = app.token().await;
    let mut map_provenance = 0;
    for index in [0, 10, 30, 40] {
        let nhs = app.population.nhs_number(index).unwrap();
        let id = app.patient_id(&token, nhs.as_str()).await;
        for ty in ["Condition", "MedicationRequest", "Observation"] {
            let a = app.get(&format!("/{ty}?patient={id}&_count=1000"), Some(&token)).await;
            assert_eq!(a.status, 200, "{}", a.body);
            for e in
                a.body["entry"].as_array().into_iter().flatten().filter(|e| e["search"]["mode"] != "outcome")
            {
                let path = e["fullUrl"].as_str().unwrap().strip_prefix(&app.base_url).unwrap().to_owned();
                let read = app.get(&path, Some(&token)).await;
                assert_eq!(read.status, 200, "{path}: {}", read.body);
                assert_eq!(read.body, e["resource"], "{path}");
                // A terminology-map Provenance made for this narrower question names only its
                // matches, and still reads back.
                if e["resource"]["policy"].to_string().contains("terminology") {
                    map_provenance += 1;
                }
            }
        }
    }
    assert!(map_provenance > 0, "the legacy-coded systems' entries carry a map Provenance");
    app.stop().await;
}
