//! Superseded NHS numbers over HTTP, on both backends: learned from a source's Patient that
//! keeps its old number, or loaded from the configured feed, an old number finds the patient
//! under the current one and the answer says so without repeating either number; a bad feed
//! stops the start naming only its line.

use reqwest::Method;
use serde_json::{Value, json};
use tideway_gateway::app::Application;
use tideway_profiles::{NhsNumber, systems};
use tideway_tests::{Answer, Options, StoreKind, TestApp, nhs_search};

const SUPERSEDED: &str = "The NHS number asked for has been superseded";

fn says_superseded(a: &Answer) -> bool {
    a.outcome_entry().and_then(|oo| oo["issue"].as_array()).is_some_and(|issues| {
        issues.iter().any(|i| i["diagnostics"].as_str().is_some_and(|d| d.starts_with(SUPERSEDED)))
    })
}

/// Every diagnostics text of the answer's outcome entry.
fn diagnostics(a: &Answer) -> String {
    a.outcome_entry()
        .and_then(|oo| oo["issue"].as_array())
        .map(|issues| issues.iter().filter_map(|i| i["diagnostics"].as_str()).collect::<Vec<_>>().join(" | "))
        .unwrap_or_default()
}

/// A valid NHS number no source holds.
fn unheld() -> NhsNumber {
    (999_900_000..).find_map(NhsNumber::from_stem).unwrap()
}

#[tokio::test]
async fn an_old_nhs_number_finds_the_patient_under_the_current_one_on_both_backends() {
    for kind in [StoreKind::Sqlite, StoreKind::Postgres] {
        let app = TestApp::spawn(Options { store: kind, ..Options::default() }).await;
        let token = app.token().await;
        let (former, current) = app.population.superseded_patients(1).remove(0);
        // Before the gateway has seen the patient under their current number, the old one
        // finds no one (the sources search current numbers only).
        let before = app.get(&nhs_search(former.as_str()), Some(&token)).await;
        assert_eq!((before.status, before.matches().len()), (200, 0), "{kind:?}: {}", before.body);
        let id = app.patient_id(&token, current.as_str()).await;
        let after = app.get(&nhs_search(former.as_str()), Some(&token)).await;
        assert_eq!(after.status, 200, "{kind:?}: {}", after.body);
        assert_eq!(after.matches().len(), 1, "{kind:?}: {}", after.body);
        assert_eq!(after.matches()[0]["id"], id.as_str());
        assert!(says_superseded(&after), "{kind:?}: {}", after.body);
        let said = diagnostics(&after);
        assert!(!said.contains(former.as_str()) && !said.contains(current.as_str()), "{said}");
        // The current number is not superseded.
        assert!(!says_superseded(&app.get(&nhs_search(current.as_str()), Some(&token)).await));
        // $match by the old number, too.
        let index = app.population.patient_index(&current).unwrap();
        let d = app.population.record(app.population.home_borough(index), index).unwrap().demographics;
        let patient = json!({"resourceType": "Patient",
            "identifier": [{"system": systems::NHS_NUMBER, "value": former.as_str()}],
            "name": [{"family": d.family, "given": [d.given]}], "birthDate": d.birth_date});
        let body =
            json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient}]});
        let matched = app.send_json(Method::POST, "/Patient/$match", &token, &body).await;
        assert_eq!(matched.status, 200, "{kind:?}: {}", matched.body);
        assert_eq!(matched.matches().len(), 1, "{kind:?}: {}", matched.body);
        assert_eq!(matched.matches()[0]["id"], id.as_str());
        assert!(says_superseded(&matched), "{}", matched.body);

        // A feed maps a number no source holds to another patient; a restart loads it.
        let other = app.population.nhs_number(3).unwrap();
        let other_id = app.patient_id(&token, other.as_str()).await;
        let old = unheld();
        let feed = app.dir.join("superseded.csv");
        std::fs::write(&feed, format!("# old,current\n{},{}\n", old.as_str(), other.as_str())).unwrap();
        let mut settings = app.settings.clone();
        settings.identity.superseded_nhs_numbers_file = Some(feed.clone());
        let replica = app.spawn_replica_with(settings.clone()).await;
        let fed = app.get(&format!("{}{}", replica.base_url, nhs_search(old.as_str())), Some(&token)).await;
        assert_eq!(fed.status, 200, "{kind:?}: {}", fed.body);
        assert_eq!(fed.matches().first().map(|p| p["id"].clone()), Some(Value::from(other_id.as_str())));
        assert!(says_superseded(&fed));
        replica.handle.stop(true).await;
        // A feed with a bad number does not start, and names the line only.
        std::fs::write(
            &feed,
            format!("{},{}\n9434765918,{}\n", old.as_str(), other.as_str(), other.as_str()),
        )
        .unwrap();
        let refused =
            Application::build(settings).await.err().expect("a bad feed stops the start").to_string();
        assert!(refused.contains("line 2") && !refused.contains("9434765918"), "{refused}");
        app.stop().await;
    }
}
