//! SystmOne-style XML read into the neutral GP record model. Pure: no I/O.

use crate::adapter::AdapterError;
use crate::gp_record::model::{
    CodeScheme, Entry, EntryKind, Extract, Patient, Practice, Sex, SourceCode, Unreadable,
};
use crate::xml::{self, Element};

fn refused(e: xml::XmlError) -> AdapterError {
    AdapterError::Malformed(e.to_string())
}

fn root(body: &[u8], name: &str) -> Result<Element, AdapterError> {
    let root = xml::parse(body).map_err(refused)?;
    if root.name != name {
        return Err(AdapterError::Malformed(format!("the document is not a {name}")));
    }
    Ok(root)
}

fn text(e: &Element, name: &str) -> Option<String> {
    e.child_text(name).map(str::to_owned)
}

fn attr(e: &Element, name: &str) -> Option<String> {
    e.attr(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn flag(e: &Element, name: &str) -> bool {
    e.attr(name) == Some("true")
}

/// A `<Patient>` element (search answers and extracts alike).
pub fn patient(e: &Element) -> Result<(Patient, Option<Practice>), AdapterError> {
    let local_id = attr(e, "ID").ok_or_else(|| AdapterError::Malformed("a patient without an ID".into()))?;
    let nhs = e.child("NHSNumber");
    let address = e.child("Address");
    let sex = match e.child_text("Sex") {
        Some("F") => Sex::Female,
        Some("M") => Sex::Male,
        Some("I") => Sex::Other,
        _ => Sex::Unknown,
    };
    let practice = e.child("RegisteredUnit").and_then(|u| {
        Some(Practice { local_id: attr(u, "ID")?, ods_code: attr(u, "ODS")?, name: u.text.trim().to_owned() })
    });
    let patient = Patient {
        local_id,
        nhs_number: nhs.map(|n| n.text.trim().to_owned()).filter(|n| !n.is_empty()),
        nhs_number_verified: nhs.is_some_and(|n| flag(n, "Traced")),
        given: text(e, "FirstName"),
        family: text(e, "Surname"),
        sex,
        birth_date: text(e, "DateOfBirth"),
        address_line: address.and_then(|a| text(a, "Line1")),
        address_district: address.and_then(|a| text(a, "Town")),
        postcode: address.and_then(|a| text(a, "PostCode")),
        restricted: text(e, "SensitiveRecord").as_deref() == Some("true"),
        date_of_death: text(e, "DateOfDeath"),
    };
    Ok((patient, practice))
}

/// A `<PatientSearchResult>`: each patient it names, without entries.
pub fn search(body: &[u8]) -> Result<Vec<Extract>, AdapterError> {
    root(body, "PatientSearchResult")?
        .children_named("Patient")
        .map(|p| {
            let (patient, practice) = patient(p)?;
            Ok(Extract { patient, practice, entries: Vec::new(), unreadable: Vec::new() })
        })
        .collect()
}

/// A `<Unit>`: the practice.
pub fn unit(body: &[u8]) -> Result<Practice, AdapterError> {
    let u = root(body, "Unit")?;
    let missing = || AdapterError::Malformed("a unit without an ID or ODS code".into());
    Ok(Practice {
        local_id: attr(&u, "ID").ok_or_else(missing)?,
        ods_code: attr(&u, "ODS").ok_or_else(missing)?,
        name: u.text.trim().to_owned(),
    })
}

fn code(e: &Element) -> Result<SourceCode, String> {
    let scheme = match e.attr("Scheme") {
        Some("SNOMED") => CodeScheme::Snomed,
        Some("CTV3") => CodeScheme::Ctv3,
        Some("DMD") => CodeScheme::Dmd,
        _ => return Err("a code in a scheme the adapter does not read".into()),
    };
    let value = attr(e, "Value").ok_or("a code without a value")?;
    Ok(SourceCode { scheme, code: value, term_id: None, display: attr(e, "Term") })
}

/// The fields every SystmOne row carries, read once.
fn row(e: &Element, kind: EntryKind) -> Result<Entry, String> {
    let codes = e.children_named("Code").map(code).collect::<Result<Vec<_>, _>>()?;
    Ok(Entry {
        local_id: attr(e, "ID").ok_or("an entry without an ID")?,
        patient: attr(e, "PatientID").ok_or("an entry without a PatientID")?,
        kind,
        codes,
        text: text(e, "Text"),
        date: attr(e, "Date"),
        recorded: attr(e, "Recorded"),
        consultation: attr(e, "EventID"),
        last_updated: attr(e, "LastUpdated"),
    })
}

/// A two-valued attribute read strictly: a value the adapter does not know makes the row
/// unreadable rather than defaulting to one reading (an unknown status is never "active").
fn either(e: &Element, name: &str, yes: &str, no: &str, absent: Option<bool>) -> Result<bool, String> {
    match e.attr(name) {
        Some(v) if v == yes => Ok(true),
        Some(v) if v == no => Ok(false),
        None => absent.ok_or_else(|| format!("a row without its {name}")),
        Some(_) => Err(format!("a row whose {name} the adapter does not read")),
    }
}

fn kind_of(e: &Element) -> Result<EntryKind, (Option<&'static str>, String)> {
    let quantity = e.child("Quantity");
    let ty = |t: &'static str| move |reason: String| (Some(t), reason);
    Ok(match e.name.as_str() {
        "Event" => EntryKind::Consultation {
            open: either(e, "Open", "true", "false", Some(false)).map_err(ty("Encounter"))?,
            end: attr(e, "End"),
            with_service: attr(e, "ServiceODS"),
            reasons: e.children_named("Reason").filter_map(|r| attr(r, "ProblemID")).collect(),
        },
        "RepeatTemplate" => EntryKind::Medication {
            current: either(e, "Current", "true", "false", None).map_err(ty("MedicationStatement"))?,
            dosage: text(e, "Dosage"),
        },
        "Issue" => EntryKind::Prescription {
            dosage: text(e, "Dosage"),
            quantity: quantity.map(|q| q.text.trim().to_owned()),
            quantity_unit: quantity.and_then(|q| attr(q, "Units")),
        },
        "Referral" => EntryKind::Referral {
            to: attr(e, "To"),
            problem: attr(e, "ProblemID"),
            open: either(e, "Open", "true", "false", None).map_err(ty("ServiceRequest"))?,
        },
        "Entry" => match e.attr("Type") {
            Some("Problem") => EntryKind::Problem {
                active: either(e, "Status", "Active", "Ended", None).map_err(ty("Condition"))?,
                onset: attr(e, "Onset"),
            },
            Some("Allergy") => EntryKind::Allergy {
                active: either(e, "Status", "Active", "Ended", None).map_err(ty("AllergyIntolerance"))?,
            },
            Some("Observation") => {
                let value = e.child("NumericValue");
                EntryKind::Observation {
                    value: value.map(|v| v.text.trim().to_owned()),
                    unit: value.and_then(|v| attr(v, "Units")),
                }
            }
            Some("Procedure") => EntryKind::Procedure,
            Some("Immunisation") => EntryKind::Immunisation { dose_ml: text(e, "DoseML") },
            _ => return Err((None, "an entry of a type the adapter does not read".into())),
        },
        _ => return Err((None, "an element the adapter does not read".into())),
    })
}

/// A `<SystmOneExtract>`: the patient, the practice and every row, in document order.
pub fn extract(body: &[u8]) -> Result<Extract, AdapterError> {
    let doc = root(body, "SystmOneExtract")?;
    let p =
        doc.child("Patient").ok_or_else(|| AdapterError::Malformed("an extract without a patient".into()))?;
    let (patient, practice) = patient(p)?;
    let mut out = Extract { patient, practice, entries: Vec::new(), unreadable: Vec::new() };
    const READ: [&str; 5] = ["Patient", "Events", "CodedEntries", "Medication", "Referrals"];
    // A part of the extract the adapter does not read is reported, never skipped unseen.
    for other in doc.children.iter().filter(|c| !READ.contains(&c.name.as_str())) {
        out.unreadable.extend(Unreadable::unread_part(other.children.len()));
    }
    if p.child("RegisteredUnit").is_some() && out.practice.is_none() {
        out.unreadable.push(Unreadable::practice());
    }
    // Every section of each name (should an extract repeat one), sections in this order.
    for name in &READ[1..] {
        for e in doc.children.iter().filter(|c| c.name == *name).flat_map(|s| &s.children) {
            let entry = kind_of(e).and_then(|kind| {
                let ty = Some(kind.resource_type());
                row(e, kind).map_err(|reason| (ty, reason))
            });
            match entry {
                Ok(entry) => out.entries.push(entry),
                Err((ty, reason)) => {
                    out.unreadable.push(Unreadable { resource_type: ty.map(str::to_owned), reason })
                }
            }
        }
    }
    Ok(out)
}
