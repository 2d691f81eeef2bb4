//! The FHIR REST API: search, read, $everything, type searches, errors.

use serde_json::Value;
use tideway_tests::{Options, TestApp, nhs_search};

fn several(app: &TestApp) -> Vec<String> {
    app.population.patients_in_several_boroughs(5).iter().map(|n| n.as_str().to_owned()).collect()
}

#[tokio::test]
async fn metadata_and_smart_configuration_are_public_and_truthful() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let cs = app.get("/metadata", None).await;
    assert_eq!(cs.status, 200);
    assert!(cs.header("content-type").unwrap().starts_with("application/fhir+json"));
    assert_eq!(cs.body["resourceType"], "CapabilityStatement");
    assert_eq!(cs.body["fhirVersion"], "4.0.1");
    assert_eq!(cs.body["rest"][0]["security"]["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    let types: Vec<&str> = cs.body["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"Patient") && types.contains(&"Condition"));
    let smart = app.get("/.well-known/smart-configuration", None).await;
    assert_eq!(smart.status, 200);
    assert_eq!(smart.body["token_endpoint"], format!("{}/token", app.base_url));
    assert!(
        smart.body["token_endpoint_auth_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from("ES384"))
    );
    assert_eq!(app.get("/healthz", None).await.status, 200);
    assert_eq!(app.get("/readyz", None).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn patient_found_by_nhs_number_gets_an_opaque_id_and_reads_back() {
    let app = TestApp::spawn(Options::default()).await;
    let token = app.token().await;
    let nhs = several(&app)[0].clone();
    let found = app.get(&nhs_search(&nhs), Some(&token)).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["type"], "searchset");
    assert_eq!(found.body["total"], 1);
    let patient = found.matches()[0].clone();
    let id = patient["id"].as_str().unwrap().to_owned();
    assert!(!id.contains(&nhs), "the gateway's patient id must not be the NHS number");
    let ids: Vec<&str> =
        patient["identifier"].as_array().unwrap().iter().filter_map(|i| i["value"].as_str()).collect();
    assert!(ids.contains(&nhs.as_str()));
    assert_eq!(found.body["entry"][0]["fullUrl"], format!("{}/Patient/{id}", app.base_url));

    let read = app.get(&format!("/Patient/{id}"), Some(&token)).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["id"], id);
    assert_eq!(read.body["resourceType"], "Patient");
    app.stop().await;
}

#[tokio::test]
async fn everything_merges_every_borough_that_holds_the_patient() {
    let app = TestApp::spawn(Options::default()).await;
    let token = app.token().await;
    let nhs = several(&app)[0].clone();
    let index = app.population.patient_index(&tideway_profiles::NhsNumber::parse(&nhs).unwrap()).unwrap();
    let holders = app.population.boroughs_of(index);
    assert!(holders.len() >= 2, "fixture: patient should be in several boroughs");
    let id = app.patient_id(&token, &nhs).await;
    let all = app.get(&format!("/Patient/{id}/$everything?_count=1000"), Some(&token)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let matches = all.matches();
    assert_eq!(all.body["total"].as_u64().unwrap() as usize, matches.len());
    // Exactly one Patient, carrying the gateway id; every entry names its source.
    let patients: Vec<_> = matches.iter().filter(|r| r["resourceType"] == "Patient").collect();
    assert_eq!(patients.len(), 1);
    assert_eq!(patients[0]["id"], id);
    // Sources' entries name their source; the gateway's Provenance for merged facts names it.
    let mut sources: Vec<String> = matches
        .iter()
        .filter(|r| r["resourceType"] != "Provenance")
        .map(|r| r["meta"]["source"].as_str().unwrap().to_owned())
        .collect();
    sources.sort();
    sources.dedup();
    let expected: Vec<String> =
        holders.iter().map(|b| format!("urn:tideway:source:borough-{b:02}")).collect();
    for e in &expected {
        assert!(sources.contains(e), "missing entries from {e}: {sources:?}");
    }
    assert_eq!(sources.len(), expected.len());
    // Patient references point at the gateway's patient.
    for r in matches.iter().filter(|r| r["resourceType"] == "Condition") {
        assert_eq!(r["subject"]["reference"], format!("Patient/{id}"));
    }
    assert!(all.warnings().is_empty(), "no source failed, so no warning: {:?}", all.warnings());
    assert!(all.says_may_be_withheld(), "the same notice whether or not anything was withheld");
    app.stop().await;
}

#[tokio::test]
async fn everything_honours_type_since_and_count_with_paging() {
    let app = TestApp::spawn(Options::default()).await;
    let token = app.token().await;
    let nhs = several(&app)[1].clone();
    let id = app.patient_id(&token, &nhs).await;
    let full = app.get(&format!("/Patient/{id}/$everything?_count=1000"), Some(&token)).await;
    let total = full.body["total"].as_u64().unwrap() as usize;
    assert!(total > 10);

    let only =
        app.get(&format!("/Patient/{id}/$everything?_type=Condition,AllergyIntolerance"), Some(&token)).await;
    assert_eq!(only.status, 200);
    assert!(!only.matches().is_empty());
    assert!(
        only.matches()
            .iter()
            .all(|r| r["resourceType"] == "Condition" || r["resourceType"] == "AllergyIntolerance")
    );

    // _since keeps only resources updated after the instant.
    let mut dates: Vec<String> =
        full.matches().iter().filter_map(|r| r["meta"]["lastUpdated"].as_str().map(str::to_owned)).collect();
    dates.sort();
    let cut = dates[dates.len() / 2].clone();
    let since = app
        .get(
            &format!("/Patient/{id}/$everything?_count=1000&_since={}", cut.replace('+', "%2B")),
            Some(&token),
        )
        .await;
    assert_eq!(since.status, 200, "{}", since.body);
    let n_since = since.matches().len();
    assert!(n_since > 0 && n_since < total, "{n_since} of {total}");
    for r in since.matches() {
        if let Some(u) = r["meta"]["lastUpdated"].as_str() {
            assert!(time_of(u) > time_of(&cut), "{u} is not after {cut}");
        }
    }

    // Paging: pages of 7 add up to the whole, with no repeats.
    let mut page = app.get(&format!("/Patient/{id}/$everything?_count=7"), Some(&token)).await;
    let mut seen = Vec::new();
    loop {
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.matches().len() <= 7);
        assert_eq!(page.body["total"].as_u64().unwrap() as usize, total);
        seen.extend(page.matches().iter().map(|r| format!("{}/{}", r["resourceType"], r["id"])));
        match page.next_link() {
            Some(next) => {
                assert!(next.starts_with(&app.base_url));
                assert!(!next.contains(&nhs));
                page = app.get(&next, Some(&token)).await;
            }
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), total);
    assert_eq!(unique.len(), total);
    app.stop().await;
}

fn time_of(s: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

#[tokio::test]
async fn page_links_belong_to_the_principal_that_made_them() {
    let app = TestApp::spawn(Options::default()).await;
    let token = app.token().await;
    let other = app.token_for(&tideway_tests::other_clinician()).await;
    let id = app.patient_id(&token, &several(&app)[0]).await;
    let first = app.get(&format!("/Patient/{id}/$everything?_count=2"), Some(&token)).await;
    let next = first.next_link().expect("a next link");
    let stolen = app.get(&next, Some(&other)).await;
    assert_eq!(stolen.status, 403);
    assert_eq!(stolen.issue_code(), "forbidden");
    // The refusal records whose snapshot the link pointed at.
    use tideway_gateway::store::AuditLog as _;
    let refused = app.state.store.audit_for_request(&stolen.header("x-request-id").unwrap()).await.unwrap();
    assert_eq!(refused.last().and_then(|r| r.patient_id.as_deref()), Some(id.as_str()));
    let mine = app.get(&next, Some(&token)).await;
    assert_eq!(mine.status, 200);
    let unknown = app.get("/_page?id=00000000000000000000000000000000&offset=2", Some(&token)).await;
    assert_eq!(unknown.status, 410);
    app.stop().await;
}

#[tokio::test]
async fn type_searches_return_only_that_type_for_the_patient() {
    let app = TestApp::spawn(Options::default()).await;
    let token = app.token().await;
    let id = app.patient_id(&token, &several(&app)[2]).await;
    for ty in tideway_profiles::PATIENT_SEARCH_TYPES {
        let a = app.get(&format!("/{ty}?patient={id}"), Some(&token)).await;
        assert_eq!(a.status, 200, "{ty}: {}", a.body);
        assert!(a.matches().iter().all(|r| r["resourceType"] == ty), "{ty}");
    }
    let conditions = app.get(&format!("/Condition?patient=Patient/{id}"), Some(&token)).await;
    assert!(!conditions.matches().is_empty(), "synthetic patients have conditions");
    // An unknown patient matches nothing.
    let none = app.get("/Condition?patient=p00000000000000000000000000000000", Some(&token)).await;
    assert_eq!(none.status, 200);
    assert_eq!(none.body["total"], 0);
    app.stop().await;
}

#[tokio::test]
async fn errors_are_operation_outcomes_with_the_right_status() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let token = app.token().await;
    let t = Some(token.as_str());
    let check = |a: &tideway_tests::Answer, status: u16, code: &str| {
        assert_eq!(a.status, status, "{}", a.body);
        assert_eq!(a.body["resourceType"], "OperationOutcome", "{}", a.body);
        assert_eq!(a.issue_code(), code, "{}", a.body);
        assert!(a.header("content-type").unwrap().starts_with("application/fhir+json"));
    };
    // Invalid NHS numbers: wrong check digit, wrong length, wrong system.
    let bad = app.get(&nhs_search("9434765918"), t).await;
    check(&bad, 400, "invalid");
    assert!(!bad.body.to_string().contains("9434765918"), "the error must not echo the number");
    check(&app.get(&nhs_search("12345"), t).await, 400, "invalid");
    check(&app.get("/Patient?identifier=http://example.org|9434765919", t).await, 400, "not-supported");
    check(&app.get("/Patient", t).await, 400, "invalid");
    // Unknown parameter: refused by default and under strict handling, reported under lenient.
    let nhs = app.population.nhs_number(0).unwrap().as_str().to_owned();
    let strict =
        app.get_with(&format!("{}&colour=blue", nhs_search(&nhs)), t, &[("Prefer", "handling=strict")]).await;
    check(&strict, 400, "not-supported");
    check(&app.get(&format!("{}&colour=blue", nhs_search(&nhs)), t).await, 400, "not-supported");
    let lenient = app
        .get_with(&format!("{}&colour=blue", nhs_search(&nhs)), t, &[("Prefer", "handling=\"lenient\"")])
        .await;
    assert_eq!(lenient.status, 200);
    let oo = lenient.outcome_entry().expect("ignored parameter reported");
    assert!(oo["issue"][0]["diagnostics"].as_str().unwrap().contains("colour"));
    // Unknown patient.
    check(&app.get("/Patient/p00000000000000000000000000000000", t).await, 404, "not-found");
    check(&app.get("/Patient/p00000000000000000000000000000000/$everything", t).await, 404, "not-found");
    check(&app.get("/Patient/not-an-id", t).await, 404, "not-found");
    // Unsupported interactions.
    let post = app
        .http
        .post(format!("{}/Patient", app.base_url))
        .bearer_auth(&token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    let delete =
        app.http.delete(format!("{}/Condition/x", app.base_url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(delete.status(), 405);
    check(&app.get("/Patient/p00000000000000000000000000000000/$match", t).await, 501, "not-supported");
    check(&app.get("/Condition/abc", t).await, 404, "not-found");
    check(&app.get("/Basic?patient=x", t).await, 404, "not-found");
    check(&app.get("/no/such/path/here", t).await, 404, "not-found");
    // Formats not served.
    check(&app.get(&format!("{}&_format=xml", nhs_search(&nhs)), t).await, 406, "not-supported");
    check(
        &app.get_with("/metadata", None, &[("Accept", "application/fhir+xml")]).await,
        406,
        "not-supported",
    );
    assert_eq!(app.get(&format!("{}&_format=json", nhs_search(&nhs)), t).await.status, 200);
    // Bad _count and _since.
    let id = app.patient_id(&token, &nhs).await;
    check(&app.get(&format!("/Patient/{id}/$everything?_count=0"), t).await, 400, "invalid");
    check(&app.get(&format!("/Patient/{id}/$everything?_since=yesterday"), t).await, 400, "invalid");
    // Oversized request.
    let big = "a".repeat(64 * 1024);
    let res = app
        .http
        .post(app.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    app.stop().await;
}
