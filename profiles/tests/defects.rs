//! The kinds of invalid R4 that reached clients while validation was fhirbolt strict alone, one
//! test each: every case here was accepted by fhirbolt strict (checked too, so the claim stays
//! true) and must now be rejected with an error naming the path and the problem, not the value.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "tests")]

use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use proptest::prelude::*;
use serde_json::{Value, json};
use tideway_profiles::validate::{check_r4_resource, check_r4_value};

/// The check before this change, for the "was accepted before" half of each test.
fn fhirbolt_strict_accepts(value: &Value) -> bool {
    let bytes = serde_json::to_vec(value).expect("serialises");
    let config = DeserializationConfig { mode: DeserializationMode::Strict };
    fhirbolt::json::from_slice::<Resource>(&bytes, Some(config)).is_ok()
}

/// Asserts the defect got past fhirbolt and is now rejected with exactly `message`.
fn rejected_now_accepted_before(value: Value, message: &str) {
    assert!(fhirbolt_strict_accepts(&value), "fhirbolt strict already rejected {value}");
    let got = check_r4_value(&value).map_err(|e| e.to_string());
    assert_eq!(got, Err(format!("not a valid FHIR R4 resource: {message}")));
    let bytes = serde_json::to_vec(&value).expect("serialises");
    assert_eq!(check_r4_resource(&bytes).map_err(|e| e.to_string()), got, "bytes and value agree");
}

fn patient(extra: Value) -> Value {
    let mut p =
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Smith", "given": ["Ann"]}]});
    p.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
    p
}

fn observation(extra: Value) -> Value {
    let mut o = json!({"resourceType": "Observation", "status": "final", "code": {"text": "Hb"}});
    o.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
    o
}

#[test]
fn a_valid_patient_and_observation_pass() {
    assert_eq!(check_r4_value(&patient(json!({"birthDate": "1980-02-01", "active": true}))), Ok(()));
    assert_eq!(check_r4_value(&observation(json!({"effectiveDateTime": "2020-01-02T10:00:00Z"}))), Ok(()));
}

#[test]
fn a_date_in_another_format_is_rejected() {
    rejected_now_accepted_before(
        patient(json!({"birthDate": "01/02/1980"})),
        "Patient.birthDate: not a valid date",
    );
    let condition = json!({"resourceType": "Condition", "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2020-13-45"});
    rejected_now_accepted_before(condition, "Condition.onsetDateTime: not a valid dateTime");
}

#[test]
fn a_date_time_without_a_time_zone_is_rejected() {
    let obs = observation(json!({"effectiveDateTime": "2020-01-02T10:00:00"}));
    rejected_now_accepted_before(obs, "Observation.effectiveDateTime: not a valid dateTime");
}

#[test]
fn a_boolean_sent_as_a_string_is_rejected() {
    rejected_now_accepted_before(
        patient(json!({"active": "true"})),
        "Patient.active: expected a JSON boolean",
    );
}

#[test]
fn a_code_outside_a_required_value_set_is_rejected() {
    rejected_now_accepted_before(
        patient(json!({"gender": "alien"})),
        "Patient.gender: not one of the allowed codes",
    );
    rejected_now_accepted_before(
        observation(json!({"status": "bogus"})),
        "Observation.status: not one of the allowed codes",
    );
}

#[test]
fn a_single_object_where_r4_has_an_array_is_rejected() {
    rejected_now_accepted_before(
        patient(json!({"name": {"family": "X"}})),
        "Patient.name: expected an array",
    );
}

#[test]
fn a_malformed_code_or_id_is_rejected() {
    let obs = observation(json!({"code": {"coding": [{"system": "http://loinc.org", "code": " 718-7"}]}}));
    rejected_now_accepted_before(obs, "Observation.code.coding[0].code: not a valid code");
    rejected_now_accepted_before(patient(json!({"id": "has space"})), "Patient.id: not a valid id");
}

#[test]
fn an_empty_string_is_rejected() {
    rejected_now_accepted_before(
        patient(json!({"name": [{"family": ""}]})),
        "Patient.name[0].family: not a valid string",
    );
}

#[test]
fn nested_resources_are_checked_in_bundles_contained_and_parameters() {
    let bundle = json!({"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": patient(json!({}))},
        {"resource": observation(json!({"status": "bogus"}))}
    ]});
    rejected_now_accepted_before(
        bundle,
        "Bundle.entry[1].resource(Observation).status: not one of the allowed codes",
    );
    let contained = observation(json!({"contained": [patient(json!({"gender": "alien"}))]}));
    rejected_now_accepted_before(
        contained,
        "Observation.contained[0](Patient).gender: not one of the allowed codes",
    );
    let params = json!({"resourceType": "Parameters", "parameter": [{"name": "p", "resource": patient(json!({"active": "true"}))}]});
    rejected_now_accepted_before(
        params,
        "Parameters.parameter[0].resource(Patient).active: expected a JSON boolean",
    );
}

#[test]
fn r4_rules_fhirbolt_enforced_still_hold() {
    // Not in the schema, derived from HL7's StructureDefinitions instead.
    let no_status = json!({"resourceType": "Observation", "code": {"text": "Hb"}});
    assert_eq!(
        check_r4_value(&no_status).map_err(|e| e.to_string()),
        Err("not a valid FHIR R4 resource: Observation.status: required element missing".into())
    );
    // A required primitive may be given by its extension sibling alone (data-absent-reason).
    let absent = json!({"resourceType": "Observation", "code": {"text": "Hb"},
        "_status": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]}});
    assert_eq!(check_r4_value(&absent), Ok(()));
    let two = observation(json!({"valueString": "x", "valueBoolean": true}));
    assert_eq!(
        check_r4_value(&two).map_err(|e| e.to_string()),
        Err("not a valid FHIR R4 resource: Observation.value[x]: more than one type given".into())
    );
    let big = patient(json!({"multipleBirthInteger": 2147483648u64}));
    assert!(check_r4_value(&big).is_err());
}

#[test]
fn an_empty_array_is_rejected_where_fhirbolt_panicked() {
    let empty = patient(json!({"identifier": []}));
    assert!(
        std::panic::catch_unwind(|| fhirbolt_strict_accepts(&empty)).is_err(),
        "fhirbolt 0.4 panics here"
    );
    assert_eq!(
        check_r4_value(&empty).map_err(|e| e.to_string()),
        Err("not a valid FHIR R4 resource: Patient.identifier: an array must not be empty".into())
    );
}

/// Where a planted value goes in an otherwise valid resource, and the JSON built around it.
fn plant(site: usize, v: &str) -> Value {
    match site {
        0 => patient(json!({"gender": v})),
        1 => patient(json!({"birthDate": v})),
        2 => patient(json!({"active": v})),
        3 => patient(json!({"id": v})),
        4 => patient(json!({"name": v})),
        5 => observation(json!({"status": v})),
        6 => observation(json!({"effectiveDateTime": v})),
        7 => observation(json!({"valueQuantity": {"value": v}})),
        8 => observation(json!({"code": {"coding": [{"system": v, "code": v}]}})),
        9 => json!({"resourceType": v}),
        10 => json!({"resourceType": "Bundle", "type": v}),
        11 => observation(json!({"issued": v})),
        _ => patient(json!({"telecom": [{"system": "phone", "value": v, "use": v}]})),
    }
}

#[test]
fn errors_never_quote_the_offending_value_table() {
    let secret = "9434765919 Ann Smith";
    for site in 0..13 {
        for v in [secret, "01/02/1980", "alien", "true", " final", "urn:uuid:x y"] {
            if let Err(e) = check_r4_value(&plant(site, v)) {
                let msg = e.to_string();
                assert!(!msg.contains(v), "site {site}: {msg:?} contains {v:?}");
            }
        }
    }
}

proptest! {
    #[test]
    fn errors_never_quote_the_offending_value(site in 0usize..13, v in "zq[ -~]{2,24}") {
        let value = plant(site, &v);
        if let Err(e) = check_r4_value(&value) {
            prop_assert!(!e.to_string().contains(&v), "{} contains {:?}", e, v);
        }
        let bytes = serde_json::to_vec(&value).expect("serialises");
        if let Err(e) = check_r4_resource(&bytes) {
            prop_assert!(!e.to_string().contains(&v), "{} contains {:?}", e, v);
        }
    }
}
