//! Legitimate relationship and break-glass over HTTP: services that must show a relationship
//! see the patients they care for (a referral, an open encounter, the patient's consent) and get
//! one identical 403 for everyone else, present or not; break-glass releases the record under a
//! recorded, alerted, time-limited session bound to one patient, and never past a dissent; the
//! privacy officer reads the alerts.

use reqwest::Method;
use serde_json::{Value, json};
use tideway_auth::PurposeOfUse;
use tideway_gateway::store::AuditLog as _;
use tideway_profiles::NhsNumber;
use tideway_simulators::population::Scenario;
use tideway_tests::{
    Answer, BREAK_GLASS_REASON, Options, PRIVACY_OFFICE, TestApp, codings_in, nhs_search, user,
};

const RELATIONSHIP_REQUIRED: &str = "relationship required; break-glass available";
const BREAK_GLASS: &str = "Break-glass (emergency) access";
/// A well-formed gateway id no source holds and the gateway never published.
const UNKNOWN_ID: &str = "p0123456789abcdef0123456789abcdef";

/// A valid NHS number outside the test population.
fn absent_nhs() -> String {
    NhsNumber::from_stem(999_900_000)
        .or_else(|| NhsNumber::from_stem(999_900_001))
        .unwrap()
        .as_str()
        .to_owned()
}

/// Patients of no scenario: no referral, no open encounter, no consent; only their registered
/// practice cares for them.
pub(crate) fn plain_patients(app: &TestApp, n: usize) -> Vec<String> {
    let pop = &app.population;
    (0..pop.patient_count())
        .filter(|i| Scenario::of(*i).is_none())
        .filter_map(|i| pop.nhs_number(i))
        .map(|nhs| nhs.as_str().to_owned())
        .take(n)
        .collect()
}

fn snomed_codes(a: &Answer) -> Vec<String> {
    a.matches()
        .iter()
        .flat_map(|r| codings_in(r))
        .filter(|c| c.system == "http://snomed.info/sct")
        .map(|c| c.code)
        .collect()
}

/// The outcome row's detail of the request that answered `a`.
pub(crate) async fn audit_detail(app: &TestApp, a: &Answer) -> Value {
    let rows = app.state.store.audit_for_request(&a.header("x-request-id").unwrap()).await.unwrap();
    serde_json::from_str(&rows.last().expect("audited").detail).unwrap()
}

fn assert_relationship_required(path: &str, a: &Answer) {
    assert_eq!(a.status, 403, "{path}: {}", a.body);
    assert_eq!(a.body["resourceType"], "OperationOutcome", "{path}");
    assert_eq!(a.issue_code(), "forbidden", "{path}");
    assert_eq!(a.body["issue"][0]["diagnostics"], RELATIONSHIP_REQUIRED, "{path}");
}

/// Whether the answer's outcome carries the break-glass warning.
fn says_break_glass(a: &Answer) -> bool {
    a.warnings().iter().any(|i| i["diagnostics"].as_str().is_some_and(|d| d.starts_with(BREAK_GLASS)))
}

fn consent(patient: &str, provision: Value) -> Value {
    json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "provision": provision
    })
}

/// The registered practice of `nhs` records `provision` as the patient's consent; its id.
pub(crate) async fn record_consent(app: &TestApp, nhs: &str, id: &str, provision: Value) -> String {
    let nhs = NhsNumber::parse(nhs).unwrap();
    let practice = app.token_for(&user(&app.practice_of(&nhs), "R8000", PurposeOfUse::Treat)).await;
    let created = app.send_json(Method::POST, "/Consent", &practice, &consent(id, provision)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

/// The four reads of one patient a service may try, by NHS number and by gateway id.
fn reads(nhs: &str, id: &str) -> [String; 4] {
    [
        nhs_search(nhs),
        format!("/Patient/{id}"),
        format!("/Patient/{id}/$everything"),
        format!("/Condition?patient={id}"),
    ]
}

#[tokio::test]
async fn podiatry_reads_its_referred_patient_and_gets_one_identical_403_for_anyone_else_present_or_not() {
    let app = TestApp::spawn(Options::default()).await;
    let doctor = app.token().await;
    let podiatrist = app.token_for(&user("YPOD1", "R8003", PurposeOfUse::Treat)).await;
    let referred = app.population.scenario_patients(Scenario::PodiatryDiabetic, 1)[0].as_str().to_owned();
    let found = app.get(&nhs_search(&referred), Some(&podiatrist)).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.matches().len(), 1, "{}", found.body);
    assert_eq!(audit_detail(&app, &found).await["standing"], "care");
    let id = found.matches()[0]["id"].as_str().unwrap().to_owned();
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&podiatrist)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(snomed_codes(&all).contains(&"371087003".to_owned()), "the referred foot ulcer is there");
    assert!(!says_break_glass(&all));
    assert_eq!(audit_detail(&app, &all).await["standing"], "care");

    // A present patient the service has no referral for, and one no source holds.
    let other = plain_patients(&app, 1).remove(0);
    let other_id = app.patient_id(&doctor, &other).await;
    let mut bodies = Vec::new();
    for path in reads(&other, &other_id).into_iter().chain(reads(&absent_nhs(), UNKNOWN_ID)) {
        let a = app.get(&path, Some(&podiatrist)).await;
        assert_relationship_required(&path, &a);
        let rows = app.state.store.audit_for_request(&a.header("x-request-id").unwrap()).await.unwrap();
        let last = rows.last().expect("the refusal is audited");
        assert_eq!((last.http_status, last.outcome.as_str()), (403, "denied"), "{path}");
        assert!(last.detail.contains("relationship-required"), "{path}: {}", last.detail);
        bodies.push((path, a.raw.clone()));
    }
    assert!(
        bodies.windows(2).all(|w| w[0].1 == w[1].1),
        "byte-identical whether or not the patient exists: {bodies:?}"
    );
    // Reads by id are the record too: the other patient's Condition, at the address a doctor's
    // bundle gave, is not found, byte for byte as an id never handed out, and audited as the
    // refusal it is.
    let others = app.get(&format!("/Patient/{other_id}/$everything?_count=1000"), Some(&doctor)).await;
    let condition =
        others.matches().into_iter().find(|r| r["resourceType"] == "Condition").expect("a Condition");
    let by_id_path = format!("/Condition/{}", condition["id"].as_str().unwrap());
    let by_id = app.get(&by_id_path, Some(&podiatrist)).await;
    let unknown = app.get("/Condition/borough-00.never-handed-out", Some(&podiatrist)).await;
    assert_eq!(by_id.status, 404, "{}", by_id.body);
    assert_eq!(by_id.raw, unknown.raw, "an existing id of another patient reads as an unknown one");
    let rows = app.state.store.audit_for_request(&by_id.header("x-request-id").unwrap()).await.unwrap();
    assert!(rows.last().unwrap().detail.contains("relationship-required"), "{:?}", rows.last());
    // A break-glass token does not read by id: the id would pick the patient it binds to.
    let glass = app.token_for(&user("YPOD1", "R8003", PurposeOfUse::EmergencyTreat)).await;
    let a = app.get(&by_id_path, Some(&glass)).await;
    assert_eq!(a.status, 403, "{}", a.body);
    // For the referred patient, a read by id gives what the podiatry agreement releases and
    // nothing else: what only the doctor sees is not found, exactly as an unknown id is not.
    let doctors = app.get(&format!("/Patient/{id}/$everything?_count=1000"), Some(&doctor)).await;
    let released: Vec<&Value> = all.matches();
    let key = |r: &Value| format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap());
    let released_keys: Vec<String> = released.iter().map(|r| key(r)).collect();
    let clinical = |r: &&Value| r["resourceType"] != "Patient" && r["resourceType"] != "Organization";
    let withheld: Vec<String> = doctors
        .matches()
        .into_iter()
        .filter(clinical)
        .map(key)
        .filter(|k| !released_keys.contains(k))
        .collect();
    assert!(!withheld.is_empty(), "the doctor sees more than podiatry does");
    for k in &withheld {
        let a = app.get(&format!("/{k}"), Some(&podiatrist)).await;
        assert_eq!(a.status, 404, "{k}: {}", a.body);
    }
    for r in released.into_iter().filter(clinical) {
        let a = app.get(&format!("/{}", key(r)), Some(&podiatrist)).await;
        assert_eq!(a.status, 200, "{}: {}", key(r), a.body);
        assert_eq!(&a.body, r);
    }
    app.stop().await;
}

#[tokio::test]
async fn mental_health_reads_through_its_referral_and_out_of_hours_through_the_open_case() {
    let app = TestApp::spawn(Options::default()).await;
    let doctor = app.token().await;
    let plain = plain_patients(&app, 1).remove(0);
    let plain_id = app.patient_id(&doctor, &plain).await;

    let mental_health = app.token_for(&user("YMH01", "R8001", PurposeOfUse::Treat)).await;
    let referred = app.population.scenario_patients(Scenario::PodiatryDiabetic, 1)[0].as_str().to_owned();
    let id = app.patient_id(&mental_health, &referred).await;
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&mental_health)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(snomed_codes(&all).contains(&"35489007".to_owned()), "the depression it was referred for");
    assert_eq!(audit_detail(&app, &all).await["standing"], "care");
    for path in reads(&plain, &plain_id) {
        assert_relationship_required(&path, &app.get(&path, Some(&mental_health)).await);
    }

    let ooh = app.token_for(&user("YOOH1", "R8000", PurposeOfUse::Treat)).await;
    let open_case = app.population.scenario_patients(Scenario::Sensitive, 1)[0].as_str().to_owned();
    let id = app.patient_id(&ooh, &open_case).await;
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&ooh)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(audit_detail(&app, &all).await["standing"], "care");
    assert!(all.matches().iter().any(|r| r["resourceType"] == "Condition"), "the record flows");
    let got = snomed_codes(&all);
    for sensitive in ["86406008", "105629000", "407377005", "10383002", "52637005"] {
        assert!(!got.contains(&sensitive.to_owned()), "{sensitive} reached the out-of-hours GP");
    }
    assert!(!all.body.to_string().contains("43C3."), "nor its CTV3 code");
    assert!(!says_break_glass(&all));
    for path in reads(&plain, &plain_id) {
        assert_relationship_required(&path, &app.get(&path, Some(&ooh)).await);
    }
    app.stop().await;
}

#[tokio::test]
async fn social_care_is_refused_until_the_patients_consent_names_it_then_its_sections_flow() {
    let app = TestApp::spawn(Options::default()).await;
    let doctor = app.token().await;
    let social = app.token_for(&user("YLA01", "R8003", PurposeOfUse::CareCoordination)).await;
    let nhs = plain_patients(&app, 1).remove(0);
    let id = app.patient_id(&doctor, &nhs).await;
    for path in reads(&nhs, &id) {
        assert_relationship_required(&path, &app.get(&path, Some(&social)).await);
    }
    let ods = json!({"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "YLA01"});
    let recipient = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]});
    let provision =
        json!({"type": "permit", "actor": [{"role": recipient, "reference": {"identifier": ods}}]});
    let consent_id = record_consent(&app, &nhs, &id, provision.clone()).await;
    let found = app.get(&nhs_search(&nhs), Some(&social)).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.matches().len(), 1);
    assert_eq!(audit_detail(&app, &found).await["standing"], "consent");
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&social)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(audit_detail(&app, &all).await["standing"], "consent");
    let types: Vec<&str> = all.matches().iter().map(|r| r["resourceType"].as_str().unwrap()).collect();
    assert!(types.contains(&"Patient"), "{types:?}");
    assert!(
        types.iter().all(|t| !matches!(*t, "Condition" | "MedicationRequest" | "Observation")),
        "still only its sections: {types:?}"
    );
    assert_eq!(app.get(&format!("/Patient/{id}"), Some(&social)).await.status, 200);
    // Withdrawn mid-paging, the consent takes the relationship with it: the page link handed
    // out under it is refused.
    let first = app.get(&format!("/Patient/{id}/$everything?_count=1"), Some(&social)).await;
    let next = first.next_link().expect("several pages");
    let nhs = NhsNumber::parse(&nhs).unwrap();
    let practice = app.token_for(&user(&app.practice_of(&nhs), "R8000", PurposeOfUse::Treat)).await;
    let mut withdrawn = consent(&id, provision);
    withdrawn["status"] = json!("inactive");
    let put = app.send_json(Method::PUT, &format!("/Consent/{consent_id}"), &practice, &withdrawn).await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_relationship_required(&next, &app.get(&next, Some(&social)).await);
    app.stop().await;
}

/// The privacy officer's `/alerts` answer for `query`.
async fn alerts(app: &TestApp, officer: &str, query: &str) -> Answer {
    let a = app.get(&format!("/alerts{query}"), Some(officer)).await;
    assert_eq!(a.status, 200, "/alerts{query}: {}", a.body);
    assert_eq!(
        (a.body["resourceType"].as_str(), a.body["type"].as_str()),
        (Some("Bundle"), Some("searchset"))
    );
    a
}

#[tokio::test]
async fn break_glass_releases_one_patient_alerted_once_and_never_past_a_dissent() {
    let app = TestApp::spawn(Options::default()).await;
    let doctor = app.token().await;
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    let plain = plain_patients(&app, 3);
    let mut ids = Vec::new();
    for nhs in &plain {
        ids.push(app.patient_id(&doctor, nhs).await);
    }
    assert_eq!(alerts(&app, &officer, "").await.body["total"], 0);

    let glass = app.token_for(&user("YOOH1", "R8000", PurposeOfUse::EmergencyTreat)).await;
    let all = app.get(&format!("/Patient/{}/$everything", ids[0]), Some(&glass)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(all.matches().iter().any(|r| r["resourceType"] == "Condition"), "the record is released");
    assert!(says_break_glass(&all), "{:?}", all.warnings());
    let detail = audit_detail(&app, &all).await;
    assert_eq!(detail["standing"], "break-glass", "{detail}");
    // Why: the reason the user gave is on the request's records, and is the AuditEvent's why.
    assert_eq!(detail["break_glass_reason"], tideway_tests::BREAK_GLASS_REASON, "{detail}");
    let history = app.get(&format!("/AuditEvent?patient={}", ids[0]), Some(&officer)).await;
    let rid = all.header("x-request-id").unwrap();
    let event = history
        .matches()
        .into_iter()
        .find(|e| e["entity"][0]["what"]["identifier"]["value"] == rid.as_str())
        .expect("the break-glass read is in the access history")
        .clone();
    assert_eq!(event["purposeOfEvent"][0]["coding"][0]["code"], "ETREAT");
    assert_eq!(event["purposeOfEvent"][0]["text"], tideway_tests::BREAK_GLASS_REASON);

    let listed = alerts(&app, &officer, "").await;
    assert_eq!(listed.body["total"], 1, "{}", listed.body);
    let alert = listed.matches()[0].clone();
    assert_eq!(alert["resourceType"], "Communication");
    assert_eq!(alert["subject"]["reference"], format!("Patient/{}", ids[0]));
    let payload = alert["payload"][0]["contentString"].as_str().unwrap();
    assert!(payload.contains(BREAK_GLASS_REASON), "{payload}");
    assert!(payload.contains("YOOH1") && payload.contains("R8000"), "{payload}");
    assert!(payload.contains(&all.header("x-request-id").unwrap()), "names the request: {payload}");

    // The same token on the same patient: the same session, no second alert.
    let again = app.get(&nhs_search(&plain[0]), Some(&glass)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.matches().len(), 1);
    assert!(says_break_glass(&again));
    assert_eq!(app.get(&format!("/Patient/{}", ids[0]), Some(&glass)).await.status, 200);
    assert_eq!(alerts(&app, &officer, "").await.body["total"], 1, "one alert per session");

    // The same token on another patient, present or absent: the same refusal, before any
    // look-up, so a bound token cannot tell which patients exist; nothing opened for them.
    let mut bodies = std::collections::HashSet::new();
    for path in reads(&plain[1], &ids[1]).into_iter().chain(reads(&absent_nhs(), UNKNOWN_ID)) {
        let a = app.get(&path, Some(&glass)).await;
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert!(
            a.body["issue"][0]["diagnostics"].as_str().unwrap().contains("bound to another patient"),
            "{path}: {}",
            a.body
        );
        bodies.insert(a.body.to_string());
    }
    assert_eq!(bodies.len(), 1, "one refusal for present and absent alike: {bodies:?}");
    assert_eq!(alerts(&app, &officer, &format!("?patient={}", ids[1])).await.body["total"], 0);

    // A dissent holds against break-glass: nothing of the record leaves.
    record_consent(&app, &plain[2], &ids[2], json!({"type": "deny"})).await;
    let glass = app.token_for(&user("YOOH1", "R8000", PurposeOfUse::EmergencyTreat)).await;
    let search = app.get(&nhs_search(&plain[2]), Some(&glass)).await;
    assert_eq!(search.status, 200, "{}", search.body);
    assert!(search.matches().is_empty(), "the dissented patient is not found: {}", search.body);
    let all = app.get(&format!("/Patient/{}/$everything", ids[2]), Some(&glass)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.released(), 0, "nothing past a dissent: {}", all.body);
    let read = app.get(&format!("/Patient/{}", ids[2]), Some(&glass)).await;
    assert_eq!(read.status, 404, "withheld reads as absent: {}", read.body);
    let conditions = app.get(&format!("/Condition?patient={}", ids[2]), Some(&glass)).await;
    assert_eq!(conditions.released(), 0, "{}", conditions.body);
    app.stop().await;
}

#[tokio::test]
async fn a_break_glass_session_ends_and_its_token_and_page_links_are_refused_after() {
    let app = TestApp::spawn(Options { break_glass_minutes: 0, ..Options::default() }).await;
    let doctor = app.token().await;
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    let nhs = plain_patients(&app, 1).remove(0);
    let id = app.patient_id(&doctor, &nhs).await;
    let glass = app.token_for(&user("YOOH1", "R8000", PurposeOfUse::EmergencyTreat)).await;
    let first = app.get(&format!("/Patient/{id}/$everything?_count=2"), Some(&glass)).await;
    assert_eq!(first.status, 200, "the request that opens it is answered: {}", first.body);
    assert!(says_break_glass(&first));
    let next = first.next_link().expect("several pages");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for path in [next, format!("/Patient/{id}/$everything"), nhs_search(&nhs), format!("/Patient/{id}")] {
        let a = app.get(&path, Some(&glass)).await;
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert!(a.body["issue"][0]["diagnostics"].as_str().unwrap().contains("ended"), "{path}: {}", a.body);
    }
    assert_eq!(alerts(&app, &officer, "").await.body["total"], 1, "ending raises nothing more");
    app.stop().await;
}

#[tokio::test]
async fn only_a_privacy_office_reads_alerts_and_its_parameters_are_checked() {
    let app = TestApp::spawn(Options::default()).await;
    let doctor = app.token().await;
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    let plain = plain_patients(&app, 2);
    let mut ids = Vec::new();
    for nhs in &plain {
        ids.push(app.patient_id(&doctor, nhs).await);
    }
    let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(2);
    for id in &ids {
        let glass = app.token_for(&user("YOOH1", "R8000", PurposeOfUse::EmergencyTreat)).await;
        assert_eq!(app.get(&format!("/Patient/{id}/$everything"), Some(&glass)).await.status, 200);
    }
    let rfc = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    let all = alerts(&app, &officer, "").await;
    assert_eq!(all.body["total"], 2);
    let subjects: Vec<&str> =
        all.matches().iter().map(|c| c["subject"]["reference"].as_str().unwrap()).collect();
    assert_eq!(subjects, [format!("Patient/{}", ids[0]), format!("Patient/{}", ids[1])], "oldest first");
    let one = alerts(&app, &officer, &format!("?patient={}", ids[1])).await;
    assert_eq!(one.body["total"], 1);
    assert_eq!(one.matches()[0]["subject"]["reference"], format!("Patient/{}", ids[1]));
    assert_eq!(alerts(&app, &officer, "?_count=1").await.body["total"], 1);
    let since = |t: time::OffsetDateTime| format!("?_since={}", rfc(t).replace('+', "%2B"));
    assert_eq!(alerts(&app, &officer, &since(before)).await.body["total"], 2);
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert_eq!(alerts(&app, &officer, &since(later)).await.body["total"], 0);

    for bad in
        ["?_count=0", "?_count=1001", "?_count=ten", "?_since=yesterday", "?_since=2026-13-01T00:00:00Z"]
    {
        let a = app.get(&format!("/alerts{bad}"), Some(&officer)).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
        assert_eq!(a.body["resourceType"], "OperationOutcome", "{bad}");
    }
    let elsewhere = app.token_for(&user("RJ122", "R8000", PurposeOfUse::Operations)).await;
    let clinician_at_office = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Treat)).await;
    for token in [&elsewhere, &doctor, &clinician_at_office] {
        let a = app.get("/alerts", Some(token)).await;
        assert_eq!(a.status, 403, "{}", a.body);
        assert!(!a.body.to_string().contains(BREAK_GLASS_REASON), "no alert leaks in a refusal");
    }
    let anonymous = app.get("/alerts", None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    app.stop().await;
}

#[tokio::test]
async fn the_token_endpoint_over_http_refuses_break_glass_without_a_reason_and_a_reason_without_it() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let without = tideway_auth::client::UserClaims {
        break_glass_reason: None,
        ..user("YOOH1", "R8000", PurposeOfUse::EmergencyTreat)
    };
    let stray = tideway_auth::client::UserClaims {
        break_glass_reason: Some(BREAK_GLASS_REASON.to_owned()),
        ..user("YOOH1", "R8000", PurposeOfUse::Treat)
    };
    for who in [without, stray] {
        let form = app.es_client.token_form(&app.token_url(), "system/*.read", &who).unwrap();
        let res = app.post_token(form).await;
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{body}");
    }
    app.stop().await;
}
