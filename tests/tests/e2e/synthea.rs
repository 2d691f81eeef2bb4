//! Real FHIR R4 bundles written by others (Synthea) served by a `--from-dir` simulator come back
//! through the gateway entry for entry.

use std::collections::HashSet;

use serde_json::Value;
use tideway_tests::{Options, TestApp, nhs_search, shared_data};

#[tokio::test]
async fn every_entry_of_every_synthea_patient_comes_back_through_the_gateway() {
    let dir = shared_data("synthea-r4");
    let app =
        TestApp::spawn(Options { boroughs: 0, from_dir: Some(dir.clone()), ..Options::default() }).await;
    let token = app.token().await;
    let t = Some(token.as_str());
    let patients = tideway_simulators::fhir_r4::from_dir::assign_nhs_numbers(&dir).unwrap();
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
            assert!(page.outcome_entry().is_none(), "{file}: {}", page.outcome_entry().unwrap());
            for r in page.matches() {
                got.insert(format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()));
            }
            match page.next_link() {
                Some(n) => page = app.get(&n, t).await,
                None => break,
            }
        }
        for e in original["entry"].as_array().unwrap() {
            let r = &e["resource"];
            let ty = r["resourceType"].as_str().unwrap();
            let want = if ty == "Patient" {
                format!("Patient/{id}")
            } else {
                let uuid = e["fullUrl"].as_str().unwrap().trim_start_matches("urn:uuid:");
                format!("{ty}/synthea.{uuid}")
            };
            assert!(got.contains(&want), "{file}: {want} did not come back");
        }
    }
    app.stop().await;
}
