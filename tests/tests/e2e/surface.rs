//! The FHIR surface an EPR integrator expects: every form of a patient reference, POST searches
//! and POST `$everything`, so nothing identifying has to go in a URL.

use serde_json::{Value, json};
use tideway_tests::{Answer, Options, TestApp, nhs_search};

fn ids(a: &Answer) -> Vec<String> {
    let mut v: Vec<String> = a.matches().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    v.sort();
    v
}

async fn post_form(app: &TestApp, path: &str, token: &str, form: &[(&str, &str)]) -> Answer {
    let res =
        app.http.post(format!("{}{path}", app.base_url)).bearer_auth(token).form(form).send().await.unwrap();
    Answer::from_response(res).await
}

#[tokio::test]
async fn every_form_of_a_patient_reference_finds_the_same_entries() {
    let app = TestApp::spawn(Options { boroughs: 2, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0, 1]);
    let id = app.patient_id(&token, nhs.as_str()).await;
    let all = app.get(&format!("/Patient/{id}/$everything?_count=1000"), Some(&token)).await;
    let full_url = all.body["entry"][0]["fullUrl"].as_str().unwrap().to_owned();
    assert!(full_url.ends_with(&format!("/Patient/{id}")), "{full_url}");
    let expected: Vec<String> = {
        let mut v: Vec<String> = all
            .matches()
            .iter()
            .filter(|r| r["resourceType"] == "Condition")
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert!(!expected.is_empty(), "the fixture patient has conditions");
    for form in [id.clone(), format!("Patient/{id}"), full_url.clone()] {
        for name in ["patient", "subject"] {
            let q = serde_urlencoded::to_string([(name, form.as_str()), ("_count", "1000")]).unwrap();
            let a = app.get(&format!("/Condition?{q}"), Some(&token)).await;
            assert_eq!(a.status, 200, "{name}={form}: {}", a.body);
            assert_eq!(ids(&a), expected, "{name}={form}");
        }
    }
    // Values that cannot name a patient here are a 400 naming the parameter, never an empty 200.
    for bad in [
        nhs.as_str().to_owned(),
        format!("https://elsewhere.example/fhir/Patient/{id}"),
        "not-an-id".to_owned(),
    ] {
        let q = serde_urlencoded::to_string([("patient", bad.as_str())]).unwrap();
        let a = app.get(&format!("/AllergyIntolerance?{q}"), Some(&token)).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
        assert_eq!(a.body["issue"][0]["expression"][0], "patient", "{}", a.body);
        assert!(!a.body.to_string().contains(nhs.as_str()), "the error does not echo an NHS number");
    }
    app.stop().await;
}

#[tokio::test]
async fn searches_and_everything_can_be_posted_so_nothing_identifying_is_in_the_url() {
    let app = TestApp::spawn(Options { boroughs: 2, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0, 1]);
    let identifier = format!("https://fhir.nhs.uk/Id/nhs-number|{}", nhs.as_str());
    let found = post_form(&app, "/Patient/_search", &token, &[("identifier", &identifier)]).await;
    assert_eq!(found.status, 200, "{}", found.body);
    let id = found.body["entry"][0]["resource"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id, app.patient_id(&token, nhs.as_str()).await);

    let get = app.get(&format!("/Condition?patient={id}&_count=1000"), Some(&token)).await;
    let post = post_form(&app, "/Condition/_search", &token, &[("patient", &id), ("_count", "1000")]).await;
    assert_eq!(post.status, 200, "{}", post.body);
    assert_eq!(ids(&post), ids(&get));

    let get = app
        .get(&format!("/Patient/{id}/$everything?_type=Condition,Observation&_count=1000"), Some(&token))
        .await;
    let form = post_form(
        &app,
        &format!("/Patient/{id}/$everything"),
        &token,
        &[("_type", "Condition,Observation"), ("_count", "1000")],
    )
    .await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert_eq!(ids(&form), ids(&get));
    let parameters = json!({"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueString": "Condition"}, {"name": "_type", "valueString": "Observation"},
        {"name": "_count", "valueInteger": 1000}]});
    let res = app
        .http
        .post(format!("{}/Patient/{id}/$everything", app.base_url))
        .bearer_auth(&token)
        .header("content-type", "application/fhir+json")
        .body(parameters.to_string())
        .send()
        .await
        .unwrap();
    let as_parameters = Answer::from_response(res).await;
    assert_eq!(as_parameters.status, 200, "{}", as_parameters.body);
    assert_eq!(ids(&as_parameters), ids(&get));

    // `_type` naming no R4 type is a 400, not an empty record.
    let a = app.get(&format!("/Patient/{id}/$everything?_type=Foo"), Some(&token)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["issue"][0]["expression"][0], "_type");

    // A body that is neither a form nor Parameters is refused, as is an unknown parameter in it.
    let res = app
        .http
        .post(format!("{}/Condition/_search", app.base_url))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(format!("patient={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let unknown =
        post_form(&app, "/Condition/_search", &token, &[("patient", &id), ("colour", "blue")]).await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.issue_code(), "not-supported");
    let _ = (nhs_search, Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn every_reference_an_everything_bundle_hands_out_can_be_followed() {
    let app = TestApp::spawn(Options { boroughs: 2, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0, 1]);
    let id = app.patient_id(&token, nhs.as_str()).await;
    let all = app.get(&format!("/Patient/{id}/$everything?_count=1000"), Some(&token)).await;
    let mut followed = std::collections::BTreeSet::new();
    for entry in all.body["entry"].as_array().unwrap() {
        if entry["search"]["mode"] == "outcome" {
            continue;
        }
        let ty = entry["resource"]["resourceType"].as_str().unwrap();
        let url = entry["fullUrl"].as_str().unwrap();
        let path = url.strip_prefix(&app.base_url).expect("fullUrl under the gateway's base");
        let read = app.get(path, Some(&token)).await;
        assert_eq!(read.status, 200, "{path}: {}", read.body);
        assert_eq!(read.body, entry["resource"], "{path}: the same resource as in the bundle");
        // Validators only where the resource itself carries what they would say (a shared
        // resource as its source versioned it); never on what the gateway assembles.
        let shared = ["Organization", "Practitioner", "PractitionerRole", "Location"].contains(&ty);
        let version = read.body["meta"]["versionId"].as_str().filter(|_| shared);
        assert_eq!(read.header("etag"), version.map(|v| format!("W/\"{v}\"")), "{path}");
        let dated = read.body["meta"]["lastUpdated"].is_string() && shared;
        assert_eq!(read.header("last-modified").is_some(), dated, "{path}");
        followed.insert(ty.to_owned());
    }
    for ty in ["Patient", "Organization", "Condition", "Observation", "Encounter", "Provenance"] {
        assert!(followed.contains(ty), "a {ty} was followed: {followed:?}");
    }
    // The Patient's generalPractitioner leads somewhere.
    let gp =
        all.body["entry"][0]["resource"]["generalPractitioner"][0]["reference"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("/{gp}"), Some(&token)).await.status, 200, "{gp}");
    // Ids the gateway could not have handed out are 404, clinical ones too, as are names that
    // are no resource type.
    assert_eq!(app.get("/Organization/borough-00.NOPE", Some(&token)).await.status, 404);
    assert_eq!(app.get("/Organization/nosuchsource.X1", Some(&token)).await.status, 404);
    assert_eq!(app.get("/Organization/no-dot", Some(&token)).await.status, 404);
    assert_eq!(app.get("/Condition/borough-00.c1", Some(&token)).await.status, 404);
    assert_eq!(app.get("/Provenance/merged.000000000000000000000000", Some(&token)).await.status, 404);
    assert_eq!(app.get("/Basic/borough-00.b1", Some(&token)).await.status, 404);
    assert_eq!(app.get("/Nonsense/borough-00.b1", Some(&token)).await.status, 404);
    assert_eq!(app.get(&format!("/{gp}"), None).await.status, 401);
    app.stop().await;
}
