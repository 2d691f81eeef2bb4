//! Boroughs behind mutual TLS: the gateway presents the client certificate configured for the
//! source (`[sources.tls]`) and trusts the exchange's own authority; a borough refuses a
//! gateway whose certificate it did not issue, and that shows as that source missing from the
//! answer, never as an empty record.

use tideway_tests::pki::ClientCertificate;
use tideway_tests::{Options, TestApp};

#[tokio::test]
async fn the_gateway_reads_boroughs_over_mutual_tls_with_its_client_certificate() {
    let app =
        TestApp::spawn(Options { boroughs: 2, mtls: Some(ClientCertificate::Issued), ..Options::default() })
            .await;
    assert!(app.simulators.iter().all(|s| s.base_url().scheme() == "https"));
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0, 1]);
    let id = app.patient_id(&token, nhs.as_str()).await;
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(all.warnings().is_empty(), "every borough answered: {:?}", all.warnings());
    let sources: std::collections::BTreeSet<&str> =
        all.resources().iter().filter_map(|r| r["meta"]["source"].as_str()).collect();
    assert!(
        sources.iter().any(|s| s.ends_with("borough-00"))
            && sources.iter().any(|s| s.ends_with("borough-01")),
        "{sources:?}"
    );

    // The client certificate's remaining life is on the gauge, per source (rcgen's default
    // validity runs to the year 4096: far off, and positive).
    let metrics = app.get_with("/metrics", Some(&token), &[]).await;
    let gauge = String::from_utf8_lossy(&metrics.raw).lines().any(|l| {
        l.starts_with("tideway_tls_certificate_expiry_seconds{certificate=\"source:borough-00\"}")
            && l.rsplit(' ').next().and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > 0)
    });
    assert!(gauge, "no gauge for borough-00's client certificate");

    // Without a client certificate the borough does not even finish the handshake.
    let pem = std::fs::read(app.settings.sources[0].tls.as_ref().unwrap().ca_certificate.as_ref().unwrap())
        .unwrap();
    let bare = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let refused = bare.get(app.simulators[0].base_url().join("metadata").unwrap()).send().await;
    assert!(refused.is_err(), "a borough behind mutual TLS answered a client without a certificate");
    app.stop().await;
}

#[tokio::test]
async fn a_borough_that_refuses_the_gateways_certificate_is_reported_missing() {
    let app = TestApp::spawn(Options {
        boroughs: 2,
        mtls: Some(ClientCertificate::Stranger),
        ..Options::default()
    })
    .await;
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0, 1]);
    let search = app.get(&tideway_tests::nhs_search(nhs.as_str()), Some(&token)).await;
    // Every borough refused the handshake: nothing to answer from, said as a failure upstream.
    assert_eq!(search.status, 502, "{}", search.body);
    assert_eq!(search.body["resourceType"], "OperationOutcome");
    assert_eq!(search.issue_code(), "exception");
    assert_eq!(app.simulator_hits(), 0, "no request got past the handshake");
    app.stop().await;
}
