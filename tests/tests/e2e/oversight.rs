//! Oversight over HTTP, on SQLite and PostgreSQL: an organisation's first read of a patient's
//! record notifies the patient's registered practice (stored with the access before anything is
//! released, read back by the practice through `GET /notifications`, delivered to a webhook that
//! may fail for a while or not be configured yet); misuse (a user sweeping patients, breaking the
//! glass too often) alerts the privacy officer and, when configured, pauses the user's reads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::relationship::plain_patients;
use serde_json::Value;
use tideway_auth::PurposeOfUse;
use tideway_gateway::config::AlertSettings;
use tideway_gateway::store::{AccessStore as _, AuditLog as _};
use tideway_tests::{Answer, Options, PRIVACY_OFFICE, StoreKind, TestApp, nhs_search, other_clinician, user};

async fn notifications(app: &TestApp, token: &str, query: &str) -> Answer {
    let a = app.get(&format!("/notifications{query}"), Some(token)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a
}

async fn first_read_notifies_the_registered_practice_once(store: StoreKind) {
    let app = TestApp::spawn(Options { store, ..Options::default() }).await;
    let doctor = app.token().await;
    let nhs = plain_patients(&app, 1).remove(0);
    let practice_ods = app.practice_of(&tideway_profiles::NhsNumber::parse(&nhs).unwrap());
    let practice = app.token_for(&user(&practice_ods, "R8000", PurposeOfUse::Treat)).await;
    assert_eq!(notifications(&app, &practice, "").await.body["total"], 0);

    // The first read (the NHS-number search) notifies; the reads after it do not.
    let found = app.get(&nhs_search(&nhs), Some(&doctor)).await;
    assert_eq!(found.status, 200, "{}", found.body);
    let id = found.matches()[0]["id"].as_str().unwrap().to_owned();
    for path in
        [format!("/Patient/{id}/$everything"), format!("/Condition?patient={id}"), format!("/Patient/{id}")]
    {
        assert_eq!(app.get(&path, Some(&doctor)).await.status, 200, "{path}");
    }
    let listed = notifications(&app, &practice, "").await;
    assert_eq!(listed.body["total"], 1, "{}", listed.body);
    let n = &listed.matches()[0];
    assert_eq!(n["resourceType"], "Communication");
    assert_eq!(n["subject"]["reference"], format!("Patient/{id}"));
    assert_eq!(n["sender"]["identifier"]["value"], "RJ122");
    assert_eq!(n["recipient"][0]["identifier"]["value"], practice_ods.as_str());
    let text = n["payload"][0]["contentString"].as_str().unwrap();
    assert!(text.contains(&found.header("x-request-id").unwrap()), "names the first request: {text}");
    assert!(!listed.body.to_string().contains(&nhs), "no NHS number: {}", listed.body);
    // The search's outcome is audited as well (the notification was stored before it).
    let rows = app.state.store.audit_for_request(&found.header("x-request-id").unwrap()).await.unwrap();
    assert_eq!(rows.last().unwrap().outcome.as_str(), "success");

    // Another organisation's first read is a second notification; filters narrow the list.
    let other = app.token_for(&other_clinician()).await;
    assert_eq!(app.get(&format!("/Patient/{id}/$everything"), Some(&other)).await.status, 200);
    let listed = notifications(&app, &practice, &format!("?patient={id}")).await;
    let senders: Vec<&Value> = listed.matches().iter().map(|n| &n["sender"]["identifier"]["value"]).collect();
    assert_eq!(senders, ["RJ122", "RKE"], "{}", listed.body);
    assert_eq!(notifications(&app, &practice, "?_since=2999-01-01T00:00:00Z").await.body["total"], 0);

    // Another practice sees none of them; a privacy officer sees them all.
    let elsewhere = app.token_for(&user("Y99999", "R8000", PurposeOfUse::Treat)).await;
    assert_eq!(notifications(&app, &elsewhere, "").await.body["total"], 0);
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    assert_eq!(notifications(&app, &officer, "").await.body["total"], 2);
    let bad = app.get("/notifications?_count=0", Some(&officer)).await;
    assert_eq!((bad.status, bad.issue_code()), (400, "invalid"), "{}", bad.body);
    app.stop().await;
}

#[tokio::test]
async fn a_new_organisations_first_read_notifies_the_registered_practice_once_on_sqlite() {
    first_read_notifies_the_registered_practice_once(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn a_new_organisations_first_read_notifies_the_registered_practice_once_on_postgres() {
    first_read_notifies_the_registered_practice_once(StoreKind::Postgres).await;
}

/// Breaks the notification outbox under the running gateway: the first-access transaction then
/// cannot be stored.
async fn break_outbox(app: &TestApp) {
    use sqlx::Connection;
    let sql = "ALTER TABLE notification_outbox RENAME TO notification_outbox_gone";
    match &app.sqlite_path {
        Some(path) => {
            let mut c =
                sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        None => {
            use secrecy::ExposeSecret;
            let url = app.settings.store.url.expose_secret().to_owned();
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
}

async fn unrecordable_first_access_releases_nothing(store: StoreKind) {
    let app = TestApp::spawn(Options { store, ..Options::default() }).await;
    let doctor = app.token().await;
    let nhs = plain_patients(&app, 1).remove(0);
    let id = app.patient_id(&doctor, &nhs).await;
    break_outbox(&app).await;
    // A new organisation: its first access cannot be stored, so nothing leaves.
    let other = app.token_for(&other_clinician()).await;
    for path in [format!("/Patient/{id}/$everything"), format!("/Patient/{id}"), nhs_search(&nhs)] {
        let a = app.get(&path, Some(&other)).await;
        assert_eq!((a.status, a.issue_code()), (503, "transient"), "{path}: {}", a.body);
        assert!(!a.body.to_string().contains(&nhs), "{}", a.body);
        let rows = app.state.store.audit_for_request(&a.header("x-request-id").unwrap()).await.unwrap();
        let last = rows.last().unwrap();
        assert_eq!((last.http_status, last.released), (503, 0), "{path}");
        assert!(last.detail.contains("oversight-store"), "{}", last.detail);
    }
    // The access was not stored half-way: it is still a first access.
    assert!(!app.state.store.has_accessed(&id, "RKE").await.unwrap());
    // The organisation that read before is still answered.
    assert_eq!(app.get(&format!("/Patient/{id}/$everything"), Some(&doctor)).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_first_access_that_cannot_be_recorded_releases_nothing_on_sqlite() {
    unrecordable_first_access_releases_nothing(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn a_first_access_that_cannot_be_recorded_releases_nothing_on_postgres() {
    unrecordable_first_access_releases_nothing(StoreKind::Postgres).await;
}

/// One call the test webhook received.
#[derive(Debug, Clone)]
struct Received {
    status: u16,
    id_header: String,
    body: String,
}

/// What the test webhook has received, and how many calls it fails first.
#[derive(Clone)]
struct Hook {
    calls: Arc<Mutex<Vec<Received>>>,
    failures: usize,
}

async fn hook(
    req: actix_web::HttpRequest,
    body: actix_web::web::Bytes,
    hook: actix_web::web::Data<Hook>,
) -> actix_web::HttpResponse {
    let id_header = req
        .headers()
        .get("x-tideway-notification-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut calls = hook.calls.lock().unwrap();
    let status = if calls.len() < hook.failures { 500 } else { 200 };
    calls.push(Received { status, id_header, body: String::from_utf8_lossy(&body).into_owned() });
    actix_web::HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

/// A webhook on a local port that answers 500 to its first `failures` calls and 200 after.
async fn webhook(failures: usize) -> (url::Url, Arc<Mutex<Vec<Received>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = url::Url::parse(&format!("http://{}/hook", listener.local_addr().unwrap())).unwrap();
    let state = Hook { calls: Arc::default(), failures };
    let calls = state.calls.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(state.clone()))
            .default_service(actix_web::web::to(hook))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (url, calls)
}

fn fast_webhook(url: url::Url) -> AlertSettings {
    AlertSettings {
        webhook_url: Some(url),
        webhook_poll_ms: 50,
        webhook_backoff_ms: 20,
        webhook_max_backoff_secs: 1,
        ..AlertSettings::default()
    }
}

/// Waits (a bounded number of polls) until the webhook has accepted `n` calls.
async fn accepted(calls: &Arc<Mutex<Vec<Received>>>, n: usize) -> Vec<Received> {
    for _ in 0..400 {
        let now: Vec<Received> = calls.lock().unwrap().clone();
        if now.iter().filter(|c| c.status == 200).count() >= n {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the webhook did not accept {n} notifications: {:?}", calls.lock().unwrap());
}

/// Waits (a bounded number of polls) until the outbox holds nothing undelivered: the webhook's
/// answer is marked just after it arrives.
async fn all_delivered(app: &TestApp) {
    for _ in 0..400 {
        if app.state.store.due_deliveries(i64::MAX, 10).await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("notifications are still undelivered in the outbox");
}

async fn webhook_retries_until_delivered(store: StoreKind) {
    let (url, calls) = webhook(2).await;
    let app = TestApp::spawn(Options { store, alerts: fast_webhook(url), ..Options::default() }).await;
    let doctor = app.token().await;
    let nhs = plain_patients(&app, 1).remove(0);
    let id = app.patient_id(&doctor, &nhs).await;
    let got = accepted(&calls, 1).await;
    assert_eq!(got.iter().map(|c| c.status).collect::<Vec<_>>(), [500, 500, 200], "retried after failures");
    assert!(got.iter().all(|c| c.id_header == got[0].id_header && !c.id_header.is_empty()), "{got:?}");
    let body: Value = serde_json::from_str(&got[2].body).unwrap();
    assert_eq!(body["resourceType"], "Communication");
    assert_eq!(body["id"], got[2].id_header.as_str());
    assert_eq!(body["subject"]["reference"], format!("Patient/{id}"));
    assert!(!got[2].body.contains(&nhs), "names the patient by the opaque id only: {}", got[2].body);
    // Delivered: nothing is due any more, however late.
    all_delivered(&app).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(calls.lock().unwrap().len(), 3, "not sent again once accepted");
    app.stop().await;
}

#[tokio::test]
async fn the_webhook_is_retried_until_it_accepts_and_then_left_alone_on_sqlite() {
    webhook_retries_until_delivered(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn the_webhook_is_retried_until_it_accepts_and_then_left_alone_on_postgres() {
    webhook_retries_until_delivered(StoreKind::Postgres).await;
}

async fn undelivered_survive_a_restart(store: StoreKind) {
    // No webhook yet: notifications wait in the outbox.
    let app = TestApp::spawn(Options { store, ..Options::default() }).await;
    let doctor = app.token().await;
    let plain = plain_patients(&app, 2);
    for nhs in &plain {
        app.patient_id(&doctor, nhs).await;
    }
    assert_eq!(app.state.store.due_deliveries(i64::MAX, 10).await.unwrap().len(), 2);
    // The gateway as restarted with a webhook, over the same store, sends both.
    let (url, calls) = webhook(0).await;
    let mut settings = app.settings.clone();
    settings.alerts = fast_webhook(url);
    let restarted = app.spawn_replica_with(settings).await;
    let got = accepted(&calls, 2).await;
    let ids: std::collections::HashSet<&str> = got.iter().map(|c| c.id_header.as_str()).collect();
    assert_eq!(ids.len(), 2, "{got:?}");
    all_delivered(&app).await;
    restarted.handle.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn undelivered_notifications_survive_a_restart_and_are_sent_once_a_webhook_is_configured_on_sqlite() {
    undelivered_survive_a_restart(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn undelivered_notifications_survive_a_restart_and_are_sent_once_a_webhook_is_configured_on_postgres() {
    undelivered_survive_a_restart(StoreKind::Postgres).await;
}

async fn alerts_of(app: &TestApp, kind: &str) -> Vec<Value> {
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    let a = app.get("/alerts", Some(&officer)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.matches().into_iter().filter(|c| c["category"][0]["coding"][0]["code"] == kind).cloned().collect()
}

async fn a_sweep_is_alerted_and_paused(store: StoreKind) {
    let alerts = AlertSettings { sweep_patients: 2, rate_limit: true, ..AlertSettings::default() };
    let app = TestApp::spawn(Options { store, alerts, ..Options::default() }).await;
    let doctor = app.token().await;
    let plain = plain_patients(&app, 3);
    for nhs in &plain[..2] {
        assert_eq!(app.get(&nhs_search(nhs), Some(&doctor)).await.status, 200);
    }
    assert!(alerts_of(&app, "patient-sweep").await.is_empty(), "two patients are within the threshold");
    // The third different patient: alerted, and (rate limiting on) refused, as is every read after.
    let id0 = app.patient_id(&app.token_for(&other_clinician()).await, &plain[0]).await;
    for path in [nhs_search(&plain[2]), format!("/Patient/{id0}/$everything"), nhs_search(&plain[0])] {
        let a = app.get(&path, Some(&doctor)).await;
        assert_eq!((a.status, a.issue_code()), (429, "throttled"), "{path}: {}", a.body);
        assert!(a.header("retry-after").unwrap().parse::<u64>().unwrap() > 0);
        let rows = app.state.store.audit_for_request(&a.header("x-request-id").unwrap()).await.unwrap();
        let last = rows.last().unwrap();
        assert_eq!((last.http_status, last.outcome.as_str()), (429, "denied"), "{path}");
        assert!(last.detail.contains("misuse-limited"), "{}", last.detail);
    }
    let raised = alerts_of(&app, "patient-sweep").await;
    assert_eq!(raised.len(), 1, "one alert per window: {raised:?}");
    let text = raised[0]["payload"][0]["contentString"].as_str().unwrap();
    assert!(
        text.contains("read 3 different patients within 3600 seconds") && text.contains("RJ122"),
        "{text}"
    );
    assert!(plain.iter().all(|nhs| !text.contains(nhs.as_str())), "{text}");
    // Another user is not paused.
    let other = app.token_for(&other_clinician()).await;
    assert_eq!(app.get(&nhs_search(&plain[2]), Some(&other)).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_user_sweeping_patients_is_alerted_and_with_rate_limiting_refused_on_sqlite() {
    a_sweep_is_alerted_and_paused(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn a_user_sweeping_patients_is_alerted_and_with_rate_limiting_refused_on_postgres() {
    a_sweep_is_alerted_and_paused(StoreKind::Postgres).await;
}

async fn break_glass_too_often_is_alerted(store: StoreKind) {
    let alerts = AlertSettings { break_glass_per_day: 1, ..AlertSettings::default() };
    let app = TestApp::spawn(Options { store, alerts, ..Options::default() }).await;
    let plain = plain_patients(&app, 2);
    for nhs in &plain {
        // A fresh token per session, as the user would get.
        let glass = app.token_for(&user("YOOH1", "R8000", PurposeOfUse::EmergencyTreat)).await;
        assert_eq!(app.get(&nhs_search(nhs), Some(&glass)).await.status, 200, "alert only: not refused");
    }
    let raised = alerts_of(&app, "break-glass-pattern").await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    let text = raised[0]["payload"][0]["contentString"].as_str().unwrap();
    assert!(text.contains("opened 2 break-glass sessions within 24 hours"), "{text}");
    assert_eq!(alerts_of(&app, "break-glass").await.len(), 2, "each session is alerted as before");
    app.stop().await;
}

#[tokio::test]
async fn break_glass_more_often_than_configured_is_alerted_on_sqlite() {
    break_glass_too_often_is_alerted(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn break_glass_more_often_than_configured_is_alerted_on_postgres() {
    break_glass_too_often_is_alerted(StoreKind::Postgres).await;
}

async fn retention_forgets_old_alerts_and_delivered_notifications_only(store: StoreKind) {
    let app = TestApp::spawn(Options { store, ..Options::default() }).await;
    let doctor = app.token().await;
    let plain = plain_patients(&app, 1);
    app.patient_id(&doctor, &plain[0]).await;
    let glass = app.token_for(&user("YOOH1", "R8000", PurposeOfUse::EmergencyTreat)).await;
    assert_eq!(app.get(&nhs_search(&plain[0]), Some(&glass)).await.status, 200);
    assert_eq!(alerts_of(&app, "break-glass").await.len(), 1);
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    assert_eq!(notifications(&app, &officer, "").await.body["total"], 2, "RJ122 and YOOH1 read first");
    // Everything before a cut-off far ahead: the alert goes; the notifications stay, undelivered.
    let far = i64::MAX / 2;
    app.state.store.forget_alerts_before(far).await.unwrap();
    assert!(alerts_of(&app, "break-glass").await.is_empty());
    assert_eq!(notifications(&app, &officer, "").await.body["total"], 2, "undelivered are kept");
    // Once delivered, they go too; the organisations' accesses stay (no second first access).
    for due in app.state.store.due_deliveries(far, 10).await.unwrap() {
        app.state.store.delivered(&due.notification.notification_id, 1).await.unwrap();
    }
    app.state.store.forget_alerts_before(far).await.unwrap();
    assert_eq!(notifications(&app, &officer, "").await.body["total"], 0);
    let id = app.patient_id(&doctor, &plain[0]).await;
    assert!(app.state.store.has_accessed(&id, "RJ122").await.unwrap());
    assert_eq!(notifications(&app, &officer, "").await.body["total"], 0, "not a first access again");
    // The audit trail is not shortened: the request is audited as before.
    let rows = app
        .state
        .store
        .audit_for_request(
            &app.get(&nhs_search(&plain[0]), Some(&doctor)).await.header("x-request-id").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn retention_forgets_old_alerts_and_delivered_notifications_only_on_sqlite() {
    retention_forgets_old_alerts_and_delivered_notifications_only(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn retention_forgets_old_alerts_and_delivered_notifications_only_on_postgres() {
    retention_forgets_old_alerts_and_delivered_notifications_only(StoreKind::Postgres).await;
}
