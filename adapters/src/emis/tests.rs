//! The EMIS-style reader: its notation, what it refuses, and the golden fixtures (EMIS JSON in,
//! UK Core R4 out). The adapter against its simulator is in `tideway_simulators::emis`.

use serde_json::Value;
use tideway_profiles::{maps, systems};

use super::mapping::{EXPORT_VERSION, emis_read_code, read_organisation, read_record, read_search};
use crate::adapter::{AdapterError, RejectionKind, SourceRecord};
use crate::gp_record::golden::{self, codings, mapped_by, pair, resource};
use crate::gp_record::model::{CodeScheme, EntryKind, Extract, Sex};

fn read(body: &[u8]) -> Extract {
    read_record(body).expect("the fixture reads")
}

fn edge_cases() -> SourceRecord {
    golden::check("emis", "edge-cases", "emis.json", read)
}

#[test]
fn read_codes_in_emis_notation_become_the_five_byte_code_and_its_term_id() {
    let read = |s| emis_read_code(s).map(|(c, t)| format!("{c}{t}"));
    assert_eq!(read("C10F").as_deref(), Some("C10F.00"));
    assert_eq!(read("C10F-1").as_deref(), Some("C10F.11"));
    assert_eq!(read("H3-1").as_deref(), Some("H3...11"));
    assert_eq!(read("E11-2").as_deref(), Some("E11..12"));
    assert_eq!(read("C10F.").as_deref(), Some("C10F.00"), "a dotted code is read too");
    assert_eq!(read("8CAa").as_deref(), Some("8CAa.00"), "Read v2 is case-sensitive");
    for local in ["EMISNQHA14", "EMISICD10|F2044", "C10F-0", "C10F-12", "", "-1", "C1 0F"] {
        assert_eq!(read(local), None, "{local}");
    }
}

#[test]
fn the_export_is_read_with_every_code_in_emis_order_and_dates_at_their_precision() {
    let body = std::fs::read(golden::dir("emis").join("edge-cases.emis.json")).unwrap();
    let x = read_record(&body).unwrap();
    assert_eq!(x.patient.nhs_number.as_deref(), Some("9990000018"), "the spaced number is read");
    assert!(!x.patient.nhs_number_verified, "only Verified counts as verified");
    assert_eq!(x.patient.sex, Sex::Other);
    assert_eq!(x.practice.as_ref().unwrap().ods_code, "F80001");
    let entry = |id: &str| x.entries.iter().find(|e| e.local_id == id).unwrap();
    let older = entry("ev-older-synonym");
    let schemes: Vec<_> =
        older.codes.iter().map(|c| (&c.scheme, c.code.as_str(), c.term_id.as_deref())).collect();
    assert_eq!(
        schemes,
        [(&CodeScheme::EmisCode, "613791000006115", None), (&CodeScheme::ReadV2, "E11..", Some("12"))]
    );
    assert_eq!(older.kind, EntryKind::Problem { active: false, onset: Some("2009".into()) });
    assert_eq!(entry("ev-read-only").date.as_deref(), Some("2008-03"));
    assert_eq!(entry("ev-value").date.as_deref(), Some("2021-04-05T10:30:00Z"));
    assert_eq!(entry("ev-emis-local").codes[1].scheme, CodeScheme::EmisLocal);
    let issue = entry("iss-1");
    assert!(matches!(&issue.kind, EntryKind::Prescription { quantity: Some(q), .. } if q == "100"));
    // The event of an unknown type and the one without a guid are reported, content-free.
    let reasons: Vec<_> = x.unreadable.iter().map(|u| u.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "an EMIS event of a type this adapter does not read",
            "an EMIS AllergyIntolerance entry without a guid"
        ]
    );
}

#[test]
fn the_edge_case_fixture_normalises_to_its_snapshot_with_every_entry_accounted_for() {
    let record = edge_cases();
    let other: Vec<_> = record.rejected.iter().filter(|r| r.kind == RejectionKind::OtherPatient).collect();
    assert_eq!(other.len(), 1);
    assert_eq!(record.rejected.len(), 3, "{:?}", record.rejected);
    assert!(!record.resources.iter().any(|r| r.id.ends_with("ev-other-patient")));
}

#[test]
fn an_emis_code_id_gains_its_snomed_coding_from_the_emis_snomed_map() {
    let record = edge_cases();
    let condition = resource(&record, "ev-code-id-only");
    assert_eq!(
        codings(&condition["code"]),
        [pair(systems::EMIS_CODE_ID, "295535012"), pair(systems::SNOMED_CT, "35489007")]
    );
    assert_eq!(
        mapped_by(&condition["code"], systems::SNOMED_CT),
        Some(format!("emis-snomed {}", maps::version()))
    );
    // An EMIS local code beside its code id: kept as EMIS wrote it, never read as Read v2; the
    // code id maps.
    let local = resource(&record, "ev-emis-local");
    assert_eq!(
        codings(&local["code"]),
        [
            pair(systems::EMIS_CODE_ID, "1008691000006110"),
            pair(systems::EMIS_LOCAL_CODE, "EMISNQHA14"),
            pair(systems::SNOMED_CT, "1008691000006106")
        ]
    );
    let tags: Vec<&str> =
        local["meta"]["tag"].as_array().into_iter().flatten().filter_map(|t| t["code"].as_str()).collect();
    assert_eq!(tags, [maps::MAPPED_TAG_CODE], "mapped, so not flagged unmapped");
}

#[test]
fn a_read_v2_synonym_maps_by_its_term_id_not_by_the_codes_preferred_term() {
    let record = edge_cases();
    // E11.. term 12 is "Depressive psychoses" (35489007); the preferred term 00 of E11.. is a
    // different concept (46206005), which ignoring the term id would have given.
    let read_only = resource(&record, "ev-read-only");
    let codes = codings(&read_only["code"]);
    assert_eq!(codes, [pair(systems::READ_V2, "E11.."), pair(systems::SNOMED_CT, "35489007")]);
    assert_eq!(read_only["code"]["coding"][0]["extension"][0]["valueString"], "12");
    assert_eq!(
        mapped_by(&read_only["code"], systems::SNOMED_CT),
        Some(format!("readv2-snomed {}", maps::version()))
    );
    assert!(matches!(
        maps::lookup(systems::READ_V2, "E11..", None),
        maps::Lookup::Mapped { code: "46206005", .. }
    ));
    // With its code id beside it, the code id's map speaks first, to the same concept.
    let older = resource(&record, "ev-older-synonym");
    assert_eq!(codings(&older["code"]).last(), Some(&pair(systems::SNOMED_CT, "35489007")));
}

#[test]
fn an_emis_product_code_id_gains_its_dm_d_coding() {
    let record = edge_cases();
    let course = resource(&record, "med-1");
    assert_eq!(
        codings(&course["medicationCodeableConcept"]),
        [pair(systems::EMIS_PRODUCT_CODE_ID, "370641000033114"), pair(systems::DM_D, "322341003")]
    );
    assert_eq!(
        mapped_by(&course["medicationCodeableConcept"], systems::DM_D),
        Some(format!("emis-dmd {}", maps::version()))
    );
    // An issue already carrying dm+d gets nothing added.
    assert_eq!(codings(&resource(&record, "iss-1")["medicationCodeableConcept"]).len(), 2);
}

#[test]
fn a_code_no_map_translates_is_carried_and_tagged() {
    let record = edge_cases();
    let procedure = resource(&record, "ev-unmapped");
    assert_eq!(codings(&procedure["code"]), [pair(systems::READ_V2, "9Ov4.")]);
    assert_eq!(procedure["meta"]["tag"][0]["code"], maps::UNMAPPED_TAG_CODE);
    assert_eq!(procedure["code"]["text"], "Depression monitoring telephone invite");
}

#[test]
fn what_is_not_this_export_is_refused_as_malformed_naming_nothing_of_it() {
    let malformed = |body: &str| match read_record(body.as_bytes()) {
        Err(AdapterError::Malformed(why)) => why,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        malformed("{\"exportVersion\": \"tideway-emis-1\", \"patient\": {\"patientGuid\""),
        "the EMIS export is not JSON"
    );
    assert_eq!(
        malformed(r#"{"exportVersion": "emis-2", "patient": {"patientGuid": "p"}}"#),
        "the EMIS export is not of a version this adapter reads"
    );
    let v = EXPORT_VERSION;
    assert_eq!(malformed(&format!(r#"{{"exportVersion": "{v}"}}"#)), "the EMIS export names no patient");
    let why = malformed(&format!(
        r#"{{"exportVersion": "{v}", "patient": {{"patientGuid": "p"}}, "events": {{"x": "Secret Name"}}}}"#
    ));
    assert_eq!(why, "a section of the EMIS export is not a list");
    assert!(!why.contains("Secret"));
    let why = malformed(&format!(
        r#"{{"exportVersion": "{v}", "patient": {{"patientGuid": "p"}}, "links": {{"next": "http://elsewhere.invalid/2"}}}}"#
    ));
    assert_eq!(why, "the EMIS export continues on another page, which is never fetched");
}

#[test]
fn entries_that_are_not_objects_are_reported_not_dropped() {
    let v = EXPORT_VERSION;
    let body = format!(
        r#"{{"exportVersion": "{v}", "patient": {{"patientGuid": "p"}}, "medicationIssues": [42, "x"]}}"#
    );
    let x = read(body.as_bytes());
    assert_eq!(x.unreadable.len(), 2);
    assert_eq!(x.unreadable[0].resource_type.as_deref(), Some("MedicationRequest"));
    let (record, _) = golden::run(x);
    assert_eq!(record.resources.len(), 1);
}

#[test]
fn a_search_answer_lists_patients_with_their_practice_and_no_entries() {
    let body =
        br#"{"patients": [{"patientGuid": "p1", "nhsNumber": "999 000 0018", "nhsNumberStatus": "Verified",
        "sex": "F", "organisation": {"guid": "F80001", "odsCode": "F80001", "name": "Camden"}}]}"#;
    let found = read_search(body).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].patient.nhs_number.as_deref(), Some("9990000018"));
    assert!(found[0].patient.nhs_number_verified);
    assert_eq!(found[0].practice.as_ref().unwrap().local_id, "F80001");
    assert!(read_search(br#"{"patients": []}"#).unwrap().is_empty());
    assert!(matches!(read_search(b"{}"), Err(AdapterError::Malformed(_))));
    assert!(matches!(read_search(br#"{"patients": [{"nhsNumber": "1"}]}"#), Err(AdapterError::Malformed(_))));
    assert_eq!(
        read_organisation(br#"{"guid": "F1", "odsCode": "F80001", "name": "n"}"#).unwrap().ods_code,
        "F80001"
    );
    assert!(read_organisation(br#"{"guid": "F1"}"#).is_err());
}

#[test]
fn the_scenario_patients_fixtures_normalise_to_their_snapshots_with_nothing_rejected() {
    // Rendered by the EMIS-style simulator from the population (its tests keep them current).
    for name in ["sensitive", "podiatry-diabetic"] {
        let record = golden::check("emis", name, "emis.json", read);
        assert!(record.rejected.is_empty(), "{name}: {:?}", record.rejected);
    }
    // The podiatry-diabetic patient's co-codamol carries its EMIS product code id beside dm+d.
    let record = golden::check("emis", "podiatry-diabetic", "emis.json", read);
    let course = record.resources.iter().find(|r| r.id.ends_with("-ms-s0")).expect("the co-codamol");
    let v: Value = serde_json::from_slice(&course.json).unwrap();
    assert_eq!(
        codings(&v["medicationCodeableConcept"]),
        [pair(systems::EMIS_PRODUCT_CODE_ID, "370641000033114"), pair(systems::DM_D, "322341003")]
    );
}

/// Every item of the export is either read or reported: each item of a part the reader does not
/// know, and an organisation that cannot be read.
#[test]
fn every_item_of_the_export_is_read_or_reported_whatever_part_it_is_in() {
    let v = EXPORT_VERSION;
    let body = format!(
        r#"{{"exportVersion": "{v}", "patient": {{"patientGuid": "p"}}, "organisation": {{"guid": "o"}},
            "documents": [{{"guid": "d1"}}, {{"guid": "d2"}}], "alerts": {{"guid": "a1"}}, "notes": null}}"#
    );
    let x = read(body.as_bytes());
    let reasons: Vec<&str> = x.unreadable.iter().map(|u| u.reason.as_str()).collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "a row in a part of the extract the adapter does not read").count(),
        3,
        "two documents and one alert: {reasons:?}"
    );
    assert!(reasons.contains(&"the practice, which could not be read"), "{reasons:?}");
    assert_eq!(x.unreadable.len(), 4);
}
