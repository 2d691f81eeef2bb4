//! The scale-out store: the same flows against a real PostgreSQL (never skipped: if PostgreSQL
//! is absent these tests fail).

use tideway_gateway::store::{AuditLog as _, PatientIndex as _};
use tideway_tests::{Options, StoreKind, TestApp, nhs_search};

#[tokio::test]
async fn the_gateway_runs_on_postgres_with_audit_and_replay_protection() {
    let app = TestApp::spawn(Options { store: StoreKind::Postgres, ..Options::default() }).await;
    assert_eq!(app.state.store.backend(), "postgres");
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&token, &nhs).await;
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(all.matches().len() > 5);
    let rows = app.state.store.audit_for_request(&all.header("x-request-id").unwrap()).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.phase.as_str()).collect::<Vec<_>>(), ["intent", "outcome"]);
    assert_eq!(rows[1].released as usize, all.released());
    // Record locator persisted.
    let links = app.state.store.links(&id, 3600).await.unwrap();
    assert!(links.len() >= 2);
    // Replay protection is shared state in PostgreSQL.
    let assertion = app
        .es_client
        .assertion(&app.token_url(), &tideway_tests::clinician(), std::time::Duration::from_secs(60))
        .unwrap();
    let form = tideway_auth::client::token_form_for(&assertion, "system/*.read").unwrap();
    assert_eq!(app.post_token(form.clone()).await.status(), 200);
    assert_ne!(app.post_token(form).await.status(), 200);
    let _ = nhs_search;
    app.stop().await;
}

#[tokio::test]
async fn sqlite_and_postgres_schemas_match() {
    use sqlx::Connection;
    // SQLite columns.
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let path = app.sqlite_path.clone().unwrap();
    let mut lite = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let mut sqlite_cols: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&mut lite)
    .await
    .unwrap();
    sqlite_cols.sort();
    app.stop().await;
    // PostgreSQL columns in a fresh schema.
    let app = TestApp::spawn(Options { boroughs: 1, store: StoreKind::Postgres, ..Options::default() }).await;
    let tideway_gateway::store::Store::Postgres(pool) = &app.state.store else { panic!("postgres store") };
    let mut pg_cols: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns WHERE table_schema = current_schema()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    pg_cols.sort();
    assert!(!pg_cols.is_empty());
    assert_eq!(sqlite_cols, pg_cols);
    app.stop().await;
}

#[tokio::test]
async fn a_new_pseudonym_key_remaps_patients_instead_of_failing_on_both_backends() {
    for kind in [StoreKind::Sqlite, StoreKind::Postgres] {
        let app = TestApp::spawn(Options { boroughs: 1, store: kind, ..Options::default() }).await;
        let store = &app.state.store;
        let old = format!("p{}", "1".repeat(32));
        let new = format!("p{}", "2".repeat(32));
        store.remember_patient(&old, "9434765919").await.unwrap();
        store.remember_patient(&new, "9434765919").await.unwrap();
        assert_eq!(store.nhs_number_of(&new).await.unwrap().as_deref(), Some("9434765919"), "{kind:?}");
        assert_eq!(store.nhs_number_of(&old).await.unwrap(), None, "{kind:?}");
        app.stop().await;
    }
}

#[tokio::test]
async fn consent_versions_are_kept_and_enforced_on_postgres() {
    let app = TestApp::spawn(Options { store: StoreKind::Postgres, ..Options::default() }).await;
    let doctor = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].clone();
    let practice = app
        .token_for(&tideway_tests::user(&app.practice_of(&nhs), "R8000", tideway_auth::PurposeOfUse::Treat))
        .await;
    let id = app.patient_id(&doctor, nhs.as_str()).await;
    let mut dissent = serde_json::json!({
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{id}")},
        "provision": {"type": "deny"}
    });
    let created = app.send_json(reqwest::Method::POST, "/Consent", &practice, &dissent).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let cid = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("/Patient/{id}/$everything"), Some(&doctor)).await.released(), 0);
    dissent["status"] = serde_json::json!("inactive");
    let updated = app.send_json(reqwest::Method::PUT, &format!("/Consent/{cid}"), &practice, &dissent).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert!(app.get(&format!("/Patient/{id}/$everything"), Some(&doctor)).await.released() > 0);
    let history = app.get(&format!("/Consent/{cid}/_history"), Some(&practice)).await;
    assert_eq!(history.body["total"], 2);
    app.stop().await;
}
