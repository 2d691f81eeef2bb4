//! The privacy officer's view of who accessed a record (`GET /AuditEvent?patient=`), and the
//! audit trail of real HTTP traffic checking as one intact chain on both backends, with the
//! closing checkpoint signed at shutdown.

use serde_json::Value;
use tideway_auth::PurposeOfUse;
use tideway_tests::{Options, PRIVACY_OFFICE, StoreKind, TestApp, nhs_search, user};

fn events(a: &tideway_tests::Answer) -> Vec<&Value> {
    a.resources().into_iter().filter(|r| r["resourceType"] == "AuditEvent").collect()
}

fn request_id_of(event: &Value) -> &str {
    event["entity"][0]["what"]["identifier"]["value"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_privacy_officer_sees_who_accessed_a_record_and_no_one_else_may() {
    let app = TestApp::spawn(Options { boroughs: 2, ..Options::default() }).await;
    let clinician = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&clinician, &nhs).await;
    let read = app.get(&format!("/Patient/{id}/$everything"), Some(&clinician)).await;
    assert_eq!(read.status, 200);
    let everything_rid = read.header("x-request-id").unwrap();
    let other = app.token_for(&user("RX1", "R8000", PurposeOfUse::Treat)).await;
    let refused = app.get(&format!("/Patient/{id}/$everything"), Some(&other)).await;
    let refused_rid = refused.header("x-request-id").unwrap();

    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    let history = app.get(&format!("/AuditEvent?patient={id}"), Some(&officer)).await;
    assert_eq!(history.status, 200, "{}", history.body);
    assert_eq!(history.body["type"], "searchset");
    let found = events(&history);
    let everything =
        found.iter().find(|e| request_id_of(e) == everything_rid).expect("the $everything is listed");
    assert_eq!(everything["agent"][1]["who"]["identifier"]["value"], "555021935107", "who");
    assert_eq!(everything["agent"][2]["who"]["identifier"]["value"], "RJ122", "from where");
    assert_eq!(everything["purposeOfEvent"][0]["coding"][0]["code"], "TREAT", "why");
    assert_eq!(everything["outcome"], "0");
    assert_eq!(everything["entity"][0]["detail"][1]["valueString"], read.released().to_string(), "how much");
    assert!(!everything.to_string().contains(&nhs), "no NHS number in an AuditEvent");
    assert!(found.iter().any(|e| request_id_of(e) == refused_rid), "a refused access is listed too");
    let recorded: Vec<&str> = found.iter().map(|e| e["recorded"].as_str().unwrap()).collect();
    assert!(recorded.windows(2).all(|w| w[0] >= w[1]), "newest first: {recorded:?}");

    // Each fullUrl reads back.
    let full_url = history.body["entry"][0]["fullUrl"].as_str().unwrap().to_owned();
    let one = app.get(&full_url, Some(&officer)).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body, history.body["entry"][0]["resource"]);
    assert_eq!(app.get("/AuditEvent/audit-999999", Some(&officer)).await.status, 404);

    // The forms a patient reference takes, dates and counts.
    let by_ref = app.get(&format!("/AuditEvent?patient=Patient/{id}&_count=1"), Some(&officer)).await;
    assert_eq!(events(&by_ref).len(), 1);
    assert_eq!(
        events(&app.get(&format!("/AuditEvent?patient={id}&date=gt2999-01-01"), Some(&officer)).await).len(),
        0
    );
    assert!(
        !events(&app.get(&format!("/AuditEvent?patient={id}&date=ge2020-01-01"), Some(&officer)).await)
            .is_empty()
    );
    for bad in [
        "",
        "?patient=9434765919",
        "?patient={id}&date=ne2026-01-01",
        "?patient={id}&date=soon",
        "?patient={id}&color=red",
    ] {
        let a = app.get(&format!("/AuditEvent{}", bad.replace("{id}", &id)), Some(&officer)).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
        assert_eq!(a.body["resourceType"], "OperationOutcome");
    }

    // Only a privacy office's officer may: not the clinician, not an operations purpose elsewhere.
    assert_eq!(app.get(&format!("/AuditEvent?patient={id}"), Some(&clinician)).await.status, 403);
    let ops = app.token_for(&user("RJ122", "R8000", PurposeOfUse::Operations)).await;
    assert_eq!(app.get(&format!("/AuditEvent?patient={id}"), Some(&ops)).await.status, 403);
    assert_eq!(app.get(&full_url, Some(&clinician)).await.status, 403);
    assert_eq!(app.get(&format!("/AuditEvent?patient={id}"), None).await.status, 401);

    // The patient's own app (NHS login: purpose PATRQT, the NHS number as the user) sees its own
    // history, and no one else's.
    let own_app = app
        .token_for(&tideway_auth::client::UserClaims {
            user_id: nhs.clone(),
            ..user("YAPP1", "R8000", PurposeOfUse::PatientRequest)
        })
        .await;
    let mine = app.get(&format!("/AuditEvent?patient={id}"), Some(&own_app)).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert!(events(&mine).iter().any(|e| request_id_of(e) == everything_rid), "who looked, when, why");
    let other_nhs = app.population.patients_in_several_boroughs(2)[1].as_str().to_owned();
    let other_id = app.patient_id(&clinician, &other_nhs).await;
    assert_eq!(app.get(&format!("/AuditEvent?patient={other_id}"), Some(&own_app)).await.status, 403);

    // The officer's own look is audited, about the patient.
    let again = app.get(&format!("/AuditEvent?patient={id}"), Some(&officer)).await;
    let looked =
        events(&again).into_iter().find(|e| request_id_of(e) == history.header("x-request-id").unwrap());
    let looked = looked.expect("the privacy officer's own query is in the history");
    assert_eq!(looked["agent"][2]["who"]["identifier"]["value"], PRIVACY_OFFICE);
    app.stop().await;
}

async fn traffic_leaves_an_intact_chain(store: StoreKind) {
    let app = TestApp::spawn(Options { boroughs: 2, store, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&token, &nhs).await;
    let mut tasks = Vec::new();
    for n in 0..40 {
        let (url, token) = match n % 4 {
            0 => (format!("/Patient/{id}/$everything"), Some(token.clone())),
            1 => (nhs_search(&nhs), Some(token.clone())),
            2 => (nhs_search(&nhs), None),
            _ => (format!("/Condition?patient={id}"), Some(token.clone())),
        };
        let client = app.http.clone();
        let base = app.base_url.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = client.get(format!("{base}{url}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap() > 0);
    }
    let settings = app.settings.clone();
    let dir = app.stop_keeping_files().await;
    let checkpoints = std::fs::read_to_string(dir.join("checkpoints").join("checkpoints.jsonl"));
    let report = tideway_gateway::cli::audit::check(&settings).await.unwrap();
    assert!(report.intact(), "{store:?}: {:?}", report.findings);
    assert!(report.records >= 60, "{store:?}: {} records", report.records);
    assert_eq!(
        report.latest_checkpoint,
        report.head.map(|h| h.0),
        "{store:?}: the closing checkpoint covers the head; checkpoint file: {checkpoints:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn concurrent_traffic_leaves_an_intact_checkpointed_chain_on_sqlite() {
    traffic_leaves_an_intact_chain(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn concurrent_traffic_leaves_an_intact_checkpointed_chain_on_postgres() {
    traffic_leaves_an_intact_chain(StoreKind::Postgres).await;
}

#[tokio::test]
async fn audit_retention_removes_old_accesses_from_the_history_and_the_trail_still_verifies() {
    use tideway_gateway::audit::{AuditLog as _, AuditPhase, AuditRecord};
    let app = TestApp::spawn(Options { boroughs: 2, ..Options::default() }).await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].clone();
    let id =
        tideway_gateway::identity::PatientIds::new(app.settings.identity.pseudonym_key.clone()).id_for(&nhs);
    // Three accesses made forty days ago, the oldest records of the trail.
    assert_eq!(app.state.store.chain_head().await.unwrap(), None, "the trail starts empty");
    for n in 0..3 {
        let mut old = AuditRecord::new(&format!("old-access-{n}"), "patient-read", None);
        old.phase = AuditPhase::Outcome;
        old.patient_id = Some(id.clone());
        old.organisation = Some("RJ122".into());
        old.recorded_at -= time::Duration::days(40);
        app.state.store.append_audit(&old).await.unwrap();
    }
    let clinician = app.token().await;
    assert_eq!(app.patient_id(&clinician, nhs.as_str()).await, id);
    let read = app.get(&format!("/Patient/{id}/$everything"), Some(&clinician)).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    let history = |base: String| {
        let (app, officer, url) = (&app, &officer, format!("{base}/AuditEvent?patient={id}"));
        async move {
            let answer = app.get(&url, Some(officer)).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            events(&answer).iter().map(|e| request_id_of(e).to_owned()).collect::<Vec<_>>()
        }
    };
    let before = history(app.base_url.clone()).await;
    assert_eq!(before.iter().filter(|r| r.starts_with("old-access-")).count(), 3, "{before:?}");

    // The gateway restarted keeping 30 days: it applies retention as it starts.
    let mut settings = app.settings.clone();
    settings.audit.retention_days = Some(30);
    let restarted = app.spawn_replica_with(settings.clone()).await;
    let mut waited = 0;
    while !app.state.store.audit_for_request("old-access-2").await.unwrap().is_empty() {
        assert!(waited < 100, "retention was not applied within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let after = history(restarted.base_url.clone()).await;
    assert!(after.iter().all(|r| !r.starts_with("old-access-")), "{after:?}");
    assert!(after.contains(&read.header("x-request-id").unwrap()), "the recent access stays: {after:?}");

    restarted.handle.stop(true).await;
    let dir = app.stop_keeping_files().await;
    let report = tideway_gateway::cli::audit::check(&settings).await.unwrap();
    assert!(report.intact(), "{:?}", report.findings);
    assert_eq!(report.retained_from.map(|r| r.0), Some(4), "verified from the retention anchor");
    let said = tideway_gateway::cli::audit::describe(&report);
    assert!(said.contains("records before seq 4 were removed under retention"), "{said}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_gateway_does_not_start_on_a_trail_cut_short_since_its_last_checkpoint() {
    let app = TestApp::spawn(Options { boroughs: 2, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    app.patient_id(&token, &nhs).await;
    let settings = app.settings.clone();
    let path = app.sqlite_path.clone().unwrap();
    let dir = app.stop_keeping_files().await;
    // Restarted as it was: it starts.
    let again =
        tideway_gateway::app::Application::build(settings.clone()).await.expect("an intact trail starts");
    let handle = again.handle();
    tokio::spawn(again.run());
    handle.stop(true).await;

    // Someone with the database removes the newest records, triggers and all.
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let head: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM audit_event").fetch_one(&mut db).await.unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER audit_event_no_delete; DELETE FROM audit_event WHERE seq > (SELECT MAX(seq) - 2 FROM audit_event);",
    )
    .execute(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();
    let refused =
        tideway_gateway::app::Application::build(settings).await.err().expect("a cut trail does not start");
    let said = refused.to_string();
    assert!(said.contains("audit trail damaged since its last checkpoint"), "{said}");
    assert!(said.contains(&format!("seq {}: truncated", head - 1)), "{said}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_audit_says_what_was_asked_by_type_and_parameter_names_never_their_values() {
    use base64::Engine as _;
    use tideway_gateway::audit::AuditLog as _;
    let app = TestApp::spawn(Options { boroughs: 2, ..Options::default() }).await;
    let clinician = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&clinician, &nhs).await;
    let search = app.get(&format!("/Condition?patient={id}&clinical-status=active"), Some(&clinician)).await;
    assert_eq!(search.status, 200, "{}", search.body);
    let everything = app.get(&format!("/Patient/{id}/$everything?_type=Condition"), Some(&clinician)).await;
    assert_eq!(everything.status, 200, "{}", everything.body);
    let condition = everything.resources().into_iter().find(|r| r["resourceType"] == "Condition").unwrap();
    let read_path = format!("/Condition/{}", condition["id"].as_str().unwrap());
    let read = app.get(&read_path, Some(&clinician)).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let asked = [
        (&search, "Condition?patient&clinical-status".to_owned()),
        (&everything, "Patient/$everything?_type".to_owned()),
        (&read, read_path.trim_start_matches('/').to_owned()),
    ];
    for (answer, query) in &asked {
        let rows = app.state.store.audit_for_request(&answer.header("x-request-id").unwrap()).await.unwrap();
        assert!(rows.len() >= 2, "intent and outcome");
        for row in &rows {
            let detail: Value = serde_json::from_str(&row.detail).unwrap();
            assert_eq!(detail["query"], query.as_str(), "{}: {}", row.phase.as_str(), row.detail);
            assert!(!row.detail.contains("active") && !row.detail.contains(&nhs), "{}", row.detail);
        }
    }
    // The NHS-number search: the parameter is named, the number is not.
    let rows = app
        .state
        .store
        .audit_for_request(
            &app.get(&nhs_search(&nhs), Some(&clinician)).await.header("x-request-id").unwrap(),
        )
        .await
        .unwrap();
    assert!(
        rows.iter().all(|r| r.detail.contains(r#""query":"Patient?identifier""#) && !r.detail.contains(&nhs))
    );

    // The privacy officer sees it as BALP's query entity (role 24, base64).
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    let history = app.get(&format!("/AuditEvent?patient={id}"), Some(&officer)).await;
    let rid = search.header("x-request-id").unwrap();
    let event = events(&history).into_iter().find(|e| request_id_of(e) == rid).expect("the search is listed");
    let entity = event["entity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["role"]["code"] == "24")
        .expect("a query entity");
    let query = base64::engine::general_purpose::STANDARD.decode(entity["query"].as_str().unwrap()).unwrap();
    assert_eq!(String::from_utf8(query).unwrap(), "Condition?patient&clinical-status");
    app.stop().await;
}
