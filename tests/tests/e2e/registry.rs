//! The source registry over HTTP: borough exchanges registered, changed, suspended, resumed and
//! deregistered while the gateway runs, each change taking effect on the next request and
//! audited; sources without a current information-governance attestation not asked (and
//! answers saying so); the config's sources registered at start, the config winning after a
//! restart; health shown; consuming organisations without an attestation refused when asked
//! for. On SQLite and PostgreSQL.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use reqwest::Method;
use serde_json::{Value, json};
use tideway_adapters::SystemKind;
use tideway_auth::PurposeOfUse;
use tideway_gateway::store::AuditLog as _;
use tideway_simulators::fhir_r4::simulator::{FaultConfig, RunningSimulator};
use tideway_simulators::kinds;
use tideway_tests::{
    Answer, Options, PRIVACY_OFFICE, REGISTRY_ADMIN, StoreKind, TestApp, clinician, nhs_search, user,
};

async fn send(app: &TestApp, method: Method, path: &str, token: &str, body: Option<&Value>) -> Answer {
    let mut req = app.http.request(method, format!("{}{path}", app.base_url)).bearer_auth(token);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    Answer::from_response(req.send().await.expect("request")).await
}

async fn admin_token(app: &TestApp) -> String {
    app.token_for(&user(REGISTRY_ADMIN, "R8000", PurposeOfUse::Operations)).await
}

fn in_days(days: i64) -> String {
    (time::OffsetDateTime::now_utc().date() + time::Duration::days(days)).to_string()
}

fn attest(status: &str, expires: &str) -> Value {
    json!({"scheme": "dspt", "status": status, "expires": expires})
}

fn registration(id: &str, base_url: &str, status: &str, expires: &str) -> Value {
    json!({
        "id": id, "name": "Late borough exchange", "kind": "fhir-r4", "ods_code": "LBX77",
        "base_url": base_url, "timeout_ms": 2000,
        "attestation": attest(status, expires)
    })
}

/// A gateway without the per-source cache (so every request reaches the sources), its
/// administrator and a clinician, a second copy of borough 1's exchange that its config does
/// not list, and the `$everything` path of a patient that exchange holds.
struct Late {
    app: TestApp,
    admin: String,
    clinician: String,
    extra: RunningSimulator,
    base: String,
    nhs: tideway_profiles::NhsNumber,
    everything: String,
}

impl Late {
    async fn start(store: StoreKind) -> Self {
        let app = TestApp::spawn(Options { store, cache: false, ..Options::default() }).await;
        let admin = admin_token(&app).await;
        let clinician = app.token().await;
        let bind = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        let extra = kinds::start(SystemKind::FhirR4, bind, app.population, 1, FaultConfig::default())
            .await
            .expect("simulator");
        let base = extra.base_url().to_string();
        let nhs = app.patient_held_by(&[1]);
        let id = app.patient_id(&clinician, nhs.as_str()).await;
        let everything = format!("/Patient/{id}/$everything");
        Self { app, admin, clinician, extra, base, nhs, everything }
    }

    /// Registers the extra exchange through the API as `late-01`, attested for a year.
    async fn register(&self) -> Answer {
        let body = registration("late-01", &self.base, "standards-met", &in_days(365));
        send(&self.app, Method::POST, "/admin/sources", &self.admin, Some(&body)).await
    }

    async fn stop(self) {
        self.extra.stop().await;
        self.app.stop().await;
    }
}

fn listed<'a>(list: &'a Answer, id: &str) -> Option<&'a Value> {
    list.body["sources"].as_array().and_then(|s| s.iter().find(|s| s["id"] == id))
}

/// What the outcome entry of `answer` says about source `id`.
fn said_about(answer: &Answer, id: &str) -> String {
    answer
        .outcome_entry()
        .and_then(|oo| oo["issue"].as_array())
        .map(|issues| {
            issues
                .iter()
                .filter_map(|i| i["diagnostics"].as_str())
                .filter(|d| d.contains(&format!("'{id}'")))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_default()
}

async fn registry_follows_changes_at_run_time(store: StoreKind) {
    let late = Late::start(store).await;
    let Late { app, admin, clinician, extra, everything, .. } = &late;
    let (admin, clinician, everything) = (admin.as_str(), clinician.as_str(), everything.as_str());
    let list = send(app, Method::GET, "/admin/sources", admin, None).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let sources = list.body["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 3, "the config's sources are registered at start");
    for s in sources {
        assert_eq!(s["state"], "active");
        assert_eq!(s["origin"], "config");
        assert_eq!(s["asked"], true);
        assert_eq!(s["attestation_standing"], "assumed", "config entries without one are assumed");
    }
    assert_eq!(sources[0]["kind"], "fhir-r4");
    assert!(sources[0]["ods_code"].is_string() && sources[0]["base_url"].is_string());

    // Registered: asked from the next request on, and named in that request's audit.
    let created = late.register().await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.header("location").unwrap().ends_with("/admin/sources/late-01"));
    assert_eq!(created.body["origin"], "api");
    assert_eq!(created.body["attestation_standing"], "current");
    assert_eq!(created.body["asked"], true);
    let before = extra.hits().total;
    let a = app.get(everything, Some(clinician)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(extra.hits().total > before, "the new source is asked");
    let rows = app.state.store.audit_for_request(&a.header("x-request-id").unwrap()).await.unwrap();
    assert!(rows[0].sources.contains("late-01"), "{}", rows[0].sources);

    // Suspended: not asked, and the answer says it is missing.
    let s = send(app, Method::POST, "/admin/sources/late-01/suspend", admin, None).await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(s.body["state"], "suspended");
    let before = extra.hits().total;
    let a = app.get(everything, Some(clinician)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(extra.hits().total, before, "a suspended source is not asked");
    assert!(said_about(&a, "late-01").contains("suspended"), "{}", a.body);
    let rows = app.state.store.audit_for_request(&a.header("x-request-id").unwrap()).await.unwrap();
    assert!(!rows[0].sources.contains("late-01"), "the audit names only the sources asked");

    // Resumed: asked again.
    let r = send(app, Method::POST, "/admin/sources/late-01/resume", admin, None).await;
    assert_eq!(r.body["state"], "active");
    let before = extra.hits().total;
    let a = app.get(everything, Some(clinician)).await;
    assert!(extra.hits().total > before);
    assert_eq!(said_about(&a, "late-01"), "");

    // Changed: the new registration holds (a dead address: the answer names it as failed).
    let mut moved = registration("late-01", "http://127.0.0.1:9/fhir", "standards-met", &in_days(365));
    moved["name"] = json!("Moved exchange");
    let u = send(app, Method::PUT, "/admin/sources/late-01", admin, Some(&moved)).await;
    assert_eq!(u.status, 200, "{}", u.body);
    assert_eq!(u.body["name"], "Moved exchange");
    let before = extra.hits().total;
    let a = app.get(everything, Some(clinician)).await;
    assert_eq!(extra.hits().total, before, "the old address is no longer asked");
    assert!(said_about(&a, "late-01").contains("missing"), "{}", a.body);

    // Deregistered: neither asked nor listed nor named.
    let d = send(app, Method::DELETE, "/admin/sources/late-01", admin, None).await;
    assert_eq!(d.status, 200, "{}", d.body);
    assert_eq!(d.body["state"], "deregistered");
    let a = app.get(everything, Some(clinician)).await;
    assert_eq!(said_about(&a, "late-01"), "");
    let list = send(app, Method::GET, "/admin/sources", admin, None).await;
    assert!(listed(&list, "late-01").is_none());
    assert_eq!(send(app, Method::POST, "/admin/sources/late-01/resume", admin, None).await.status, 404);

    // Every change is audited, under its own action, with the source it changed.
    let page = app.state.store.audit_page(i64::MIN, i64::MIN, 10_000).await.unwrap();
    let trail: Vec<&tideway_gateway::audit::AuditRecord> = page.iter().map(|c| &*c.stored).collect();
    let changes: Vec<(&str, &str)> = trail
        .iter()
        .filter(|r| r.phase == "outcome" && r.action.starts_with("source-") && r.action != "source-read")
        .map(|r| (r.action, r.outcome.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            ("source-register", "success"),
            ("source-change", "success"),
            ("source-change", "success"),
            ("source-change", "success"),
            ("source-deregister", "success"),
            ("source-change", "denied"),
        ]
    );
    assert!(
        trail
            .iter()
            .any(|r| r.action == "source-register" && r.phase == "intent" && r.sources.contains("late-01"))
    );
    late.stop().await;
}

#[tokio::test]
async fn registering_suspending_and_deregistering_takes_effect_on_the_next_request() {
    registry_follows_changes_at_run_time(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn registering_suspending_and_deregistering_takes_effect_on_the_next_request_on_postgres() {
    registry_follows_changes_at_run_time(StoreKind::Postgres).await;
}

#[tokio::test]
async fn bad_registrations_are_refused_naming_the_field_and_only_administrators_are_served() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let admin = admin_token(&app).await;
    let good = registration("late-09", "http://127.0.0.1:9/fhir", "standards-met", &in_days(90));
    for (field, value, expression) in [
        ("kind", json!("cerner"), "kind"),
        ("base_url", json!("not a url"), "base_url"),
        ("ods_code", json!("x"), "ods_code"),
        ("timeout_ms", json!(-1), "timeout_ms"),
        ("attestation", attest("great", "2027-01-01"), "attestation.status"),
        ("attestation", attest("standards-met", "next year"), "attestation.expires"),
    ] {
        let mut body = good.clone();
        body[field] = value;
        let a = send(&app, Method::POST, "/admin/sources", &admin, Some(&body)).await;
        assert_eq!(a.status, 400, "{field}: {}", a.body);
        assert_eq!(a.body["resourceType"], "OperationOutcome");
        assert_eq!(a.body["issue"][0]["expression"][0], expression, "{}", a.body);
        assert!(a.body["issue"][0]["diagnostics"].as_str().unwrap().starts_with(expression));
    }
    let mut no_attestation = good.clone();
    no_attestation.as_object_mut().unwrap().remove("attestation");
    let a = send(&app, Method::POST, "/admin/sources", &admin, Some(&no_attestation)).await;
    assert_eq!((a.status, a.body["issue"][0]["expression"][0].as_str()), (400, Some("attestation")));
    assert_eq!(send(&app, Method::POST, "/admin/sources", &admin, Some(&good)).await.status, 201);
    let again = send(&app, Method::POST, "/admin/sources", &admin, Some(&good)).await;
    assert_eq!((again.status, again.issue_code()), (409, "conflict"));
    let mut renamed = good.clone();
    renamed["id"] = json!("late-10");
    let a = send(&app, Method::PUT, "/admin/sources/late-09", &admin, Some(&renamed)).await;
    assert_eq!((a.status, a.body["issue"][0]["expression"][0].as_str()), (400, Some("id")));
    assert_eq!(send(&app, Method::PUT, "/admin/sources/nobody", &admin, Some(&good)).await.status, 400);

    // A clinician, a privacy officer and an administrator's organisation acting for treatment
    // are all refused, and audited.
    for who in [
        clinician(),
        user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations),
        user(REGISTRY_ADMIN, "R8000", PurposeOfUse::Treat),
    ] {
        let token = app.token_for(&who).await;
        let a = send(&app, Method::GET, "/admin/sources", &token, None).await;
        assert_eq!((a.status, a.issue_code()), (403, "forbidden"), "{}", a.body);
        let a = send(&app, Method::DELETE, "/admin/sources/late-09", &token, None).await;
        assert_eq!(a.status, 403);
        let rows = app.state.store.audit_for_request(&a.header("x-request-id").unwrap()).await.unwrap();
        assert_eq!((rows[0].action, rows[0].outcome.as_str()), ("source-deregister", "denied"));
    }
    assert_eq!(send(&app, Method::GET, "/admin/sources", "not-a-token", None).await.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_source_without_a_current_attestation_is_not_asked_and_answers_say_so() {
    let late = Late::start(StoreKind::Sqlite).await;
    let Late { app, admin, clinician, extra, base, nhs, everything } = &late;
    let (admin, clinician, base, everything) =
        (admin.as_str(), clinician.as_str(), base.as_str(), everything.as_str());

    let created = send(
        app,
        Method::POST,
        "/admin/sources",
        admin,
        Some(&registration("late-01", base, "standards-not-met", &in_days(365))),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        (created.body["asked"].as_bool(), created.body["attestation_standing"].as_str()),
        (Some(false), Some("not-met"))
    );
    for (status, expires, standing, phrase) in [
        ("standards-not-met", in_days(365), "not-met", "standards not met"),
        ("standards-met", in_days(-1), "expired", "expired"),
    ] {
        let body = registration("late-01", base, status, &expires);
        let u = send(app, Method::PUT, "/admin/sources/late-01", admin, Some(&body)).await;
        assert_eq!(u.body["attestation_standing"], standing, "{}", u.body);
        let before = extra.hits().total;
        let a = app.get(everything, Some(clinician)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(extra.hits().total, before, "{standing}: not asked");
        let said = said_about(&a, "late-01");
        assert!(said.contains("not asked") && said.contains(phrase), "{said}");
        // The patient search says so too.
        let found = app.get(&nhs_search(nhs.as_str()), Some(clinician)).await;
        assert!(said_about(&found, "late-01").contains(phrase), "{}", found.body);
    }
    // Expiring within the warning window: asked, and flagged.
    let body = registration("late-01", base, "approaching-standards", &in_days(10));
    let u = send(app, Method::PUT, "/admin/sources/late-01", admin, Some(&body)).await;
    assert_eq!(u.body["attestation_standing"], "expiring");
    assert_eq!(u.body["attestation_expiring"], true);
    assert_eq!(u.body["attestation_days_left"], 10);
    let before = extra.hits().total;
    let a = app.get(everything, Some(clinician)).await;
    assert!(extra.hits().total > before);
    assert_eq!(said_about(&a, "late-01"), "");

    // Health: each active source probed; the dead one down, the live ones up.
    let dead = registration("dead-01", "http://127.0.0.1:9/fhir", "standards-met", &in_days(365));
    assert_eq!(send(app, Method::POST, "/admin/sources", admin, Some(&dead)).await.status, 201);
    app.state.registry.probe().await;
    let list = send(app, Method::GET, "/admin/sources", admin, None).await;
    let live = &listed(&list, "late-01").unwrap()["health"];
    assert_eq!(live["up"], true, "{live}");
    assert!(live["checked_at"].is_string() && live["latency_ms"].is_u64());
    assert_eq!(listed(&list, "dead-01").unwrap()["health"]["up"], false);
    assert_eq!(listed(&list, "borough-00").unwrap()["health"]["up"], true);
    late.stop().await;
}

async fn config_wins_after_a_restart(store: StoreKind) {
    let app = TestApp::spawn(Options { store, ..Options::default() }).await;
    let admin = admin_token(&app).await;
    // A config source may be suspended (kept across restarts), not changed or removed here.
    assert_eq!(send(&app, Method::POST, "/admin/sources/borough-00/suspend", &admin, None).await.status, 200);
    let own = registration("borough-00", "http://127.0.0.1:9/fhir", "standards-met", &in_days(365));
    let a = send(&app, Method::PUT, "/admin/sources/borough-00", &admin, Some(&own)).await;
    assert_eq!((a.status, a.issue_code()), (409, "conflict"), "{}", a.body);
    assert!(a.body["issue"][0]["diagnostics"].as_str().unwrap().contains("[[sources]]"));
    assert_eq!(send(&app, Method::DELETE, "/admin/sources/borough-00", &admin, None).await.status, 409);
    // Sources registered here persist; one of them the config takes over at the next start.
    for id in ["kept-01", "taken-01"] {
        let body = registration(id, "http://127.0.0.1:9/fhir", "standards-met", &in_days(365));
        assert_eq!(send(&app, Method::POST, "/admin/sources", &admin, Some(&body)).await.status, 201);
    }

    // Restarted (a second gateway on the same store) with another config: borough-01 renamed,
    // borough-02 no longer listed, taken-01 listed.
    let mut settings = app.settings.clone();
    settings.sources[1].name = "Renamed in the config".into();
    let mut taken = settings.sources[2].clone();
    settings.sources.truncate(2);
    taken.id = tideway_adapters::SourceId::parse("taken-01").unwrap();
    taken.name = "Listed in the config".into();
    settings.sources.push(taken);
    let restarted = app.spawn_replica_with(settings).await;
    let res = app
        .http
        .get(format!("{}/admin/sources", restarted.base_url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let list = Answer::from_response(res).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let ids: Vec<&str> =
        list.body["sources"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["borough-00", "borough-01", "taken-01", "kept-01"], "config order, then the API's");
    assert_eq!(listed(&list, "borough-00").unwrap()["state"], "suspended", "suspension survives a restart");
    assert_eq!(listed(&list, "borough-01").unwrap()["name"], "Renamed in the config");
    let taken = listed(&list, "taken-01").unwrap();
    assert_eq!(
        (taken["origin"].as_str(), taken["name"].as_str()),
        (Some("config"), Some("Listed in the config"))
    );
    assert_eq!(listed(&list, "kept-01").unwrap()["origin"], "api");
    // The agreements know the data controller of a source registered through the API (its
    // approval is among those an agreement for every controller waits for).
    let res = app.http.get(format!("{}/agreements", restarted.base_url)).bearer_auth(&admin).send().await;
    let agreements = Answer::from_response(res.unwrap()).await;
    assert_eq!(agreements.status, 200, "{}", agreements.body);
    assert!(agreements.body["agreements"].to_string().contains("LBX77"), "{}", agreements.body);
    restarted.handle.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn config_sources_are_registered_at_start_and_the_config_wins_after_a_restart() {
    config_wins_after_a_restart(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn config_sources_are_registered_at_start_and_the_config_wins_after_a_restart_on_postgres() {
    config_wins_after_a_restart(StoreKind::Postgres).await;
}

async fn consumers_need_an_attestation(store: StoreKind) {
    let app = TestApp::spawn(Options { store, boroughs: 1, ..Options::default() }).await;
    let mut settings = app.settings.clone();
    settings.registry.require_consumer_attestation = true;
    let gated = app.spawn_replica_with(settings).await;
    let admin = admin_token(&app).await;
    let clinician = app.token().await;
    let nhs = app.population.nhs_number(0).unwrap();
    let search = |token: String| {
        let url = format!("{}{}", gated.base_url, nhs_search(nhs.as_str()));
        let http = app.http.clone();
        async move { Answer::from_response(http.get(url).bearer_auth(token).send().await.unwrap()).await }
    };
    let put = |ods: &str, status: &str, expires: String| {
        let url = format!("{}/admin/organisations/{ods}", gated.base_url);
        let body = json!({"attestation": attest(status, &expires)});
        let req = app
            .http
            .put(url)
            .bearer_auth(admin.clone())
            .header("content-type", "application/json")
            .body(body.to_string());
        async move { Answer::from_response(req.send().await.unwrap()).await }
    };
    let refused = search(clinician.clone()).await;
    assert_eq!((refused.status, refused.issue_code()), (403, "forbidden"), "{}", refused.body);
    let said = refused.body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(said.contains("RJ122") && said.contains("attestation"), "{said}");
    let rows = app.state.store.audit_for_request(&refused.header("x-request-id").unwrap()).await.unwrap();
    assert_eq!(rows[0].outcome, "denied");

    let a = put("RJ122", "standards-met", in_days(365)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["served"], true);
    assert_eq!(search(clinician.clone()).await.status, 200);
    let a = put("RJ122", "standards-met", in_days(-3)).await;
    assert_eq!(a.body["attestation_standing"], "expired");
    let expired = search(clinician.clone()).await;
    assert_eq!(expired.status, 403);
    assert!(expired.body["issue"][0]["diagnostics"].as_str().unwrap().contains("expired"));
    let a = put("not-an-ods", "standards-met", in_days(3)).await;
    assert_eq!((a.status, a.body["issue"][0]["expression"][0].as_str()), (400, Some("ods")), "{}", a.body);
    let a = put("RJ1", "fine", in_days(3)).await;
    assert_eq!((a.status, a.body["issue"][0]["expression"][0].as_str()), (400, Some("attestation.status")));

    // The ungated gateway serves every organisation, as before.
    assert_eq!(app.get(&nhs_search(nhs.as_str()), Some(&clinician)).await.status, 200);
    let list = Answer::from_response(
        app.http
            .get(format!("{}/admin/organisations", gated.base_url))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list.body["organisations"][0]["ods_code"], "RJ122");
    gated.handle.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn consuming_organisations_without_a_current_attestation_are_refused_when_required() {
    consumers_need_an_attestation(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn consuming_organisations_without_a_current_attestation_are_refused_when_required_on_postgres() {
    consumers_need_an_attestation(StoreKind::Postgres).await;
}

/// Replicas sharing PostgreSQL: a source registered through one is asked by the other once it
/// reloads the registry (every `registry.refresh_secs`; here, when the test says).
#[tokio::test]
async fn a_replica_follows_a_registration_made_on_another() {
    let app = TestApp::spawn(Options { store: StoreKind::Postgres, boroughs: 1, ..Options::default() }).await;
    let replica = app.spawn_replica().await;
    let admin = admin_token(&app).await;
    let body = registration("late-05", "http://127.0.0.1:9/fhir", "standards-met", &in_days(365));
    let req = app.http.post(format!("{}/admin/sources", replica.base_url)).bearer_auth(&admin);
    let created = Answer::from_response(
        req.header("content-type", "application/json").body(body.to_string()).send().await.unwrap(),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    app.state.registry.reload().await.unwrap();
    let list = send(&app, Method::GET, "/admin/sources", &admin, None).await;
    let late = listed(&list, "late-05").expect("the other replica's registration");
    assert_eq!((late["state"].as_str(), late["asked"].as_bool()), (Some("active"), Some(true)));
    let rows = app.state.store.audit_for_request(&created.header("x-request-id").unwrap()).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.phase.as_str()).collect::<Vec<_>>(), ["intent", "outcome"]);
    replica.handle.stop(true).await;
    app.stop().await;
}

/// An agreement of its own for the controller `LBX77`: community pharmacy `FPH01` sees
/// medications and allergies from that controller's sources only.
const LATE_PHARMACY: &str = "id = \"late-pharmacy\"\nversion = 1\ntitle = \"Late borough pharmacy\"\n\
    consent_model = \"implied-direct-care\"\nstart = 2026-01-01\nobjection = \"Ask the pharmacy.\"\n\
    controllers = [\"LBX77\"]\n\n[recipients]\norganisations = [\"FPH01\"]\nroles = [\"R8003\"]\n\
    purposes = [\"TREAT\"]\nrelationship = \"granted\"\n\n[record]\nsections = [\"medications\", \"allergies\"]\n";

/// The released resources that came from source `id`.
fn released_from<'a>(answer: &'a Answer, id: &str) -> Vec<&'a Value> {
    let origin = format!("urn:tideway:source:{id}");
    answer.matches().into_iter().filter(|r| r["meta"]["source"] == origin.as_str()).collect()
}

#[tokio::test]
async fn a_source_registered_at_run_time_shares_under_its_controllers_agreement_at_once() {
    let late = Late::start(StoreKind::Sqlite).await;
    let Late { app, admin, base, everything, .. } = &late;
    let controller = app.token_for(&user("LBX77", "R8000", PurposeOfUse::Treat)).await;
    let published = app.post_text("/agreements", Some(&controller), LATE_PHARMACY).await;
    assert_eq!(published.status, 201, "{}", published.body);
    let approved = app.post_text("/agreements/late-pharmacy/1/approve", Some(&controller), "").await;
    assert_eq!(approved.body["state"], "in-force", "{}", approved.body);
    let pharmacist = app.token_for(&user("FPH01", "R8003", PurposeOfUse::Treat)).await;
    let before = app.get(everything, Some(&pharmacist)).await;
    assert_eq!(before.status, 200, "{}", before.body);
    assert!(released_from(&before, "late-01").is_empty(), "not registered yet");

    let created = late.register().await;
    assert_eq!(created.status, 201, "{}", created.body);
    let after = app.get(everything, Some(&pharmacist)).await;
    assert_eq!(after.status, 200, "{}", after.body);
    let shared = released_from(&after, "late-01");
    assert!(!shared.is_empty(), "the new controller's agreement covers its new source: {}", after.body);
    assert!(
        shared.iter().all(|r| {
            ["MedicationStatement", "MedicationRequest", "AllergyIntolerance", "Patient", "Organization"]
                .contains(&r["resourceType"].as_str().unwrap_or(""))
        }),
        "only the sections the agreement shares: {:?}",
        after
            .matches()
            .iter()
            .map(|r| (r["resourceType"].as_str(), r["meta"]["source"].as_str()))
            .collect::<Vec<_>>()
    );
    let rows = app.state.store.audit_for_request(&after.header("x-request-id").unwrap()).await.unwrap();
    assert!(rows.last().unwrap().detail.contains("late-pharmacy@1"), "{}", rows.last().unwrap().detail);

    // The same source moved to another controller: that controller approved nothing, so the
    // agreement no longer covers it.
    let mut moved = registration("late-01", base, "standards-met", &in_days(365));
    moved["ods_code"] = json!("LBX78");
    let u = send(app, Method::PUT, "/admin/sources/late-01", admin, Some(&moved)).await;
    assert_eq!(u.status, 200, "{}", u.body);
    let moved_away = app.get(everything, Some(&pharmacist)).await;
    assert_eq!(moved_away.status, 200, "{}", moved_away.body);
    assert!(released_from(&moved_away, "late-01").is_empty(), "{}", moved_away.body);
    late.stop().await;
}

/// The value of `tideway_source_attestation_days_left` for `source` on `/metrics`, if any.
async fn attestation_gauge(app: &TestApp, token: &str, source: &str) -> Option<i64> {
    tideway_tests::gauge(app, token, &format!("tideway_source_attestation_days_left{{source=\"{source}\"}}"))
        .await
}

#[tokio::test]
async fn a_sources_attestation_expiry_is_a_gauge_that_ends_with_its_registration() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let admin = admin_token(&app).await;
    let body = registration("gauged-01", "http://127.0.0.1:9/fhir", "standards-met", &in_days(20));
    assert_eq!(send(&app, Method::POST, "/admin/sources", &admin, Some(&body)).await.status, 201);
    assert_eq!(attestation_gauge(&app, &admin, "gauged-01").await, Some(20));
    let renewed = registration("gauged-01", "http://127.0.0.1:9/fhir", "standards-met", &in_days(-3));
    assert_eq!(send(&app, Method::PUT, "/admin/sources/gauged-01", &admin, Some(&renewed)).await.status, 200);
    assert_eq!(attestation_gauge(&app, &admin, "gauged-01").await, Some(-3), "negative once lapsed");
    assert_eq!(send(&app, Method::DELETE, "/admin/sources/gauged-01", &admin, None).await.status, 200);
    assert_eq!(attestation_gauge(&app, &admin, "gauged-01").await, None, "the series ends");

    // A consuming organisation's recorded attestation is a gauge too.
    let body = json!({"attestation": attest("standards-met", &in_days(12))});
    let put = send(&app, Method::PUT, "/admin/organisations/YGAUG", &admin, Some(&body)).await;
    assert_eq!(put.status, 200, "{}", put.body);
    let series = "tideway_organisation_attestation_days_left{organisation=\"YGAUG\"}";
    assert_eq!(tideway_tests::gauge(&app, &admin, series).await, Some(12));
    app.stop().await;
}
