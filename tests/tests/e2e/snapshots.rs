//! Snapshots of what integrators code against: the CapabilityStatement and the body, status and
//! challenge of each kind of refusal. A change of shape fails here and shows in review as a
//! changed `.snap` file (`tests/tests/e2e/snapshots/`); accept a deliberate one with
//! `INSTA_UPDATE=always cargo test -p tideway-tests --test e2e snapshots`.
//!
//! What differs between runs (the port in the base URL, the patient's id, the statement's date)
//! and what is data rather than shape (the crate's version, the terminology maps' digest and
//! sizes) is replaced by a fixed placeholder before the comparison; nothing else is touched.

use serde_json::{Value, json};
use tideway_tests::{Answer, Options, TestApp};

/// `text` with this run's base URL and patient id replaced by placeholders.
fn steady(text: &str, app: &TestApp, patient: &str) -> Value {
    let text = text.replace(&app.base_url, "{base}").replace(patient, "{patient}");
    serde_json::from_str(&text).expect("JSON")
}

/// Indented JSON, one member a line, so a review shows exactly what changed.
fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("JSON")
}

#[tokio::test]
async fn the_capability_statement_keeps_its_shape() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let cs = app.get("/metadata", None).await;
    assert_eq!(cs.status, 200);
    let mut cs = steady(&cs.body.to_string(), &app, "{no patient}");
    assert!(cs["date"].is_string(), "the statement is dated");
    cs["date"] = json!("{date}");
    // The crate's version and the terminology maps' digest and sizes are data, not shape.
    cs["software"]["version"] = json!("{version}");
    for ext in cs["extension"][0]["extension"].as_array_mut().expect("the terminology maps extension") {
        let url = ext["url"].as_str().unwrap_or_default().to_owned();
        ext["valueString"] = json!(format!("{{{url}}}"));
    }
    insta::assert_snapshot!("capability_statement", pretty(&cs));
    app.stop().await;
}

#[tokio::test]
async fn each_kind_of_refusal_keeps_its_status_challenge_and_body() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0]);
    let id = app.patient_id(&token, nhs.as_str()).await;
    let form =
        app.es_client.token_form(&app.token_url(), "system/Patient.rs", &tideway_tests::clinician()).unwrap();
    let res = app.post_token(form).await;
    assert_eq!(res.status(), 200);
    let patient_only: Value = res.json().await.unwrap();
    let patient_only = patient_only["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let url = |path: &str| format!("{}{}", app.base_url, path.replace("{id}", &id));
    // (what is asked, the request)
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("no credentials", app.http.get(url("/Patient/{id}/$everything"))),
        (
            "a token that is not one",
            app.http.get(url("/Patient/{id}/$everything")).bearer_auth("not-a-token"),
        ),
        (
            "two Authorization headers",
            app.http
                .get(url("/Patient/{id}"))
                .header("authorization", &bearer)
                .header("authorization", &bearer),
        ),
        ("scopes without Condition", app.http.get(url("/Condition?patient={id}")).bearer_auth(&patient_only)),
        ("an unknown parameter", app.http.get(url("/Condition?patient={id}&colour=red")).bearer_auth(&token)),
        (
            "a malformed date",
            app.http.get(url("/Condition?patient={id}&onset-date=last-tuesday")).bearer_auth(&token),
        ),
        (
            "an NHS number as the patient",
            app.http.get(url(&format!("/Condition?patient={}", nhs.as_str()))).bearer_auth(&token),
        ),
        (
            "a wildcard include",
            app.http.get(url("/Condition?patient={id}&_include=Condition:*")).bearer_auth(&token),
        ),
        (
            "an include of another type",
            app.http.get(url("/Condition?patient={id}&_include=Observation:encounter")).bearer_auth(&token),
        ),
        (
            "an element path",
            app.http.get(url("/Observation?patient={id}&_elements=code.coding")).bearer_auth(&token),
        ),
        (
            "summary and elements",
            app.http.get(url("/Observation?patient={id}&_summary=true&_elements=code")).bearer_auth(&token),
        ),
        ("a type the gateway does not serve", app.http.get(url("/Basic?patient={id}")).bearer_auth(&token)),
        ("a method the type does not take", app.http.delete(url("/Patient/{id}")).bearer_auth(&token)),
        (
            "a batch",
            app.http
                .post(url(""))
                .bearer_auth(&token)
                .header("content-type", "application/fhir+json")
                .body(r#"{"resourceType":"Bundle","type":"batch"}"#),
        ),
        ("a type-level $everything", app.http.get(url("/Patient/$everything")).bearer_auth(&token)),
        (
            "an unknown patient",
            app.http.get(url("/Patient/p00000000000000000000000000000000")).bearer_auth(&token),
        ),
        (
            "a page link that never was",
            app.http.get(url("/_page?id=00000000000000000000000000000000&offset=5")).bearer_auth(&token),
        ),
    ];
    let mut answers = Vec::new();
    for (what, request) in cases {
        let a = Answer::from_response(request.send().await.expect("request")).await;
        assert!(a.status >= 400, "{what}: {}", a.body);
        assert_eq!(a.body["resourceType"], "OperationOutcome", "{what}: {}", a.body);
        answers.push(json!({
            "asked": what,
            "status": a.status,
            "www-authenticate": a.header("www-authenticate"),
            "allow": a.header("allow"),
            "body": steady(&a.body.to_string(), &app, &id),
        }));
    }
    insta::assert_snapshot!("refusals", pretty(&Value::Array(answers)));
    app.stop().await;
}
