//! Patient consent over HTTP: who may record it, bad definitions, versions kept, and a change
//! that holds on the very next request, for cached answers and page links already handed out.

use reqwest::Method;
use serde_json::{Value, json};
use tideway_auth::PurposeOfUse;
use tideway_tests::{Options, TestApp, clinician, user};

fn consent(patient: &str, status: &str, provision: Value) -> Value {
    json!({
        "resourceType": "Consent",
        "status": status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "provision": provision
    })
}

#[tokio::test]
async fn a_dissent_holds_at_once_for_cached_answers_and_page_links_and_withdrawing_it_restores_sharing() {
    let app = TestApp::spawn(Options::default()).await;
    let doctor = app.token_for(&clinician()).await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].clone();
    let practice = app.token_for(&user(&app.practice_of(&nhs), "R8000", PurposeOfUse::Treat)).await;
    let id = app.patient_id(&doctor, nhs.as_str()).await;
    // Cached, and a page link handed out, before the dissent.
    let before = app.get(&format!("/Patient/{id}/$everything?_count=2"), Some(&doctor)).await;
    assert_eq!(before.status, 200);
    assert!(before.released() > 0);
    let next = before.next_link().expect("several pages");

    let dissent = consent(&id, "active", json!({"type": "deny"}));
    let created = app.send_json(Method::POST, "/Consent", &practice, &dissent).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let cid = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["meta"]["versionId"], "1");
    assert!(created.header("location").unwrap().ends_with(&format!("/Consent/{cid}/_history/1")));

    let after = app.get(&format!("/Patient/{id}/$everything"), Some(&doctor)).await;
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(after.released(), 0, "nothing leaves past a dissent, cached or not: {}", after.body);
    assert!(after.says_may_be_withheld());
    let paged = app.get(&next, Some(&doctor)).await;
    assert_eq!(paged.released(), 0, "a page link handed out before the dissent releases nothing");
    // The Patient itself is withheld: not found, as an absent one is not.
    let read = app.get(&format!("/Patient/{id}"), Some(&doctor)).await;
    assert_eq!(read.status, 404, "{}", read.body);

    // Withdrawal: a new version, the old one kept.
    let mut withdrawn = dissent.clone();
    withdrawn["status"] = json!("inactive");
    let updated = app.send_json(Method::PUT, &format!("/Consent/{cid}"), &practice, &withdrawn).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["meta"]["versionId"], "2");
    let restored = app.get(&format!("/Patient/{id}/$everything"), Some(&doctor)).await;
    assert!(restored.released() > 0, "sharing resumes once the dissent is withdrawn");
    let history = app.get(&format!("/Consent/{cid}/_history"), Some(&practice)).await;
    assert_eq!(history.status, 200, "{}", history.body);
    assert_eq!(history.body["type"], "history");
    let statuses: Vec<&str> = history.resources().iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["active", "inactive"]);
    let current = app.get(&format!("/Consent/{cid}"), Some(&practice)).await;
    assert_eq!(current.body["status"], "inactive");
    // The gateway keeps the versions, so it can say which one this is and when it was made.
    assert_eq!(current.header("etag").as_deref(), Some("W/\"2\""));
    let modified = current.header("last-modified").expect("Last-Modified on a versioned read");
    let updated_at = current.body["meta"]["lastUpdated"].as_str().unwrap();
    let when =
        time::OffsetDateTime::parse(updated_at, &time::format_description::well_known::Rfc3339).unwrap();
    let http_date = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .unwrap();
    assert_eq!(modified, when.to_offset(time::UtcOffset::UTC).format(&http_date).unwrap());
    let listed = app.get(&format!("/Consent?patient={id}"), Some(&practice)).await;
    assert_eq!(listed.body["total"], 1);
    app.stop().await;
}

#[tokio::test]
async fn only_the_registered_practice_or_the_patients_app_records_and_bad_definitions_name_the_element() {
    let app = TestApp::spawn(Options::default()).await;
    let doctor = app.token_for(&clinician()).await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].clone();
    let id = app.patient_id(&doctor, nhs.as_str()).await;
    let dissent = consent(&id, "active", json!({"type": "deny"}));
    let refused = app.send_json(Method::POST, "/Consent", &doctor, &dissent).await;
    assert_eq!(refused.status, 403, "a hospital may not record the patient's consent: {}", refused.body);
    // The patient's own app acts for the patient it authenticated, and no one else.
    let someone_elses_app = app.token_for(&user("YAPP1", "R8000", PurposeOfUse::PatientRequest)).await;
    let patient_app = app
        .token_for(&tideway_auth::client::UserClaims {
            user_id: nhs.as_str().to_owned(),
            ..user("YAPP1", "R8000", PurposeOfUse::PatientRequest)
        })
        .await;
    let practice = app.token_for(&user(&app.practice_of(&nhs), "R8000", PurposeOfUse::Treat)).await;
    for (provision, element) in [
        (json!({"type": "deny", "securityLabel": []}), "Consent.provision.securityLabel"),
        (
            json!({"type": "deny", "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"reference": "Organization/1"}}]}),
            "Consent.provision.actor[0].reference",
        ),
        (json!({"type": "sometimes"}), "Consent.provision.type"),
    ] {
        let bad =
            app.send_json(Method::POST, "/Consent", &practice, &consent(&id, "active", provision)).await;
        assert_eq!(bad.status, 400, "{}", bad.body);
        assert_eq!(bad.body["issue"][0]["expression"][0], element, "{}", bad.body);
    }
    let unknown = app
        .send_json(
            Method::POST,
            "/Consent",
            &practice,
            &consent("pnotapatient", "active", json!({"type": "deny"})),
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let other = app.send_json(Method::POST, "/Consent", &someone_elses_app, &dissent).await;
    assert_eq!(other.status, 403, "an app authenticated as another patient: {}", other.body);
    let by_app = app.send_json(Method::POST, "/Consent", &patient_app, &dissent).await;
    assert_eq!(by_app.status, 201, "the patient's own app records consent: {}", by_app.body);
    // A clinician cannot read what the patient restricted.
    let listed = app.get(&format!("/Consent?patient={id}"), Some(&doctor)).await;
    assert_eq!(listed.status, 403);
    let officer = app.token_for(&user("YPRIV", "R8000", PurposeOfUse::Operations)).await;
    let listed = app.get(&format!("/Consent?patient={id}"), Some(&officer)).await;
    assert_eq!(listed.status, 200, "a privacy officer reads consents: {}", listed.body);
    assert_eq!(listed.body["total"], 1);
    app.stop().await;
}

#[tokio::test]
async fn explicit_consent_opens_the_social_care_agreement_for_that_service_only() {
    let app = TestApp::spawn(Options::default()).await;
    let doctor = app.token_for(&clinician()).await;
    let social = app.token_for(&user("YLA01", "R8003", PurposeOfUse::CareCoordination)).await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].clone();
    let practice = app.token_for(&user(&app.practice_of(&nhs), "R8000", PurposeOfUse::Treat)).await;
    let id = app.patient_id(&doctor, nhs.as_str()).await;
    let before = app.get(&format!("/Patient/{id}/$everything"), Some(&social)).await;
    assert_eq!(before.released(), 0);
    let agreed = consent(
        &id,
        "active",
        json!({"type": "permit", "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "YLA01"}}}]}),
    );
    assert_eq!(app.send_json(Method::POST, "/Consent", &practice, &agreed).await.status, 201);
    let after = app.get(&format!("/Patient/{id}/$everything"), Some(&social)).await;
    let types: Vec<&str> = after.matches().iter().map(|r| r["resourceType"].as_str().unwrap()).collect();
    assert!(types.contains(&"Patient"), "{types:?}");
    // Social care still gets only its sections: no problems, medicines or results.
    assert!(
        types.iter().all(|t| !matches!(*t, "Condition" | "MedicationRequest" | "Observation")),
        "{types:?}"
    );
    app.stop().await;
}
