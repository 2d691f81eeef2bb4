//! The read pipeline against misbehaving sources: what a source sends about another patient is
//! never shown, and source metrics count only calls that really left the gateway.

use std::sync::Arc;
use tideway_gateway::store::AuditLog as _;

use tideway_tests::{FixtureApp, Options, TestApp};

#[tokio::test]
async fn entries_about_another_patient_are_withheld_counted_and_never_shown() {
    let FixtureApp { app, token, patients, id } =
        FixtureApp::spawn("wrong-patient", Options { admin: true, ..Options::default() }).await;
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let shown: Vec<String> = all.matches().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert!(shown.iter().any(|i| i.contains("c0000000")), "the patient's own Condition is served: {shown:?}");
    assert!(!shown.iter().any(|i| i.contains("c1111111")), "another local patient's Condition: {shown:?}");
    assert!(!shown.iter().any(|i| i.contains("a1111111")), "another server's patient's allergy: {shown:?}");
    assert!(!shown.iter().any(|i| i.contains("b2222222")), "another Patient: {shown:?}");
    assert!(!shown.iter().any(|i| i.contains("c2222222")), "a subject not tied to this patient: {shown:?}");
    assert!(!all.body.to_string().contains("Someone"), "nothing of the other Patient is shown");
    // Every subject or patient reference that is shown points at this patient.
    for r in all.matches() {
        for key in ["subject", "patient"] {
            if let Some(reference) = r[key]["reference"].as_str() {
                assert_eq!(reference, format!("Patient/{id}"), "{r}");
            }
        }
    }
    let oo = all.outcome_entry().expect("the withheld entries are reported").to_string();
    assert!(oo.contains("synthea") && oo.contains("4 entries about another patient"), "{oo}");
    assert!(!oo.contains("99999999") && !oo.contains("elsewhere"), "no source content in the report: {oo}");
    // A search answered from the cache withholds them too.
    let search = app.get(&format!("/Condition?patient={id}"), Some(&token)).await;
    assert_eq!(search.status, 200);
    assert_eq!(search.matches().len(), 1, "{}", search.body);
    // Counted per source in the audit trail, and in the metrics, without patient data.
    let rows = app.state.store.audit_for_request(&all.header("x-request-id").unwrap()).await.unwrap();
    assert!(rows[1].detail.contains("\"other_patient\":4"), "{}", rows[1].detail);
    let admin = app.admin_url.clone().unwrap();
    let text = app.http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains("tideway_source_entries_rejected_total{source=\"synthea\",reason=\"other-patient\"} 4"),
        "{text}"
    );
    assert!(!text.contains(&id) && !text.contains(patients[0].0.as_str()));
    app.stop().await;
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse::<f64>().ok()))
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn source_metrics_count_only_calls_that_reach_the_source() {
    let opts = Options { admin: true, source_prefix: "metered", ..Options::default() };
    let app = Arc::new(TestApp::spawn(opts).await);
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0, 1]);
    let id = app.patient_id(&token, nhs.as_str()).await;
    let fetch_ok = |s: &str| {
        format!("tideway_source_requests_total{{source=\"{s}\",operation=\"fetch-record\",outcome=\"ok\"}}")
    };
    let latency = |s: &str| {
        format!("tideway_source_request_duration_seconds_count{{source=\"{s}\",operation=\"fetch-record\"}}")
    };
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let app = app.clone();
        let token = token.clone();
        let path = format!("/Patient/{id}/$everything");
        tasks.push(tokio::spawn(async move { app.get(&path, Some(&token)).await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let admin = app.admin_url.clone().unwrap();
    let text = app.http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    for source in ["metered-00", "metered-01"] {
        // 200 answers, one call that left the gateway (single flight, then the cache).
        assert_eq!(metric(&text, &fetch_ok(source)), 1, "{source}: {text}");
        assert_eq!(metric(&text, &latency(source)), 1, "{source}: {text}");
        let hits =
            format!("tideway_cache_lookups_total{{source=\"{source}\",kind=\"record\",result=\"hit\"}}");
        let misses =
            format!("tideway_cache_lookups_total{{source=\"{source}\",kind=\"record\",result=\"miss\"}}");
        assert_eq!(metric(&text, &hits) + metric(&text, &misses), 200, "every lookup is the cache's: {text}");
    }
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
}

#[tokio::test]
async fn resources_the_r4_schema_rejects_are_withheld_and_counted() {
    let FixtureApp { app, token, id, .. } = FixtureApp::spawn("schema-invalid", Options::default()).await;
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let shown: Vec<String> = all.matches().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert!(shown.iter().any(|i| i.contains("d0000000")), "the valid Condition is served: {shown:?}");
    for bad in ["d1111111", "d2222222", "d3333333", "d4444444"] {
        assert!(
            !shown.iter().any(|i| i.contains(bad)),
            "{bad} is not valid R4 and must be withheld: {shown:?}"
        );
    }
    let oo = all.outcome_entry().expect("the withheld resources are reported").to_string();
    assert!(oo.contains("sent 4 resource(s) that are not valid FHIR R4"), "{oo}");
    assert!(!oo.contains("alien") && !oo.contains("04/03/2019"), "no source content in the report: {oo}");
    let rows = app.state.store.audit_for_request(&all.header("x-request-id").unwrap()).await.unwrap();
    assert!(rows[1].detail.contains("\"rejected\":4"), "{}", rows[1].detail);
    app.stop().await;
}
