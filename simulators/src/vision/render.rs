//! The population's facts as Vision-style XML (the format `tideway_adapters::vision::mapping`
//! reads; its module docs describe it and the assumptions behind it). Pure: the same record
//! always renders to the same bytes.
//!
//! What the simulator decides, as Vision would have recorded it:
//! - Problems first recorded in Read v2 (the population's older entries) carry only their Read
//!   code with its term id, the one the CPRD lists tie to the population's concept
//!   ([`crate::gp_codes`]); every other coded row carries SNOMED CT. A CTV3 code in the
//!   population is SystmOne's history, not Vision's: such a problem is a SNOMED CT row here.
//! - Medicines whose Gemscript code the CPRD GOLD product lists publish (the co-codamol of the
//!   podiatry-diabetic scenario) are older rows carrying Gemscript alone; the rest carry dm+d.
//! - The population's ids are the journal's ids, and the practice's id is its ODS code.

use std::fmt::Write as _;

use crate::gp_codes;
use crate::population::{Concept, Gender, LegacyCode, PatientRecord};
use crate::systmone::render::{attrs, esc};

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
const NAMESPACE: &str = tideway_adapters::vision::NAMESPACE;

fn snomed(c: Concept) -> String {
    format!("<Snomed concept=\"{}\">{}</Snomed>", esc(c.code), esc(c.display))
}

/// A problem's code: the Read code (with term id) on an older entry, else SNOMED CT.
fn clinical(c: Concept, older: bool) -> String {
    match (older, gp_codes::clinical_code(c.code)) {
        (true, Some(p)) => format!("<Read code=\"{}\">{}</Read>", esc(p.read_v2), esc(c.display)),
        _ => snomed(c),
    }
}

fn drug(c: Concept) -> String {
    match gp_codes::product_code(c.code) {
        Some(p) => format!("<Gemscript code=\"{}\">{}</Gemscript>", esc(p.gemscript), esc(c.display)),
        None => format!("<Dmd code=\"{}\">{}</Dmd>", esc(c.code), esc(c.display)),
    }
}

fn practice(r: &PatientRecord) -> String {
    let p = &r.demographics.practice;
    format!(
        "<Practice{}>{}</Practice>",
        attrs(&[("id", Some(&p.ods_code)), ("ods", Some(&p.ods_code))]),
        esc(&p.name)
    )
}

/// `<Tag>text</Tag>` for each pair, in order.
fn elements(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(tag, text)| format!("<{tag}>{}</{tag}>", esc(text))).collect()
}

fn patient(r: &PatientRecord, with_practice: bool) -> String {
    let d = &r.demographics;
    let gender = match d.gender {
        Gender::Male => "1",
        Gender::Female => "2",
    };
    let mut person =
        elements(&[("Forename", d.given), ("Surname", d.family), ("Gender", gender), ("Dob", &d.birth_date)]);
    if let Some(date) = &d.deceased {
        person.push_str(&elements(&[("DateOfDeath", date)]));
    }
    if d.restricted {
        person.push_str(&elements(&[("Sensitive", "Y")]));
    }
    let address = elements(&[
        ("Street", &d.address.line),
        ("Town", d.address.district),
        ("Postcode", &d.address.postcode),
    ]);
    format!(
        "<Patient id=\"{}\"><NhsNumber status=\"01\">{}</NhsNumber>{person}<Address>{address}</Address>{}</Patient>",
        esc(&r.local_id),
        esc(d.nhs_number.as_str()),
        if with_practice { practice(r) } else { String::new() },
    )
}

/// The answer to a patient search.
pub fn search_answer(found: Option<&PatientRecord>) -> String {
    let inner = found.map(|r| patient(r, true)).unwrap_or_default();
    format!("{HEAD}<VisionPatients xmlns=\"{NAMESPACE}\">{inner}</VisionPatients>\n")
}

/// The practice of the record's patient.
pub fn practice_document(r: &PatientRecord) -> String {
    format!("{HEAD}{}\n", practice(r).replacen("<Practice", &format!("<Practice xmlns=\"{NAMESPACE}\""), 1))
}

/// The system's error document.
pub fn error(status: u16, text: &str) -> String {
    format!("{HEAD}<VisionError status=\"{status}\">{}</VisionError>\n", esc(text))
}

/// One journal row: `<{tag} attributes>{inner}</{tag}>`.
fn row(x: &mut String, tag: &str, pairs: &[(&str, Option<&str>)], inner: &str) {
    let _ = write!(x, "<{tag}{}>{inner}</{tag}>", attrs(pairs));
}

/// The record; `stray` adds another patient's first problem filed under their own id, as a
/// system mixing up records would.
pub fn record(r: &PatientRecord, stray: Option<&PatientRecord>) -> String {
    let pid = Some(r.local_id.as_str());
    let mut x = String::with_capacity(4096);
    let _ =
        write!(x, "{HEAD}<VisionRecord xmlns=\"{NAMESPACE}\">{}{}<Journal>", practice(r), patient(r, false));
    for e in &r.encounters {
        let reasons: String = e.reasons.iter().map(|p| format!("<Problem ref=\"{}\"/>", esc(p))).collect();
        let open = e.open_with.is_some();
        let pairs = [
            ("id", Some(e.id.as_str())),
            ("patient", pid),
            ("date", Some(&e.start)),
            ("end", (!open).then_some(e.end.as_str())),
            ("openWith", e.open_with),
            ("lastModified", Some(&e.last_updated)),
        ];
        row(&mut x, "Consultation", &pairs, &format!("{}{reasons}", snomed(e.kind)));
    }
    let strays = stray.iter().flat_map(|s| s.problems.iter().take(1).map(move |p| (p, s.local_id.as_str())));
    for (p, owner) in r.problems.iter().map(|p| (p, r.local_id.as_str())).chain(strays) {
        let id = if owner == r.local_id { p.id.clone() } else { format!("{}-stray", p.id) };
        let older = matches!(p.legacy, Some(LegacyCode::ReadV2(_)));
        let pairs = [
            ("id", Some(id.as_str())),
            ("patient", Some(owner)),
            ("consultation", Some(&p.encounter)),
            ("date", Some(&p.onset)),
            ("recorded", Some(&p.recorded)),
            ("category", Some("problem")),
            ("status", Some("active")),
            ("lastModified", Some(&p.last_updated)),
        ];
        row(&mut x, "Clinical", &pairs, &clinical(p.snomed, older));
    }
    for a in &r.allergies {
        let pairs = [
            ("id", Some(a.id.as_str())),
            ("patient", pid),
            ("date", Some(&a.recorded)),
            ("recorded", Some(&a.recorded)),
            ("category", Some("allergy")),
            ("status", Some("active")),
            ("lastModified", Some(&a.last_updated)),
        ];
        row(&mut x, "Clinical", &pairs, &snomed(a.code));
    }
    for p in &r.procedures {
        let pairs = [
            ("id", Some(p.id.as_str())),
            ("patient", pid),
            ("consultation", Some(&p.encounter)),
            ("date", Some(&p.date)),
            ("category", Some("procedure")),
            ("lastModified", Some(&p.last_updated)),
        ];
        row(&mut x, "Clinical", &pairs, &snomed(p.code));
    }
    for o in &r.observations {
        let pairs = [
            ("id", Some(o.id.as_str())),
            ("patient", pid),
            ("consultation", Some(&o.encounter)),
            ("date", Some(&o.effective)),
            ("lastModified", Some(&o.last_updated)),
        ];
        let value = format!("<Value unit=\"{}\">{}</Value>", esc(o.unit), esc(&o.value));
        row(&mut x, "Test", &pairs, &format!("{}{value}", snomed(o.code)));
    }
    for i in &r.immunisations {
        let pairs = [
            ("id", Some(i.id.as_str())),
            ("patient", pid),
            ("date", Some(&i.date)),
            ("dose", Some(i.dose_ml)),
            ("lastModified", Some(&i.last_updated)),
        ];
        row(&mut x, "Immunisation", &pairs, &drug(i.vaccine));
    }
    for m in &r.medications {
        let pairs = [
            ("id", Some(m.id.as_str())),
            ("patient", pid),
            ("date", Some(&m.started)),
            ("recorded", Some(&m.asserted)),
            ("type", Some("repeat")),
            ("status", Some("active")),
            ("lastModified", Some(&m.last_updated)),
        ];
        row(&mut x, "Therapy", &pairs, &format!("{}<Dosage>{}</Dosage>", drug(m.medicine), esc(m.dosage)));
    }
    for m in &r.prescriptions {
        let quantity = m.quantity.to_string();
        let pairs = [
            ("id", Some(m.id.as_str())),
            ("patient", pid),
            ("consultation", Some(&m.encounter)),
            ("date", Some(&m.authored)),
            ("type", Some("issue")),
            ("lastModified", Some(&m.last_updated)),
        ];
        let inner = format!(
            "{}<Dosage>{}</Dosage><Quantity unit=\"{}\">{quantity}</Quantity>",
            drug(m.medicine),
            esc(m.dosage),
            esc(m.quantity_unit)
        );
        row(&mut x, "Therapy", &pairs, &inner);
    }
    for f in &r.referrals {
        let pairs = [
            ("id", Some(f.id.as_str())),
            ("patient", pid),
            ("date", Some(&f.authored)),
            ("to", Some(f.to)),
            ("problem", Some(&f.problem)),
            ("status", Some("open")),
            ("lastModified", Some(&f.last_updated)),
        ];
        row(&mut x, "Referral", &pairs, &snomed(f.reason));
    }
    x.push_str("</Journal></VisionRecord>\n");
    x
}
