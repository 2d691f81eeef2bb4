//! The EMIS-style JSON export read into the neutral GP record ([`Extract`]). Pure: no I/O.
//!
//! The shape (see the module docs of [`super`] for why it looks like this):
//!
//! ```text
//! { "exportVersion": "tideway-emis-1",
//!   "organisation": { "guid", "odsCode", "name" },
//!   "patient": { "patientGuid", "nhsNumber" ("999 000 0018"), "nhsNumberStatus" ("Verified"),
//!                "forenames", "surname", "sex" (F M I U), "dateOfBirth",
//!                "address": { "numberAndStreet", "town", "postcode" } },
//!   "consultations": [ { "guid", "patientGuid", "type": CODE, "effectiveDate": DATE,
//!                        "endDate": DATE, "status" ("Closed" | "Open"), "openWithOdsCode",
//!                        "problemGuids": [..], "lastUpdated" } ],
//!   "events": [ { "guid", "patientGuid", "eventType", "code": CODE, "effectiveDate": DATE,
//!                 "enteredDate", "consultationGuid", "lastUpdated",
//!                 and by type: "problem": { "status" ("Active" | "Past") },
//!                 "value": { "numericValue" ("4.50"), "units" }, "allergy": { "status" },
//!                 "immunisation": { "doseMl" }, "referral": { "targetOdsCode", "problemGuid",
//!                 "status" ("Open" | "Closed") } } ],
//!   "medicationCourses": [ { "guid", "patientGuid", "drug": DRUG, "dosage", "status",
//!                            "startDate", "enteredDate", "lastUpdated" } ],
//!   "medicationIssues": [ { "guid", "patientGuid", "drug": DRUG, "consultationGuid",
//!                           "issueDate", "dosage", "quantity", "quantityUnit", "lastUpdated" } ],
//!   "links": { "next": URL } (refused: see below) }
//! CODE = { "codeId", "snomedConceptId", "readCode" ("C10F", "C10F-1", "EMISNQHA14"), "term" }
//! DRUG = { "prodCodeId", "dmdId", "term" }
//! DATE = { "value": RFC 3339 or a date, "datePart": "Y" | "YM" | "YMD" | "YMDT" }
//! ```
//!
//! What is refused: a body that is not JSON, not this export version, without a patient, or
//! saying it continues on another page (`links.next`: the record interface answers whole, and
//! a record cut short must not pass for complete) is malformed (nothing of it is passed on).
//! One entry that cannot be read (no guid, an event type this reader does not know, an entry
//! that is not an object) is listed in [`Extract::unreadable`] with a reason naming only its
//! kind, and the rest of the record still comes through; so is each item of a part of the
//! export this reader does not know, and an organisation it cannot read.
//!
//! A `readCode` not in EMIS's notation of Read v2 (`C10F`, `C10F-1`) is taken as one of EMIS's
//! own local codes (`EMISNQ…`), which no published map translates: the entry keeps it and is
//! flagged `unmapped-code`, so the sensitive rules fail closed on it unless a SNOMED CT code
//! stands beside it.

use serde_json::Value;

use crate::adapter::AdapterError;
use crate::gp_record::model::{
    CodeScheme, Entry, EntryKind, Extract, Patient, Practice, Sex, SourceCode, Unreadable,
};

/// The export version this reader understands; any other is refused as malformed.
pub const EXPORT_VERSION: &str = "tideway-emis-1";

fn malformed(why: &str) -> AdapterError {
    AdapterError::Malformed(why.to_owned())
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Reads one entry of a section.
type ReadEntry = fn(&Value) -> Result<Entry, Unreadable>;

/// Reads a record export.
pub fn read_record(body: &[u8]) -> Result<Extract, AdapterError> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| malformed("the EMIS export is not JSON"))?;
    if doc.get("exportVersion").and_then(Value::as_str) != Some(EXPORT_VERSION) {
        return Err(malformed("the EMIS export is not of a version this adapter reads"));
    }
    let patient =
        doc.get("patient").and_then(patient).ok_or_else(|| malformed("the EMIS export names no patient"))?;
    let practice = doc.get("organisation").and_then(practice);
    // The record interface answers with the whole record; an export that says it continues
    // elsewhere would be passed on incomplete, so it is refused rather than cut short.
    if doc.pointer("/links/next").is_some_and(|n| !n.is_null()) {
        return Err(malformed("the EMIS export continues on another page, which is never fetched"));
    }
    let mut extract = Extract { patient, practice, entries: Vec::new(), unreadable: Vec::new() };
    if doc.get("organisation").is_some_and(|o| !o.is_null()) && extract.practice.is_none() {
        extract.unreadable.push(Unreadable::practice());
    }
    // A part of the export this reader does not read is reported, each of its items counted.
    const KNOWN: [&str; 8] = [
        "exportVersion",
        "organisation",
        "patient",
        "consultations",
        "events",
        "medicationCourses",
        "medicationIssues",
        "links",
    ];
    if let Some(doc) = doc.as_object() {
        for (_, part) in doc.iter().filter(|(key, _)| !KNOWN.contains(&key.as_str())) {
            let rows = match part {
                Value::Array(items) => items.len(),
                Value::Null => continue,
                _ => 1,
            };
            extract.unreadable.extend(Unreadable::unread_part(rows));
        }
    }
    let sections: [(&str, ReadEntry); 4] = [
        ("consultations", consultation),
        ("events", event),
        ("medicationCourses", course),
        ("medicationIssues", issue),
    ];
    for (key, read) in sections {
        let items = match doc.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(items)) => items,
            Some(_) => return Err(malformed("a section of the EMIS export is not a list")),
        };
        for item in items {
            match read(item) {
                Ok(entry) => extract.entries.push(entry),
                Err(u) => extract.unreadable.push(u),
            }
        }
    }
    Ok(extract)
}

/// Reads a patient search answer (`{"patients": [PATIENT, ...]}`): every patient it lists, each
/// with the practice they are registered at when named, and no entries.
pub fn read_search(body: &[u8]) -> Result<Vec<Extract>, AdapterError> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|_| malformed("the EMIS search answer is not JSON"))?;
    let Some(items) = doc.get("patients").and_then(Value::as_array) else {
        return Err(malformed("the EMIS search answer has no patient list"));
    };
    items
        .iter()
        .map(|p| {
            let patient =
                patient(p).ok_or_else(|| malformed("a patient in the search answer has no guid"))?;
            let practice = p.get("organisation").and_then(practice);
            Ok(Extract { patient, practice, entries: Vec::new(), unreadable: Vec::new() })
        })
        .collect()
}

/// Reads an organisation answer (`ORGANISATION` alone).
pub fn read_organisation(body: &[u8]) -> Result<Practice, AdapterError> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|_| malformed("the EMIS organisation is not JSON"))?;
    practice(&doc).ok_or_else(|| malformed("the EMIS organisation has no guid, ODS code or name"))
}

fn practice(v: &Value) -> Option<Practice> {
    Some(Practice { local_id: text(v, "guid")?, ods_code: text(v, "odsCode")?, name: text(v, "name")? })
}

fn patient(v: &Value) -> Option<Patient> {
    let address = v.get("address");
    let line = |key| address.and_then(|a| text(a, key));
    Some(Patient {
        local_id: text(v, "patientGuid")?,
        // EMIS shows and exports the number in its 3-3-4 spaced form.
        nhs_number: text(v, "nhsNumber").map(|n| n.chars().filter(|c| !c.is_whitespace()).collect()),
        nhs_number_verified: v.get("nhsNumberStatus").and_then(Value::as_str) == Some("Verified"),
        given: text(v, "forenames"),
        family: text(v, "surname"),
        sex: match v.get("sex").and_then(Value::as_str) {
            Some("F") => Sex::Female,
            Some("M") => Sex::Male,
            Some("I") => Sex::Other,
            _ => Sex::Unknown,
        },
        birth_date: text(v, "dateOfBirth"),
        address_line: line("numberAndStreet"),
        address_district: line("town"),
        postcode: line("postcode"),
        restricted: v.get("sensitive").and_then(Value::as_bool) == Some(true),
        date_of_death: text(v, "dateOfDeath"),
    })
}

/// An EMIS date: the value cut to the precision EMIS recorded it at (a year, a month, a day or
/// an instant), so "some time in 2015" is not passed on as 1 January 2015.
fn date(v: Option<&Value>) -> Option<String> {
    let v = v?;
    let value = v.get("value").and_then(Value::as_str)?;
    let keep = match v.get("datePart").and_then(Value::as_str) {
        Some("Y") => 4,
        Some("YM") => 7,
        Some("YMD") => 10,
        _ => value.len(),
    };
    // A value shorter than its precision claims is passed on whole, for R4 validation to judge.
    Some(value.get(..keep).unwrap_or(value).to_owned())
}

/// A Read v2 code as EMIS writes it: the code without its trailing dots, and `-N` for the term
/// id `1N` of a synonym (`C10F` is `C10F.` term `00`, `C10F-1` is `C10F.` term `11`). A
/// 5-byte dotted code is read too. `None` for anything else.
pub fn emis_read_code(text: &str) -> Option<(String, String)> {
    let (stem, term) = match text.split_once('-') {
        None => (text, "00".to_owned()),
        Some((stem, n)) if n.len() == 1 && matches!(n.as_bytes()[0], b'1'..=b'9') => (stem, format!("1{n}")),
        Some(_) => return None,
    };
    let stem = stem.trim_end_matches('.');
    if stem.is_empty() || stem.len() > 5 || !stem.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((format!("{stem:.<5}"), term))
}

/// The codes of one coded item, in the order EMIS keys them: its code id, the SNOMED CT concept
/// (newer entries) and the Read v2 or local code (older entries).
fn codes(v: Option<&Value>) -> Vec<SourceCode> {
    let Some(v) = v else { return Vec::new() };
    let display = text(v, "term");
    let code = |scheme, code: String, term_id| SourceCode { scheme, code, term_id, display: display.clone() };
    let mut out = Vec::new();
    if let Some(id) = text(v, "codeId") {
        out.push(code(CodeScheme::EmisCode, id, None));
    }
    if let Some(id) = text(v, "snomedConceptId") {
        out.push(code(CodeScheme::Snomed, id, None));
    }
    if let Some(read) = text(v, "readCode") {
        out.push(match emis_read_code(&read) {
            Some((five, term)) => code(CodeScheme::ReadV2, five, Some(term)),
            None => code(CodeScheme::EmisLocal, read, None),
        });
    }
    out
}

fn drug(v: Option<&Value>) -> Vec<SourceCode> {
    let Some(v) = v else { return Vec::new() };
    let display = text(v, "term");
    let code = |scheme, code| SourceCode { scheme, code, term_id: None, display: display.clone() };
    let mut out = Vec::new();
    if let Some(id) = text(v, "prodCodeId") {
        out.push(code(CodeScheme::EmisProduct, id));
    }
    if let Some(id) = text(v, "dmdId") {
        out.push(code(CodeScheme::Dmd, id));
    }
    out
}

/// The fields every EMIS entry has, for an entry of `kind`; unreadable without a guid or the
/// patient it is filed under.
fn base(v: &Value, kind: EntryKind, codes: Vec<SourceCode>, date_key: &str) -> Result<Entry, Unreadable> {
    let unreadable = |why: &str| Unreadable {
        resource_type: Some(kind.resource_type().to_owned()),
        reason: format!("an EMIS {} entry {why}", kind.resource_type()),
    };
    if !v.is_object() {
        return Err(unreadable("that is not an object"));
    }
    let local_id = text(v, "guid").ok_or_else(|| unreadable("without a guid"))?;
    let patient = text(v, "patientGuid").ok_or_else(|| unreadable("without a patient guid"))?;
    Ok(Entry {
        local_id,
        patient,
        codes,
        text: None,
        date: date(v.get(date_key)),
        recorded: text(v, "enteredDate"),
        consultation: text(v, "consultationGuid"),
        last_updated: text(v, "lastUpdated"),
        kind,
    })
}

fn consultation(v: &Value) -> Result<Entry, Unreadable> {
    let open = v.get("status").and_then(Value::as_str) == Some("Open");
    let reasons = v
        .get("problemGuids")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let kind = EntryKind::Consultation {
        open,
        end: date(v.get("endDate")),
        with_service: text(v, "openWithOdsCode"),
        reasons,
    };
    let mut entry = base(v, kind, codes(v.get("type")), "effectiveDate")?;
    // A consultation is not recorded in another consultation.
    entry.consultation = None;
    Ok(entry)
}

fn decimal_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn event(v: &Value) -> Result<Entry, Unreadable> {
    let status = |section: &str, active: &str| {
        v.get(section).and_then(|s| s.get("status")).and_then(Value::as_str).is_none_or(|s| s == active)
    };
    let kind = match v.get("eventType").and_then(Value::as_str) {
        Some("Problem") => EntryKind::Problem { active: status("problem", "Active"), onset: None },
        Some("Observation" | "Value") => EntryKind::Observation {
            value: decimal_text(v.pointer("/value/numericValue")),
            unit: v.pointer("/value/units").and_then(Value::as_str).map(str::to_owned),
        },
        Some("Allergy") => EntryKind::Allergy { active: status("allergy", "Active") },
        Some("Immunisation") => {
            EntryKind::Immunisation { dose_ml: decimal_text(v.pointer("/immunisation/doseMl")) }
        }
        Some("Procedure") => EntryKind::Procedure,
        Some("Referral") => EntryKind::Referral {
            to: v.pointer("/referral/targetOdsCode").and_then(Value::as_str).map(str::to_owned),
            problem: v.pointer("/referral/problemGuid").and_then(Value::as_str).map(str::to_owned),
            open: status("referral", "Open"),
        },
        _ => {
            return Err(Unreadable {
                resource_type: None,
                reason: "an EMIS event of a type this adapter does not read".into(),
            });
        }
    };
    // A vaccination is coded by the vaccine given, beside any clinical code.
    let mut coded = codes(v.get("code"));
    coded.extend(drug(v.pointer("/immunisation/vaccine")));
    let mut entry = base(v, kind, coded, "effectiveDate")?;
    if let EntryKind::Problem { onset, .. } = &mut entry.kind {
        onset.clone_from(&entry.date);
    }
    Ok(entry)
}

fn course(v: &Value) -> Result<Entry, Unreadable> {
    let kind = EntryKind::Medication {
        current: v.get("status").and_then(Value::as_str).is_none_or(|s| s == "Active"),
        dosage: text(v, "dosage"),
    };
    base(v, kind, drug(v.get("drug")), "startDate")
}

fn issue(v: &Value) -> Result<Entry, Unreadable> {
    let kind = EntryKind::Prescription {
        dosage: text(v, "dosage"),
        quantity: decimal_text(v.get("quantity")),
        quantity_unit: text(v, "quantityUnit"),
    };
    base(v, kind, drug(v.get("drug")), "issueDate")
}
