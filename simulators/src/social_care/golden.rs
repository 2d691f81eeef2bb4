//! The social care golden record: two records of the population (the fixture, committed) in,
//! the adapter's normalised R4 out, compared exactly with the committed snapshot; and what a
//! GP can tell from it about the referrals the practice made. `UPDATE_GOLDEN=1` rewrites both
//! files.

use std::path::PathBuf;

use serde_json::{Value, json};
use tideway_adapters::fhir_r4::mapping::{Normaliser, normalise_entries_with};
use tideway_adapters::social_care::mapping::{SocialCare, social_care_tag};
use tideway_adapters::{SourceId, SourceRecord};
use tideway_profiles::Section;

use super::render;
use crate::conformance::{self, BOROUGH};
use crate::population::Scenario;
use crate::population::social_care::{
    REFERRAL_FOR_SUBSTANCE_MISUSE, REFERRAL_TO_MEALS, REFERRAL_TO_SOCIAL_WORKER,
};

/// The golden record: the first podiatry-diabetic resident of the suite's borough (one
/// referral accepted, one turned down) and the first sensitive one the council holds (a
/// drug-service referral).
fn golden_patients() -> Vec<usize> {
    let pop = conformance::population();
    let held = pop.social_care_patients(BOROUGH);
    let first = |s: Scenario| held.iter().copied().find(|&i| Scenario::of(i) == Some(s)).unwrap();
    vec![first(Scenario::PodiatryDiabetic), first(Scenario::Sensitive)]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/social_care/golden")
}

/// Compares `value` with the committed file, or rewrites the file under `UPDATE_GOLDEN=1`.
fn assert_golden(name: &str, value: &Value) {
    let path = golden_dir().join(name);
    let text = format!("{}\n", serde_json::to_string_pretty(value).unwrap());
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
    assert!(committed == text, "{} differs from what the code makes now (UPDATE_GOLDEN=1 rewrites it)", name);
}

/// The fixture: the records as the simulator serves them, one searchset Bundle per patient.
fn fixture() -> Value {
    let pop = conformance::population();
    let bundles: Vec<Value> = golden_patients()
        .into_iter()
        .map(|i| {
            let entries: Vec<Value> = render::resources(&pop.social_care_record(BOROUGH, i).unwrap())
                .into_iter()
                .map(|r| json!({"resource": r, "search": {"mode": "match"}}))
                .collect();
            json!({"resourceType": "Bundle", "type": "searchset", "entry": entries})
        })
        .collect();
    Value::Array(bundles)
}

/// The committed fixture, normalised by the social care adapter's rules.
fn normalised() -> Vec<(usize, SourceRecord)> {
    let text = std::fs::read_to_string(golden_dir().join("input.json")).expect("the committed fixture");
    let bundles: Value = serde_json::from_str(&text).unwrap();
    let source = SourceId::parse("camden-sc").unwrap();
    let base = url::Url::parse("https://social-care.camden.example/fhir/").unwrap();
    bundles
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(k, bundle)| {
            let entries = bundle["entry"].as_array().unwrap().clone();
            let local = entries[0]["resource"]["id"].as_str().unwrap().to_owned();
            let gateway = format!("gw-golden-{k}");
            let n = Normaliser {
                source: &source,
                base_url: &base,
                patient_local_id: &local,
                gateway_patient_id: &gateway,
            };
            let mut record = SourceRecord::default();
            let count = entries.len();
            normalise_entries_with(&n, &SocialCare, entries, &mut record);
            (count, record)
        })
        .collect()
}

fn resources(record: &SourceRecord) -> Vec<Value> {
    record.resources.iter().map(|r| serde_json::from_slice(&r.json).unwrap()).collect()
}

#[test]
fn the_golden_fixture_is_the_populations_record_as_served() {
    assert_golden("input.json", &fixture());
}

#[test]
fn the_golden_record_normalises_to_the_committed_r4_with_every_entry_accounted_for() {
    let out: Vec<Value> = normalised()
        .into_iter()
        .map(|(count, record)| {
            assert!(record.rejected.is_empty(), "{:?}", record.rejected);
            assert_eq!(record.resources.len() + record.rejected.len(), count);
            for r in &record.resources {
                let json: Value = serde_json::from_slice(&r.json).unwrap();
                assert_eq!(json["meta"]["tag"], json!([social_care_tag()]));
                let context =
                    matches!(r.facts.section, Some(Section::Demographics | Section::Administrative));
                assert!(context || r.facts.section == Some(Section::SocialCare), "{}", r.resource_type);
            }
            Value::Array(resources(&record))
        })
        .collect();
    assert_golden("expected.json", &Value::Array(out));
}

#[test]
fn a_gp_can_tell_an_accepted_referral_from_a_turned_down_one() {
    let (_, record) = normalised().remove(0);
    let all = resources(&record);
    let request = |code: &str| {
        all.iter()
            .find(|r| r["resourceType"] == "ServiceRequest" && r["code"]["coding"][0]["code"] == code)
            .unwrap_or_else(|| panic!("a referral {code}"))
    };
    let task_for = |request: &Value| {
        let focus = format!("ServiceRequest/{}", request["id"].as_str().unwrap());
        all.iter().find(|r| r["resourceType"] == "Task" && r["focus"]["reference"] == focus.as_str()).unwrap()
    };
    let practice = all[0]["generalPractitioner"][0]["reference"].clone();
    let accepted = request(REFERRAL_TO_SOCIAL_WORKER.code);
    let task = task_for(accepted);
    assert_eq!(accepted["status"], "active");
    assert_eq!(task["status"], "accepted");
    assert_eq!(task["businessStatus"]["text"], "Accepted: awaiting Care Act assessment");
    assert!(task.get("statusReason").is_none());
    assert_eq!(task["requester"]["reference"], practice, "the GP practice made it");
    assert_eq!(task["for"]["reference"], "Patient/gw-golden-0");

    let turned_down = request(REFERRAL_TO_MEALS.code);
    let task = task_for(turned_down);
    assert_eq!(turned_down["status"], "revoked", "a closed referral is not shown as open");
    assert_eq!(task["status"], "rejected");
    assert_eq!(task["businessStatus"]["text"], "Closed: no eligible needs");
    assert_eq!(task["statusReason"]["text"], "Needs do not meet the national eligibility criteria");
    assert_eq!(task["requester"]["reference"], practice);

    let (_, sensitive) = normalised().remove(1);
    let drugs = resources(&sensitive).into_iter().find(|r| {
        r["resourceType"] == "ServiceRequest"
            && r["code"]["coding"][0]["code"] == REFERRAL_FOR_SUBSTANCE_MISUSE.code
    });
    assert!(drugs.is_some(), "the council's drug-service referral is rendered faithfully");
}
