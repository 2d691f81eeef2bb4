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
