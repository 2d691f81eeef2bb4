//! Sharing agreements over HTTP: who is refused outright, what the sensitive set withholds from
//! everyone, what podiatry sees, and what the audit trail says about it.

use serde_json::Value;
use tideway_auth::PurposeOfUse;
use tideway_gateway::store::AuditLog;
use tideway_simulators::population::Scenario;
use tideway_tests::{Options, TestApp, clinician, codings_in, nhs_search, user};

/// Every SNOMED CT code the matches carry anywhere (main code, body sites, reasons...).
fn codes(resources: &[&Value]) -> Vec<String> {
    resources
        .iter()
        .flat_map(|r| codings_in(r))
        .filter(|c| c.system == "http://snomed.info/sct")
        .map(|c| c.code)
        .collect()
}

fn types(resources: &[&Value]) -> Vec<String> {
    let mut t: Vec<String> =
        resources.iter().map(|r| r["resourceType"].as_str().unwrap().to_owned()).collect();
    t.sort();
    t.dedup();
    t
}

#[tokio::test]
async fn a_role_purpose_or_organisation_no_agreement_grants_gets_the_same_403_for_any_patient() {
    let app = TestApp::spawn(Options::default()).await;
    let clinician_token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&clinician_token, &nhs).await;
    let hits_before = app.simulator_hits();
    for who in [
        user("RJ122", "R9999", PurposeOfUse::Treat),
        user("RJ122", "R8000", PurposeOfUse::Operations),
        user("ZZZ99", "R8000", PurposeOfUse::Treat),
    ] {
        let token = app.token_for(&who).await;
        let mut bodies = Vec::new();
        for path in [
            format!("/Patient/{id}/$everything"),
            "/Patient/pnotapatientidatall00000000/$everything".to_owned(),
            nhs_search(&nhs),
            nhs_search("9990000026"),
            format!("/Condition?patient={id}"),
            "/Condition?patient=p0123456789abcdef0123456789abcdef".to_owned(),
            format!("/Patient/{id}"),
            "/Organization/borough-00.F80001".to_owned(),
        ] {
            let a = app.get(&path, Some(&token)).await;
            assert_eq!(a.status, 403, "{path}: {}", a.body);
            assert_eq!(a.body["resourceType"], "OperationOutcome");
            assert_eq!(a.issue_code(), "forbidden");
            bodies.push(a.body["issue"][0]["diagnostics"].clone());
            let rid = a.header("x-request-id").unwrap();
            let rows = app.state.store.audit_for_request(&rid).await.unwrap();
            let last = rows.last().expect("the refusal is audited");
            assert_eq!(last.outcome, "denied");
            assert_eq!(last.http_status, 403);
            // A secondary purpose is refused every record as such, whatever agreements exist.
            let reason = if who.purpose.is_secondary() { "secondary-use" } else { "no-agreement" };
            assert!(last.detail.contains(reason), "{}", last.detail);
        }
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "the same answer whether or not the patient exists: {bodies:?}"
        );
    }
    assert_eq!(app.simulator_hits(), hits_before, "nothing was fetched for a refused requester");
    app.stop().await;
}

#[tokio::test]
async fn the_sensitive_set_is_withheld_from_a_hospital_clinician_with_what_links_to_it() {
    let app = TestApp::spawn(Options::default()).await;
    let token = app.token_for(&clinician()).await;
    let nhs = app.population.scenario_patients(Scenario::Sensitive, 1)[0].as_str().to_owned();
    let id = app.patient_id(&token, &nhs).await;
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let matches = all.matches();
    let got = codes(&matches);
    // One entry of every sensitive category: HIV, a sexually transmitted infection, gender
    // reassignment, termination of pregnancy, assisted conception.
    for sensitive in ["86406008", "105629000", "407377005", "10383002", "52637005"] {
        assert!(!got.contains(&sensitive.to_owned()), "{sensitive} reached a hospital clinician");
    }
    // The CTV3 code of the older HIV entry is withheld with it.
    assert!(!all.body.to_string().contains("43C3."));
    // The sexual-health encounter names the withheld problems as its reasons: withheld too.
    assert!(
        !matches.iter().any(|r| r["id"].as_str().unwrap().ends_with("-enc-s")),
        "linked encounter released"
    );
    // The drug-service referral is not itself sensitive, but it was recorded in that encounter,
    // so it would tell what the encounter hides: withheld with it.
    assert!(!got.contains(&"1048221000000107".to_owned()));
    assert!(matches.iter().any(|r| r["resourceType"] == "Condition"), "the rest of the record is there");
    assert!(all.warnings().is_empty());
    assert!(all.says_may_be_withheld());
    // The audit says which rule of which agreement withheld what, in counts only.
    let rows = app.state.store.audit_for_request(&all.header("x-request-id").unwrap()).await.unwrap();
    let detail: Value = serde_json::from_str(&rows[1].detail).unwrap();
    assert_eq!(detail["agreements"], serde_json::json!(["direct-care@1"]));
    let by = detail["withheld_by"].as_array().unwrap();
    let count = |reason: &str| -> u64 {
        by.iter().filter(|w| w["reason"] == reason).map(|w| w["count"].as_u64().unwrap()).sum()
    };
    assert_eq!(count("sensitive"), 5, "{by:?}");
    assert_eq!(count("linked"), 2, "the encounter and the referral made in it: {by:?}");
    assert!(by.iter().all(|w| w["source"].is_string()), "{by:?}");
    assert!(
        by.iter().filter(|w| w["reason"] == "sensitive").all(|w| w["agreement"] == "direct-care@1"),
        "{by:?}"
    );
    assert!(
        !rows[1].detail.contains("86406008") && !rows[1].detail.contains(&nhs),
        "no clinical content in the audit"
    );
    // Several patients in one search fail closed: a 400, never one patient's data under another's.
    for twice in [format!("/Condition?patient={id}&patient={id}"), format!("/Condition?patient={id},{id}")] {
        let a = app.get(&twice, Some(&token)).await;
        assert_eq!(a.status, 400, "{twice}: {}", a.body);
        assert_eq!(a.body["resourceType"], "OperationOutcome");
    }
    // A type search decides the same way.
    let conditions = app.get(&format!("/Condition?patient={id}&code=86406008"), Some(&token)).await;
    assert_eq!(conditions.status, 200);
    assert_eq!(conditions.body["total"], 0);
    app.stop().await;
}

#[tokio::test]
async fn podiatry_sees_feet_diabetes_arthritis_and_circulation_and_nothing_else() {
    let app = TestApp::spawn(Options::default()).await;
    let podiatrist = app.token_for(&user("YPOD1", "R8003", PurposeOfUse::Treat)).await;
    let nhs = app.population.scenario_patients(Scenario::PodiatryDiabetic, 1)[0].as_str().to_owned();
    let id = app.patient_id(&podiatrist, &nhs).await;
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&podiatrist)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let matches = all.matches();
    let got = codes(&matches);
    for wanted in ["44054006", "371087003", "400200009", "1107481000000106"] {
        assert!(got.contains(&wanted.to_owned()), "podiatry should see {wanted}");
    }
    assert!(!got.contains(&"35489007".to_owned()), "depression reached podiatry");
    let seen = types(&matches);
    for never in ["AllergyIntolerance", "Encounter", "Immunization"] {
        assert!(!seen.contains(&never.to_owned()), "{never} reached podiatry: {seen:?}");
    }
    // Every clinical entry released is classified by one of podiatry's code sets.
    let policy = tideway_policy::Policy::examples([]).unwrap();
    let include = policy.agreements().iter().find(|a| a.id == "podiatry").unwrap().include;
    for r in matches
        .iter()
        .filter(|r| !matches!(r["resourceType"].as_str(), Some("Patient" | "Organization" | "Provenance")))
    {
        let facts = tideway_profiles::ResourceFacts { codings: codings_in(r), ..Default::default() };
        assert_ne!(
            policy.terminology().classify(&facts) & include,
            0,
            "unclassified entry reached podiatry: {r}"
        );
    }
    // _summary=count is the count of what this requester may see.
    let count = app.get(&format!("/Condition?patient={id}&_summary=count"), Some(&podiatrist)).await;
    let listed = app.get(&format!("/Condition?patient={id}"), Some(&podiatrist)).await;
    assert_eq!(count.body["total"], listed.matches().len());
    // The same patient's record to a hospital clinician has the depression on it.
    let clinician = app.token().await;
    let full = app.get(&format!("/Patient/{id}/$everything"), Some(&clinician)).await;
    assert!(codes(&full.matches()).contains(&"35489007".to_owned()));
    app.stop().await;
}

#[tokio::test]
async fn social_care_gets_nothing_while_its_agreement_waits_for_explicit_consent() {
    let app = TestApp::spawn(Options::default()).await;
    let social_worker = app.token_for(&user("YLA01", "R8003", PurposeOfUse::CareCoordination)).await;
    let clinician = app.token().await;
    let nhs = app.population.scenario_patients(Scenario::Sensitive, 1)[0].as_str().to_owned();
    let id = app.patient_id(&clinician, &nhs).await;
    // No consent names the team and no referral or episode does: no relationship, and the
    // refusal is the one an absent patient gets.
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(&social_worker)).await;
    assert_eq!(all.status, 403, "{}", all.body);
    assert_eq!(all.body["issue"][0]["diagnostics"], "relationship required; break-glass available");
    let absent = app.get("/Patient/p0000000000000000000000000000000/$everything", Some(&social_worker)).await;
    assert_eq!((absent.status, &absent.body), (all.status, &all.body));
    app.stop().await;
}
