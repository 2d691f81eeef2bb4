//! The scale-out store: the same flows against a real PostgreSQL (never skipped: if PostgreSQL
//! is absent these tests fail).

use tideway_gateway::store::{AlertStore as _, AuditLog as _, BreakGlass, PatientIndex as _};
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
    let tideway_gateway::store::Store::Postgres { pool, .. } = &app.state.store else {
        panic!("postgres store")
    };
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

#[tokio::test]
async fn agreement_versions_and_approvals_round_trip_on_postgres() {
    use tideway_gateway::store::{AgreementStore as _, Approval, PublishedVersion};
    let app = TestApp::spawn(Options { boroughs: 1, store: StoreKind::Postgres, ..Options::default() }).await;
    let store = &app.state.store;
    let version = |v: i64| PublishedVersion {
        agreement_id: "podiatry".into(),
        version: v,
        body: format!("version = {v}"),
        published_by: "test-es/555021935199".into(),
        published_org: "LBX01".into(),
        published_at_us: 1_700_000_000_000_000 + v,
    };
    assert!(store.publish_agreement(&version(2)).await.unwrap());
    assert!(!store.publish_agreement(&version(2)).await.unwrap(), "the same version twice");
    assert!(!store.publish_agreement(&version(1)).await.unwrap(), "a lower version");
    assert!(store.publish_agreement(&version(3)).await.unwrap());
    assert_eq!(store.published_agreements().await.unwrap(), [version(2), version(3)]);
    let approval = |ods: &str| Approval {
        agreement_id: "podiatry".into(),
        version: 3,
        ods_code: ods.into(),
        user_id: "555021935199".into(),
        approved_at_us: 1_700_000_000_000_009,
    };
    assert!(store.approve_agreement(&approval("LBX02")).await.unwrap());
    assert!(store.approve_agreement(&approval("LBX01")).await.unwrap());
    assert!(!store.approve_agreement(&approval("LBX01")).await.unwrap(), "one approval per controller");
    assert_eq!(store.agreement_approvals().await.unwrap(), [approval("LBX01"), approval("LBX02")]);
    app.stop().await;
}

#[tokio::test]
async fn an_agreement_approved_on_one_replica_is_in_force_on_the_other_after_its_refresh() {
    use tideway_auth::PurposeOfUse;
    let app = TestApp::spawn(Options {
        boroughs: 1,
        store: StoreKind::Postgres,
        policy_refresh_secs: 1,
        ..Options::default()
    })
    .await;
    let replica = app.spawn_replica().await;
    let controller = app.token_for(&tideway_tests::user("LBX01", "R8000", PurposeOfUse::Treat)).await;
    let text = tideway_policy::agreement::EXAMPLES[2].1.replace("version = 1", "version = 2");
    let published = app.post_text("/agreements", Some(&controller), &text).await;
    assert_eq!(published.status, 201, "{}", published.body);
    let version_on = |body: &serde_json::Value| {
        body["agreements"].as_array().unwrap().iter().find(|a| a["id"] == "podiatry").unwrap()["version"]
            .as_u64()
            .unwrap()
    };
    // Approved through the other replica: in force there at once...
    let approve = format!("{}/agreements/podiatry/2/approve", replica.base_url);
    let approved = app.post_text(&approve, Some(&controller), "").await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.body["state"], "in-force");
    let there = app.get(&format!("{}/transparency", replica.base_url), None).await;
    assert_eq!(version_on(&there.body), 2);
    // ...and on the first once it has refreshed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let here = app.get("/transparency", None).await;
        if version_on(&here.body) == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the first replica never applied podiatry@2");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    replica.handle.stop(true).await;
    app.stop().await;
}

fn session(token: &str, patient: &str, opened_at_us: i64, reason: &str) -> BreakGlass {
    BreakGlass {
        token_id: token.to_owned(),
        patient_id: patient.to_owned(),
        opened_at_us,
        ends_at_us: opened_at_us + 1_800_000_000,
        user: "test-es/555021935199".to_owned(),
        organisation: "YOOH1".to_owned(),
        role: "R8000".to_owned(),
        reason: reason.to_owned(),
        request_id: format!("req-{token}"),
    }
}

#[tokio::test]
async fn break_glass_sessions_open_once_per_token_with_one_alert_on_both_backends() {
    for kind in [StoreKind::Postgres, StoreKind::Sqlite] {
        let app = TestApp::spawn(Options { boroughs: 1, store: kind, ..Options::default() }).await;
        let store = &app.state.store;
        let (p1, p2) = (format!("p{}", "a".repeat(32)), format!("p{}", "b".repeat(32)));
        let first = session("t1", &p1, 1_000, "first reason");
        assert_eq!(store.open_break_glass(&first).await.unwrap(), first, "{kind:?}");
        // The same token again, for another patient and later: the first session stands.
        let again = store.open_break_glass(&session("t1", &p2, 5_000, "second reason")).await.unwrap();
        assert_eq!(again, first, "{kind:?}");
        let alerts = store.alerts(None, 0, 100).await.unwrap();
        assert_eq!(alerts.len(), 1, "one alert per session: {kind:?}");
        let a = &alerts[0];
        assert_eq!(
            (
                a.kind.as_str(),
                a.patient_id.as_str(),
                a.reason.as_str(),
                a.raised_at_us,
                a.request_id.as_str()
            ),
            ("break-glass", p1.as_str(), "first reason", 1_000, "req-t1"),
            "{kind:?}"
        );
        assert_eq!(
            (a.organisation.as_str(), a.role.as_str(), a.user.as_str()),
            ("YOOH1", "R8000", "test-es/555021935199")
        );
        // Another token, another patient, later.
        store.open_break_glass(&session("t2", &p2, 2_000_000, "other reason")).await.unwrap();
        let ids = |v: Vec<tideway_gateway::store::PrivacyAlert>| {
            v.into_iter().map(|a| a.patient_id).collect::<Vec<_>>()
        };
        assert_eq!(
            ids(store.alerts(None, 0, 100).await.unwrap()),
            [p1.as_str(), p2.as_str()],
            "oldest first: {kind:?}"
        );
        assert_eq!(ids(store.alerts(Some(&p2), 0, 100).await.unwrap()), [p2.as_str()], "{kind:?}");
        assert_eq!(ids(store.alerts(Some(&p1), 0, 100).await.unwrap()), [p1.as_str()], "{kind:?}");
        assert!(store.alerts(Some("p-nobody"), 0, 100).await.unwrap().is_empty(), "{kind:?}");
        assert_eq!(ids(store.alerts(None, 1_000_000, 100).await.unwrap()), [p2.as_str()], "since: {kind:?}");
        assert_eq!(
            ids(store.alerts(None, 2_000_000, 100).await.unwrap()),
            [p2.as_str()],
            "since is inclusive: {kind:?}"
        );
        assert!(store.alerts(None, 2_000_001, 100).await.unwrap().is_empty(), "{kind:?}");
        assert!(store.alerts(Some(&p1), 1_000_000, 100).await.unwrap().is_empty(), "both filters: {kind:?}");
        assert_eq!(ids(store.alerts(None, 0, 1).await.unwrap()), [p1.as_str()], "limit: {kind:?}");
        // Racing first uses of one token: one session, one alert.
        let racing: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                let s = session("t3", &format!("p{i:032x}"), 3_000_000 + i, "race");
                tokio::spawn(async move { store.open_break_glass(&s).await.unwrap() })
            })
            .collect();
        let mut won = Vec::new();
        for r in racing {
            won.push(r.await.unwrap());
        }
        assert!(won.windows(2).all(|w| w[0] == w[1]), "every racer got the one session: {kind:?}");
        assert_eq!(store.alerts(None, 3_000_000, 100).await.unwrap().len(), 1, "{kind:?}");
        app.stop().await;
    }
}

#[tokio::test]
async fn break_glass_over_http_on_postgres_is_recorded_alerted_once_and_bound_to_its_patient() {
    use tideway_auth::PurposeOfUse;
    use tideway_simulators::population::Scenario;
    use tideway_tests::{BREAK_GLASS_REASON, PRIVACY_OFFICE, user};
    let app = TestApp::spawn(Options { store: StoreKind::Postgres, ..Options::default() }).await;
    assert_eq!(app.state.store.backend(), "postgres");
    let doctor = app.token().await;
    let pop = &app.population;
    let plain: Vec<String> = (0..pop.patient_count())
        .filter(|i| Scenario::of(*i).is_none())
        .filter_map(|i| pop.nhs_number(i))
        .map(|n| n.as_str().to_owned())
        .take(2)
        .collect();
    let id = app.patient_id(&doctor, &plain[0]).await;
    let other = app.patient_id(&doctor, &plain[1]).await;
    let glass = app.token_for(&user("YOOH1", "R8000", PurposeOfUse::EmergencyTreat)).await;
    for _ in 0..2 {
        let all = app.get(&format!("/Patient/{id}/$everything"), Some(&glass)).await;
        assert_eq!(all.status, 200, "{}", all.body);
        assert!(all.matches().len() > 1);
    }
    assert_eq!(app.get(&format!("/Patient/{other}/$everything"), Some(&glass)).await.status, 403);
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    let listed = app.get(&format!("/alerts?patient={id}"), Some(&officer)).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["total"], 1, "{}", listed.body);
    assert!(listed.body.to_string().contains(BREAK_GLASS_REASON));
    assert_eq!(app.get(&format!("/alerts?patient={other}"), Some(&officer)).await.body["total"], 0);
    let _ = nhs_search;
    app.stop().await;
}
