//! The region's example agreements, decided on hand-made and generated records.

use proptest::prelude::*;
use tideway_auth::{Principal, PurposeOfUse};
use tideway_profiles::{Coding, OdsCode, ResourceFacts, Section};

use super::{TODAY, person};
use crate::{Ask, Policy, Reason, Refusal, Verdict};

const SNOMED: &str = "http://snomed.info/sct";

fn podiatrist() -> Principal {
    person("YPOD1", "R8003", PurposeOfUse::Treat)
}

fn ooh_gp() -> Principal {
    person("YOOH1", "R8000", PurposeOfUse::Treat)
}

fn social_worker() -> Principal {
    person("YLA01", "R8003", PurposeOfUse::CareCoordination)
}

fn examples() -> Policy {
    Policy::examples([("borough-00".to_owned(), OdsCode::parse("LBX01").unwrap())]).unwrap()
}

fn entry(ty: &str, id: &str, codings: &[(&str, &str)], references: &[&str]) -> ResourceFacts {
    ResourceFacts {
        resource_type: ty.into(),
        id: id.into(),
        section: Some(Section::of_type(ty)),
        codings: codings.iter().map(|(s, c)| Coding { system: (*s).into(), code: (*c).into() }).collect(),
        references: references.iter().map(|r| (*r).to_owned()).collect(),
        source: Some("borough-00".into()),
        ..ResourceFacts::default()
    }
}

fn verdicts(policy: &Policy, who: &Principal, record: &[ResourceFacts]) -> Vec<Verdict> {
    let refs: Vec<&ResourceFacts> = record.iter().collect();
    policy.decide(who, &Ask::everything(), TODAY, &[], &refs).verdicts().to_vec()
}

#[test]
fn podiatry_sees_feet_diabetes_arthritis_and_circulation_and_nothing_else() {
    let record = [
        entry("Patient", "p", &[], &[]),
        entry("Condition", "dm-snomed", &[(SNOMED, "44054006")], &[]),
        entry("Condition", "dm-read", &[("http://read.info/readv2", "C10F.")], &[]),
        entry("Condition", "dm-ctv3", &[("http://read.info/ctv3", "X40J5")], &[]),
        entry("Condition", "ra", &[(SNOMED, "69896004")], &[]),
        entry("Procedure", "nail", &[(SNOMED, "400200009"), (SNOMED, "56459004")], &[]),
        entry("Observation", "hba1c", &[(SNOMED, "1107481000000106")], &[]),
        entry("MedicationRequest", "metformin", &[("https://dmd.nhs.uk", "325278000")], &[]),
        entry("Condition", "depression", &[(SNOMED, "35489007")], &[]),
        entry("MedicationRequest", "sertraline", &[("https://dmd.nhs.uk", "321968002")], &[]),
        entry("AllergyIntolerance", "penicillin", &[(SNOMED, "91936005")], &[]),
        entry("Encounter", "visit", &[(SNOMED, "185349003")], &[]),
        entry("Condition", "uncoded", &[], &[]),
    ];
    let release = Verdict::Release;
    let w = Verdict::Withhold;
    assert_eq!(
        verdicts(&examples(), &podiatrist(), &record),
        [
            release,
            release,
            release,
            release,
            release,
            release,
            release,
            release,
            w(Reason::NotIncluded),
            w(Reason::NotIncluded),
            w(Reason::Section),
            w(Reason::Section),
            w(Reason::Unclassified),
        ]
    );
}

#[test]
fn the_sensitive_set_is_withheld_with_everything_that_points_at_it() {
    let record = [
        entry("Condition", "hiv", &[(SNOMED, "86406008")], &[]),
        entry("MedicationRequest", "arv", &[], &["Condition/hiv"]),
        entry("Observation", "viral-load", &[], &["MedicationRequest/arv"]),
        entry("Encounter", "gum-clinic", &[(SNOMED, "185347001")], &[]),
        entry("Condition", "top", &[(SNOMED, "386394001")], &["Encounter/gum-clinic"]),
        entry("Condition", "asthma", &[(SNOMED, "195967001")], &["Encounter/gum-clinic"]),
        // The CTV3 code of an HIV entry on an older record counts the same.
        entry("Condition", "hiv-ctv3", &[("http://read.info/ctv3", "43C3.")], &[]),
    ];
    let v = verdicts(&examples(), &ooh_gp(), &record);
    assert_eq!(
        v,
        [
            Verdict::Withhold(Reason::Sensitive),
            Verdict::Withhold(Reason::Linked),
            Verdict::Withhold(Reason::Linked),
            Verdict::Release,
            Verdict::Withhold(Reason::Sensitive),
            Verdict::Release,
            Verdict::Withhold(Reason::Sensitive),
        ]
    );
}

#[test]
fn social_care_gets_nothing_until_consent_is_recorded_and_never_drug_referrals() {
    let record = [
        entry("Patient", "p", &[], &[]),
        entry("CarePlan", "plan", &[(SNOMED, "734163000")], &[]),
        entry("ServiceRequest", "drugs", &[(SNOMED, "1048221000000107")], &[]),
    ];
    let v = verdicts(&examples(), &social_worker(), &record);
    assert!(v.iter().all(|v| *v == Verdict::Withhold(Reason::ConsentRequired)), "{v:?}");
}

/// The region's social-care agreement with its consent model and sections changed as a test
/// needs.
fn social_care_agreement(sections: &str) -> Policy {
    let text = include_str!("../../agreements/social-care.toml")
        .replace("consent_model = \"explicit\"", "consent_model = \"implied-direct-care\"")
        .replace("sections = [\"care-plans\", \"referrals\"]", &format!("sections = {sections}"));
    assert!(text.contains(sections), "the example's sections line moved");
    Policy::new([("social-care.toml", text.as_str())], crate::Terminology::embedded().unwrap(), []).unwrap()
}

#[test]
fn an_agreement_names_a_councils_own_record_as_the_social_care_section_apart_from_nhs_referrals() {
    let council = |mut f: ResourceFacts| {
        f.section = Some(Section::SocialCare);
        f
    };
    let record = [
        entry("Patient", "p", &[], &[]),
        council(entry("CarePlan", "plan", &[(SNOMED, "734163000")], &[])),
        council(entry("ServiceRequest", "meals", &[(SNOMED, "713109004")], &[])),
        council(entry("Task", "meals-task", &[], &["ServiceRequest/meals"])),
        council(entry("ServiceRequest", "drugs", &[(SNOMED, "1048221000000107")], &[])),
        council(entry("Task", "drugs-task", &[], &["ServiceRequest/drugs"])),
        entry("ServiceRequest", "gp-referral", &[(SNOMED, "3457005")], &[]),
    ];
    let release = Verdict::Release;
    let named = social_care_agreement("[\"social-care\"]");
    assert_eq!(
        verdicts(&named, &social_worker(), &record),
        [
            release,
            release,
            release,
            release,
            Verdict::Withhold(Reason::Excluded),
            Verdict::Withhold(Reason::Linked),
            Verdict::Withhold(Reason::Section),
        ]
    );
    let nhs_only = social_care_agreement("[\"care-plans\", \"referrals\"]");
    let v = verdicts(&nhs_only, &social_worker(), &record);
    assert_eq!(v[0], release);
    assert!(v[1..6].iter().all(|v| *v == Verdict::Withhold(Reason::Section)), "{v:?}");
    assert_eq!(v[6], release);
}

#[test]
fn a_role_purpose_or_organisation_no_agreement_grants_is_refused_before_anything_is_fetched() {
    let policy = examples();
    assert_eq!(policy.admit(&ooh_gp(), TODAY), Ok(()));
    for who in [person("YOOH1", "R9999", PurposeOfUse::Treat), person("ZZZ99", "R8000", PurposeOfUse::Treat)]
    {
        assert_eq!(policy.admit(&who, TODAY), Err(Refusal::NoAgreement));
        let p = entry("Patient", "p", &[], &[]);
        assert_eq!(verdicts(&policy, &who, &[p]), [Verdict::Withhold(Reason::NoAgreement)]);
    }
    // Before an agreement starts, it grants nothing.
    assert_eq!(policy.admit(&ooh_gp(), time::macros::date!(2025 - 06 - 01)), Err(Refusal::NoAgreement));
}

#[test]
fn a_secondary_purpose_never_reads_a_record_and_is_admitted_to_population_data_only_through_its_agreement() {
    let policy = examples();
    let analyst = person("YLDN1", "R8010", PurposeOfUse::Operations);
    // Even the commissioning agreement's own analysts never read a patient's record.
    assert_eq!(policy.admit(&analyst, TODAY), Err(Refusal::SecondaryUse));
    assert_eq!(
        policy.admit(&person("YOOH1", "R8000", PurposeOfUse::Research), TODAY),
        Err(Refusal::SecondaryUse)
    );
    assert_eq!(policy.admit_secondary(&analyst, TODAY), Ok(()));
    for purpose in [PurposeOfUse::Research, PurposeOfUse::PublicHealth] {
        assert_eq!(policy.admit_secondary(&person("YLDN1", "R8010", purpose), TODAY), Ok(()));
    }
    // Another organisation, or a direct-care purpose, is not admitted to population data.
    assert_eq!(
        policy.admit_secondary(&person("YOOH1", "R8010", PurposeOfUse::Operations), TODAY),
        Err(Refusal::NoAgreement)
    );
    assert_eq!(policy.admit_secondary(&ooh_gp(), TODAY), Err(Refusal::NotSecondaryUse));
}

#[test]
fn an_agreement_mixing_direct_care_and_secondary_purposes_is_refused_at_load() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/agreements/commissioning.toml"))
        .unwrap_or_default();
    assert!(!text.is_empty());
    let terminology = crate::Terminology::embedded().unwrap();
    let mixed =
        text.replace(r#"purposes = ["HOPERAT", "HRESCH", "PUBHLTH"]"#, r#"purposes = ["HOPERAT", "TREAT"]"#);
    let e = crate::agreement::parse_agreement("mixed.toml", &mixed, &terminology).unwrap_err();
    assert!(e.to_string().contains("direct care or for secondary use"), "{e}");
    let implied = text.replace("national-data-opt-out", "implied-direct-care");
    let e = crate::agreement::parse_agreement("implied.toml", &implied, &terminology).unwrap_err();
    assert!(e.to_string().contains("consent model of secondary use"), "{e}");
    let required = text.replace(r#"relationship = "granted""#, r#"relationship = "required""#);
    let e = crate::agreement::parse_agreement("required.toml", &required, &terminology).unwrap_err();
    assert!(e.to_string().contains("secondary-use agreement"), "{e}");
}

#[test]
fn an_agreement_shares_only_its_controllers_data_and_the_highest_version_applies() {
    let v1 = super::OPEN.replace("controllers = [\"*\"]", "controllers = [\"LBX01\"]");
    let v2 = v1.replace("version = 1", "version = 2").replace("\"R8000\"", "\"R8001\"");
    let sources = [
        ("borough-00".to_owned(), OdsCode::parse("LBX01").unwrap()),
        ("borough-01".to_owned(), OdsCode::parse("LBX02").unwrap()),
    ];
    let only_v1 =
        Policy::new([("a.toml", v1.as_str())], crate::Terminology::embedded().unwrap(), sources.clone())
            .unwrap();
    let mut elsewhere = entry("Condition", "c2", &[(SNOMED, "195967001")], &[]);
    elsewhere.source = Some("borough-01".into());
    let record = [entry("Condition", "c1", &[(SNOMED, "195967001")], &[]), elsewhere];
    let nurse = person("RJ122", "R8001", PurposeOfUse::Treat);
    let doctor = person("RJ122", "R8000", PurposeOfUse::Treat);
    assert_eq!(
        verdicts(&only_v1, &doctor, &record),
        [Verdict::Release, Verdict::Withhold(Reason::Controller)]
    );
    let both = Policy::new(
        [("b.toml", v2.as_str()), ("a.toml", v1.as_str())],
        crate::Terminology::embedded().unwrap(),
        sources,
    )
    .unwrap();
    assert_eq!(both.agreements()[0].version, 2);
    assert_eq!(both.admit(&doctor, TODAY), Err(Refusal::NoAgreement));
    assert_eq!(both.admit(&nurse, TODAY), Ok(()));
    let dup = Policy::new(
        [("a.toml", v1.as_str()), ("c.toml", v1.as_str())],
        crate::Terminology::embedded().unwrap(),
        [],
    );
    assert!(dup.unwrap_err().to_string().contains("open@1"));
}

#[test]
fn the_withheld_detail_names_rule_agreement_section_and_source() {
    let policy = examples();
    let record = [
        entry("Condition", "hiv", &[(SNOMED, "86406008")], &[]),
        entry("AllergyIntolerance", "a", &[(SNOMED, "91936005")], &[]),
    ];
    let refs: Vec<&ResourceFacts> = record.iter().collect();
    let d = policy.decide(&podiatrist(), &Ask::everything(), TODAY, &[], &refs);
    assert_eq!(d.agreements(), ["podiatry@1"]);
    let detail = serde_json_like(&d.withheld_detail(&refs));
    assert_eq!(
        detail,
        ["section podiatry@1 allergies borough-00 1", "sensitive podiatry@1 problems borough-00 1"]
    );
}

fn serde_json_like(counts: &[crate::WithheldCount]) -> Vec<String> {
    counts
        .iter()
        .map(|c| {
            format!(
                "{} {} {:?} {} {}",
                c.reason,
                c.agreement.as_deref().unwrap_or("-"),
                c.section,
                c.source.as_deref().unwrap_or("-"),
                c.count
            )
            .replace("Allergies", "allergies")
            .replace("Problems", "problems")
        })
        .collect()
}

/// Codings drawn from sensitive, included, excluded and unrelated sets, in several systems.
pub(super) const POOL: [(&str, &str); 10] = [
    (SNOMED, "86406008"),                 // HIV (sensitive)
    ("http://read.info/ctv3", "43C3."),   // HIV positive, CTV3 (sensitive)
    (SNOMED, "386394001"),                // termination care (sensitive)
    (SNOMED, "44054006"),                 // type 2 diabetes
    ("http://read.info/readv2", "N040."), // rheumatoid arthritis, Read v2
    (SNOMED, "35489007"),                 // depression
    (SNOMED, "1048221000000107"),         // substance-misuse referral
    (SNOMED, "56459004"),                 // foot (body site)
    (SNOMED, "91936005"),                 // penicillin allergy
    (SNOMED, "185349003"),                // check-up encounter
];
const TYPES: [&str; 8] = [
    "Patient",
    "Condition",
    "Observation",
    "MedicationRequest",
    "Encounter",
    "ServiceRequest",
    "CarePlan",
    "AllergyIntolerance",
];

fn arb_record() -> impl Strategy<Value = Vec<ResourceFacts>> {
    prop::collection::vec(
        (0..TYPES.len(), prop::collection::vec(0..POOL.len(), 0..3), prop::collection::vec(0..12usize, 0..3)),
        0..12,
    )
    .prop_map(|items| {
        items
            .iter()
            .enumerate()
            .map(|(i, (t, codes, refs))| {
                let codings: Vec<(&str, &str)> = codes.iter().map(|c| POOL[*c]).collect();
                let references: Vec<String> = refs
                    .iter()
                    .filter(|r| **r < items.len())
                    .map(|r| format!("{}/r{r}", TYPES[items[*r].0]))
                    .collect();
                let references: Vec<&str> = references.iter().map(String::as_str).collect();
                let mut e = entry(TYPES[*t], &format!("r{i}"), &codings, &references);
                e.references.sort();
                e.references.dedup();
                e
            })
            .collect()
    })
}

fn arb_person() -> impl Strategy<Value = Principal> {
    prop_oneof![
        Just(podiatrist()),
        Just(ooh_gp()),
        Just(social_worker()),
        Just(person("YMH01", "R8001", PurposeOfUse::Treat)),
        Just(person("RJ122", "R8000", PurposeOfUse::Treat)),
        Just(person("YOOH1", "R9999", PurposeOfUse::Treat)),
    ]
}

proptest! {
    #[test]
    fn nothing_the_agreements_withhold_escapes(who in arb_person(), record in arb_record()) {
        let policy = examples();
        let t = policy.terminology();
        let refs: Vec<&ResourceFacts> = record.iter().collect();
        let d = policy.decide(&who, &Ask::everything(), TODAY, &[], &refs);
        let granting: Vec<_> = policy.agreements().iter().filter(|a| a.organisations.contains(&who.organisation) && a.roles.contains(who.role.as_str()) && a.purposes.contains(&who.purpose)).collect();
        let hidden: Vec<String> = record.iter().zip(d.verdicts()).filter(|(_, v)| matches!(v, Verdict::Withhold(Reason::Sensitive | Reason::Excluded | Reason::Linked))).map(|(f, _)| format!("{}/{}", f.resource_type, f.id)).collect();
        for f in d.released(&refs) {
            let mask = t.classify(f);
            // Some agreement granting the requester shares this resource's sensitive sets...
            prop_assert!(granting.iter().any(|a| mask & t.sensitive() & !a.sensitive == 0 && mask & a.exclude == 0));
            // ...and nothing released points at a resource withheld for its content.
            prop_assert!(!f.references.iter().any(|r| hidden.contains(r)));
        }
        if who.organisation.as_str() == "YPOD1" {
            let include = policy.agreements().iter().find(|a| a.id == "podiatry").unwrap().include;
            for f in d.released(&refs) {
                let clinical = !matches!(f.section, Some(Section::Demographics | Section::Administrative));
                prop_assert!(!clinical || t.classify(f) & include != 0, "{:?}", f);
            }
        }
    }

    #[test]
    fn deciding_again_over_what_agreements_released_releases_all_of_it(who in arb_person(), record in arb_record()) {
        let policy = examples();
        let refs: Vec<&ResourceFacts> = record.iter().collect();
        let first = policy.decide(&who, &Ask::everything(), TODAY, &[], &refs);
        let released: Vec<&ResourceFacts> = first.released(&refs).copied().collect();
        let again = policy.decide(&who, &Ask::everything(), TODAY, &[], &released);
        prop_assert!(again.verdicts().iter().all(|v| *v == Verdict::Release));
    }

    #[test]
    fn agreement_verdicts_do_not_depend_on_source_order(who in arb_person(), record in arb_record()) {
        let policy = examples();
        let refs: Vec<&ResourceFacts> = record.iter().collect();
        let reversed: Vec<&ResourceFacts> = refs.iter().rev().copied().collect();
        let a = policy.decide(&who, &Ask::everything(), TODAY, &[], &refs);
        let b = policy.decide(&who, &Ask::everything(), TODAY, &[], &reversed);
        let n = refs.len();
        for i in 0..n {
            prop_assert_eq!(a.verdicts()[i], b.verdicts()[n - 1 - i]);
        }
    }
}
