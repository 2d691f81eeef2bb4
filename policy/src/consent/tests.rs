use proptest::prelude::*;
use serde_json::{Value, json};
use tideway_auth::{Principal, PurposeOfUse};
use tideway_profiles::{Coding, ResourceFacts, Section};

use super::*;
use crate::tests::person;
use crate::{Ask, Policy, Reason, Verdict};

const TODAY: Date = time::macros::date!(2026 - 06 - 01);

fn consent(provision: Value) -> Value {
    json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p123"},
        "provision": provision
    })
}

fn ods(code: &str) -> Value {
    json!({"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"identifier": {"system": ODS_SYSTEM, "value": code}}})
}

fn directive(provision: Value) -> Directive {
    read_consent(&consent(provision)).unwrap().directive.unwrap()
}

fn entry(ty: &str, code: &str, date: Option<&str>) -> ResourceFacts {
    ResourceFacts {
        resource_type: ty.into(),
        id: format!("{ty}-{code}"),
        section: Some(Section::of_type(ty)),
        codings: vec![Coding { system: "http://snomed.info/sct".into(), code: code.into() }],
        clinical_date: date.map(str::to_owned),
        source: Some("borough-00".into()),
        ..ResourceFacts::default()
    }
}

fn verdicts(who: &Principal, consents: &[Directive], record: &[ResourceFacts]) -> Vec<Verdict> {
    let policy = Policy::examples([]).unwrap();
    let refs: Vec<&ResourceFacts> = record.iter().collect();
    policy.decide(who, &Ask::everything(), TODAY, consents, &refs).verdicts().to_vec()
}

#[test]
fn bad_definitions_name_the_element() {
    let cases = [
        (consent(json!({"type": "maybe"})), "Consent.provision.type"),
        (consent(json!({"type": "deny", "securityLabel": []})), "Consent.provision.securityLabel"),
        (
            consent(
                json!({"type": "deny", "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"reference": "Organization/x"}}]}),
            ),
            "Consent.provision.actor[0].reference",
        ),
        (consent(json!({"type": "deny", "purpose": [{"code": "FUN"}]})), "Consent.provision.purpose[0]"),
        (consent(json!({"type": "deny", "class": [{"code": "Nonsense"}]})), "Consent.provision.class[0]"),
        (
            consent(json!({"type": "deny", "provision": [{"type": "permit", "data": []}]})),
            "Consent.provision.provision[0].data",
        ),
        (
            consent(json!({"type": "deny", "dataPeriod": {"start": "last year"}})),
            "Consent.provision.dataPeriod.start",
        ),
        (json!({"resourceType": "Consent", "status": "active"}), "Consent.scope"),
        (json!({"resourceType": "Consent", "status": "on", "scope": {}, "category": []}), "Consent.status"),
        (
            {
                let mut c = consent(json!({"type": "deny"}));
                c["patient"] = json!({"reference": "https://elsewhere/Patient/1"});
                c
            },
            "Consent.patient.reference",
        ),
        (
            {
                let mut c = consent(json!({"type": "deny"}));
                c["sourceAttachment"] = json!({});
                c
            },
            "Consent.sourceAttachment",
        ),
    ];
    for (c, element) in cases {
        let e = read_consent(&c).unwrap_err();
        assert_eq!(e.element, element, "{e}");
    }
    let inactive = read_consent(&{
        let mut c = consent(json!({"type": "deny"}));
        c["status"] = json!("inactive");
        c
    })
    .unwrap();
    assert_eq!(
        (inactive.status.as_str(), inactive.directive.is_none(), inactive.patient_id.as_str()),
        ("inactive", true, "p123")
    );
}

#[test]
fn an_explicit_dissent_withholds_everything_from_everyone_under_every_agreement() {
    let dissent = [directive(json!({"type": "deny"}))];
    let record = [entry("Patient", "0", None), entry("Condition", "195967001", None)];
    for who in [
        person("RJ122", "R8000", PurposeOfUse::Treat),
        person("YOOH1", "R8000", PurposeOfUse::EmergencyTreat),
    ] {
        assert!(
            verdicts(&who, &dissent, &record).iter().all(|v| *v == Verdict::Withhold(Reason::ConsentDenied))
        );
    }
}

#[test]
fn explicit_agreements_share_only_what_the_patient_permitted_and_deny_overrides_permit() {
    let social = person("YLA01", "R8003", PurposeOfUse::CareCoordination);
    let record = [entry("Patient", "0", None), entry("CarePlan", "734163000", None)];
    assert_eq!(verdicts(&social, &[], &record), [Verdict::Withhold(Reason::ConsentRequired); 2]);
    let agreed = directive(json!({"type": "permit", "actor": [ods("YLA01")]}));
    assert_eq!(verdicts(&social, std::slice::from_ref(&agreed), &record), [Verdict::Release; 2]);
    // Permission for hospitals does not reach social care.
    let hospitals = directive(json!({"type": "permit", "actor": [ods("RJ122")]}));
    assert_eq!(verdicts(&social, &[hospitals], &record), [Verdict::Withhold(Reason::ConsentRequired); 2]);
    // A later dissent in another directive wins over the permit.
    let dissent = directive(json!({"type": "deny"}));
    assert_eq!(verdicts(&social, &[agreed, dissent], &record), [Verdict::Withhold(Reason::ConsentDenied); 2]);
}

#[test]
fn partial_restrictions_by_organisation_purpose_type_code_and_time() {
    let doctor = person("RJ122", "R8000", PurposeOfUse::Treat);
    let ooh = person("YOOH1", "R8000", PurposeOfUse::Treat);
    let record = [
        entry("Condition", "35489007", Some("2019-05-01")),
        entry("Condition", "195967001", Some("2024-05-01")),
        entry("Observation", "27113001", Some("2024-05-01")),
    ];
    let no_depression_for_ooh = directive(json!({"type": "deny", "actor": [ods("YOOH1")],
        "code": [{"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]}]}));
    assert_eq!(
        verdicts(&ooh, std::slice::from_ref(&no_depression_for_ooh), &record)[0],
        Verdict::Withhold(Reason::ConsentDenied)
    );
    assert_eq!(verdicts(&doctor, &[no_depression_for_ooh], &record), [Verdict::Release; 3]);
    let no_observations = directive(
        json!({"type": "deny", "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}]}),
    );
    assert_eq!(verdicts(&doctor, &[no_observations], &record)[2], Verdict::Withhold(Reason::ConsentDenied));
    let nothing_before_2020 = directive(json!({"type": "deny", "dataPeriod": {"end": "2019-12-31"}}));
    assert_eq!(
        verdicts(&doctor, &[nothing_before_2020], &record),
        [Verdict::Withhold(Reason::ConsentDenied), Verdict::Release, Verdict::Release]
    );
    let expired = directive(json!({"type": "deny", "period": {"end": "2025-01-01"}}));
    assert_eq!(verdicts(&doctor, &[expired], &record), [Verdict::Release; 3]);
    let not_for_research = directive(
        json!({"type": "deny", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HOPERAT"}]}),
    );
    assert_eq!(verdicts(&doctor, &[not_for_research], &record), [Verdict::Release; 3]);
}

#[test]
fn a_nested_provision_is_an_exception_to_its_parent() {
    // Share with nobody except the out-of-hours service.
    let only_ooh =
        directive(json!({"type": "deny", "provision": [{"type": "permit", "actor": [ods("YOOH1")]}]}));
    let record = [entry("Condition", "195967001", None)];
    assert_eq!(
        verdicts(&person("YOOH1", "R8000", PurposeOfUse::Treat), std::slice::from_ref(&only_ooh), &record),
        [Verdict::Release]
    );
    assert_eq!(
        verdicts(&person("RJ122", "R8000", PurposeOfUse::Treat), &[only_ooh], &record),
        [Verdict::Withhold(Reason::ConsentDenied)]
    );
}

proptest! {
    #[test]
    fn nothing_leaves_past_a_dissent_whoever_asks(
        org in prop::sample::select(vec!["RJ122", "YOOH1", "YPOD1", "YMH01", "YLA01", "ZZZ99"]),
        purpose in prop::sample::select(vec![PurposeOfUse::Treat, PurposeOfUse::EmergencyTreat, PurposeOfUse::CareCoordination]),
        codes in prop::collection::vec(prop::sample::select(vec!["44054006", "35489007", "86406008", "195967001"]), 0..12),
        permits in prop::collection::vec(prop::sample::select(vec!["RJ122", "YOOH1", "YLA01"]), 0..3),
    ) {
        let who = person(org, "R8000", purpose);
        let record: Vec<ResourceFacts> = codes.iter().map(|c| entry("Condition", c, None)).collect();
        let mut consents: Vec<Directive> = permits.iter().map(|o| directive(json!({"type": "permit", "actor": [ods(o)]}))).collect();
        consents.push(directive(json!({"type": "deny"})));
        prop_assert!(verdicts(&who, &consents, &record).iter().all(|v| *v != Verdict::Release));
    }
}
