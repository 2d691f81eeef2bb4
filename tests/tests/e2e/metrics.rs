//! Prometheus metrics: per-source series with low-cardinality labels and no patient data.

use tideway_simulators::fhir_r4::simulator::FaultConfig;
use tideway_tests::{Options, TestApp, nhs_search};

#[tokio::test]
async fn metrics_show_each_source_without_patient_data() {
    let opts = Options {
        admin: true,
        faults: vec![(1, FaultConfig { fail_rate: 1.0, ..FaultConfig::default() })],
        ..Options::default()
    };
    let app = TestApp::spawn(opts).await;
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&token, &nhs).await;
    app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;
    app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;

    // The main listener wants a token for /metrics; the operator listener does not.
    assert_eq!(app.get("/metrics", None).await.status, 401);
    let with_token =
        app.http.get(format!("{}/metrics", app.base_url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(with_token.status(), 200);
    let admin = app.admin_url.clone().unwrap();
    let text = app.http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("tideway_source_request_duration_seconds_count{source=\"borough-00\""), "{text}");
    assert!(text.contains("outcome=\"status\""), "the failing borough is counted: {text}");
    assert!(
        text.contains("tideway_cache_lookups_total{source=\"borough-00\",kind=\"record\",result=\"hit\"}"),
        "{text}"
    );
    assert!(text.contains("route=\"/Patient/{id}/{operation}\""), "route patterns, not paths: {text}");
    assert!(!text.contains(&nhs), "no NHS number in metrics");
    assert!(!text.contains(&id), "no patient id in metrics");
    assert_eq!(app.http.get(format!("{admin}/healthz")).send().await.unwrap().status(), 200);
    let _ = nhs_search;
    app.stop().await;
}
