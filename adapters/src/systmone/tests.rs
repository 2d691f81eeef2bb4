use super::mapping;
use crate::adapter::AdapterError;
use crate::gp_record::model::{CodeScheme, EntryKind, Sex};

const EXTRACT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<SystmOneExtract xmlns="urn:tideway:dialect:systmone:1">
  <Patient ID="p1"><NHSNumber Traced="true">9990000018</NHSNumber><FirstName>Ada</FirstName>
    <Surname>Lovelace</Surname><Sex>F</Sex><DateOfBirth>1950-01-02</DateOfBirth>
    <RegisteredUnit ID="F80001" ODS="F80001">Camden Medical Centre</RegisteredUnit></Patient>
  <Events><Event ID="e1" PatientID="p1" Date="2019-03-04T09:00:00Z" End="2019-03-04T09:20:00Z" LastUpdated="2024-01-01T00:00:00Z">
    <Code Scheme="SNOMED" Value="185317003" Term="Telephone encounter"/><Reason ProblemID="c1"/></Event></Events>
  <CodedEntries>
    <Entry ID="c1" Type="Problem" PatientID="p1" EventID="e1" Onset="2010-01-01" Status="Active"><Code Scheme="CTV3" Value="X40J5" Term="Type 2 diabetes"/></Entry>
    <Entry ID="o1" Type="Observation" PatientID="p1"><Code Scheme="SNOMED" Value="1107481000000106"/><NumericValue Units="mmol/mol">48.50</NumericValue></Entry>
    <Entry ID="z1" Type="Letter" PatientID="p1"/>
    <Entry ID="q1" Type="Problem" PatientID="p1"><Code Scheme="ICD10" Value="E11"/></Entry>
  </CodedEntries>
  <Medication><Issue ID="m1" PatientID="p2"><Code Scheme="DMD" Value="325278000"/><Quantity Units="tablet">28</Quantity></Issue></Medication>
</SystmOneExtract>"#;

#[test]
fn an_extract_reads_every_row_with_its_scheme_and_patient() {
    let x = mapping::extract(EXTRACT.as_bytes()).unwrap();
    assert_eq!(x.patient.local_id, "p1");
    assert!(x.patient.nhs_number_verified);
    assert_eq!(x.patient.sex, Sex::Female);
    assert_eq!(x.practice.as_ref().unwrap().ods_code, "F80001");
    let ids: Vec<&str> = x.entries.iter().map(|e| e.local_id.as_str()).collect();
    assert_eq!(ids, ["e1", "c1", "o1", "m1"]);
    assert_eq!(x.entries[1].codes[0].scheme, CodeScheme::Ctv3);
    assert!(matches!(&x.entries[0].kind, EntryKind::Consultation { reasons, .. } if reasons == &["c1"]));
    assert!(matches!(&x.entries[2].kind, EntryKind::Observation { value: Some(v), .. } if v == "48.50"));
    assert_eq!(x.entries[3].patient, "p2", "the row says whose it is");
    // The letter (a type not read) and the ICD-10 problem (a scheme not read) are reported.
    assert_eq!(x.unreadable.len(), 2);
    assert_eq!(x.unreadable[1].resource_type.as_deref(), Some("Condition"));
}

#[test]
fn documents_that_are_not_extracts_or_declare_a_doctype_are_refused() {
    let doctype = EXTRACT.replace(
        "<SystmOneExtract",
        "<!DOCTYPE x [<!ENTITY e SYSTEM \"http://127.0.0.1:9/\">]><SystmOneExtract",
    );
    assert!(matches!(mapping::extract(doctype.as_bytes()), Err(AdapterError::Malformed(_))));
    assert!(matches!(mapping::extract(b"<Unit ID='a' ODS='b'/>"), Err(AdapterError::Malformed(_))));
    assert!(matches!(mapping::extract(b"{\"resourceType\":\"Bundle\"}"), Err(AdapterError::Malformed(_))));
    assert!(matches!(
        mapping::extract(b"<SystmOneExtract><Patient/></SystmOneExtract>"),
        Err(AdapterError::Malformed(_))
    ));
}

#[test]
fn a_search_answer_names_each_patient_and_a_unit_reads_as_the_practice() {
    let answer = br#"<PatientSearchResult><Patient ID="p1"><NHSNumber>9990000018</NHSNumber></Patient></PatientSearchResult>"#;
    let found = mapping::search(answer).unwrap();
    assert_eq!(found.len(), 1);
    assert!(!found[0].patient.nhs_number_verified);
    assert!(mapping::search(b"<PatientSearchResult/>").unwrap().is_empty());
    let unit = mapping::unit(br#"<Unit ID="F80001" ODS="F80001">Camden MC</Unit>"#).unwrap();
    assert_eq!(unit.name, "Camden MC");
}

/// Every row of the document is either read or reported: each row of a part the reader does
/// not know, every section of a name however often it comes, a practice that cannot be read.
#[test]
fn every_row_of_the_document_is_read_or_reported_whatever_part_it_is_in() {
    let doc = r#"<SystmOneExtract xmlns="urn:tideway:dialect:systmone:1">
  <Patient ID="p1"><NHSNumber Traced="true">9990000018</NHSNumber><RegisteredUnit ID="F80001">no ODS code</RegisteredUnit></Patient>
  <Events><Event ID="e1" PatientID="p1" Date="2019-03-04T09:00:00Z"><Code Scheme="SNOMED" Value="185317003"/></Event></Events>
  <Letters><Letter ID="l1"/><Letter ID="l2"/></Letters>
  <Events><Event ID="e2" PatientID="p1" Date="2020-03-04T09:00:00Z"><Code Scheme="SNOMED" Value="185317003"/></Event></Events>
</SystmOneExtract>"#;
    let x = mapping::extract(doc.as_bytes()).unwrap();
    let ids: Vec<&str> = x.entries.iter().map(|e| e.local_id.as_str()).collect();
    assert_eq!(ids, ["e1", "e2"], "the repeated section is read too");
    let reasons: Vec<&str> = x.unreadable.iter().map(|u| u.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "a row in a part of the extract the adapter does not read",
            "a row in a part of the extract the adapter does not read",
            "the practice, which could not be read",
        ]
    );
    // Rows in the document: two events, two letters, the practice.
    assert_eq!(x.entries.len() + x.unreadable.len(), 5);
}

/// The hand-written edge cases (a CTV3-only problem, a local `Y` code, an ended problem coded
/// twice, an open out-of-hours call, a problem in a scheme the reader does not know, one
/// without a code, one filed under another patient, a type it does not read, a part it does
/// not read, a repeated section) normalise to the committed snapshot, and every row of the
/// document, counted from the document itself, is a resource or a rejection.
#[test]
fn the_edge_case_fixture_normalises_to_its_snapshot_with_every_row_accounted_for() {
    use crate::adapter::RejectionKind;
    use crate::gp_record::golden;
    let record = golden::check("systmone", "edge-cases", "systmone.xml", |body| {
        mapping::extract(body).expect("the fixture reads")
    });
    let text = std::fs::read_to_string(golden::dir("systmone").join("edge-cases.systmone.xml")).unwrap();
    // The patient, its practice, and every element under a section.
    let rows = 2 + ["<Event ", "<Entry ", "<Issue ", "<Letter "]
        .iter()
        .map(|t| text.matches(t).count())
        .sum::<usize>();
    assert_eq!(rows, 15);
    assert_eq!(record.resources.len() + record.rejected.len(), rows);
    let kinds: Vec<RejectionKind> = record.rejected.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RejectionKind::Unreadable,
            RejectionKind::OtherPatient,
            RejectionKind::Unreadable,
            RejectionKind::Unreadable,
            RejectionKind::Unreadable,
            RejectionKind::Unreadable,
        ]
    );
    let ids: Vec<&str> = record.resources.iter().map(|r| r.id.as_str()).collect();
    for id in ["golden.e1", "golden.e2", "golden.c1", "golden.c2", "golden.o1", "golden.m1", "golden.c6"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
}
