//! Vision-style XML read into the neutral GP record model. Pure: no I/O. Every document goes
//! through the one safe reader ([`crate::xml`]): a DOCTYPE or an undeclared entity refuses it
//! whole, before anything after it is read.
//!
//! The shape (namespace [`super::NAMESPACE`]):
//!
//! ```text
//! <VisionRecord>
//!   <Practice id= ods=>name</Practice>
//!   <Patient id=> <NhsNumber status="01">…</NhsNumber> <Forename/> <Surname/>
//!     <Gender>1|2|3|0</Gender> <Dob/> <Address><Street/><Town/><Postcode/></Address> </Patient>
//!   <Journal>
//!     <Consultation id= patient= date= end= openWith= lastModified=> CODE <Problem ref=/>* </Consultation>
//!     <Clinical id= patient= consultation= date= recorded= category="problem|allergy|procedure"
//!               status="active|inactive" lastModified=> CODE+ </Clinical>
//!     <Test id= patient= consultation= date= lastModified=> CODE+ <Value unit=>4.50</Value> </Test>
//!     <Immunisation id= patient= date= dose= lastModified=> DRUG </Immunisation>
//!     <Therapy id= patient= consultation= date= recorded= type="repeat|issue" status=
//!              lastModified=> DRUG <Dosage/> <Quantity unit=>28</Quantity> </Therapy>
//!     <Referral id= patient= date= to= problem= status="open|closed" lastModified=> CODE </Referral>
//!   </Journal>
//! </VisionRecord>
//! CODE = <Read code="C10F.00">term</Read> | <Snomed concept=>term</Snomed>
//! DRUG = <Gemscript code=>name</Gemscript> | <Dmd code=>name</Dmd>
//! ```
//!
//! One journal row that cannot be read (no id, an unknown category, a Read code that is not
//! five characters and a two-digit term id) is listed in [`Extract::unreadable`] with a reason
//! naming only its kind; the rest still comes through.

use crate::adapter::AdapterError;
use crate::gp_record::model::{
    CodeScheme, Entry, EntryKind, Extract, Patient, Practice, Sex, SourceCode, Unreadable,
};
use crate::xml::{self, Element};

fn root(body: &[u8], name: &str) -> Result<Element, AdapterError> {
    let root = xml::parse(body).map_err(|e| AdapterError::Malformed(e.to_string()))?;
    if root.name != name {
        return Err(AdapterError::Malformed(format!("the document is not a Vision {name}")));
    }
    Ok(root)
}

fn attr(e: &Element, name: &str) -> Option<String> {
    e.attr(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn text(e: &Element, name: &str) -> Option<String> {
    e.child_text(name).map(str::to_owned)
}

fn practice(e: &Element) -> Option<Practice> {
    Some(Practice { local_id: attr(e, "id")?, ods_code: attr(e, "ods")?, name: e.text.trim().to_owned() })
}

fn patient(e: &Element) -> Result<Patient, AdapterError> {
    let local_id =
        attr(e, "id").ok_or_else(|| AdapterError::Malformed("a Vision patient without an id".into()))?;
    let nhs = e.child("NhsNumber");
    let address = e.child("Address");
    Ok(Patient {
        local_id,
        nhs_number: nhs.map(|n| n.text.trim().to_owned()).filter(|n| !n.is_empty()),
        // The NHS number status indicator: 01 is "number present and verified".
        nhs_number_verified: nhs.and_then(|n| n.attr("status")) == Some("01"),
        given: text(e, "Forename"),
        family: text(e, "Surname"),
        // Vision's gender codes, as CPRD GOLD keeps them.
        sex: match e.child_text("Gender") {
            Some("1") => Sex::Male,
            Some("2") => Sex::Female,
            Some("3") => Sex::Other,
            _ => Sex::Unknown,
        },
        birth_date: text(e, "Dob"),
        address_line: address.and_then(|a| text(a, "Street")),
        address_district: address.and_then(|a| text(a, "Town")),
        postcode: address.and_then(|a| text(a, "Postcode")),
        restricted: e.child_text("Sensitive") == Some("Y"),
        date_of_death: text(e, "DateOfDeath"),
    })
}

/// A `<VisionPatients>` search answer: each patient it names with their practice, no entries.
pub fn search(body: &[u8]) -> Result<Vec<Extract>, AdapterError> {
    root(body, "VisionPatients")?
        .children_named("Patient")
        .map(|p| {
            let practice = p.child("Practice").and_then(practice);
            Ok(Extract { patient: patient(p)?, practice, entries: Vec::new(), unreadable: Vec::new() })
        })
        .collect()
}

/// A `<Practice>` answer.
pub fn practice_document(body: &[u8]) -> Result<Practice, AdapterError> {
    practice(&root(body, "Practice")?)
        .ok_or_else(|| AdapterError::Malformed("a Vision practice without an id or ODS code".into()))
}

/// A Vision Read code: 5 characters of code and 2 of term id (`C10F.00`, as CPRD GOLD's
/// `readcode`), split into the 5-byte code and the term id. `None` for anything else.
pub fn read_code(text: &str) -> Option<(String, String)> {
    let ok = text.len() == 7
        && text.bytes().take(5).all(|b| b.is_ascii_alphanumeric() || b == b'.')
        && text.bytes().skip(5).all(|b| b.is_ascii_alphanumeric())
        && !text.starts_with('.');
    ok.then(|| (text[..5].to_owned(), text[5..].to_owned()))
}

/// The codes of one row, in document order; an unreadable Read code makes the row unreadable.
fn codes(e: &Element) -> Result<Vec<SourceCode>, &'static str> {
    let mut out = Vec::new();
    for c in &e.children {
        let display = Some(c.text.trim().to_owned()).filter(|t| !t.is_empty());
        let (scheme, key) = match c.name.as_str() {
            "Read" => (CodeScheme::ReadV2, "code"),
            "Snomed" => (CodeScheme::Snomed, "concept"),
            "Dmd" => (CodeScheme::Dmd, "code"),
            "Gemscript" => (CodeScheme::Gemscript, "code"),
            // What else a row holds, read by the row itself.
            "Problem" | "Value" | "Dosage" | "Quantity" => continue,
            // A code in a scheme this reader does not know would be lost: the row is reported.
            _ => return Err("a part of a row this reader does not know"),
        };
        let Some(value) = attr(c, key) else { return Err("a code without its value") };
        let (code, term_id) = if scheme == CodeScheme::ReadV2 {
            let (code, term) =
                read_code(&value).ok_or("a Read code that is not 5 characters and a term id")?;
            (code, Some(term))
        } else {
            (value, None)
        };
        out.push(SourceCode { scheme, code, term_id, display });
    }
    Ok(out)
}

fn row(e: &Element, kind: EntryKind) -> Result<Entry, Unreadable> {
    let ty = kind.resource_type();
    let unreadable = |why: &str| Unreadable {
        resource_type: Some(ty.to_owned()),
        reason: format!("a Vision {ty} row with {why}"),
    };
    let local_id = attr(e, "id").ok_or_else(|| unreadable("no id"))?;
    let patient = attr(e, "patient").ok_or_else(|| unreadable("no patient id"))?;
    let codes = codes(e).map_err(unreadable)?;
    Ok(Entry {
        local_id,
        patient,
        codes,
        text: None,
        date: attr(e, "date"),
        recorded: attr(e, "recorded"),
        consultation: attr(e, "consultation"),
        last_updated: attr(e, "lastModified"),
        kind,
    })
}

fn journal_row(e: &Element) -> Result<Entry, Unreadable> {
    let active = |open: &str| e.attr("status").is_none_or(|s| s == open);
    let kind = match (e.name.as_str(), e.attr("category"), e.attr("type")) {
        ("Consultation", ..) => EntryKind::Consultation {
            open: attr(e, "openWith").is_some(),
            end: attr(e, "end"),
            with_service: attr(e, "openWith"),
            reasons: e.children_named("Problem").filter_map(|p| attr(p, "ref")).collect(),
        },
        ("Clinical", Some("problem"), _) => {
            EntryKind::Problem { active: active("active"), onset: attr(e, "date") }
        }
        ("Clinical", Some("allergy"), _) => EntryKind::Allergy { active: active("active") },
        ("Clinical", Some("procedure"), _) => EntryKind::Procedure,
        ("Test", ..) => {
            let value = e.child("Value");
            EntryKind::Observation {
                value: value.map(|v| v.text.trim().to_owned()).filter(|v| !v.is_empty()),
                unit: value.and_then(|v| attr(v, "unit")),
            }
        }
        ("Immunisation", ..) => EntryKind::Immunisation { dose_ml: attr(e, "dose") },
        ("Therapy", _, Some("repeat")) => {
            EntryKind::Medication { current: active("active"), dosage: text(e, "Dosage") }
        }
        ("Therapy", _, Some("issue")) => EntryKind::Prescription {
            dosage: text(e, "Dosage"),
            quantity: text(e, "Quantity"),
            quantity_unit: e.child("Quantity").and_then(|q| attr(q, "unit")),
        },
        ("Referral", ..) => {
            EntryKind::Referral { to: attr(e, "to"), problem: attr(e, "problem"), open: active("open") }
        }
        _ => {
            return Err(Unreadable {
                resource_type: None,
                reason: "a Vision journal row of a kind this adapter does not read".into(),
            });
        }
    };
    let mut entry = row(e, kind)?;
    if matches!(entry.kind, EntryKind::Consultation { .. }) {
        entry.consultation = None;
    }
    Ok(entry)
}

/// A `<VisionRecord>`: the patient, the practice and every journal row, in document order.
pub fn record(body: &[u8]) -> Result<Extract, AdapterError> {
    let doc = root(body, "VisionRecord")?;
    let p = doc
        .child("Patient")
        .ok_or_else(|| AdapterError::Malformed("a Vision record without a patient".into()))?;
    let mut out = Extract {
        patient: patient(p)?,
        practice: doc.child("Practice").and_then(practice),
        entries: Vec::new(),
        unreadable: Vec::new(),
    };
    if doc.child("Practice").is_some() && out.practice.is_none() {
        out.unreadable.push(Unreadable::practice());
    }
    for other in
        doc.children.iter().filter(|c| !["Patient", "Practice", "Journal"].contains(&c.name.as_str()))
    {
        out.unreadable.extend(Unreadable::unread_part(other.children.len()));
    }
    for journal in doc.children.iter().filter(|c| c.name == "Journal") {
        for e in &journal.children {
            match journal_row(e) {
                Ok(entry) => out.entries.push(entry),
                Err(u) => out.unreadable.push(u),
            }
        }
    }
    Ok(out)
}
