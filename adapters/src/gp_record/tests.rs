use serde_json::Value;
use tideway_profiles::{maps, systems};

use super::model::*;
use super::r4::normalise;
use crate::adapter::{RejectionKind, SourceRecord};
use crate::fhir_r4::mapping::Normaliser;
use crate::source::SourceId;

fn code(scheme: CodeScheme, code: &str, term: Option<&str>) -> SourceCode {
    SourceCode { scheme, code: code.into(), term_id: term.map(Into::into), display: Some("term".into()) }
}

fn entry(id: &str, kind: EntryKind, codes: Vec<SourceCode>) -> Entry {
    Entry {
        local_id: id.into(),
        patient: "p1".into(),
        kind,
        codes,
        text: None,
        date: Some("2019-03-04".into()),
        recorded: Some("2019-03-04".into()),
        consultation: Some("c1".into()),
        last_updated: Some("2024-01-02T03:04:05Z".into()),
    }
}

fn extract() -> Extract {
    let snomed = |c: &str| code(CodeScheme::Snomed, c, None);
    Extract {
        patient: Patient {
            local_id: "p1".into(),
            nhs_number: Some("9990000018".into()),
            nhs_number_verified: true,
            given: Some("Ada".into()),
            family: Some("Lovelace".into()),
            sex: Sex::Female,
            birth_date: Some("1950-01-02".into()),
            address_line: Some("1 High Street".into()),
            address_district: Some("Camden".into()),
            postcode: Some("NW1 1AA".into()),
            restricted: false,
            date_of_death: None,
        },
        practice: Some(Practice {
            local_id: "org1".into(),
            ods_code: "F80001".into(),
            name: "Camden MC".into(),
        }),
        entries: vec![
            entry(
                "c1",
                EntryKind::Consultation {
                    open: false,
                    end: Some("2019-03-04".into()),
                    with_service: None,
                    reasons: vec!["d1".into()],
                },
                vec![snomed("185317003")],
            ),
            entry(
                "d1",
                EntryKind::Problem { active: true, onset: Some("2019".into()) },
                vec![code(CodeScheme::ReadV2, "E2B..", Some("00"))],
            ),
            entry(
                "d2",
                EntryKind::Problem { active: false, onset: None },
                vec![code(CodeScheme::Ctv3, "X00SO", None)],
            ),
            entry(
                "m1",
                EntryKind::Medication { current: true, dosage: Some("One daily".into()) },
                vec![code(CodeScheme::Dmd, "321968002", None)],
            ),
            entry(
                "m2",
                EntryKind::Prescription {
                    dosage: None,
                    quantity: Some("28".into()),
                    quantity_unit: Some("tablet".into()),
                },
                vec![code(CodeScheme::Gemscript, "00000000", None)],
            ),
            entry("a1", EntryKind::Allergy { active: true }, vec![snomed("91936005")]),
            entry(
                "o1",
                EntryKind::Observation { value: Some("48.50".into()), unit: Some("mmol/mol".into()) },
                vec![snomed("1107481000000106")],
            ),
            entry(
                "i1",
                EntryKind::Immunisation { dose_ml: Some("0.50".into()) },
                vec![code(CodeScheme::Dmd, "39114911000001105", None)],
            ),
            entry("x1", EntryKind::Procedure, vec![snomed("71388002")]),
            entry(
                "r1",
                EntryKind::Referral { to: Some("YPOD1".into()), problem: Some("d1".into()), open: true },
                vec![snomed("371087003")],
            ),
        ],
        unreadable: vec![Unreadable {
            resource_type: Some("Observation".into()),
            reason: "a result without a code".into(),
        }],
    }
}

fn run(extract: Extract) -> (SourceRecord, super::r4::Normalised) {
    let source = SourceId::parse("camden").unwrap();
    let base = url::Url::parse("http://camden.example/s1/").unwrap();
    let n =
        Normaliser { source: &source, base_url: &base, patient_local_id: "p1", gateway_patient_id: "gw-1" };
    let mut out = SourceRecord::default();
    let done = normalise(&n, extract, &mut out);
    (out, done)
}

fn json(r: &crate::adapter::NormalisedResource) -> Value {
    serde_json::from_slice(&r.json).unwrap()
}

#[test]
fn every_entry_of_an_extract_is_either_passed_on_or_reported() {
    let input = extract();
    let expected = 1 + 1 + input.entries.len() + input.unreadable.len();
    let (out, _) = run(input);
    assert_eq!(out.resources.len() + out.rejected.len(), expected);
    assert_eq!(out.rejected.len(), 1, "{:?}", out.rejected);
    let types: Vec<&str> = out.resources.iter().map(|r| r.resource_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "Patient",
            "Organization",
            "Encounter",
            "Condition",
            "Condition",
            "MedicationStatement",
            "MedicationRequest",
            "AllergyIntolerance",
            "Observation",
            "Immunization",
            "Procedure",
            "ServiceRequest"
        ]
    );
    for r in &out.resources {
        let v = json(r);
        assert_eq!(v["meta"]["source"], "urn:tideway:source:camden");
        let profile = v["meta"]["profile"][0].as_str().unwrap();
        assert_eq!(
            profile,
            format!("https://fhir.hl7.org.uk/StructureDefinition/UKCore-{}", r.resource_type)
        );
        assert!(r.facts.is_about("gw-1") || r.resource_type == "Organization", "{}", r.id);
    }
}

#[test]
fn the_nhs_number_carries_its_uk_core_verification_status() {
    let (out, _) = run(extract());
    let patient = json(&out.resources[0]);
    assert_eq!(patient["id"], "gw-1");
    let id = &patient["identifier"][0];
    assert_eq!(id["system"], systems::NHS_NUMBER);
    assert_eq!(id["extension"][0]["valueCodeableConcept"]["coding"][0]["code"], "01");
    assert_eq!(patient["generalPractitioner"][0]["reference"], "Organization/camden.org1");
    let mut untraced = extract();
    untraced.patient.nhs_number_verified = false;
    let (out, _) = run(untraced);
    let patient = json(&out.resources[0]);
    assert_eq!(patient["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"], "02");
}

#[test]
fn read_v2_keeps_its_term_id_and_gains_the_mapped_snomed_coding() {
    let (out, done) = run(extract());
    let condition = json(out.resources.iter().find(|r| r.id == "camden.d1").unwrap());
    let codings = condition["code"]["coding"].as_array().unwrap();
    assert_eq!(codings[0]["system"], systems::READ_V2);
    assert_eq!(codings[0]["code"], "E2B..");
    assert_eq!(codings[0]["extension"][0]["valueString"], "00");
    assert_eq!(codings[1]["system"], systems::SNOMED_CT);
    assert_eq!(codings[1]["code"], "35489007");
    assert_eq!(codings[1]["extension"][0]["valueString"], format!("readv2-snomed {}", maps::version()));
    assert!(done.mapped >= 1);
}

#[test]
fn unmapped_legacy_codes_are_carried_and_flagged_never_dropped() {
    let (out, done) = run(extract());
    let condition = json(out.resources.iter().find(|r| r.id == "camden.d2").unwrap());
    assert_eq!(condition["code"]["coding"].as_array().unwrap().len(), 1);
    assert_eq!(condition["code"]["coding"][0]["code"], "X00SO");
    assert_eq!(condition["meta"]["tag"][0]["code"], maps::UNMAPPED_TAG_CODE);
    // The CTV3 problem and the Gemscript code no map holds.
    assert_eq!(done.unmapped, 2);
}

#[test]
fn entries_filed_under_another_patient_are_refused_without_content() {
    let mut input = extract();
    input.entries[5].patient = "p2".into();
    let (out, _) = run(input);
    let other: Vec<_> = out.rejected.iter().filter(|r| r.kind == RejectionKind::OtherPatient).collect();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].resource_type.as_deref(), Some("AllergyIntolerance"));
    assert!(!out.resources.iter().any(|r| r.id == "camden.a1"));
}

#[test]
fn an_entry_without_a_code_or_with_a_bad_value_is_reported_not_passed_on() {
    let mut input = extract();
    input.entries[1].codes.clear();
    if let EntryKind::Observation { value, .. } = &mut input.entries[6].kind {
        *value = Some("high".into());
    }
    input.entries[3].date = Some("03/04/2019".into());
    let (out, _) = run(input);
    let reasons: Vec<&str> = out.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert!(reasons.contains(&"a Condition entry without any code"), "{reasons:?}");
    assert!(reasons.contains(&"a value that is not a decimal number"), "{reasons:?}");
    assert_eq!(out.rejected.len(), 4, "{reasons:?}");
    assert!(out.rejected.iter().all(|r| !r.reason.contains("high") && !r.reason.contains("03/04")));
}

#[test]
fn a_referral_is_a_service_request_to_the_service_by_ods_code() {
    let (out, _) = run(extract());
    let r = out.resources.iter().find(|r| r.id == "camden.r1").unwrap();
    assert_eq!(r.facts.care_providers, ["ods:YPOD1"]);
    let v = json(r);
    assert_eq!(v["reasonReference"][0]["reference"], "Condition/camden.d1");
    assert_eq!(v["status"], "active");
}

/// A UK Core 2.0.0 example from the shared data (HL7 UK, Apache-2.0).
fn uk_core_example(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/uk-core-r4-examples/json-converted-by-fhirjs")
        .join(format!("UKCore-{name}-Example.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("test data missing: {} (shared/ must sit beside the repository)", path.display())
    });
    serde_json::from_str(&text).unwrap()
}

/// The rules UK Core's own examples show, checked on what the GP adapters build: the NHS number
/// identifier with the England verification-status extension, the practice by ODS code, and
/// condition statuses and categories in the R4 code systems.
#[test]
fn patients_practices_and_problems_take_the_shapes_of_the_uk_core_examples() {
    let (out, _) = run(extract());
    let ours = json(&out.resources[0]);
    let theirs = uk_core_example("Patient-RichardSmith");
    let (a, b) = (&ours["identifier"][0], &theirs["identifier"][0]);
    assert_eq!(a["system"], b["system"]);
    assert_eq!(a["extension"][0]["url"], b["extension"][0]["url"]);
    let (ca, cb) = (
        &a["extension"][0]["valueCodeableConcept"]["coding"][0],
        &b["extension"][0]["valueCodeableConcept"]["coding"][0],
    );
    assert_eq!((&ca["system"], &ca["code"], &ca["display"]), (&cb["system"], &cb["code"], &cb["display"]));

    let org = json(&out.resources[1]);
    let theirs = uk_core_example("Organization-WhiteRoseMedicalCentre");
    assert_eq!(org["identifier"][0]["system"], theirs["identifier"][0]["system"]);

    let condition = json(out.resources.iter().find(|r| r.resource_type == "Condition").unwrap());
    let theirs = uk_core_example("Condition-BleedingFromEar");
    for field in ["clinicalStatus", "category"] {
        let system = |v: &Value| {
            let c = if v.is_array() { &v[0] } else { v };
            c["coding"][0]["system"].clone()
        };
        assert_eq!(system(&condition[field]), system(&theirs[field]), "{field}");
    }
}

#[test]
fn debug_output_of_an_extract_names_no_patient_data() {
    let x = extract();
    let text = format!("{x:?} {:?} {:?}", x.patient, x.entries[0]);
    for secret in ["Ada", "Lovelace", "9990000018", "1950-01-02", "High Street", "NW1"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(text.contains("entries: 10") && text.contains("Encounter"), "{text}");
}
