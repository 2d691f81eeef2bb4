//! Unit tests of `bundle`.

use super::*;

fn res(ty: &str, id: &str) -> NormalisedResource {
    NormalisedResource::from_value(&json!({"resourceType": ty, "id": id})).unwrap()
}

#[test]
fn spliced_bundle_is_valid_json_with_entries_and_outcome() {
    let entries = vec![res("Patient", "p1"), res("Condition", "s.c1")];
    let oo = OperationOutcome::new(IssueSeverity::Warning, IssueType::Incomplete, "x").to_json();
    let body = searchset(&Searchset {
        base_url: "http://gw",
        self_link: "http://gw/Patient/p1/$everything",
        next_link: Some("http://gw/_page?x"),
        total: 5,
        entries: &entries,
        includes: &[res("Encounter", "s.e1")],
        outcome: Some(&oo),
    });
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["total"], 5);
    assert_eq!(v["entry"][1]["fullUrl"], "http://gw/Condition/s.c1");
    assert_eq!(v["entry"][1]["resource"]["id"], "s.c1");
    assert_eq!(v["entry"][1]["search"]["mode"], "match");
    assert_eq!(v["entry"][2]["search"]["mode"], "include");
    assert_eq!(v["entry"][3]["search"]["mode"], "outcome");
    assert_eq!(v["link"][1]["relation"], "next");
}

#[test]
fn a_sources_list_warnings_reach_the_clinician_once_each_in_words() {
    let source = SourceId::parse("camden").unwrap();
    let w = |code| ListWarning { section: Some("886921000000105".into()), code };
    let warnings = [
        w(ListWarningCode::DataInTransit),
        w(ListWarningCode::DataInTransit),
        w(ListWarningCode::ConfidentialItems),
    ];
    let notices = Notice::of_warnings(&source, &warnings);
    assert_eq!(notices.len(), 2, "repeats are said once");
    let oo = notices_outcome(&notices).unwrap();
    let text = oo.to_string();
    assert!(text.contains("source 'camden' warns of its section 886921000000105"), "{text}");
    assert!(text.contains("still being transferred") && text.contains("(data-in-transit)"), "{text}");
    assert_eq!(oo["issue"][1]["code"], "suppressed", "withheld at source: {text}");
}

/// What a source sent that could not be passed on is told by kind, in words that say what
/// went wrong, never the entries' content.
#[test]
fn rejections_reach_the_clinician_by_kind() {
    let source = SourceId::parse("camden").unwrap();
    let rejected = [
        RejectedResource::unreadable(Some("Condition".into()), "a row without a code"),
        RejectedResource::unreadable(None, "a row in a part of the extract the adapter does not read"),
        RejectedResource::not_carried(Some("Appointment".into()), "not part of a structured record"),
        RejectedResource::invalid(Some("Observation".into()), "unknown field"),
        RejectedResource { kind: RejectionKind::OtherPatient, ..RejectedResource::invalid(None, "x") },
    ];
    let notices = Notice::of_rejections(&source, &rejected);
    assert_eq!(notices.len(), 4);
    let text = notices_outcome(&notices).unwrap().to_string();
    assert!(text.contains("sent 1 resource(s) that are not valid FHIR R4 (Observation)"), "{text}");
    assert!(text.contains("sent 2 entries that could not be read from its own format (Condition)"), "{text}");
    assert!(text.contains("sent 1 entries of a kind this source does not share (Appointment)"), "{text}");
    assert!(text.contains("sent 1 entries about another patient"), "{text}");
    assert!(!text.contains("a row without a code"), "the reasons stay in the source report: {text}");
}

#[test]
fn empty_bundle_has_no_entry_array() {
    let body = searchset(&Searchset {
        base_url: "http://gw",
        self_link: "http://gw/Patient",
        next_link: None,
        total: 0,
        entries: &[],
        includes: &[],
        outcome: None,
    });
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v.get("entry").is_none());
    assert_eq!(v["total"], 0);
}
