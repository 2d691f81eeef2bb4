use serde_json::json;
use tideway_profiles::ResourceFacts;

use super::*;

fn facts(v: serde_json::Value) -> ResourceFacts {
    ResourceFacts::of(&v)
}

fn criteria(ty: &str, q: &[(&str, &str)]) -> Criteria {
    Criteria::parse(ty, q.iter().copied()).unwrap()
}

fn condition(id: &str, codes: &[(&str, &str)], onset: &str, status: &str) -> ResourceFacts {
    let coding: Vec<_> = codes.iter().map(|(s, c)| json!({"system": s, "code": c})).collect();
    facts(json!({
        "resourceType": "Condition", "id": id, "code": {"coding": coding}, "onsetDateTime": onset,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
        "meta": {"lastUpdated": format!("{onset}T00:00:00Z")}
    }))
}

const SCT: &str = "http://snomed.info/sct";
const READ: &str = "http://read.info/readv2";

#[test]
fn code_matches_any_coding_in_any_system_and_commas_are_or() {
    let c = condition("a", &[(SCT, "44054006"), (READ, "C10F.")], "2019-03-04", "active");
    assert!(criteria("Condition", &[("code", "C10F.")]).matches(&c));
    assert!(criteria("Condition", &[("code", "http://read.info/readv2|C10F.")]).matches(&c));
    assert!(criteria("Condition", &[("code", "http://snomed.info/sct|")]).matches(&c));
    assert!(!criteria("Condition", &[("code", "http://snomed.info/sct|C10F.")]).matches(&c));
    assert!(!criteria("Condition", &[("code", "|C10F.")]).matches(&c), "|code means no system");
    assert!(criteria("Condition", &[("code", "x,44054006")]).matches(&c));
    // Repeated parameters are AND.
    assert!(!criteria("Condition", &[("code", "44054006"), ("code", "x")]).matches(&c));
}

#[test]
fn status_category_date_id_and_last_updated_filter() {
    let c = condition("a", &[(SCT, "1")], "2019-03-04", "active");
    assert!(criteria("Condition", &[("clinical-status", "active")]).matches(&c));
    assert!(!criteria("Condition", &[("clinical-status", "resolved")]).matches(&c));
    assert!(criteria("Condition", &[("category", "problem-list-item")]).matches(&c));
    assert!(criteria("Condition", &[("onset-date", "2019")]).matches(&c));
    assert!(
        criteria("Condition", &[("onset-date", "ge2019-03-04"), ("onset-date", "lt2019-04")]).matches(&c)
    );
    assert!(!criteria("Condition", &[("onset-date", "gt2019-03-04")]).matches(&c));
    assert!(criteria("Condition", &[("_id", "b,a")]).matches(&c));
    assert!(criteria("Condition", &[("_lastUpdated", "le2019-03-04T00:00:00Z")]).matches(&c));
    assert!(!criteria("Condition", &[("_lastUpdated", "gt2020")]).matches(&c));
    let no_date = facts(json!({"resourceType": "Condition", "id": "n", "code": {"text": "x"}}));
    assert!(
        !criteria("Condition", &[("onset-date", "2019")]).matches(&no_date),
        "no date matches no date query"
    );
}

#[test]
fn sort_is_stable_with_missing_values_last() {
    let mut items = vec![
        condition("b", &[], "2020-01-01", "active"),
        facts(json!({"resourceType": "Condition", "id": "undated"})),
        condition("a", &[], "2018-01-01", "active"),
        condition("c", &[], "2020-01-01", "active"),
    ];
    criteria("Condition", &[("_sort", "date")]).sort(&mut items, |f| f);
    let ids: Vec<&str> = items.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "undated"]);
    criteria("Condition", &[("_sort", "-onset-date")]).sort(&mut items, |f| f);
    let ids: Vec<&str> = items.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["b", "c", "a", "undated"]);
}

#[test]
fn malformed_or_unsupported_values_name_the_parameter() {
    let err = |q: &[(&str, &str)]| Criteria::parse("Condition", q.iter().copied()).unwrap_err();
    assert_eq!(err(&[("onset-date", "last tuesday")]).name, "onset-date");
    assert_eq!(err(&[("code", "")]).name, "code");
    assert_eq!(err(&[("_summary", "short")]).name, "_summary");
    assert_eq!(err(&[("_summary", "true"), ("_summary", "data")]).name, "_summary");
    assert_eq!(err(&[("_summary", "true"), ("_elements", "code")]).name, "_elements");
    assert_eq!(err(&[("_elements", "valueQuantity")]).name, "_elements");
    assert!(err(&[("_elements", "code.coding")]).unsupported, "paths below the top level");
    assert!(err(&[("_include", "Condition:*")]).unsupported);
    assert!(!err(&[("_include", "Observation:subject")]).unsupported, "another type's parameter");
    let c =
        Criteria::parse("Condition", [("_summary", "true"), ("_include", "Condition:encounter")].into_iter())
            .unwrap();
    assert_eq!(c.subset, tideway_profiles::elements::Subset::Summary);
    assert_eq!(c.includes.len(), 1);
    assert!(err(&[("_sort", "code")]).unsupported);
    assert!(err(&[("_sort", "date,_lastUpdated")]).unsupported, "one key only");
    assert!(!err(&[("_sort", "date"), ("_sort", "-date")]).unsupported, "repeated _sort is malformed");
    assert_eq!(err(&[("_total", "lots")]).name, "_total");
    assert!(Criteria::parse("Condition", [("_summary", "count")].into_iter()).unwrap().count_only);
}

#[test]
fn ongoing_periods_any_encounter_type_and_clinical_status_with_its_system() {
    let ongoing = facts(json!({
        "resourceType": "Encounter", "id": "e", "status": "in-progress",
        "type": [{"coding": [{"system": SCT, "code": "first"}]}, {"coding": [{"system": SCT, "code": "second"}]}],
        "period": {"start": "2024-01-01"}
    }));
    assert!(
        criteria("Encounter", &[("date", "ge2024-06-01")]).matches(&ongoing),
        "an ongoing period runs on"
    );
    assert!(criteria("Encounter", &[("type", "second")]).matches(&ongoing), "any of the types");
    let ended = facts(
        json!({"resourceType": "Encounter", "id": "f", "period": {"start": "2024-01-01", "end": "2024-01-02"}}),
    );
    assert!(!criteria("Encounter", &[("date", "ge2024-06-01")]).matches(&ended));
    let c = condition("a", &[], "2019-03-04", "active");
    let with_system = "http://terminology.hl7.org/CodeSystem/condition-clinical|active";
    assert!(criteria("Condition", &[("clinical-status", with_system)]).matches(&c));
    assert!(!criteria("Condition", &[("clinical-status", "http://example.org|active")]).matches(&c));
}
