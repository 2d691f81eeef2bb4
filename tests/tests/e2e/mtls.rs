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

/// What the answer's outcome says about source `id`, if anything.
fn said_about(answer: &tideway_tests::Answer, id: &str) -> Vec<String> {
    answer
        .warnings()
        .iter()
        .filter_map(|i| i["diagnostics"].as_str())
        .filter(|d| d.contains(&format!("'{id}'")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_client_key_handed_over_through_the_api_is_held_encrypted_and_reaches_the_borough() {
    use serde_json::json;
    use tideway_auth::PurposeOfUse;
    use tideway_gateway::store::AuditLog as _;
    let app = TestApp::spawn(Options {
        boroughs: 2,
        mtls: Some(ClientCertificate::Issued),
        cache: false,
        ..Options::default()
    })
    .await;
    let admin = app
        .token_for(&tideway_tests::user(tideway_tests::REGISTRY_ADMIN, "R8000", PurposeOfUse::Operations))
        .await;
    let clinician = app.token().await;
    let nhs = app.patient_held_by(&[1]);
    let id = app.patient_id(&clinician, nhs.as_str()).await;
    let everything = format!("/Patient/{id}/$everything");

    // Borough 1 registered again through the API, its client key handed over as PEM text.
    let borough = &app.settings.sources[1];
    let tls = borough.tls.clone().unwrap();
    let tideway_adapters::ClientKey::File(key_file) = &tls.client_key else { panic!("a key file") };
    let pem = std::fs::read_to_string(key_file).unwrap();
    let expires = (time::OffsetDateTime::now_utc().date() + time::Duration::days(365)).to_string();
    let mut registration = json!({
        "id": "sealed-01", "name": "Borough 1 again", "kind": "fhir-r4",
        "ods_code": borough.ods_code.as_str(), "base_url": app.simulators[1].base_url().as_str(),
        "attestation": {"scheme": "dspt", "status": "standards-met", "expires": expires},
        "tls": {"client_certificate": tls.client_certificate, "client_key_pem": pem,
                "ca_certificate": tls.ca_certificate}
    });
    let post = |body: serde_json::Value| {
        let (http, url, admin) = (app.http.clone(), format!("{}/admin/sources", app.base_url), admin.clone());
        async move {
            let res = http.post(url).bearer_auth(admin).header("content-type", "application/json");
            tideway_tests::Answer::from_response(res.body(body.to_string()).send().await.unwrap()).await
        }
    };
    let created = post(registration.clone()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["tls"]["client_key"], "held encrypted");
    assert!(!created.body.to_string().contains("PRIVATE KEY"), "the key is never shown");
    // Its client certificate's remaining life is on the gauge from registration on.
    let series = "tideway_tls_certificate_expiry_seconds{certificate=\"source:sealed-01\"}";
    assert!(tideway_tests::gauge(&app, &admin, series).await.is_some_and(|s| s > 0), "no certificate gauge");

    // Stored sealed: neither the PEM nor any line of its body is in the store.
    let tideway_gateway::store::Store::Sqlite { read, .. } = &app.state.store else { panic!("sqlite") };
    let stored: String =
        sqlx::query_scalar("SELECT config FROM registered_source WHERE source_id = 'sealed-01'")
            .fetch_one(read)
            .await
            .unwrap();
    assert!(stored.contains(r#""client_key":{"sealed":"v1."#), "{stored}");
    assert!(pem.lines().filter(|l| l.len() > 16).all(|l| !stored.contains(l)), "key material at rest");

    // Opened in memory, it completes the handshake: the borough answers as sealed-01.
    let a = app.get(&everything, Some(&clinician)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let rows = app.state.store.audit_for_request(&a.header("x-request-id").unwrap()).await.unwrap();
    assert!(rows[0].sources.contains("sealed-01"), "{}", rows[0].sources);
    assert!(said_about(&a, "sealed-01").is_empty(), "{:?}", a.warnings());

    // Restarted with the same key it still opens; with another key the source is not asked.
    let same = app.spawn_replica().await;
    let a = app.get(&format!("{}{everything}", same.base_url), Some(&clinician)).await;
    assert!(said_about(&a, "sealed-01").is_empty(), "{:?}", a.warnings());
    let mut other = app.settings.clone();
    let dir = app.settings.registry.secrets_key_file.as_ref().unwrap().parent().unwrap().to_owned();
    other.registry.secrets_key_file = Some(tideway_tests::secrets_key_file(&dir, "other-secrets.key"));
    let wrong = app.spawn_replica_with(other.clone()).await;
    let a = app.get(&format!("{}{everything}", wrong.base_url), Some(&clinician)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let said = said_about(&a, "sealed-01");
    assert!(said.iter().any(|d| d.contains("could not be set up")), "{said:?}");

    // Without a secrets key, key material is refused by field, and nothing is stored.
    let mut keyless = app.settings.clone();
    keyless.registry.secrets_key_file = None;
    let bare = app.spawn_replica_with(keyless).await;
    registration["id"] = json!("sealed-02");
    let res = app
        .http
        .post(format!("{}/admin/sources", bare.base_url))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(registration.to_string())
        .send()
        .await
        .unwrap();
    let refused = tideway_tests::Answer::from_response(res).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["resourceType"], "OperationOutcome");
    let said = refused.body.to_string();
    assert!(said.contains("tls.client_key_pem") && said.contains("secrets_key_file"), "{said}");
    assert!(!said.contains("PRIVATE KEY"), "{said}");
    for replica in [same, wrong, bare] {
        replica.handle.stop(true).await;
    }
    let gone =
        app.http.delete(format!("{}/admin/sources/sealed-01", app.base_url)).bearer_auth(&admin).send().await;
    assert_eq!(gone.unwrap().status(), 200);
    assert_eq!(tideway_tests::gauge(&app, &admin, series).await, None, "deregistered: the series ends");
    app.stop().await;
}
