//! Property tests over generated agreements, consents, standings and records: whatever the
//! agreements and consents say, nothing leaves that they do not allow, and the decision is
//! idempotent and independent of the order resources come in.
//!
//! The oracle below restates the rules of `docs/agreements.md` per resource, independently of
//! how `decide` is organised (it never looks at the decision's reasons), and checks every
//! released resource against them.

use proptest::prelude::*;
use serde_json::json;
use tideway_auth::{Principal, PurposeOfUse};
use tideway_profiles::{Coding, OdsCode, ResourceFacts, Section};

use super::agreements::POOL as CODES;
use super::{TODAY, person};
use crate::consent::{ConsentVerdict, consent_verdict};
use crate::terminology::Terminology;
use crate::{Agreement, Ask, ConsentModel, Directive, Policy, Standing, Verdict, read_consent};

const SECTIONS: [&str; 6] =
    ["problems", "medications", "investigations", "consultations", "referrals", "care-plans"];
const CLINICAL_SETS: [&str; 5] =
    ["diabetes", "feet-and-legs", "mental-health", "substance-misuse", "arthritis"];
const SENSITIVE_SETS: [&str; 3] = ["hiv", "termination-of-pregnancy", "sexually-transmitted-infection"];
const ORGS: [&str; 3] = ["YPOD1", "YLA01", "RJ122"];
const SOURCES: [(&str, &str); 2] = [("s1", "LBX01"), ("s2", "LBX02")];
const TYPES: [&str; 7] = [
    "Patient",
    "Condition",
    "Observation",
    "MedicationRequest",
    "Encounter",
    "ServiceRequest",
    "Organization",
];

/// One generated agreement, as the TOML an IG lead would write.
#[derive(Debug, Clone)]
struct Drawn {
    orgs: Vec<usize>,
    explicit: bool,
    granted: bool,
    one_controller: bool,
    sections: Option<Vec<usize>>,
    include: Vec<usize>,
    exclude: Vec<usize>,
    sensitive: Vec<usize>,
}

impl Drawn {
    fn toml(&self, n: usize) -> String {
        let list = |items: Vec<&str>| items.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
        let sections = match &self.sections {
            None => "\"*\"".to_owned(),
            Some(s) => list(s.iter().map(|i| SECTIONS[*i]).collect()),
        };
        format!(
            "id = \"gen-{n}\"\nversion = 1\ntitle = \"generated\"\nconsent_model = \"{}\"\nstart = 2026-01-01\n\
             objection = \"ask\"\ncontrollers = [{}]\n[recipients]\norganisations = [{}]\nroles = [\"R8000\"]\n\
             purposes = [\"TREAT\", \"ETREAT\"]\nrelationship = \"{}\"\n[record]\nsections = [{sections}]\n\
             include = [{}]\nexclude = [{}]\nsensitive = [{}]\n",
            if self.explicit { "explicit" } else { "implied-direct-care" },
            if self.one_controller { "\"LBX01\"".to_owned() } else { "\"*\"".to_owned() },
            list(self.orgs.iter().map(|i| ORGS[*i]).collect()),
            if self.granted { "granted" } else { "required" },
            list(self.include.iter().map(|i| CLINICAL_SETS[*i]).collect()),
            list(self.exclude.iter().map(|i| CLINICAL_SETS[*i]).collect()),
            list(self.sensitive.iter().map(|i| SENSITIVE_SETS[*i]).collect()),
        )
    }
}

fn arb_agreement() -> impl Strategy<Value = Drawn> {
    let some =
        |n: usize| prop::collection::btree_set(0..n, 0..3).prop_map(|s| s.into_iter().collect::<Vec<_>>());
    (
        prop::collection::btree_set(0..ORGS.len(), 1..3),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(prop::collection::btree_set(0..SECTIONS.len(), 1..4)),
        some(CLINICAL_SETS.len()),
        some(CLINICAL_SETS.len()),
        some(SENSITIVE_SETS.len()),
    )
        .prop_map(|(orgs, explicit, granted, one_controller, sections, include, exclude, sensitive)| {
            Drawn {
                orgs: orgs.into_iter().collect(),
                explicit,
                granted,
                one_controller,
                sections: sections.map(|s| s.into_iter().collect()),
                include,
                exclude,
                sensitive,
            }
        })
}

/// One consent provision: deny or permit, narrowed by class, code and actor.
fn arb_consent() -> impl Strategy<Value = Directive> {
    (
        any::<bool>(),
        prop::option::of(0..TYPES.len()),
        prop::option::of(0..CODES.len()),
        prop::option::of(0..ORGS.len()),
    )
        .prop_map(|(deny, class, code, actor)| {
            let mut provision = json!({"type": if deny { "deny" } else { "permit" }});
            if let Some(c) = class {
                provision["class"] = json!([{"system": "http://hl7.org/fhir/resource-types", "code": TYPES[c]}]);
            }
            if let Some(c) = code {
                provision["code"] = json!([{"coding": [{"system": CODES[c].0, "code": CODES[c].1}]}]);
            }
            if let Some(a) = actor {
                provision["actor"] = json!([{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                    "reference": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ORGS[a]}}}]);
            }
            let consent = json!({
                "resourceType": "Consent", "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                "patient": {"reference": "Patient/p"},
                "provision": provision
            });
            read_consent(&consent).expect("a generated consent reads").directive.expect("active")
        })
}

fn arb_record() -> impl Strategy<Value = Vec<ResourceFacts>> {
    prop::collection::vec(
        (
            0..TYPES.len(),
            prop::collection::vec(0..CODES.len(), 0..3),
            prop::collection::vec(0..10usize, 0..3),
            0..2usize,
        ),
        0..10,
    )
    .prop_map(|items| {
        items
            .iter()
            .enumerate()
            .map(|(i, (t, codes, refs, source))| {
                let mut references: Vec<String> = refs
                    .iter()
                    .filter(|r| **r < items.len() && **r != i)
                    .map(|r| format!("{}/r{r}", TYPES[items[*r].0]))
                    .collect();
                references.sort();
                references.dedup();
                ResourceFacts {
                    resource_type: TYPES[*t].into(),
                    id: format!("r{i}"),
                    section: Some(Section::of_type(TYPES[*t])),
                    codings: codes
                        .iter()
                        .map(|c| Coding { system: CODES[*c].0.into(), code: CODES[*c].1.into() })
                        .collect(),
                    references,
                    source: Some(SOURCES[*source].0.into()),
                    ..ResourceFacts::default()
                }
            })
            .collect()
    })
}

fn arb_standing() -> impl Strategy<Value = Standing> {
    prop_oneof![
        Just(Standing::Care),
        Just(Standing::Consent),
        Just(Standing::Agreement),
        Just(Standing::BreakGlass)
    ]
}

fn arb_case() -> impl Strategy<Value = (Vec<Drawn>, Vec<Directive>, Standing, usize, Vec<ResourceFacts>)> {
    (
        prop::collection::vec(arb_agreement(), 1..4),
        prop::collection::vec(arb_consent(), 0..3),
        arb_standing(),
        0..ORGS.len(),
        arb_record(),
    )
}

fn policy_of(drawn: &[Drawn]) -> Policy {
    let texts: Vec<(String, String)> =
        drawn.iter().enumerate().map(|(n, d)| (format!("gen-{n}.toml"), d.toml(n))).collect();
    Policy::new(
        texts.iter().map(|(f, t)| (f.as_str(), t.as_str())),
        Terminology::embedded().unwrap(),
        SOURCES.iter().map(|(s, o)| ((*s).to_owned(), OdsCode::parse(o).unwrap())),
    )
    .expect("a generated agreement loads")
}

fn requester(org: usize, standing: Standing) -> Principal {
    let purpose =
        if standing == Standing::BreakGlass { PurposeOfUse::EmergencyTreat } else { PurposeOfUse::Treat };
    person(ORGS[org], "R8000", purpose)
}

/// The oracle: may `a` share `f` with a requester of this standing, under this consent verdict?
fn allows(
    policy: &Policy,
    a: &Agreement,
    f: &ResourceFacts,
    standing: Standing,
    consent: ConsentVerdict,
) -> bool {
    let t = policy.terminology();
    let mask = t.classify(f);
    let section = f.section.unwrap_or(Section::Unclassified);
    let context = matches!(section, Section::Demographics | Section::Administrative);
    let controller_ok = match &a.controllers {
        crate::agreement::Controllers::Every => true,
        crate::agreement::Controllers::Only(parties) => {
            let ods = SOURCES.iter().find(|(s, _)| Some(*s) == f.source.as_deref()).map(|(_, o)| *o);
            ods.is_some_and(|o| parties.iter().any(|p| p.as_str() == o))
        }
    };
    let relationship_ok =
        a.relationship == crate::agreement::RelationshipRule::Granted || standing != Standing::Agreement;
    let consent_ok = a.consent_model != ConsentModel::Explicit
        || consent == ConsentVerdict::Permitted
        || (standing == Standing::BreakGlass && consent == ConsentVerdict::Silent);
    let section_ok = context
        || match &a.sections {
            crate::agreement::Sections::Every => true,
            crate::agreement::Sections::Only(s) => s.contains(&section),
        };
    let sensitive_ok = mask & t.sensitive() & !a.sensitive == 0;
    let exclude_ok = mask & a.exclude == 0;
    let include_ok = a.include == 0 || context || (!f.codings.is_empty() && mask & a.include != 0);
    [controller_ok, relationship_ok, consent_ok, section_ok, sensitive_ok, exclude_ok, include_ok]
        .iter()
        .all(|x| *x)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nothing_leaves_that_generated_agreements_and_consents_do_not_allow(
        (drawn, consents, standing, org, record) in arb_case()
    ) {
        let policy = policy_of(&drawn);
        let who = requester(org, standing);
        let refs: Vec<&ResourceFacts> = record.iter().collect();
        let d = policy.decide(&who, &Ask::everything().standing_as(standing), TODAY, &consents, &refs);
        let granting: Vec<&Agreement> =
            policy.agreements().iter().filter(|a| a.organisations.contains(&who.organisation)).collect();
        let t = policy.terminology();
        // What is withheld for its content (sensitive or excluded under every agreement granting
        // the requester, or denied by the patient), and anything that refers to it, never leaves.
        let content_hidden: Vec<String> = record
            .iter()
            .filter(|f| {
                granting.iter().all(|a| t.classify(f) & ((t.sensitive() & !a.sensitive) | a.exclude) != 0)
                    || consent_verdict(&consents, &who, TODAY, f) == ConsentVerdict::Denied
            })
            .map(|f| format!("{}/{}", f.resource_type, f.id))
            .collect();
        for f in d.released(&refs) {
            let consent = consent_verdict(&consents, &who, TODAY, f);
            prop_assert!(consent != ConsentVerdict::Denied, "released past a deny: {f:?}");
            prop_assert!(
                granting.iter().any(|a| allows(&policy, a, f, standing, consent)),
                "no agreement allows {f:?} for {:?} under {standing:?}", who.organisation
            );
            prop_assert!(!f.references.iter().any(|r| content_hidden.contains(r)), "{f:?} names a hidden entry");
        }
    }

    #[test]
    fn generated_decisions_are_idempotent_and_independent_of_order(
        (drawn, consents, standing, org, record) in arb_case()
    ) {
        let policy = policy_of(&drawn);
        let who = requester(org, standing);
        let ask = Ask::everything().standing_as(standing);
        let refs: Vec<&ResourceFacts> = record.iter().collect();
        let first = policy.decide(&who, &ask, TODAY, &consents, &refs);
        let released: Vec<&ResourceFacts> = first.released(&refs).copied().collect();
        let again = policy.decide(&who, &ask, TODAY, &consents, &released);
        prop_assert!(again.verdicts().iter().all(|v| *v == Verdict::Release));
        let reversed: Vec<&ResourceFacts> = refs.iter().rev().copied().collect();
        let back = policy.decide(&who, &ask, TODAY, &consents, &reversed);
        let n = refs.len();
        for i in 0..n {
            prop_assert_eq!(first.verdicts()[i], back.verdicts()[n - 1 - i]);
        }
    }
}

/// The case the rule order once hid: an HIV result outside the shared sections is withheld for
/// its section, and still hides what refers to it; so does an entry the patient's consent denies.
#[test]
fn content_hides_its_links_whichever_rule_withholds_it_first() {
    let drawn = Drawn {
        orgs: vec![2],
        explicit: false,
        granted: true,
        one_controller: false,
        sections: Some(vec![0]),
        include: vec![],
        exclude: vec![],
        sensitive: vec![],
    };
    let policy = policy_of(&[drawn]);
    let fact = |ty: &str, id: &str, code: (&str, &str), refs: &[&str]| ResourceFacts {
        resource_type: ty.into(),
        id: id.into(),
        section: Some(Section::of_type(ty)),
        codings: vec![Coding { system: code.0.into(), code: code.1.into() }],
        references: refs.iter().map(|r| (*r).to_owned()).collect(),
        source: Some("s1".into()),
        ..ResourceFacts::default()
    };
    let record = [
        fact("Observation", "hiv", CODES[0], &[]),
        fact("Condition", "dm", CODES[3], &["Observation/hiv"]),
        fact("Condition", "plain", CODES[4], &[]),
    ];
    let refs: Vec<&ResourceFacts> = record.iter().collect();
    let who = requester(2, Standing::Agreement);
    let d = policy.decide(&who, &Ask::everything().standing_as(Standing::Agreement), TODAY, &[], &refs);
    assert_eq!(d.verdicts()[1], Verdict::Withhold(crate::Reason::Linked), "{:?}", d.verdicts());
    assert_eq!(d.verdicts()[2], Verdict::Release);
    // A code the patient denies hides what refers to it too.
    let deny_ra = read_consent(&json!({
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p"},
        "provision": {"type": "deny", "code": [{"coding": [{"system": CODES[4].0, "code": CODES[4].1}]}]}
    }))
    .unwrap()
    .directive
    .unwrap();
    let record =
        [fact("Condition", "ra", CODES[4], &[]), fact("Condition", "dm", CODES[3], &["Condition/ra"])];
    let refs: Vec<&ResourceFacts> = record.iter().collect();
    let d = policy.decide(
        &who,
        &Ask::everything().standing_as(Standing::Agreement),
        TODAY,
        std::slice::from_ref(&deny_ra),
        &refs,
    );
    assert_eq!(d.verdicts()[1], Verdict::Withhold(crate::Reason::Linked), "{:?}", d.verdicts());
    // Also when the denied resource is not among what was asked for (a search of another type,
    // a read by id): it still hides what refers to it.
    let record =
        [fact("Observation", "ra", CODES[4], &[]), fact("Condition", "dm", CODES[3], &["Observation/ra"])];
    let refs: Vec<&ResourceFacts> = record.iter().collect();
    let only_conditions =
        Ask::everything().of_types(vec!["Condition".into()]).standing_as(Standing::Agreement);
    let d = policy.decide(&who, &only_conditions, TODAY, std::slice::from_ref(&deny_ra), &refs);
    assert_eq!(d.verdicts()[0], Verdict::Withhold(crate::Reason::NotAskedType));
    assert_eq!(d.verdicts()[1], Verdict::Withhold(crate::Reason::Linked), "{:?}", d.verdicts());
    let d = policy.decide(&who, &only_conditions, TODAY, &[], &refs);
    assert_eq!(d.verdicts()[1], Verdict::Release, "without the denial it is shared");
}
