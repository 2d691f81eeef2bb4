use proptest::prelude::*;
use tideway_auth::{Principal, PurposeOfUse, RoleCode};
use tideway_profiles::{OdsCode, ResourceFacts};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;

use super::*;

const TODAY: time::Date = time::macros::date!(2026 - 06 - 01);

/// One agreement granting the test principal the whole record, from every source.
const OPEN: &str = r#"
id = "open"
version = 1
title = "Everything, for tests"
consent_model = "implied-direct-care"
start = 2026-01-01
objection = "-"
controllers = ["*"]
[recipients]
organisations = ["RJ122"]
roles = ["R8000"]
purposes = ["TREAT"]
[record]
sections = ["*"]
sensitive = ["hiv", "termination-of-pregnancy", "sexually-transmitted-infection", "assisted-conception", "gender-reassignment"]
"#;

/// A requester with every read scope.
pub(crate) fn person(org: &str, role: &str, purpose: PurposeOfUse) -> Principal {
    Principal {
        client_id: "c".into(),
        user_id: "u".into(),
        role: RoleCode::parse(role).unwrap(),
        organisation: OdsCode::parse(org).unwrap(),
        purpose,
        scopes: vec!["system/*.read".into()],
        token_id: "t".into(),
        break_glass_reason: None,
    }
}

fn open_policy() -> Policy {
    Policy::new([("open.toml", OPEN)], Terminology::embedded().unwrap(), []).unwrap()
}

fn decide(p: &Principal, ask: &Ask, resources: &[&ResourceFacts]) -> Decision {
    open_policy().decide(p, ask, TODAY, &[], resources)
}

fn may_include(p: &Principal, facts: &ResourceFacts) -> bool {
    open_policy().may_include(p, &Ask::everything(), facts)
}

#[test]
fn a_search_needs_search_scopes_and_a_read_needs_read_scopes() {
    let condition = facts("Condition", None);
    let provenance = facts("Provenance", None);
    let verdict = |scopes: &[&str], ask: &Ask| decide(&principal(scopes), ask, &[&condition]).verdicts()[0];
    let read = Ask::everything();
    let search = Ask::everything().of_types(vec!["Condition".into()]).by_search();
    assert_eq!(verdict(&["system/Condition.r"], &read), Verdict::Release);
    assert_eq!(verdict(&["system/Condition.r"], &search), Verdict::Withhold(Reason::Scope));
    assert_eq!(verdict(&["system/Condition.s"], &search), Verdict::Release);
    assert_eq!(verdict(&["system/Condition.s"], &read), Verdict::Withhold(Reason::Scope));
    assert_eq!(verdict(&["system/*.read"], &search), Verdict::Release);
    let include =
        |scopes: &[&str], ask: &Ask| open_policy().may_include(&principal(scopes), ask, &provenance);
    assert!(include(&["system/*.s"], &search) && !include(&["system/*.s"], &read));
    assert!(include(&["system/*.r"], &read) && !include(&["system/*.r"], &search));
}

#[test]
fn a_question_kept_before_searches_were_told_apart_reads_as_a_read() {
    let old: Ask = serde_json::from_str(r#"{"types":["Condition"],"since":null,"standing":null}"#).unwrap();
    assert_eq!(old.interaction(), Interaction::Read);
    let kept = serde_json::to_string(&Ask::everything().by_search()).unwrap();
    assert_eq!(serde_json::from_str::<Ask>(&kept).unwrap().interaction(), Interaction::Search);
}

const TYPES: [&str; 6] =
    ["Patient", "Condition", "Observation", "AllergyIntolerance", "Provenance", "Encounter"];

fn principal(scopes: &[&str]) -> Principal {
    Principal {
        client_id: "c".into(),
        user_id: "u".into(),
        role: RoleCode::parse("R8000").unwrap(),
        organisation: OdsCode::parse("RJ122").unwrap(),
        purpose: PurposeOfUse::Treat,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        token_id: "t".into(),
        break_glass_reason: None,
    }
}

fn facts(ty: &str, updated: Option<&str>) -> ResourceFacts {
    ResourceFacts {
        resource_type: ty.into(),
        last_updated: updated.map(str::to_owned),
        ..ResourceFacts::default()
    }
}

#[test]
fn scopes_type_and_since_each_withhold_with_their_reason() {
    let p = principal(&["system/Condition.rs", "system/Observation.read"]);
    let all = [
        facts("Condition", Some("2024-06-01T00:00:00Z")),
        facts("Condition", Some("2023-01-01T00:00:00Z")),
        facts("Condition", None),
        facts("Observation", Some("2024-06-01T00:00:00Z")),
        facts("AllergyIntolerance", Some("2024-06-01T00:00:00Z")),
    ];
    let refs: Vec<&ResourceFacts> = all.iter().collect();
    let ask =
        Ask::everything().of_types(vec!["Condition".into()]).changed_since(datetime!(2024-01-01 0:00 UTC));
    let d = decide(&p, &ask, &refs);
    assert_eq!(
        d.verdicts(),
        [
            Verdict::Release,
            Verdict::Withhold(Reason::NotChangedSince),
            Verdict::Release,
            Verdict::Withhold(Reason::NotAskedType),
            Verdict::Withhold(Reason::Scope),
        ]
    );
    assert_eq!(
        d.withheld_counts(),
        [(Reason::Scope, 1), (Reason::NotAskedType, 1), (Reason::NotChangedSince, 1)]
    );
    assert!(d.withheld_for_requester());
    assert_eq!(d.released(&all).count(), 2);
}

#[test]
fn a_question_that_cannot_be_read_withholds_everything() {
    let ask = Ask {
        types: None,
        since: Some("not an instant".into()),
        standing: None,
        interaction: Interaction::Read,
    };
    let f = facts("Condition", None);
    let d = decide(&principal(&["system/*.read"]), &ask, &[&f]);
    assert_eq!(d.verdicts(), [Verdict::Withhold(Reason::Undecidable)]);
}

#[test]
fn gateway_made_includes_follow_the_scopes() {
    let provenance = facts("Provenance", None);
    assert!(!may_include(&principal(&["system/Condition.rs"]), &provenance));
    assert!(may_include(&principal(&["system/*.rs"]), &provenance));
}

fn arb_facts() -> impl Strategy<Value = ResourceFacts> {
    (0..TYPES.len(), prop::option::of(2015i32..2030))
        .prop_map(|(t, year)| facts(TYPES[t], year.map(|y| format!("{y}-03-01T12:00:00Z")).as_deref()))
}

fn arb_scopes() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            Just("system/*.read".to_owned()),
            Just("system/*.rs".to_owned()),
            (0..TYPES.len()).prop_map(|t| format!("system/{}.rs", TYPES[t])),
            (0..TYPES.len()).prop_map(|t| format!("system/{}.write", TYPES[t])),
            Just("system/Observation.rs?category=laboratory".to_owned()),
        ],
        0..4,
    )
}

fn arb_ask() -> impl Strategy<Value = Ask> {
    (prop::option::of(prop::collection::vec(0..TYPES.len(), 1..3)), prop::option::of(2015i32..2030)).prop_map(
        |(types, year)| {
            let mut ask = Ask::everything();
            if let Some(ts) = types {
                ask = ask.of_types(ts.into_iter().map(|t| TYPES[t].to_owned()).collect());
            }
            if let Some(y) = year {
                let t = OffsetDateTime::parse(&format!("{y}-01-01T00:00:00Z"), &Rfc3339).unwrap();
                ask = ask.changed_since(t);
            }
            ask
        },
    )
}

proptest! {
    #[test]
    fn nothing_the_scopes_or_question_exclude_is_released(
        scopes in arb_scopes(), ask in arb_ask(), record in prop::collection::vec(arb_facts(), 0..30)
    ) {
        let refs: Vec<&ResourceFacts> = record.iter().collect();
        let p = Principal { scopes, ..principal(&[]) };
        let d = decide(&p, &ask, &refs);
        prop_assert_eq!(d.verdicts().len(), record.len());
        for f in d.released(&record) {
            prop_assert!(p.may_read(&f.resource_type));
            prop_assert!(ask.types().is_none_or(|ts| ts.contains(&f.resource_type)));
        }
    }

    #[test]
    fn deciding_again_over_what_was_released_releases_all_of_it(
        scopes in arb_scopes(), ask in arb_ask(), record in prop::collection::vec(arb_facts(), 0..30)
    ) {
        let p = Principal { scopes, ..principal(&[]) };
        let refs: Vec<&ResourceFacts> = record.iter().collect();
        let first = decide(&p, &ask, &refs);
        let released: Vec<&ResourceFacts> = first.released(&refs).copied().collect();
        let again = decide(&p, &ask, &released);
        prop_assert!(again.verdicts().iter().all(|v| *v == Verdict::Release));
    }

    #[test]
    fn the_verdict_on_a_resource_does_not_depend_on_the_order_resources_come_in(
        scopes in arb_scopes(), ask in arb_ask(),
        record in prop::collection::vec(arb_facts(), 1..30), seed in any::<u64>()
    ) {
        let p = Principal { scopes, ..principal(&[]) };
        let refs: Vec<&ResourceFacts> = record.iter().collect();
        let mut order: Vec<usize> = (0..record.len()).collect();
        // A deterministic shuffle from the seed (sources answering in another order).
        let mut s = seed | 1;
        for i in (1..order.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            order.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let shuffled: Vec<&ResourceFacts> = order.iter().map(|&i| refs[i]).collect();
        let a = decide(&p, &ask, &refs);
        let b = decide(&p, &ask, &shuffled);
        for (pos, &i) in order.iter().enumerate() {
            prop_assert_eq!(a.verdicts()[i], b.verdicts()[pos]);
        }
    }
}

mod agreements;
mod generated;
mod gp_dialects;
mod identity;
mod relationship;
