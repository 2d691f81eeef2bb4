//! Authentication through the real `/token` endpoint and bearer checks on the API.

use std::time::Duration;

use serde_json::{Value, json};
use tideway_auth::client::{forge, token_form_for};
use tideway_gateway::store::AuditLog as _;
use tideway_tests::{Options, StoreKind, TestApp, clinician, nhs_search};

async fn oauth_error(app: &TestApp, assertion: &str) -> (u16, Value) {
    let res = app.post_token(token_form_for(assertion, "system/*.read").unwrap()).await;
    let status = res.status().as_u16();
    assert_eq!(res.headers()["cache-control"], "no-store");
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn es384_and_rs384_clients_get_tokens_that_open_the_api() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    for client in [&app.es_client, &app.rs_client] {
        let form = client.token_form(&app.token_url(), "system/*.read", &clinician()).unwrap();
        let res = app.post_token(form).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["token_type"].as_str().unwrap().to_ascii_lowercase(), "bearer");
        assert!(body["expires_in"].as_u64().unwrap() <= 300);
        assert_eq!(body["scope"], "system/*.read");
        let token = body["access_token"].as_str().unwrap();
        let nhs = app.population.nhs_number(0).unwrap();
        let a = app.get(&nhs_search(nhs.as_str()), Some(token)).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    // SMART v2 scope syntax too.
    let form = app.es_client.token_form(&app.token_url(), "system/*.rs", &clinician()).unwrap();
    assert_eq!(app.post_token(form).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn forged_and_replayed_assertions_are_refused() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let url = app.token_url();
    let user = clinician();
    let life = Duration::from_secs(120);
    let c = &app.es_client;

    // alg none.
    let mut header = c.header();
    header["alg"] = json!("none");
    let none = forge::unsigned(&header, &c.claims(&url, &user, life));
    let (s, e) = oauth_error(&app, &none).await;
    assert!(s == 400 || s == 401, "{s}");
    assert!(e["error"] == "invalid_client" || e["error"] == "invalid_grant", "{e}");

    // HMAC signed with the public JWKS text (algorithm confusion).
    let mut header = c.header();
    header["alg"] = json!("HS384");
    let confused = forge::hmac_signed(
        jsonwebtoken::Algorithm::HS384,
        c.jwks_json().as_bytes(),
        &header,
        &c.claims(&url, &user, life),
    )
    .unwrap();
    let (s, _) = oauth_error(&app, &confused).await;
    assert!(s == 400 || s == 401);

    // Wrong audience.
    let wrong_aud = c
        .assertion_with(&url, &user, life, |_, cl| cl["aud"] = json!("https://elsewhere.example/token"))
        .unwrap();
    let (s, e) = oauth_error(&app, &wrong_aud).await;
    assert!(s == 400 || s == 401, "{e}");

    // Expired.
    let expired = c
        .assertion_with(&url, &user, life, |_, cl| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            cl["exp"] = json!(now - 600);
            cl["iat"] = json!(now - 700);
        })
        .unwrap();
    let (s, _) = oauth_error(&app, &expired).await;
    assert!(s == 400 || s == 401);

    // Lifetime over five minutes.
    let long = c.assertion(&url, &user, Duration::from_secs(3600)).unwrap();
    let (s, _) = oauth_error(&app, &long).await;
    assert!(s == 400 || s == 401);

    // Bad signature: signed by a key the gateway does not know for this client.
    let stranger = tideway_auth::client::BackendClient::generate_es384("test-es", "es-test-1").unwrap();
    let (s, _) = oauth_error(&app, &stranger.assertion(&url, &user, life).unwrap()).await;
    assert!(s == 400 || s == 401);

    // Replayed jti: the first use succeeds, the second is refused.
    let once = c.assertion(&url, &user, life).unwrap();
    let first = app.post_token(token_form_for(&once, "system/*.read").unwrap()).await;
    assert_eq!(first.status(), 200);
    let (s, e) = oauth_error(&app, &once).await;
    assert!(s == 400 || s == 401, "{e}");
    // A replay names its client (the signature verified): audited as that client's refused
    // token request. An assertion no key verifies names no one: only counted per peer.
    use tideway_gateway::store::AuditLog as _;
    let replayed = app.post_token(token_form_for(&once, "system/*.read").unwrap()).await;
    let rid = replayed.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(replayed.status(), 401);
    let rows = app.state.store.audit_for_request(&rid).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].action, rows[0].client_id.as_deref()), ("token", Some("test-es")));
    assert_eq!(rows[0].outcome, "denied");
    let unverified = app
        .post_token(token_form_for(&stranger.assertion(&url, &user, life).unwrap(), "system/*.read").unwrap())
        .await;
    let rid = unverified.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(app.state.store.audit_for_request(&rid).await.unwrap().is_empty());

    // Missing user claims.
    let anonymous = c
        .assertion_with(&url, &user, life, |_, cl| {
            cl.as_object_mut().unwrap().remove("extensions");
        })
        .unwrap();
    let (s, e) = oauth_error(&app, &anonymous).await;
    assert_eq!(s, 400);
    assert_eq!(e["error"], "invalid_request");

    // Not a form at all.
    let res = app
        .http
        .post(app.token_url())
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    app.stop().await;
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_with_www_authenticate() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let hits = app.simulator_hits();
    for token in [None, Some("garbage"), Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")] {
        let a = app.get(&nhs_search("9434765919"), token).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.issue_code(), "login");
        let challenge = a.header("www-authenticate").expect("WWW-Authenticate");
        assert!(challenge.starts_with("Bearer"));
        // RFC 6750 3.1: a request with no credentials gets a challenge without an error code.
        assert_eq!(challenge.contains(r#"error="invalid_token""#), token.is_some(), "{challenge}");
    }
    let a = app.get("/Condition?patient=p00000000000000000000000000000000", None).await;
    assert_eq!(a.status, 401);
    assert_eq!(app.simulator_hits(), hits, "no source may be asked for an unauthenticated request");
    app.stop().await;
}

/// A refusal of a bearer token: 401, an OperationOutcome of IssueType `login`, and nothing of
/// the token in the answer.
#[track_caller]
fn assert_token_refused(a: &tideway_tests::Answer, token: &str) {
    assert_eq!((a.status, a.issue_code()), (401, "login"), "{}", a.body);
    assert_eq!(a.body["resourceType"], "OperationOutcome");
    assert!(a.header("www-authenticate").is_some_and(|c| c.contains(r#"error="invalid_token""#)));
    let raw = String::from_utf8_lossy(&a.raw);
    assert!(token.split('.').all(|part| !raw.contains(part)), "the answer echoes the token");
}

#[tokio::test]
async fn a_suspended_or_removed_client_loses_its_live_tokens_at_once() {
    let app = TestApp::spawn(Options { boroughs: 1, store: StoreKind::Postgres, ..Options::default() }).await;
    let token = app.token().await;
    let search = nhs_search(app.population.nhs_number(0).unwrap().as_str());
    assert_eq!(app.get(&search, Some(&token)).await.status, 200);

    let registry = app.state.tokens.clients();
    assert!(registry.set_suspended("test-es", true));
    assert_token_refused(&app.get(&search, Some(&token)).await, &token);
    let form = app.es_client.token_form(&app.token_url(), "", &clinician()).unwrap();
    let res = app.post_token(form).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_client");
    assert!(registry.set_suspended("test-es", false));
    assert_eq!(app.get(&search, Some(&token)).await.status, 200, "reinstated");

    // Restarted without the client (same signing secret and store), the gateway refuses it.
    let mut settings = app.settings.clone();
    settings.auth.clients.retain(|c| c.client_id != "test-es");
    let restarted = app.spawn_replica_with(settings).await;
    let elsewhere = format!("{}{search}", restarted.base_url);
    assert_token_refused(&app.get(&elsewhere, Some(&token)).await, &token);
    let rs_form = app.rs_client.token_form(&app.token_url(), "", &clinician()).unwrap();
    let rs_token: Value = app.post_token(rs_form).await.json().await.unwrap();
    let rs_token = rs_token["access_token"].as_str().unwrap();
    assert_eq!(app.get(&elsewhere, Some(rs_token)).await.status, 200, "other clients are untouched");
    restarted.handle.stop(true).await;

    assert!(registry.remove("test-es"));
    assert_token_refused(&app.get(&search, Some(&token)).await, &token);
    app.stop().await;
}

#[tokio::test]
async fn control_characters_in_the_users_claims_are_refused_at_token() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    for (user, claim) in [
        (tideway_auth::UserClaims { name: Some("Dr Test\nAdmin".to_owned()), ..clinician() }, "subject_name"),
        (tideway_auth::UserClaims { user_id: "5550\u{1b}21935107".to_owned(), ..clinician() }, "subject_id"),
    ] {
        let res = app.post_token(app.es_client.token_form(&app.token_url(), "", &user).unwrap()).await;
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(
            body["error_description"],
            format!("extensions.ihe_iua.{claim} must not contain control characters")
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_client_asking_for_tokens_too_often_gets_429_with_retry_after_and_is_audited() {
    let limit = tideway_auth::RateLimit::new(1, 2).unwrap();
    let app = TestApp::spawn(Options { boroughs: 1, token_rate_limit: limit, ..Options::default() }).await;
    let form = || app.es_client.token_form(&app.token_url(), "", &clinician()).unwrap();
    for _ in 0..2 {
        assert_eq!(app.post_token(form()).await.status(), 200);
    }
    let res = app.post_token(form()).await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let rid = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let rows = app.state.store.audit_for_request(&rid).await.unwrap();
    assert_eq!(rows.len(), 1, "the refusal is audited as a token request");
    assert_eq!(rows[0].action, "token");
    assert_ne!(rows[0].outcome, "success");
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "slow_down");
    assert!(body["error_description"].as_str().unwrap().contains("too often"), "{body}");
    // The other client is not held back.
    let rs = app.rs_client.token_form(&app.token_url(), "", &clinician()).unwrap();
    assert_eq!(app.post_token(rs).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_peer_flooding_without_a_valid_token_is_throttled_unaudited_and_tokens_still_work() {
    let limit = tideway_auth::RateLimit::new(1, 3).unwrap();
    let app =
        TestApp::spawn(Options { boroughs: 1, unauthenticated_rate_limit: limit, ..Options::default() })
            .await;
    let token = app.token().await;
    let search = nhs_search(app.population.nhs_number(0).unwrap().as_str());
    for bad in [None, Some("garbage"), None] {
        assert_eq!(app.get(&search, bad).await.status, 401);
    }
    for bad in [None, Some("garbage"), Some(token.as_str()).map(|t| &t[..t.len() - 2])] {
        let a = app.get(&search, bad).await;
        assert_eq!((a.status, a.issue_code()), (429, "throttled"), "{}", a.body);
        assert_eq!(a.body["resourceType"], "OperationOutcome");
        let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        let rid = a.header("x-request-id").unwrap();
        assert!(app.state.store.audit_for_request(&rid).await.unwrap().is_empty(), "a flood is not audited");
    }
    // Requests with a valid token from the same peer are neither counted nor held back.
    for _ in 0..5 {
        assert_eq!(app.get(&search, Some(&token)).await.status, 200);
    }
    app.stop().await;
}

/// Only a client registered as a patient-facing app may say its users are patients (purpose of
/// use PATRQT), and such an app may say nothing else: a clinical system cannot pass its users
/// off as patients to read their consents or access histories.
#[tokio::test]
async fn only_a_patient_app_may_assert_a_patients_own_request() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let as_patient = tideway_auth::client::UserClaims {
        user_id: "9434765919".to_owned(),
        ..tideway_tests::user("YAPP1", "R8000", tideway_auth::PurposeOfUse::PatientRequest)
    };
    for (client, user, allowed) in [
        (&app.es_client, &as_patient, false),
        (&app.patient_app_client, &clinician(), false),
        (&app.patient_app_client, &as_patient, true),
    ] {
        let form = client.token_form(&app.token_url(), "system/*.read", user).unwrap();
        let res = app.post_token(form).await;
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        if allowed {
            assert_eq!(status, 200, "{body}");
        } else {
            assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
            assert!(body["error_description"].as_str().unwrap().contains("PATRQT"), "{body}");
        }
    }
    app.stop().await;
}

/// `method path` on the gateway at `base` with `token`.
async fn at(
    app: &TestApp,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> tideway_tests::Answer {
    let res = app.http.request(method, format!("{base}{path}")).bearer_auth(token).send().await.unwrap();
    tideway_tests::Answer::from_response(res).await
}

async fn rs_token(app: &TestApp) -> reqwest::Response {
    app.post_token(app.rs_client.token_form(&app.token_url(), "", &clinician()).unwrap()).await
}

#[tokio::test]
async fn an_administrator_suspends_reinstates_and_removes_a_client_over_http_on_every_replica() {
    use reqwest::Method;
    use tideway_auth::PurposeOfUse;
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let base = app.base_url.clone();
    let admin = app
        .token_for(&tideway_tests::user(tideway_tests::REGISTRY_ADMIN, "R8000", PurposeOfUse::Operations))
        .await;
    let token: Value = rs_token(&app).await.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let search = nhs_search(app.population.nhs_number(0).unwrap().as_str());
    assert_eq!(app.get(&search, Some(&token)).await.status, 200);
    // A replica already running, reading the store every second.
    let mut quick = app.settings.clone();
    quick.registry.refresh_secs = 1;
    let other = app.spawn_replica_with(quick).await;
    assert_eq!(at(&app, &other.base_url, Method::GET, &search, &token).await.status, 200);

    // Only a registry administrator may.
    let clinician_token = app.token().await;
    let refused = at(&app, &base, Method::POST, "/admin/clients/test-rs/suspend", &clinician_token).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(at(&app, &base, Method::POST, "/admin/clients/nobody/suspend", &admin).await.status, 404);

    // Suspended: its live token is refused at once here, and on the other replica within its
    // refresh; it gets no new token.
    let suspended = at(&app, &base, Method::POST, "/admin/clients/test-rs/suspend", &admin).await;
    assert_eq!(suspended.status, 200, "{}", suspended.body);
    assert_eq!(suspended.body["state"], "suspended");
    assert_token_refused(&app.get(&search, Some(&token)).await, &token);
    assert_eq!(rs_token(&app).await.status(), 401);
    let mut waited = 0;
    while at(&app, &other.base_url, Method::GET, &search, &token).await.status != 401 {
        assert!(waited < 50, "the other replica did not follow within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let rows = app.state.store.audit_for_request(&suspended.header("x-request-id").unwrap()).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.phase.as_str()).collect::<Vec<_>>(), ["intent", "outcome"]);
    assert!(rows.iter().all(|r| r.action == "client-change" && r.detail.contains("test-rs")));
    let listed = at(&app, &base, Method::GET, "/admin/clients", &admin).await;
    let state_of = |id: &str| {
        listed.body["clients"].as_array().unwrap().iter().find(|c| c["client_id"] == id).unwrap()["state"]
            .clone()
    };
    assert_eq!((state_of("test-rs"), state_of("test-es")), (json!("suspended"), json!("active")));

    // Reinstated: the same token opens the API again.
    let resumed = at(&app, &base, Method::POST, "/admin/clients/test-rs/resume", &admin).await;
    assert_eq!(resumed.body["state"], "active", "{}", resumed.body);
    assert_eq!(app.get(&search, Some(&token)).await.status, 200);

    // Removed: refused for good, not reinstated, and still removed after a restart whatever
    // the config lists.
    let removed = at(&app, &base, Method::DELETE, "/admin/clients/test-rs", &admin).await;
    assert_eq!(removed.body["state"], "removed", "{}", removed.body);
    assert_token_refused(&app.get(&search, Some(&token)).await, &token);
    let again = at(&app, &base, Method::POST, "/admin/clients/test-rs/resume", &admin).await;
    assert_eq!((again.status, again.issue_code()), (409, "conflict"), "{}", again.body);
    let restarted = app.spawn_replica().await;
    assert_token_refused(&at(&app, &restarted.base_url, Method::GET, &search, &token).await, &token);
    for replica in [other, restarted] {
        replica.handle.stop(true).await;
    }
    app.stop().await;
}
