//! The Vision-style reader: its Read codes, what it refuses, and the golden fixtures (Vision
//! XML in, UK Core R4 out). The adapter against its simulator is in `tideway_simulators::vision`.

use tideway_profiles::{maps, systems};

use super::mapping::{practice_document, read_code, record, search};
use crate::adapter::{AdapterError, RejectionKind, SourceRecord};
use crate::gp_record::golden::{self, codings, mapped_by, pair, resource};
use crate::gp_record::model::{CodeScheme, Extract, Sex};

fn read(body: &[u8]) -> Extract {
    record(body).expect("the fixture reads")
}

fn edge_cases() -> SourceRecord {
    golden::check("vision", "edge-cases", "vision.xml", read)
}

#[test]
fn a_read_code_is_five_characters_of_code_and_two_of_term_id() {
    assert_eq!(read_code("C10F.00"), Some(("C10F.".into(), "00".into())));
    assert_eq!(read_code("E11..12"), Some(("E11..".into(), "12".into())));
    assert_eq!(read_code("8CAa.00"), Some(("8CAa.".into(), "00".into())));
    for bad in ["C10F.", "C10F.0", "C10F.000", ".....00", "C1 F.00", "C10F..."] {
        assert_eq!(read_code(bad), None, "{bad}");
    }
}

#[test]
fn the_edge_case_fixture_normalises_to_its_snapshot_with_every_entry_accounted_for() {
    let record = edge_cases();
    let reasons: Vec<(&RejectionKind, &str)> =
        record.rejected.iter().map(|r| (&r.kind, r.reason.as_str())).collect();
    assert_eq!(
        reasons,
        [
            (&RejectionKind::OtherPatient, "entry is filed under another patient"),
            (
                &RejectionKind::Unreadable,
                "a Vision Condition row with a Read code that is not 5 characters and a term id"
            ),
            (&RejectionKind::Unreadable, "a Vision journal row of a kind this adapter does not read"),
            (&RejectionKind::Unreadable, "a Vision AllergyIntolerance row with no id"),
        ]
    );
}

#[test]
fn the_record_is_read_with_vision_gender_and_nhs_number_status() {
    let body = std::fs::read(golden::dir("vision").join("edge-cases.vision.xml")).unwrap();
    let x = read(&body);
    assert_eq!(x.patient.sex, Sex::Unknown);
    assert!(!x.patient.nhs_number_verified, "status 02 is not verified");
    assert_eq!(x.practice.as_ref().unwrap().ods_code, "E84001");
    let synonym = x.entries.iter().find(|e| e.local_id == "cl-synonym").unwrap();
    assert_eq!(synonym.codes[0].scheme, CodeScheme::ReadV2);
    assert_eq!((synonym.codes[0].code.as_str(), synonym.codes[0].term_id.as_deref()), ("E11..", Some("12")));
}

#[test]
fn a_read_v2_code_with_its_term_id_maps_via_readv2_snomed_by_that_term() {
    let record = edge_cases();
    let synonym = resource(&record, "cl-synonym");
    assert_eq!(
        codings(&synonym["code"]),
        [pair(systems::READ_V2, "E11.."), pair(systems::SNOMED_CT, "35489007")]
    );
    assert_eq!(synonym["code"]["coding"][0]["extension"][0]["valueString"], "12");
    assert_eq!(
        mapped_by(&synonym["code"], systems::SNOMED_CT),
        Some(format!("readv2-snomed {}", maps::version()))
    );
    // Ignoring the term id would have said mood disorder (E11..00), not depressive psychoses.
    assert!(matches!(
        maps::lookup(systems::READ_V2, "E11..", Some("00")),
        maps::Lookup::Mapped { code: "46206005", .. }
    ));
    let preferred = resource(&record, "cl-preferred");
    assert_eq!(codings(&preferred["code"]).last(), Some(&pair(systems::SNOMED_CT, "44054006")));
}

#[test]
fn a_gemscript_medication_gains_its_dm_d_coding() {
    let record = edge_cases();
    let repeat = resource(&record, "th-repeat");
    assert_eq!(
        codings(&repeat["medicationCodeableConcept"]),
        [pair(systems::GEMSCRIPT, "80055020"), pair(systems::DM_D, "322341003")]
    );
    assert_eq!(
        mapped_by(&repeat["medicationCodeableConcept"], systems::DM_D),
        Some(format!("gemscript-dmd {}", maps::version()))
    );
    assert_eq!(repeat["status"], "active");
}

#[test]
fn a_code_no_map_translates_is_carried_and_tagged() {
    let record = edge_cases();
    let procedure = resource(&record, "cl-unmapped");
    assert_eq!(codings(&procedure["code"]), [pair(systems::READ_V2, "9Ov4.")]);
    assert_eq!(procedure["meta"]["tag"][0]["code"], maps::UNMAPPED_TAG_CODE);
}

#[test]
fn a_doctype_or_an_external_entity_refuses_the_whole_document() {
    let xxe = br#"<?xml version="1.0"?><!DOCTYPE VisionRecord [<!ENTITY x SYSTEM "http://127.0.0.1:9/secret">]><VisionRecord><Patient id="p">&x;</Patient></VisionRecord>"#;
    assert!(matches!(record(xxe), Err(AdapterError::Malformed(_))));
    assert!(matches!(
        record(b"<VisionRecord><Patient id=\"p\">&x;</Patient></VisionRecord>"),
        Err(AdapterError::Malformed(_))
    ));
    assert!(matches!(record(b"<Other/>"), Err(AdapterError::Malformed(_))));
    assert!(matches!(record(b"<VisionRecord/>"), Err(AdapterError::Malformed(_))));
    assert!(matches!(search(xxe), Err(AdapterError::Malformed(_))));
}

#[test]
fn a_search_answer_lists_patients_with_their_practice_and_no_entries() {
    let body = br#"<VisionPatients xmlns="urn:tideway:dialect:vision:1"><Patient id="p1"><NhsNumber status="01">9990000018</NhsNumber><Gender>2</Gender><Practice id="E1" ods="E84001">Brent</Practice></Patient></VisionPatients>"#;
    let found = search(body).unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].patient.nhs_number_verified);
    assert_eq!(found[0].patient.sex, Sex::Female);
    assert_eq!(found[0].practice.as_ref().unwrap().local_id, "E1");
    assert!(search(b"<VisionPatients/>").unwrap().is_empty());
    assert_eq!(
        practice_document(br#"<Practice id="E1" ods="E84001">Brent</Practice>"#).unwrap().name,
        "Brent"
    );
    assert!(practice_document(br#"<Practice id="E1">Brent</Practice>"#).is_err());
}

#[test]
fn the_scenario_patients_fixtures_normalise_to_their_snapshots_with_nothing_rejected() {
    // Rendered by the Vision-style simulator from the population (its tests keep them current).
    for name in ["sensitive", "podiatry-diabetic"] {
        let record = golden::check("vision", name, "vision.xml", read);
        assert!(record.rejected.is_empty(), "{name}: {:?}", record.rejected);
    }
    // The podiatry-diabetic patient's co-codamol is an older Gemscript-only therapy row.
    let record = golden::check("vision", "podiatry-diabetic", "vision.xml", read);
    let course = record.resources.iter().find(|r| r.id.ends_with("-ms-s0")).expect("the co-codamol");
    let v: serde_json::Value = serde_json::from_slice(&course.json).unwrap();
    assert_eq!(
        codings(&v["medicationCodeableConcept"]),
        [pair(systems::GEMSCRIPT, "80055020"), pair(systems::DM_D, "322341003")]
    );
}

/// Every row of the document is either read or reported: a code in a scheme the reader does
/// not know makes its row reported (never a code silently dropped), each row of a part the
/// reader does not know is counted, every Journal is read, and a practice that cannot be read
/// is reported.
#[test]
fn every_row_of_the_document_is_read_or_reported_and_no_code_is_dropped() {
    let doc = r#"<VisionRecord xmlns="urn:tideway:dialect:vision:1">
  <Practice id="u1">no ODS code</Practice>
  <Patient id="p1"><NhsNumber status="01">9990000018</NhsNumber></Patient>
  <Journal>
    <Clinical id="c1" patient="p1" date="2019-01-01" category="problem" status="active"><Snomed concept="44054006">Type 2 diabetes</Snomed></Clinical>
    <Clinical id="c2" patient="p1" date="2019-01-01" category="problem" status="active"><Snomed concept="44054006"/><Icd10 code="E11"/></Clinical>
  </Journal>
  <Attachments><Attachment id="a1"/></Attachments>
  <Journal>
    <Clinical id="c3" patient="p1" date="2020-01-01" category="problem" status="active"><Snomed concept="38341003"/></Clinical>
  </Journal>
</VisionRecord>"#;
    let x = read(doc.as_bytes());
    let ids: Vec<&str> = x.entries.iter().map(|e| e.local_id.as_str()).collect();
    assert_eq!(ids, ["c1", "c3"]);
    let reasons: Vec<&str> = x.unreadable.iter().map(|u| u.reason.as_str()).collect();
    assert!(reasons.contains(&"the practice, which could not be read"), "{reasons:?}");
    assert!(reasons.contains(&"a row in a part of the extract the adapter does not read"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("a part of a row this reader does not know")), "{reasons:?}");
    // Rows in the document: three journal rows, one attachment, the practice.
    assert_eq!(x.entries.len() + x.unreadable.len(), 5);
}
