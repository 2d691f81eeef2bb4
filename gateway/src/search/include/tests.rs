//! Unit tests of `search::include`.

use super::*;
use serde_json::json;

fn res(v: Value) -> NormalisedResource {
    NormalisedResource::from_value(&v).unwrap()
}

#[test]
fn parses_what_the_table_has_and_refuses_the_rest_by_name() {
    let i = Include::parse("Condition:encounter", false, "Condition").unwrap();
    assert_eq!(i.brings(), Some(vec!["Encounter"]));
    let patient = Include::parse("Condition:subject:Patient", false, "Condition").unwrap();
    assert_eq!(patient.brings(), Some(vec!["Patient"]));
    assert_eq!(Include::parse("Condition:evidence-detail", false, "Condition").unwrap().brings(), None);
    assert_eq!(brought_types(&[i, patient]), Some(vec!["Encounter", "Patient"]));
    assert!(Include::parse("Provenance:target", true, "Condition").is_ok());
    assert!(Include::parse("Condition:encounter", true, "Encounter").is_ok());
    let e = Include::parse("*", false, "Condition").unwrap_err();
    assert_eq!((e.name, e.unsupported), ("_include", false));
    assert!(Include::parse("Condition:*", false, "Condition").unwrap_err().unsupported);
    assert!(Include::parse("Condition:evidence", false, "Condition").unwrap_err().unsupported);
    // Another type's parameter, or a target the parameter cannot have.
    assert!(!Include::parse("Observation:encounter", false, "Condition").unwrap_err().unsupported);
    assert!(Include::parse("Condition:encounter:Patient", false, "Condition").is_err());
    assert!(Include::parse("Condition:encounter", true, "Observation").is_err());
    assert!(Include::parse("Provenance:target", false, "Condition").is_err());
}

#[test]
fn forward_includes_follow_the_named_element_only_and_reverse_ones_point_back() {
    let cond = res(json!({"resourceType": "Condition", "id": "s.c1", "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/s.e1"}, "asserter": {"reference": "Practitioner/s.pr1"}}));
    let enc = res(json!({"resourceType": "Encounter", "id": "s.e1", "status": "finished",
        "class": {"code": "AMB"}}));
    let other_enc = res(json!({"resourceType": "Encounter", "id": "s.e2", "status": "finished",
        "class": {"code": "AMB"}}));
    let pr = res(json!({"resourceType": "Practitioner", "id": "s.pr1"}));
    let prov = res(json!({"resourceType": "Provenance", "id": "s.pv", "recorded": "2024-01-01T00:00:00Z",
        "target": [{"reference": "Condition/s.c1"}], "agent": [{"who": {"reference": "Practitioner/s.pr1"}}]}));
    let candidates = vec![enc.clone(), other_enc, pr.clone(), prov.clone()];
    let by = |spec: &str, reverse: bool| {
        let i = Include::parse(spec, reverse, "Condition").unwrap();
        select(&[i], std::slice::from_ref(&cond), candidates.clone())
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(by("Condition:encounter", false), ["s.e1"]);
    assert_eq!(by("Condition:asserter", false), ["s.pr1"]);
    assert_eq!(by("Condition:asserter:Patient", false), Vec::<String>::new());
    assert_eq!(by("Provenance:target", true), ["s.pv"]);
    assert!(by("Condition:subject", false).is_empty(), "the Patient is not among the candidates");
}

#[test]
fn every_type_searched_declares_includes_and_provenance_revincludes() {
    for t in tideway_profiles::PATIENT_SEARCH_TYPES {
        assert!(includes_of(t).count() >= 2, "{t}");
        assert!(revincludes_of(t).any(|p| p.spelled() == "Provenance:target"), "{t}");
    }
}
