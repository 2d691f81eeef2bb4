//! Real FHIR R4 bundles written by others (Synthea) served by a `--from-dir` simulator come back
//! through the gateway entry for entry, except what the sensitive set withholds from a hospital
//! clinician.

use std::collections::HashSet;

use serde_json::Value;
use tideway_policy::Terminology;
use tideway_profiles::ResourceFacts;
use tideway_tests::{Options, TestApp, codings_in, nhs_search, shared_data};

#[tokio::test]
async fn every_entry_of_every_synthea_patient_comes_back_through_the_gateway() {
    let dir = shared_data("synthea-r4");
    let app =
        TestApp::spawn(Options { boroughs: 0, from_dir: Some(dir.clone()), ..Options::default() }).await;
    let token = app.token().await;
    let t = Some(token.as_str());
    let patients = tideway_simulators::fhir_r4::from_dir::assign_nhs_numbers(&dir).unwrap();
    let terminology = Terminology::embedded().unwrap();
    let mut withheld = 0;
    assert_eq!(patients.len(), 57, "the shared set has 57 patients");
    for (nhs, _local, file) in &patients {
        let original: Value = serde_json::from_slice(&std::fs::read(dir.join(file)).unwrap()).unwrap();
        let found = app.get(&nhs_search(nhs.as_str()), t).await;
        assert_eq!(found.status, 200, "{file}: {}", found.body);
        let id = found.matches()[0]["id"].as_str().unwrap().to_owned();
        // Page through $everything.
        let mut got: HashSet<String> = HashSet::new();
        let mut page = app.get(&format!("/Patient/{id}/$everything?_count=1000"), t).await;
        loop {
            assert_eq!(page.status, 200, "{file}: {}", page.body);
            assert!(page.warnings().is_empty(), "{file}: {}", page.outcome_entry().unwrap());
            assert!(page.says_may_be_withheld(), "{file}: every clinical page carries the notice");
            for r in page.matches() {
                got.insert(format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()));
            }
            match page.next_link() {
                Some(n) => page = app.get(&n, t).await,
                None => break,
            }
        }
        let entries = original["entry"].as_array().unwrap();
        let hidden = sensitive_or_linked(entries, &terminology);
        for e in entries {
            let r = &e["resource"];
            let ty = r["resourceType"].as_str().unwrap();
            let url = e["fullUrl"].as_str().unwrap();
            let want = if ty == "Patient" {
                format!("Patient/{id}")
            } else {
                format!("{ty}/synthea.{}", url.trim_start_matches("urn:uuid:"))
            };
            if hidden.contains(url) {
                withheld += 1;
                assert!(!got.contains(&want), "{file}: {want} is in the sensitive set but came back");
            } else {
                assert!(got.contains(&want), "{file}: {want} did not come back");
            }
        }
    }
    // The set holds real sensitive entries (e.g. counselling for termination of pregnancy), so
    // the comparison above is not vacuous.
    assert!(withheld > 0, "some Synthea entries are in the sensitive set");
    app.stop().await;
}

/// The `fullUrl`s of entries carrying a coding in a sensitive set, and of entries that refer
/// to one of those (transitively): what no agreement of the hospital clinician shares.
fn sensitive_or_linked(entries: &[Value], terminology: &Terminology) -> HashSet<String> {
    let sensitive = terminology.sensitive();
    let mut hidden: HashSet<String> = entries
        .iter()
        .filter(|e| {
            let facts = ResourceFacts { codings: codings_in(&e["resource"]), ..ResourceFacts::default() };
            terminology.classify(&facts) & sensitive != 0
        })
        .map(|e| e["fullUrl"].as_str().unwrap().to_owned())
        .collect();
    loop {
        let more: Vec<String> = entries
            .iter()
            .filter(|e| !hidden.contains(e["fullUrl"].as_str().unwrap()))
            .filter(|e| hidden.iter().any(|h| e["resource"].to_string().contains(&format!("\"{h}\""))))
            .map(|e| e["fullUrl"].as_str().unwrap().to_owned())
            .collect();
        if more.is_empty() {
            return hidden;
        }
        hidden.extend(more);
    }
}
