//! Restricted (S-flagged) and deceased patients: marked from every source's Patient, and the
//! registered practice withheld from everyone.

use serde_json::{Value, json};
use tideway_auth::PurposeOfUse;
use tideway_profiles::ResourceFacts;
use tideway_profiles::systems::CONFIDENTIALITY;

use super::{TODAY, open_policy, person};
use crate::{Ask, PatientMarks, Reason, Standing, Verdict};

const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

fn patient(restricted: bool, extra: Value) -> Value {
    let mut p = json!({
        "resourceType": "Patient", "id": "p",
        "meta": {"source": "urn:tideway:source:a"},
        "name": [{"family": "Example"}],
        "address": [{"postalCode": "NW1 1AA"}],
        "telecom": [{"system": "phone", "value": "020 7946 0000"}],
        "generalPractitioner": [{"reference": "Organization/a.F80001", "display": "Camden Practice"}],
        "contact": [{"name": {"family": "Kin"}, "address": {"line": ["1 Road"]}, "telecom": [{"value": "1"}]}]
    });
    if restricted {
        p["meta"]["security"] = json!([{"system": CONFIDENTIALITY, "code": "R"}]);
    }
    if let (Some(obj), Value::Object(more)) = (p.as_object_mut(), extra) {
        obj.extend(more);
    }
    p
}

fn facts(v: &Value) -> ResourceFacts {
    ResourceFacts::of(v)
}

fn practice() -> Value {
    json!({"resourceType": "Organization", "id": "a.F80001", "identifier": [{"system": ODS, "value": "F80001"}]})
}

#[test]
fn a_restricted_patients_practice_is_withheld_from_everyone_and_nothing_else_is() {
    let policy = open_policy();
    let home = patient(false, json!({}));
    // Another source flags the patient; its Patient names the practice only by ODS code.
    let mut other =
        patient(true, json!({"generalPractitioner": [{"identifier": {"system": ODS, "value": "F80001"}}]}));
    other["meta"]["source"] = json!("urn:tideway:source:b");
    let practice = practice();
    let gp_role = json!({"resourceType": "PractitionerRole", "id": "a.role1", "organization": {"reference": "Organization/a.F80001"}});
    let hospital = json!({"resourceType": "Organization", "id": "a.RJ122", "identifier": [{"system": ODS, "value": "RJ122"}]});
    let condition = json!({"resourceType": "Condition", "id": "a.c1", "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}});
    let all = [home, other, practice, gp_role, hospital, condition].map(|v| facts(&v));
    let refs: Vec<&ResourceFacts> = all.iter().collect();
    let who = person("RJ122", "R8000", PurposeOfUse::Treat);
    for standing in [Standing::RegisteredPractice, Standing::Care, Standing::BreakGlass] {
        let ask = Ask::everything().standing_as(standing);
        let d = policy.decide(&who, &ask, TODAY, &[], &refs);
        assert!(d.marks().restricted, "restricted at one source is restricted");
        let withheld = Verdict::Withhold(Reason::Restricted);
        assert_eq!(
            d.verdicts(),
            [Verdict::Release, Verdict::Release, withheld, withheld, Verdict::Release, Verdict::Release],
            "{standing:?}"
        );
    }
}

#[test]
fn an_unrestricted_patients_practice_is_shared_as_before() {
    let all = [patient(false, json!({})), practice()].map(|v| facts(&v));
    let refs: Vec<&ResourceFacts> = all.iter().collect();
    let who = person("RJ122", "R8000", PurposeOfUse::Treat);
    let d = open_policy().decide(&who, &Ask::everything(), TODAY, &[], &refs);
    assert!(!d.marks().restricted);
    assert_eq!(d.verdicts(), [Verdict::Release, Verdict::Release]);
}

#[test]
fn a_restricted_patient_is_presented_without_whereabouts_and_labelled() {
    let source = patient(false, json!({"managingOrganization": {"reference": "Organization/a.F80001"}}));
    let flagged = patient(true, json!({}));
    let marks = PatientMarks::of(&[&facts(&source), &facts(&flagged)]);
    let shown = marks.present(&source);
    for gone in ["address", "telecom", "generalPractitioner", "managingOrganization"] {
        assert!(shown.get(gone).is_none(), "{gone} left: {shown}");
    }
    assert_eq!(
        shown["contact"],
        json!([{"name": {"family": "Kin"}}]),
        "the contact's name stays, not where they are"
    );
    assert_eq!(shown["name"], source["name"]);
    assert_eq!(shown["meta"]["security"][0]["code"], "R");
    assert_eq!(shown["meta"]["source"], "urn:tideway:source:a");
    // A weaker label from a source is replaced, not left beside the restriction.
    let mut unrestricted = source.clone();
    unrestricted["meta"]["security"] = json!([{"system": CONFIDENTIALITY, "code": "U"}]);
    let labels = marks.present(&unrestricted)["meta"]["security"].clone();
    assert_eq!(labels, json!([{"system": CONFIDENTIALITY, "code": "R", "display": "restricted"}]));
    // Other resources are untouched.
    assert_eq!(marks.present(&practice()), practice());
}

#[test]
fn the_very_restricted_label_counts_as_restricted_and_others_do_not() {
    let label = |code: &str| {
        let mut p = patient(false, json!({}));
        p["meta"]["security"] = json!([{"system": CONFIDENTIALITY, "code": code}]);
        facts(&p).restricted
    };
    assert!(label("R") && label("V"));
    assert!(!label("U") && !label("N"));
    let mut elsewhere = patient(false, json!({}));
    elsewhere["meta"]["security"] = json!([{"system": "http://example.org/other", "code": "R"}]);
    assert!(!facts(&elsewhere).restricted, "an R of another system is not the confidentiality code");
}

#[test]
fn deceased_at_any_source_is_deceased_with_the_latest_date_kept() {
    let alive = patient(false, json!({"deceasedBoolean": false}));
    let said = patient(false, json!({"deceasedBoolean": true}));
    let early = patient(false, json!({"deceasedDateTime": "2025-03-01"}));
    let late = patient(false, json!({"deceasedDateTime": "2025-04-02T10:00:00Z"}));
    let only_boolean = PatientMarks::of(&[&facts(&alive), &facts(&said)]);
    assert!(only_boolean.deceased && only_boolean.deceased_at.is_none());
    assert_eq!(only_boolean.present(&alive)["deceasedBoolean"], true);
    for order in [[&early, &late, &alive], [&late, &alive, &early]] {
        let all = order.map(facts);
        let marks = PatientMarks::of(&all.iter().collect::<Vec<_>>());
        let shown = marks.present(&alive);
        assert_eq!(shown["deceasedDateTime"], "2025-04-02T10:00:00Z", "order does not matter");
        assert!(shown.get("deceasedBoolean").is_none(), "one deceased[x] only: {shown}");
    }
    let none = PatientMarks::of(&[&facts(&alive)]);
    assert!(!none.deceased && !none.changes_patient());
    assert_eq!(none.present(&alive), alive);
}
