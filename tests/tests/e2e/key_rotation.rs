//! A client rotates its signing keys by publishing a new JWKS file: the gateway reads it again
//! while running; during the rollover both keys are accepted, afterwards only the new one.

use std::time::Duration;

use tideway_auth::client::BackendClient;
use tideway_tests::{Options, TestApp, clinician};

/// The `/token` status for an assertion signed by `client`.
async fn token_status(app: &TestApp, client: &BackendClient) -> u16 {
    let form = client.token_form(&app.token_url(), "system/*.read", &clinician()).unwrap();
    app.post_token(form).await.status().as_u16()
}

/// Waits (at most 20 s) until `client`'s assertions get `status`.
async fn until(app: &TestApp, client: &BackendClient, status: u16) -> bool {
    for _ in 0..200 {
        if token_status(app, client).await == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_client_rotates_its_keys_by_publishing_a_new_jwks_file() {
    let app = TestApp::spawn(Options { boroughs: 1, jwks_file: true, ..Options::default() }).await;
    let file = app.jwks_file.clone().unwrap();
    let old = app.file_client.as_ref().unwrap();
    let new = BackendClient::generate_es384("test-file", "file-2").unwrap();
    assert_eq!(token_status(&app, old).await, 200);
    assert_eq!(token_status(&app, &new).await, 401, "a key not yet published is refused");

    // Rollover: the file holds the old and the new key; both are accepted.
    let key = |c: &BackendClient| {
        serde_json::from_str::<serde_json::Value>(&c.jwks_json()).unwrap()["keys"][0].clone()
    };
    let both = serde_json::json!({"keys": [key(old), key(&new)]});
    std::fs::write(&file, both.to_string()).unwrap();
    assert!(until(&app, &new, 200).await, "the new key is accepted once published");
    assert_eq!(token_status(&app, old).await, 200, "and the old one still, during the rollover");

    // The old key withdrawn.
    std::fs::write(&file, new.jwks_json()).unwrap();
    assert!(until(&app, old, 401).await, "the withdrawn key is refused");
    assert_eq!(token_status(&app, &new).await, 200);

    // A file that no longer parses leaves the keys in force (two reload periods later too).
    std::fs::write(&file, "not a JWKS").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(token_status(&app, &new).await, 200, "a broken file changes nothing");
    assert_eq!(token_status(&app, old).await, 401);
    app.stop().await;
}

/// A replica of `app` signing with `signing` (`kid`, secret) and accepting `accepted`.
async fn replica_with_keys(
    app: &TestApp,
    signing: (&str, &str),
    accepted: &[(&str, &str)],
) -> tideway_tests::Replica {
    let mut settings = app.settings.clone();
    settings.auth.token_signing_kid = signing.0.to_owned();
    settings.auth.token_signing_secret = signing.1.to_owned().into();
    settings.auth.accepted_signing_keys = accepted
        .iter()
        .map(|(kid, secret)| tideway_auth::config::AcceptedSigningKey {
            kid: (*kid).to_owned(),
            secret: (*secret).to_owned().into(),
        })
        .collect();
    app.spawn_replica_with(settings).await
}

/// `GET path` on `replica` with `token`: the status.
async fn status_at(app: &TestApp, replica: &tideway_tests::Replica, path: &str, token: &str) -> u16 {
    app.get(&format!("{}{path}", replica.base_url), Some(token)).await.status
}

/// A token from `replica`'s `/token`.
async fn token_from(app: &TestApp, replica: &tideway_tests::Replica) -> String {
    let url = format!("{}/token", replica.base_url);
    let form = app.es_client.token_form(&url, "system/*.read", &clinician()).unwrap();
    let res = app
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await;
    let body: serde_json::Value = res.unwrap().json().await.unwrap();
    body["access_token"].as_str().expect("a token").to_owned()
}

#[tokio::test]
async fn the_gateways_token_signing_key_rotates_across_replicas_without_ending_live_tokens() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let search = tideway_tests::nhs_search(app.population.nhs_number(0).unwrap().as_str());
    let current = (app.settings.auth.token_signing_kid.clone(), {
        use secrecy::ExposeSecret as _;
        app.settings.auth.token_signing_secret.expose_secret().to_owned()
    });
    let old_key = (current.0.as_str(), current.1.as_str());
    let next_key = ("k2", "the-next-token-signing-secret-of-this-e2e-test");
    let old = app.token().await;
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid;
    // 1. Every replica accepts the next key before any signs with it.
    let accepting = replica_with_keys(&app, old_key, &[next_key]).await;
    assert_eq!(status_at(&app, &accepting, &search, &old).await, 200);
    // 2. One signs with it, still accepting the previous key: live tokens survive.
    let rotated = replica_with_keys(&app, next_key, &[old_key]).await;
    assert_eq!(status_at(&app, &rotated, &search, &old).await, 200, "a live token survives the rotation");
    let new = token_from(&app, &rotated).await;
    assert_eq!(kid(&new).as_deref(), Some("k2"));
    assert_eq!(status_at(&app, &accepting, &search, &new).await, 200, "a replica one step behind accepts it");
    // 3. The previous key retired: its tokens end, the new ones do not.
    let retired = replica_with_keys(&app, next_key, &[]).await;
    assert_eq!(status_at(&app, &retired, &search, &old).await, 401);
    assert_eq!(status_at(&app, &retired, &search, &new).await, 200);
    for r in [accepting, rotated, retired] {
        r.handle.stop(true).await;
    }
    app.stop().await;
}
