//! The population's facts as an EMIS-style JSON export (the format the adapter's
//! `tideway_adapters::emis::mapping` reads; its module docs describe it and the assumptions
//! behind it).
//!
//! Pure: the same record always renders to the same bytes. What the simulator decides, as EMIS
//! Web would have recorded it:
//! - Problems first recorded in Read v2 (the population's older entries) carry the EMIS code id
//!   and the Read v2 code EMIS ties to it, in EMIS's notation (`C10F`, `C10F-1`), and no SNOMED
//!   CT: the adapter's maps must supply it. Every other coded item carries its SNOMED CT concept,
//!   with the EMIS code id where the CPRD Aurum lists publish one ([`crate::gp_codes`]); where
//!   they publish none, SNOMED CT alone (no EMIS code id is made up). A CTV3 code in the
//!   population is SystmOne's history, not EMIS's: such a problem is rendered as a SNOMED CT-era
//!   entry.
//! - Medicines carry dm+d, with the EMIS product code id where the Aurum product lists publish
//!   one.
//! - Dates carry EMIS's precision: instants for consultations and results, days elsewhere.
//! - The population's ids are the export's guids, and the practice's guid is its ODS code.

use serde_json::{Map, Value, json};

use crate::gp_codes;
use crate::population::{Concept, Demographics, Gender, LegacyCode, PatientRecord};

/// The export version written (the adapter refuses any other).
pub const EXPORT_VERSION: &str = "tideway-emis-1";

fn at(value: &str, part: &str) -> Value {
    json!({"value": value, "datePart": part})
}

/// A Read v2 code (5 bytes and a 2-digit term id, `C10F.11`) in EMIS's notation: the code
/// without its trailing dots and `-N` for the synonym term id `1N` (`C10F-1`).
pub fn emis_read_notation(read_v2: &str) -> String {
    let (code, term) = read_v2.split_at(5.min(read_v2.len()));
    let stem = code.trim_end_matches('.');
    match term.strip_prefix('1') {
        Some(n) if n.len() == 1 => format!("{stem}-{n}"),
        _ => stem.to_owned(),
    }
}

/// A coded item: its EMIS code id where one is published, and its SNOMED CT concept (newer
/// entries) or its Read v2 code (older ones).
fn code(c: Concept, older: bool) -> Value {
    let published = gp_codes::clinical_code(c.code);
    let mut out = Map::new();
    if let Some(p) = published {
        out.insert("codeId".into(), json!(p.emis_code_id));
    }
    match (older, published) {
        (true, Some(p)) => {
            out.insert("readCode".into(), json!(emis_read_notation(p.read_v2)));
        }
        _ => {
            out.insert("snomedConceptId".into(), json!(c.code));
        }
    }
    out.insert("term".into(), json!(c.display));
    Value::Object(out)
}

fn drug(c: Concept) -> Value {
    let mut out = Map::new();
    if let Some(p) = gp_codes::product_code(c.code) {
        out.insert("prodCodeId".into(), json!(p.emis_product_id));
    }
    out.insert("dmdId".into(), json!(c.code));
    out.insert("term".into(), json!(c.display));
    Value::Object(out)
}

/// The practice, as EMIS names an organisation.
pub fn organisation(d: &Demographics) -> Value {
    json!({"guid": d.practice.ods_code, "odsCode": d.practice.ods_code, "name": d.practice.name})
}

/// The patient's demographics, as the export and the search answer carry them.
pub fn patient(record: &PatientRecord) -> Value {
    let d = &record.demographics;
    let n = d.nhs_number.as_str();
    let mut patient = json!({
        "patientGuid": record.local_id,
        "nhsNumber": format!("{} {} {}", &n[..3], &n[3..6], &n[6..]),
        "nhsNumberStatus": "Verified",
        "forenames": d.given,
        "surname": d.family,
        "sex": match d.gender { Gender::Female => "F", Gender::Male => "M" },
        "dateOfBirth": d.birth_date,
        "address": {"numberAndStreet": d.address.line, "town": d.address.district, "postcode": d.address.postcode},
        "lastUpdated": record.last_updated
    });
    if let Some(date) = &d.deceased {
        patient["dateOfDeath"] = json!(date);
    }
    if d.restricted {
        patient["sensitive"] = json!(true);
    }
    patient
}

/// A search answer: the patient (with their practice) if held.
pub fn search(record: Option<&PatientRecord>) -> Value {
    let patients: Vec<Value> = record
        .map(|r| {
            let mut p = patient(r);
            p["organisation"] = organisation(&r.demographics);
            p
        })
        .into_iter()
        .collect();
    json!({"patients": patients})
}

/// The whole record as one export (the practice and every entry); with `stray`, that patient's
/// first problem is mixed in, filed under them, as a system mixing up records would export it.
pub fn record(record: &PatientRecord, stray: Option<&PatientRecord>) -> Value {
    let pid = &record.local_id;
    let consultations: Vec<Value> = record
        .encounters
        .iter()
        .map(|e| {
            let mut c = json!({
                "guid": e.id,
                "patientGuid": pid,
                "type": code(e.kind, false),
                "effectiveDate": at(&e.start, "YMDT"),
                "status": if e.open_with.is_some() { "Open" } else { "Closed" },
                "lastUpdated": e.last_updated
            });
            match e.open_with {
                Some(ods) => c["openWithOdsCode"] = json!(ods),
                None => c["endDate"] = at(&e.end, "YMDT"),
            }
            if !e.reasons.is_empty() {
                c["problemGuids"] = json!(e.reasons);
            }
            c
        })
        .collect();
    let mut events = Vec::with_capacity(record.clinical_entry_count());
    let strays = stray.iter().flat_map(|s| s.problems.iter().take(1).map(move |p| (p, &s.local_id)));
    for (p, owner) in record.problems.iter().map(|p| (p, pid)).chain(strays) {
        let older = matches!(p.legacy, Some(LegacyCode::ReadV2(_)));
        let guid = if owner == pid { p.id.clone() } else { format!("{}-stray", p.id) };
        events.push(json!({
            "guid": guid, "patientGuid": owner, "eventType": "Problem", "code": code(p.snomed, older),
            "effectiveDate": at(&p.onset, "YMD"), "enteredDate": p.recorded,
            "consultationGuid": p.encounter, "problem": {"status": "Active"}, "lastUpdated": p.last_updated
        }));
    }
    for a in &record.allergies {
        events.push(json!({
            "guid": a.id, "patientGuid": pid, "eventType": "Allergy", "code": code(a.code, false),
            "effectiveDate": at(&a.recorded, "YMD"), "enteredDate": a.recorded,
            "allergy": {"status": "Active"}, "lastUpdated": a.last_updated
        }));
    }
    for o in &record.observations {
        events.push(json!({
            "guid": o.id, "patientGuid": pid, "eventType": "Value", "code": code(o.code, false),
            "effectiveDate": at(&o.effective, "YMDT"), "consultationGuid": o.encounter,
            "value": {"numericValue": o.value, "units": o.unit}, "lastUpdated": o.last_updated
        }));
    }
    for i in &record.immunisations {
        events.push(json!({
            "guid": i.id, "patientGuid": pid, "eventType": "Immunisation",
            "effectiveDate": at(&i.date, "YMD"),
            "immunisation": {"vaccine": drug(i.vaccine), "doseMl": i.dose_ml}, "lastUpdated": i.last_updated
        }));
    }
    for p in &record.procedures {
        events.push(json!({
            "guid": p.id, "patientGuid": pid, "eventType": "Procedure", "code": code(p.code, false),
            "effectiveDate": at(&p.date, "YMD"), "consultationGuid": p.encounter, "lastUpdated": p.last_updated
        }));
    }
    for f in &record.referrals {
        events.push(json!({
            "guid": f.id, "patientGuid": pid, "eventType": "Referral", "code": code(f.reason, false),
            "effectiveDate": at(&f.authored, "YMD"),
            "referral": {"targetOdsCode": f.to, "problemGuid": f.problem, "status": "Open"},
            "lastUpdated": f.last_updated
        }));
    }
    let courses: Vec<Value> = record
        .medications
        .iter()
        .map(|m| {
            json!({
                "guid": m.id, "patientGuid": pid, "drug": drug(m.medicine), "dosage": m.dosage,
                "status": "Active", "startDate": at(&m.started, "YMD"), "enteredDate": m.asserted,
                "lastUpdated": m.last_updated
            })
        })
        .collect();
    let issues: Vec<Value> = record
        .prescriptions
        .iter()
        .map(|m| {
            json!({
                "guid": m.id, "patientGuid": pid, "drug": drug(m.medicine), "consultationGuid": m.encounter,
                "issueDate": at(&m.authored, "YMD"), "dosage": m.dosage, "quantity": m.quantity,
                "quantityUnit": m.quantity_unit, "lastUpdated": m.last_updated
            })
        })
        .collect();
    json!({
        "exportVersion": EXPORT_VERSION,
        "organisation": organisation(&record.demographics),
        "patient": patient(record),
        "consultations": consultations,
        "events": events,
        "medicationCourses": courses,
        "medicationIssues": issues
    })
}

/// An error answer, as the interface reports one.
pub fn error(status: u16, text: &str) -> Value {
    json!({"error": {"status": status, "message": text}})
}
