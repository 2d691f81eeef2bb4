//! Legitimate relationship: how the requester stands to the patient, shown from the record's
//! facts and the patient's consent, and how that standing gates the agreements that apply.

use serde_json::{Value, json};
use tideway_auth::{Principal, PurposeOfUse};
use tideway_profiles::ResourceFacts;

use super::{TODAY, person};
use crate::{Ask, Directive, Policy, Reason, Standing, Terminology, Verdict, read_consent};

const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

fn ods(code: &str) -> Value {
    json!({"identifier": {"system": ODS, "value": code}})
}

fn patient(gp: Value) -> ResourceFacts {
    ResourceFacts::of(&json!({"resourceType": "Patient", "id": "p", "generalPractitioner": [gp]}))
}

fn encounter(status: &str, provider: Value) -> ResourceFacts {
    ResourceFacts::of(&json!({"resourceType": "Encounter", "id": "e", "status": status,
        "subject": {"reference": "Patient/p"}, "serviceProvider": provider}))
}

fn referral(status: &str, to: Value) -> ResourceFacts {
    ResourceFacts::of(&json!({"resourceType": "ServiceRequest", "id": "s", "status": status,
        "subject": {"reference": "Patient/p"}, "performer": [to]}))
}

fn organization(id: &str, code: &str) -> ResourceFacts {
    ResourceFacts::of(&json!({"resourceType": "Organization", "id": id,
        "identifier": [{"system": ODS, "value": code}]}))
}

fn diabetes() -> ResourceFacts {
    ResourceFacts::of(&json!({"resourceType": "Condition", "id": "dm", "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}}))
}

fn directive(provision: Value) -> Directive {
    let consent = json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p"},
        "provision": provision
    });
    read_consent(&consent).unwrap().directive.unwrap()
}

fn permitting(code: &str) -> Directive {
    directive(json!({"type": "permit", "actor": [{
        "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
        "reference": {"identifier": {"system": ODS, "value": code}}}]}))
}

fn standing(
    policy: &Policy,
    who: &Principal,
    directives: &[Directive],
    record: &[ResourceFacts],
) -> Option<Standing> {
    let refs: Vec<&ResourceFacts> = record.iter().collect();
    policy.standing(who, TODAY, directives, &refs)
}

fn ooh(purpose: PurposeOfUse) -> Principal {
    person("YOOH1", "R8000", purpose)
}

#[test]
fn standing_ranks_registered_practice_over_care_over_consent_over_agreement_over_break_glass() {
    let policy = Policy::examples([]).unwrap();
    let glass = ooh(PurposeOfUse::EmergencyTreat);
    let consented = [permitting("YOOH1")];
    let mut record = vec![patient(ods("YOOH1")), encounter("in-progress", ods("YOOH1")), diabetes()];
    assert_eq!(standing(&policy, &glass, &consented, &record), Some(Standing::RegisteredPractice));
    record.remove(0);
    assert_eq!(standing(&policy, &glass, &consented, &record), Some(Standing::Care));
    record.remove(0);
    assert_eq!(standing(&policy, &glass, &consented, &record), Some(Standing::Consent));
    assert_eq!(standing(&policy, &glass, &[], &record), Some(Standing::BreakGlass));
    // Without breaking the glass, nothing is left.
    assert_eq!(standing(&policy, &ooh(PurposeOfUse::Treat), &[], &record), None);
    // A consent naming someone else is no relationship.
    assert_eq!(standing(&policy, &ooh(PurposeOfUse::Treat), &[permitting("YPOD1")], &record), None);

    // A hospital the direct-care agreement grants the relationship to: its own shown one still
    // ranks first, the agreement's comes before break-glass.
    let hospital = person("RJ122", "R8000", PurposeOfUse::EmergencyTreat);
    assert_eq!(standing(&policy, &hospital, &[], &record), Some(Standing::Agreement));
    assert!(policy.grants_relationship(&hospital, TODAY));
    let treated = [encounter("arrived", ods("RJ122")), diabetes()];
    assert_eq!(standing(&policy, &hospital, &[], &treated), Some(Standing::Care));
    let registered = [patient(ods("RJ122")), encounter("arrived", ods("RJ122"))];
    assert_eq!(
        standing(&policy, &hospital, &[permitting("RJ122")], &registered),
        Some(Standing::RegisteredPractice)
    );
    assert!(!policy.grants_relationship(&ooh(PurposeOfUse::Treat), TODAY));
}

#[test]
fn a_finished_encounter_or_a_completed_referral_is_no_relationship() {
    let policy = Policy::examples([]).unwrap();
    let podiatrist = person("YPOD1", "R8003", PurposeOfUse::Treat);
    for status in ["finished", "cancelled", "entered-in-error"] {
        let record = [encounter(status, ods("YOOH1")), diabetes()];
        assert_eq!(standing(&policy, &ooh(PurposeOfUse::Treat), &[], &record), None, "{status}");
    }
    for status in ["completed", "revoked", "draft", "on-hold"] {
        let record = [referral(status, ods("YPOD1")), diabetes()];
        assert_eq!(standing(&policy, &podiatrist, &[], &record), None, "{status}");
    }
    let open = [referral("active", ods("YPOD1")), diabetes()];
    assert_eq!(standing(&policy, &podiatrist, &[], &open), Some(Standing::Care));
    // A referral to another service is not one to podiatry.
    let elsewhere = [referral("active", ods("YMH01")), diabetes()];
    assert_eq!(standing(&policy, &podiatrist, &[], &elsewhere), None);
}

#[test]
fn an_organization_reference_is_resolved_to_its_ods_code_through_the_records_organizations() {
    let policy = Policy::examples([]).unwrap();
    let who = ooh(PurposeOfUse::Treat);
    let by_reference = json!({"reference": "Organization/o1"});
    let registered = [patient(by_reference.clone()), organization("o1", "YOOH1")];
    assert_eq!(standing(&policy, &who, &[], &registered), Some(Standing::RegisteredPractice));
    let open = [encounter("in-progress", by_reference.clone()), organization("o1", "YOOH1")];
    assert_eq!(standing(&policy, &who, &[], &open), Some(Standing::Care));
    // Unresolved, or resolved to someone else, it names no one.
    assert_eq!(standing(&policy, &who, &[], &[patient(by_reference.clone())]), None);
    let other = [patient(by_reference.clone()), organization("o1", "F80001"), organization("o2", "YOOH1")];
    assert_eq!(standing(&policy, &who, &[], &other), None);
}

#[test]
fn an_agreement_requiring_a_relationship_does_not_apply_under_the_agreement_standing() {
    let policy = Policy::examples([]).unwrap();
    let podiatrist = person("YPOD1", "R8003", PurposeOfUse::Treat);
    let record = [patient(ods("F80001")), diabetes()];
    let refs: Vec<&ResourceFacts> = record.iter().collect();
    let decide = |s: Standing| {
        policy.decide(&podiatrist, &Ask::everything().standing_as(s), TODAY, &[], &refs).verdicts().to_vec()
    };
    assert_eq!(decide(Standing::Agreement), [Verdict::Withhold(Reason::NoAgreement); 2]);
    for shown in [Standing::RegisteredPractice, Standing::Care, Standing::Consent, Standing::BreakGlass] {
        assert_eq!(decide(shown), [Verdict::Release; 2], "{shown:?}");
    }
    // An agreement that grants the relationship applies under it.
    let hospital = person("RJ122", "R8000", PurposeOfUse::Treat);
    let d = policy.decide(&hospital, &Ask::everything().standing_as(Standing::Agreement), TODAY, &[], &refs);
    assert_eq!(d.verdicts(), [Verdict::Release; 2]);
}

/// Emergency out-of-hours access under explicit consent, requiring a relationship.
const EXPLICIT_ETREAT: &str = r#"
id = "explicit-emergency"
version = 1
title = "Emergency access under explicit consent, for tests"
consent_model = "explicit"
start = 2026-01-01
objection = "-"
controllers = ["*"]
[recipients]
organisations = ["YOOH1"]
roles = ["R8000"]
purposes = ["TREAT", "ETREAT"]
relationship = "required"
[record]
sections = ["*"]
"#;

#[test]
fn break_glass_stands_in_for_a_missing_explicit_consent_but_a_deny_stays_a_deny() {
    let policy =
        Policy::new([("explicit.toml", EXPLICIT_ETREAT)], Terminology::embedded().unwrap(), []).unwrap();
    let record = [patient(ods("F80001")), diabetes()];
    let refs: Vec<&ResourceFacts> = record.iter().collect();
    let decide = |who: &Principal, s: Standing, directives: &[Directive]| {
        policy.decide(who, &Ask::everything().standing_as(s), TODAY, directives, &refs).verdicts().to_vec()
    };
    let glass = ooh(PurposeOfUse::EmergencyTreat);
    assert_eq!(standing(&policy, &glass, &[], &record), Some(Standing::BreakGlass));
    assert_eq!(
        decide(&glass, Standing::BreakGlass, &[]),
        [Verdict::Release; 2],
        "silent consent: break-glass shares"
    );
    // Without breaking the glass, the missing consent withholds, even with a relationship.
    assert_eq!(
        decide(&ooh(PurposeOfUse::Treat), Standing::Care, &[]),
        [Verdict::Withhold(Reason::ConsentRequired); 2]
    );
    // A refusal is never overridden: a full dissent, or a deny naming the service.
    let dissent = directive(json!({"type": "deny"}));
    assert_eq!(
        decide(&glass, Standing::BreakGlass, &[dissent]),
        [Verdict::Withhold(Reason::ConsentDenied); 2]
    );
    let denied_to_ooh = directive(json!({"type": "deny", "actor": [{
        "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
        "reference": {"identifier": {"system": ODS, "value": "YOOH1"}}}]}));
    assert_eq!(
        decide(&glass, Standing::BreakGlass, &[denied_to_ooh]),
        [Verdict::Withhold(Reason::ConsentDenied); 2]
    );
    // A permit is a permit, with or without the glass.
    assert_eq!(decide(&glass, Standing::BreakGlass, &[permitting("YOOH1")]), [Verdict::Release; 2]);
}

/// A permit for part of the record, or for another purpose, is not a relationship: it would
/// open the rest of the record under an implied-consent agreement.
#[test]
fn only_a_whole_record_permit_for_the_requesters_purpose_names_a_relationship() {
    let policy = Policy::examples([]).unwrap();
    let who = ooh(PurposeOfUse::Treat);
    let actor = json!([{
        "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
        "reference": {"identifier": {"system": ODS, "value": "YOOH1"}}}]);
    assert_eq!(standing(&policy, &who, &[permitting("YOOH1")], &[]), Some(Standing::Consent));
    for narrowed in [
        json!({"type": "permit", "actor": actor, "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Immunization"}]}),
        json!({"type": "permit", "actor": actor, "code": [{"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}]}),
        json!({"type": "permit", "actor": actor, "dataPeriod": {"start": "2020-01-01"}}),
        json!({"type": "permit", "actor": actor, "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "COC"}]}),
    ] {
        let d = directive(narrowed.clone());
        assert_ne!(standing(&policy, &who, &[d], &[]), Some(Standing::Consent), "{narrowed}");
    }
}

/// The registered practice is read from the Patient only (an encounter's provider is not one),
/// by ODS identifier or through an Organization of the record, and a reference the record
/// cannot resolve names none.
#[test]
fn registered_practices_are_the_patients_general_practitioners_by_ods_code() {
    let record = [
        patient(ods("F80005")),
        patient(json!({"reference": "Organization/b.org1"})),
        patient(json!({"reference": "Organization/b.unknown"})),
        organization("b.org1", "Y00001"),
        encounter("in-progress", ods("YOOH1")),
    ];
    let refs: Vec<&ResourceFacts> = record.iter().collect();
    assert_eq!(crate::registered_practices(&refs), ["F80005", "Y00001"]);
    assert!(crate::registered_practices(&[&encounter("in-progress", ods("YOOH1"))]).is_empty());
}
