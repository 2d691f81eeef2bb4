//! The audit trail: written before data leaves, refusals included, fail closed.

use tideway_gateway::store::AuditLog as _;
use tideway_tests::{Options, TestApp, nhs_search};

#[tokio::test]
async fn everything_is_audited_before_release_without_clinical_content() {
    let app = TestApp::spawn(Options::default()).await;
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&token, &nhs).await;
    let a = app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;
    assert_eq!(a.status, 200);
    let rid = a.header("x-request-id").expect("request id header");
    let rows = app.state.store.audit_for_request(&rid).await.unwrap();
    assert_eq!(rows.len(), 2, "intent then outcome: {rows:?}");
    assert_eq!(rows[0].phase, "intent");
    assert_eq!(rows[1].phase, "outcome");
    assert!(rows[0].seq < rows[1].seq);
    let out = &rows[1];
    assert_eq!(out.action, "patient-everything");
    assert_eq!(out.outcome, "success");
    assert_eq!(out.http_status, 200);
    assert_eq!(out.client_id.as_deref(), Some("test-es"));
    assert_eq!(out.user_id.as_deref(), Some("555021935107"));
    assert_eq!(out.organisation.as_deref(), Some("RJ122"));
    assert_eq!(out.purpose.as_deref(), Some("TREAT"));
    assert_eq!(out.patient_id.as_deref(), Some(id.as_str()));
    assert_eq!(out.released as usize, a.released(), "every entry released is counted");
    assert!(out.sources.contains("borough-00"));
    for r in &rows {
        let text = format!("{r:?}");
        assert!(!text.contains(&nhs), "no NHS number in the audit trail");
    }
    // The request id is always the server's: a client cannot make requests share one.
    let mine = app.get_with(&nhs_search(&nhs), Some(&token), &[("X-Request-ID", "trace-abcdef123456")]).await;
    let rid = mine.header("x-request-id").unwrap();
    assert_ne!(rid, "trace-abcdef123456");
    assert_eq!(app.state.store.audit_for_request(&rid).await.unwrap().len(), 2);
    assert!(app.state.store.audit_for_request("trace-abcdef123456").await.unwrap().is_empty());

    app.stop().await;
}

#[tokio::test]
async fn refused_requests_are_audited_too() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    // Requests that never authenticate are counted per peer, then written as one record of the
    // count (at each interval, and at shutdown) naming the requests' ids.
    let a = app.get(&nhs_search("9434765919"), None).await;
    assert_eq!(a.status, 401);
    let bad_token = app.get(&nhs_search("9434765919"), Some("not.a.token")).await;
    assert_eq!(bad_token.status, 401);
    let rid = a.header("x-request-id").unwrap();
    assert!(app.state.store.audit_for_request(&rid).await.unwrap().is_empty(), "no record of its own");
    app.state.refusals.flush(&app.state.audit).await;
    let trail = app.state.store.audit_page(i64::MIN, i64::MIN, 1000).await.unwrap();
    let counted: Vec<_> = trail.iter().filter(|r| r.stored.action == "unauthenticated").collect();
    assert_eq!(counted.len(), 1, "one peer, one record");
    let detail: serde_json::Value = serde_json::from_str(&counted[0].stored.detail).unwrap();
    assert_eq!(detail["peer"], "127.0.0.1");
    assert_eq!(detail["refusals"], 2);
    assert_eq!(detail["reasons"], serde_json::json!({"invalid-token": 1, "no-token": 1}));
    assert_eq!(detail["request_ids"][0], rid.as_str());
    assert_eq!(counted[0].stored.outcome, "denied");
    // A flood adds one record per peer per interval, not one per request.
    let before = app.state.store.audit_page(i64::MIN, i64::MIN, 10_000).await.unwrap().len();
    for _ in 0..100 {
        assert_eq!(app.get(&nhs_search("9434765919"), None).await.status, 401);
    }
    app.state.refusals.flush(&app.state.audit).await;
    let after = app.state.store.audit_page(i64::MIN, i64::MIN, 10_000).await.unwrap();
    assert_eq!(after.len(), before + 1, "100 refusals, one record");
    assert!(after.last().unwrap().stored.detail.contains("\"refusals\":100"));

    let token = app.token().await;
    let bad = app.get(&nhs_search("9434765918"), Some(&token)).await;
    assert_eq!(bad.status, 400);
    let rows = app.state.store.audit_for_request(&bad.header("x-request-id").unwrap()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, "denied");
    assert_eq!(rows[0].http_status, 400);
    assert_eq!(rows[0].client_id.as_deref(), Some("test-es"));

    // Interactions the API does not offer are refused and audited too, after authentication.
    let res = app.http.delete(format!("{}/Condition/x", app.base_url)).send().await.unwrap();
    assert_eq!(res.status(), 401, "nothing is revealed before authentication");
    for (answer, status) in [
        (app.get("/Basic?patient=x", Some(&token)).await, 404),
        (app.get("/Patient/p00000000000000000000000000000000/$match", Some(&token)).await, 501),
        (app.get(&format!("{}&_format=xml", nhs_search("9434765919")), Some(&token)).await, 406),
        (app.get("/no/such/path", Some(&token)).await, 404),
    ] {
        assert_eq!(answer.status, status);
        let rows = app.state.store.audit_for_request(&answer.header("x-request-id").unwrap()).await.unwrap();
        assert_eq!(rows.len(), 1, "{status} audited");
        assert_eq!(rows[0].http_status, status);
        assert_eq!(rows[0].outcome, "denied");
    }
    app.stop().await;
}

#[tokio::test]
async fn when_the_audit_store_cannot_write_no_patient_data_leaves() {
    // No cache, so a source would be asked if the gateway got past the audit intent.
    let app = TestApp::spawn(Options { cache: false, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&token, &nhs).await;
    // Break the audit table from outside, as a failing disk or a revoked grant would.
    let path = app.sqlite_path.clone().unwrap();
    {
        use sqlx::Connection;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::raw_sql("DROP TABLE audit_event").execute(&mut conn).await.unwrap();
    }
    let before = app.simulator_hits();
    for path in [
        nhs_search(&nhs),
        format!("/Patient/{id}"),
        format!("/Patient/{id}/$everything"),
        format!("/Condition?patient={id}"),
    ] {
        let a = app.get(&path, Some(&token)).await;
        assert_eq!(a.status, 503, "{path}: {}", a.body);
        assert_eq!(a.issue_code(), "transient");
        assert!(a.body.get("entry").is_none());
        assert!(!String::from_utf8_lossy(&a.raw).contains(&nhs));
    }
    assert_eq!(app.simulator_hits(), before, "no source may be asked when the intent cannot be audited");
    assert_eq!(app.get("/readyz", None).await.status, 200, "the store itself still answers");
    app.stop().await;
}

#[tokio::test]
async fn token_grants_are_audited_with_the_asserted_user() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let form =
        app.es_client.token_form(&app.token_url(), "system/*.read", &tideway_tests::clinician()).unwrap();
    let res = app.post_token(form).await;
    assert_eq!(res.status(), 200);
    let rid = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let rows = app.state.store.audit_for_request(&rid).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].action, "token");
    assert_eq!(rows[0].outcome, "success");
    assert_eq!(rows[0].client_id.as_deref(), Some("test-es"));
    assert_eq!(rows[0].user_id.as_deref(), Some("555021935107"));
    assert_eq!(rows[0].organisation.as_deref(), Some("RJ122"));
    assert_eq!(rows[0].purpose.as_deref(), Some("TREAT"));
    app.stop().await;
}
