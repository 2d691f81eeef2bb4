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
        assert!(!text.contains("they were withheld"), "nothing rejected: {text}");
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

/// The first patient of borough `borough`'s own practices (held there, at home).
fn home_patient(app: &TestApp, borough: usize, wanted: impl Fn(usize) -> bool) -> usize {
    let per = app.population.patients_per_borough();
    (borough * per..borough * per + per).find(|i| wanted(*i)).expect("a patient")
}

fn by_reference(entries: &[Value]) -> std::collections::HashMap<String, &Value> {
    entries
        .iter()
        .filter(|e| e["search"]["mode"] != "outcome")
        .filter_map(|e| {
            let r = &e["resource"];
            Some((format!("{}/{}", r["resourceType"].as_str()?, r["id"].as_str()?), r))
        })
        .collect()
}

/// A GP practice answering over GP Connect sends its investigations as reports: the clinician
/// gets each laboratory report with its specimen and every result it names, all in R4, found
/// again by a DiagnosticReport search and by the laboratory category in R4's own code system.
#[tokio::test]
async fn a_gp_connect_practices_test_results_arrive_as_reports_with_their_specimen_and_results() {
    let app = TestApp::spawn(mix()).await;
    let token = app.token().await;
    let gpc = (0..12).find(|i| regional_mix(*i).as_str() == "gp-connect").unwrap();
    let source = format!("urn:tideway:source:borough-{gpc:02}");
    // Every record's first observation is taken with a sample, so every patient has a report.
    let index = home_patient(&app, gpc, |_| true);
    let record = app.population.record(gpc, index).unwrap();
    let expected = tideway_simulators::gp_connect::render::investigation_reports(&record);
    assert!(!expected.is_empty());
    let nhs = app.population.nhs_number(index).unwrap();
    let id = app.patient_id(&token, nhs.as_str()).await;
    let entries = everything(&app, &token, &id).await;
    let found = by_reference(&entries);
    let reports: Vec<&&Value> = found
        .values()
        .filter(|r| r["resourceType"] == "DiagnosticReport" && r["meta"]["source"] == source.as_str())
        .collect();
    assert_eq!(reports.len(), expected.len(), "one report per consultation with samples taken");
    let mut results = 0;
    for report in &reports {
        assert_eq!(report["status"], "final");
        assert_eq!(report["subject"]["reference"], format!("Patient/{id}"));
        assert_eq!(
            report["category"][0]["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/v2-0074"
        );
        for specimen in report["specimen"].as_array().unwrap() {
            let s =
                found.get(specimen["reference"].as_str().unwrap()).expect("the specimen is in the answer");
            assert_eq!(s["resourceType"], "Specimen");
            assert_eq!(s["type"]["coding"][0]["code"], "119297000");
        }
        for result in report["result"].as_array().unwrap() {
            let o = found.get(result["reference"].as_str().unwrap()).expect("every result is in the answer");
            assert_eq!(o["resourceType"], "Observation");
            assert_eq!(o["specimen"], report["specimen"][0], "the result names the report's specimen");
            assert_eq!(
                o["category"][0]["coding"][0]["system"],
                "http://terminology.hl7.org/CodeSystem/observation-category"
            );
            assert!(o["valueQuantity"]["value"].is_number());
            results += 1;
        }
    }
    assert_eq!(results, expected.iter().map(|r| r.results.len()).sum::<usize>());
    let searched = app
        .get(&format!("/DiagnosticReport?patient={id}&_include=DiagnosticReport:result"), Some(&token))
        .await;
    assert_eq!(searched.status, 200, "{}", searched.body);
    let hits: Vec<&Value> = searched.body["entry"].as_array().unwrap().iter().collect();
    let matched = hits
        .iter()
        .filter(|e| e["search"]["mode"] == "match" && e["resource"]["meta"]["source"] == source.as_str())
        .count();
    let included = hits
        .iter()
        .filter(|e| e["search"]["mode"] == "include" && e["resource"]["resourceType"] == "Observation")
        .count();
    assert_eq!(matched, expected.len());
    assert!(included >= results, "each report's results come with it: {included} < {results}");
    let lab = app
        .get(
            &format!("/Observation?patient={id}&category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),
            Some(&token),
        )
        .await;
    assert_eq!(lab.status, 200, "{}", lab.body);
    let lab_here = lab.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["meta"]["source"] == source.as_str())
        .count();
    assert_eq!(lab_here, results);
    app.stop().await;
}

/// A GP Connect provider is told which clinician asked, at which organisation and in which
/// role, as GP Connect requires of a consumer, so the practice's own audit shows who looked; the
/// gateway is the device and the ASID it asks from.
#[tokio::test]
async fn a_gp_connect_practice_is_told_which_clinician_asked() {
    let app = TestApp::spawn(mix()).await;
    let gpc = (0..12).find(|i| regional_mix(*i).as_str() == "gp-connect").unwrap();
    let index = home_patient(&app, gpc, |_| true);
    let nhs = app.population.nhs_number(index).unwrap();
    let clinician = tideway_tests::clinician();
    let token = app.token().await;
    let id = app.patient_id(&token, nhs.as_str()).await;
    assert_eq!(app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await.status, 200);
    let readers = app.get(&format!("{}_readers", app.simulators[gpc].base_url()), None).await;
    assert_eq!(readers.status, 200, "{}", readers.body);
    let records: Vec<&Value> = readers
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["interaction"] == tideway_adapters::gp_connect::client::GET_STRUCTURED_RECORD)
        .collect();
    assert!(!records.is_empty(), "{}", readers.body);
    for r in &records {
        assert_eq!(r["user"], clinician.user_id.as_str(), "{r}");
        assert_eq!(r["organisation"], clinician.organisation.as_str(), "{r}");
        assert_eq!(r["device"], "tideway-gateway");
        assert_eq!(r["from"], tideway_adapters::gp_connect::client::DEFAULT_GATEWAY_ASID);
    }
    app.stop().await;
}

/// A patient registered in turn with practices on SystmOne, EMIS and Vision has the same
/// long-term problem and allergies in all three records (carried by GP2GP), each system adding
/// its own codes beside the SNOMED CT one: the clinician reads each once, with every system's
/// code on it and a Provenance naming all three copies.
#[tokio::test]
async fn the_same_problem_from_three_gp_systems_is_shown_once_with_every_code_and_origin() {
    let app = TestApp::spawn(mix()).await;
    let token = app.token().await;
    let gp = ["systmone", "emis", "vision"];
    // Patients 0, 10, 20... are held by their home borough and the two after it.
    let index = (0..12)
        .map(|b| b * 10)
        .find(|i| {
            let kinds: BTreeSet<&str> =
                app.population.boroughs_of(*i).into_iter().map(|b| regional_mix(b).as_str()).collect();
            kinds.len() == 3 && kinds.iter().all(|k| gp.contains(k))
        })
        .expect("a patient held by the three GP systems");
    let home = app.population.record(app.population.home_borough(index), index).unwrap();
    let carried = home.problems.iter().find(|p| p.id.ends_with("-carried")).expect("a carried problem");
    let nhs = app.population.nhs_number(index).unwrap();
    let id = app.patient_id(&token, nhs.as_str()).await;
    let entries = everything(&app, &token, &id).await;
    let resources: Vec<&Value> = entries.iter().map(|e| &e["resource"]).collect();
    let provenance_of = |r: &Value| {
        let target = format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap());
        resources
            .iter()
            .find(|p| {
                p["resourceType"] == "Provenance"
                    && p["target"][0]["reference"] == target.as_str()
                    && p["activity"]["text"].as_str().is_some_and(|t| t.starts_with("merged"))
            })
            .map(|p| p["entity"].as_array().unwrap().len())
    };
    let problems: Vec<&&Value> = resources
        .iter()
        .filter(|r| r["resourceType"] == "Condition" && r["id"].as_str().unwrap().ends_with("-carried"))
        .collect();
    assert_eq!(problems.len(), 1, "the carried problem once: {problems:?}");
    let problem = problems[0];
    let codes: BTreeSet<(&str, &str)> = problem["code"]["coding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["system"].as_str().unwrap(), c["code"].as_str().unwrap()))
        .collect();
    assert!(codes.contains(&("http://snomed.info/sct", carried.snomed.code)), "{codes:?}");
    // EMIS sends its code id beside the SNOMED CT code; it is on the entry shown, marked.
    let emis_id = tideway_simulators::gp_codes::clinical_code(carried.snomed.code).map(|c| c.emis_code_id);
    if let Some(emis_id) = emis_id {
        let coding = problem["code"]["coding"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["code"] == emis_id)
            .expect("the EMIS code id is kept");
        assert_eq!(
            coding["extension"][0]["url"],
            "https://fhir.tideway.london/StructureDefinition/coding-reported-by"
        );
    }
    assert_eq!(provenance_of(problem), Some(3), "every copy is named: {problem}");
    // Allergies are recorded alike everywhere the patient is held: each once, all three named.
    let allergies: Vec<&&Value> =
        resources.iter().filter(|r| r["resourceType"] == "AllergyIntolerance").collect();
    assert_eq!(allergies.len(), home.allergies.len());
    for a in allergies {
        assert_eq!(provenance_of(a), Some(3), "{a}");
    }
    app.stop().await;
}

/// Bad input from one system never costs the clinician the others: an EMIS exchange failing, a
/// GP Connect provider answering with a broken body and a Vision practice mixing another
/// patient's rows into the record still leave every other source's entries in the answer, and
/// the outcome says which source is missing or what was withheld.
#[tokio::test]
async fn a_failing_or_misbehaving_gp_system_leaves_the_others_answering() {
    use tideway_simulators::faults::FaultConfig;
    let fail = FaultConfig { fail_rate: 1.0, ..FaultConfig::default() };
    let stray = FaultConfig { wrong_patient_rate: 1.0, ..FaultConfig::default() };
    let broken = FaultConfig { malformed_rate: 1.0, ..FaultConfig::default() };
    let app = TestApp::spawn(Options { faults: vec![(1, fail), (2, stray), (5, broken)], ..mix() }).await;
    assert_eq!(
        [1, 2, 5].map(|b| regional_mix(b).as_str()),
        ["emis", "vision", "gp-connect"],
        "the boroughs this test breaks"
    );
    let token = app.token().await;
    for (index, answering, missing) in [
        (0, vec!["borough-00", "borough-02"], "borough-01"),
        (30, vec!["borough-03", "borough-04"], "borough-05"),
    ] {
        let nhs = app.population.nhs_number(index).unwrap();
        let id = app.patient_id(&token, nhs.as_str()).await;
        let entries = everything(&app, &token, &id).await;
        let sources: BTreeSet<&str> = entries
            .iter()
            .filter_map(|e| e["resource"]["meta"]["source"].as_str())
            .filter_map(|s| s.strip_prefix("urn:tideway:source:"))
            .collect();
        for s in &answering {
            assert!(sources.contains(s), "patient {index}: {s} answered: {sources:?}");
        }
        assert!(!sources.contains(missing), "patient {index}: {missing} sent nothing usable");
        let outcome: String =
            entries.iter().filter(|e| e["search"]["mode"] == "outcome").map(|e| e.to_string()).collect();
        assert!(outcome.contains(&format!("source '{missing}' is missing from this answer")), "{outcome}");
        if index == 0 {
            assert!(
                outcome.contains("source 'borough-02' sent") && outcome.contains("about another patient"),
                "{outcome}"
            );
        }
    }
    app.stop().await;
}
