//! A council's social care source beside a GP exchange, through the gateway over HTTP: the
//! registered GP sees what the council did with each referral the practice made (the task's
//! status, the council's own step and, when turned down, why), and the demo's social-care
//! agreement keeps the council's drug-service referral from social care staff.

use serde_json::{Value, json};
use tideway_auth::PurposeOfUse;
use tideway_simulators::population::Scenario;
use tideway_simulators::population::social_care::{
    REFERRAL_FOR_SUBSTANCE_MISUSE, ReferralStatus, SocialCareRecord,
};
use tideway_simulators::social_care::render::{request_status, task_status};
use tideway_tests::{Options, TestApp, codings_in, social_care_source_id, user};

use crate::relationship::{audit_detail, record_consent};

/// The demo's registered GP practice (`direct-care.toml` grants it the whole record).
const REGISTERED_GP: &str = "F80001";
/// The council of the first borough (`social-care.toml`'s recipient).
const COUNCIL: &str = "YLA01";

fn options() -> Options {
    Options { boroughs: 1, patients: 80, social_care: vec![0], ..Options::default() }
}

/// `$everything` of `nhs` for `token`, every entry on one page.
async fn everything(app: &TestApp, token: &str, nhs: &str) -> tideway_tests::Answer {
    let id = app.patient_id(token, nhs).await;
    let all = app.get(&format!("/Patient/{id}/$everything?_count=500"), Some(token)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(all.next_link().is_none(), "one page");
    all
}

/// The first person borough 0's council holds for whom `which` holds: their NHS number and
/// the council's facts.
fn council_patient(app: &TestApp, which: impl Fn(usize) -> bool) -> (String, SocialCareRecord) {
    let pop = &app.population;
    let index = pop.social_care_patients(0).into_iter().find(|&i| which(i)).expect("fixture: such a person");
    (pop.nhs_number(index).unwrap().as_str().to_owned(), pop.social_care_record(0, index).unwrap())
}

fn from_source<'a>(all: &'a tideway_tests::Answer, source: &str) -> Vec<&'a Value> {
    let urn = format!("urn:tideway:source:{source}");
    all.matches().into_iter().filter(|r| r["meta"]["source"] == urn.as_str()).collect()
}

#[tokio::test]
async fn the_registered_gp_sees_what_the_council_did_with_each_referral_the_practice_made() {
    let app = TestApp::spawn(options()).await;
    let council = social_care_source_id(&options(), 0);
    let (nhs, facts) = council_patient(&app, |i| {
        app.population.record(0, i).unwrap().demographics.practice.ods_code == REGISTERED_GP
    });
    let gp = app.token_for(&user(REGISTERED_GP, "R8000", PurposeOfUse::Treat)).await;
    let all = everything(&app, &gp, &nhs).await;
    assert!(!from_source(&all, "borough-00").is_empty(), "the GP exchange answered too");
    let councils = from_source(&all, &council);
    let tasks: Vec<&&Value> = councils.iter().filter(|r| r["resourceType"] == "Task").collect();
    assert_eq!(tasks.len(), facts.referrals.len(), "a task for every referral");
    let tag = json!([{"system": "https://fhir.tideway.london/CodeSystem/record-origin", "code": "social-care", "display": "Local authority social care record"}]);
    for f in &facts.referrals {
        let task = tasks.iter().find(|t| t["id"] == format!("{council}.{}", f.task_id)).expect("the task");
        assert_eq!(task["status"], task_status(f.status));
        assert_eq!(task["businessStatus"]["text"], f.business_status);
        assert_eq!(task["statusReason"]["text"].as_str(), f.status_reason);
        assert_eq!(task["requester"]["display"], facts.demographics.practice.name, "the practice's referral");
        assert_eq!(task["meta"]["tag"], tag);
        let focus = task["focus"]["reference"].as_str().unwrap();
        let request =
            councils.iter().find(|r| format!("ServiceRequest/{}", r["id"].as_str().unwrap()) == focus);
        let request = request.expect("the referral the task tracks is released with it");
        assert_eq!(request["status"], request_status(f.status));
        assert_eq!(request["code"]["coding"][0]["code"], f.code.code);
    }
    let open_episode = councils.iter().find(|r| r["resourceType"] == "EpisodeOfCare").expect("the episode");
    assert_eq!(open_episode["status"], if facts.episode.active { "active" } else { "finished" });
    app.stop().await;
}

#[tokio::test]
async fn social_care_staff_never_see_the_councils_drug_referral_under_the_demo_agreements() {
    let app = TestApp::spawn(options()).await;
    let council = social_care_source_id(&options(), 0);
    let (nhs, facts) = council_patient(&app, |i| Scenario::of(i) == Some(Scenario::Sensitive));
    let drugs = facts.referrals.iter().find(|f| f.code == REFERRAL_FOR_SUBSTANCE_MISUSE).unwrap();
    assert_eq!(drugs.status, ReferralStatus::InProgress);

    // The registered GP (direct care, every section) sees the council's drug-service referral.
    let gp = app.token_for(&user(REGISTERED_GP, "R8000", PurposeOfUse::Treat)).await;
    let seen = everything(&app, &gp, &nhs).await;
    let drug_task = format!("{council}.{}", drugs.task_id);
    assert!(seen.matches().iter().any(|r| r["id"] == drug_task.as_str()), "the GP sees the task");

    // The social worker, with the consent the explicit agreement waits for.
    let social = app.token_for(&user(COUNCIL, "R8003", PurposeOfUse::CareCoordination)).await;
    let id = app.patient_id(&gp, &nhs).await;
    let ods = json!({"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": COUNCIL});
    let recipient = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]});
    record_consent(
        &app,
        &nhs,
        &id,
        json!({"type": "permit", "actor": [{"role": recipient, "reference": {"identifier": ods}}]}),
    )
    .await;
    let all = everything(&app, &social, &nhs).await;
    let codes: Vec<String> = all.matches().iter().flat_map(|r| codings_in(r)).map(|c| c.code).collect();
    assert!(
        !codes.contains(&REFERRAL_FOR_SUBSTANCE_MISUSE.code.to_owned()),
        "the drug referral reached social care"
    );
    assert!(all.matches().iter().all(|r| r["id"] != drug_task.as_str()), "nor its task");
    assert!(all.matches().iter().any(|r| r["resourceType"] == "Patient"));
    // What `social-care.toml` says: care plans and referrals of the NHS record, never substance
    // misuse. The council's own record is the `social-care` section, which it does not name:
    // every clinical entry the council sent is withheld by section, and said so in the audit.
    let clinical = 1 + facts.care_plans.len() + 2 * facts.referrals.len();
    let from_council = from_source(&all, &council);
    assert!(
        from_council.iter().all(|r| matches!(
            r["resourceType"].as_str(),
            Some("Patient" | "Organization" | "Practitioner" | "PractitionerRole")
        )),
        "{from_council:?}"
    );
    let detail = audit_detail(&app, &all).await;
    let withheld: u64 = detail["withheld_by"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["source"] == council.as_str())
        .inspect(|w| {
            assert_eq!(w["reason"], "section", "{w}");
            assert_eq!(w["section"], "social-care", "{w}");
            assert_eq!(w["agreement"], "social-care@1", "{w}");
        })
        .map(|w| w["count"].as_u64().unwrap())
        .sum();
    assert_eq!(withheld, clinical as u64, "{detail}");
    app.stop().await;
}
