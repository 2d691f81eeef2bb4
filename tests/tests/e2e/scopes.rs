//! SMART scopes over HTTP: a client asks `/token` for less than it may have and gets exactly
//! that, and SMART v2 `r` and `s` open reads and searches separately.

use serde_json::Value;
use tideway_profiles::NhsNumber;
use tideway_tests::{Options, TestApp, clinician, nhs_search};

/// A token granted `scope` (the test clients are allowed `system/*.read`, `system/*.rs` and
/// `system/Patient.rs`); the grant must name exactly that scope.
async fn token_with(app: &TestApp, scope: &str) -> String {
    let form = app.es_client.token_form(&app.token_url(), scope, &clinician()).unwrap();
    let res = app.post_token(form).await;
    assert_eq!(res.status(), 200, "{scope}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scope"], scope);
    body["access_token"].as_str().unwrap().to_owned()
}

/// A one-borough gateway, a patient's NHS number and the gateway's id for them.
async fn app_with_patient() -> (TestApp, NhsNumber, String) {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let nhs = app.population.nhs_number(0).unwrap();
    let id = app.patient_id(&app.token().await, nhs.as_str()).await;
    (app, nhs, id)
}

#[tokio::test]
async fn a_client_gets_the_narrower_scopes_it_asks_for_and_no_wider_ones() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    token_with(&app, "system/Patient.read").await;
    token_with(&app, "system/Patient.r system/Condition.s").await;
    for wider in ["system/*.write", "system/*.cruds", "user/Patient.read", "system/Patient.rs?active=true"] {
        let form = app.es_client.token_form(&app.token_url(), wider, &clinician()).unwrap();
        let res = app.post_token(form).await;
        assert_eq!(res.status(), 400, "{wider}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_scope", "{wider}");
    }
    app.stop().await;
}

#[tokio::test]
async fn smart_v2_read_and_search_scopes_open_reads_and_searches_separately() {
    let (app, nhs, id) = app_with_patient().await;
    let read = token_with(&app, "system/Patient.r system/Condition.r").await;
    let search = token_with(&app, "system/Patient.s system/Condition.s").await;

    let by_id = format!("/Patient/{id}");
    let conditions = format!("/Condition?patient={id}");
    assert_eq!(app.get(&by_id, Some(&read)).await.status, 200);
    assert_eq!(app.get(&nhs_search(nhs.as_str()), Some(&search)).await.status, 200);
    assert_eq!(app.get(&conditions, Some(&search)).await.status, 200);
    for (path, token, verb) in [
        (nhs_search(nhs.as_str()), &read, "searching Patient"),
        (conditions.clone(), &read, "searching Condition"),
        (by_id.clone(), &search, "reading Patient"),
        (format!("/Patient/{id}/$everything"), &search, "reading Patient"),
    ] {
        let a = app.get(&path, Some(token)).await;
        assert_eq!((a.status, a.issue_code()), (403, "forbidden"), "{path}: {}", a.body);
        let said = a.body["issue"][0]["diagnostics"].as_str().unwrap_or_default();
        assert_eq!(said, format!("the granted scopes do not allow {verb}"), "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn everything_needs_read_on_the_types_it_returns() {
    let (app, _, id) = app_with_patient().await;
    let everything = format!("/Patient/{id}/$everything?_count=1000");
    let all = app.get(&everything, Some(&app.token().await)).await;
    assert!(all.matches().iter().any(|r| r["resourceType"] == "Condition"), "fixture: {}", all.body);
    assert!(
        all.matches()
            .iter()
            .any(|r| !["Patient", "Condition"].contains(&r["resourceType"].as_str().unwrap()))
    );

    // Read on Patient and Condition: only those come back; searching every type does not help.
    let narrow = token_with(&app, "system/Patient.r system/Condition.r system/*.s").await;
    let a = app.get(&everything, Some(&narrow)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let types: Vec<&str> = a.matches().iter().filter_map(|r| r["resourceType"].as_str()).collect();
    assert!(types.contains(&"Condition"), "{types:?}");
    assert!(types.iter().all(|t| ["Patient", "Condition"].contains(t)), "{types:?}");
    // Asking by _type for a type it may only search is refused, as before.
    let a = app.get(&format!("/Patient/{id}/$everything?_type=Observation"), Some(&narrow)).await;
    assert_eq!((a.status, a.issue_code()), (403, "forbidden"), "{}", a.body);
    app.stop().await;
}
