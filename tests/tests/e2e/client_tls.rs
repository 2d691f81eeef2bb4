//! The gateway over TLS with client certificates (`[server.tls]`, RFC 8705): a client
//! registered with its certificate's SHA-256 gets tokens only over a connection presenting that
//! certificate, bound to it (`cnf.x5t#S256`), and its token is refused over any other
//! connection; clients registered without one carry on with signed assertions alone.

use base64::Engine as _;
use serde_json::Value;
use tideway_tests::pki::ClientCertificate;
use tideway_tests::{Options, TestApp, clinician, nhs_search};

async fn token_over(client: &reqwest::Client, app: &TestApp) -> (u16, Value) {
    let form = app
        .mtls_client
        .as_ref()
        .unwrap()
        .token_form(&app.token_url(), "system/*.read", &clinician())
        .unwrap();
    let res = client
        .post(app.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn search_over(client: &reqwest::Client, app: &TestApp, token: &str, nhs: &str) -> u16 {
    let res =
        client.get(format!("{}{}", app.base_url, nhs_search(nhs))).bearer_auth(token).send().await.unwrap();
    res.status().as_u16()
}

#[tokio::test]
async fn a_certificate_bound_client_is_served_only_over_its_own_certificate() {
    let app = TestApp::spawn(Options { boroughs: 1, gateway_tls: true, ..Options::default() }).await;
    assert!(app.base_url.starts_with("https://"), "{}", app.base_url);
    let pki = app.pki.as_ref().unwrap();
    let with_certificate = pki.http_client(Some(ClientCertificate::Issued));
    let without = pki.http_client(None);
    let nhs = app.patient_held_by(&[0]).as_str().to_owned();

    // Clients registered without a certificate work over TLS as before.
    let plain = app.token().await;
    assert_eq!(search_over(&without, &app, &plain, &nhs).await, 200);

    // The server certificate's remaining life is a gauge an operator's alerting can watch.
    let metrics = without.get(format!("{}/metrics", app.base_url)).bearer_auth(&plain).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("tideway_tls_certificate_expiry_seconds{certificate=\"server\"}"))
        .unwrap_or_else(|| panic!("no server certificate gauge in:\n{text}"));
    let left: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let days = tideway_tests::pki::SERVER_DAYS * 86_400;
    assert!((days - 3_600..=days).contains(&left), "{line}");

    // The bound client: no token without its certificate.
    let (status, body) = token_over(&without, &app).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].as_str().unwrap().contains("mutual TLS"), "{body}");

    // With it, a token bound to the certificate.
    let (status, body) = token_over(&with_certificate, &app).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
            .unwrap();
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        (0..pki.issued_sha256.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&pki.issued_sha256[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>(),
    );
    assert_eq!(claims["cnf"]["x5t#S256"], expected.as_str());
    assert_eq!(search_over(&with_certificate, &app, &token, &nhs).await, 200);

    // The same token over a connection without the certificate: refused, as if stolen.
    assert_eq!(search_over(&without, &app, &token, &nhs).await, 401);
    // A certificate the gateway's authority did not issue does not get past the handshake.
    let stranger = pki.http_client(Some(ClientCertificate::Stranger));
    assert!(stranger.get(format!("{}/metadata", app.base_url)).send().await.is_err());
    app.stop().await;
}
