//! The population's facts as SystmOne-style XML. Pure: the same record always renders to the
//! same bytes.

use std::fmt::Write as _;

use crate::population::{Concept, Gender, LegacyCode, PatientRecord};

/// The simulator's own TPP-style local consultation-type code, on consultations before the
/// April 2018 move to SNOMED CT.
pub const LOCAL_CONSULTATION_CODE: Concept =
    Concept { code: "Y1a2b", display: "Surgery consultation (local)" };

/// Escapes text for XML content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// ` Name="value"` for each present attribute.
pub(crate) fn attrs(pairs: &[(&str, Option<&str>)]) -> String {
    pairs.iter().filter_map(|(k, v)| v.map(|v| format!(" {k}=\"{}\"", esc(v)))).collect()
}

fn code(scheme: &str, c: Concept) -> String {
    format!(
        "<Code{}/>",
        attrs(&[("Scheme", Some(scheme)), ("Value", Some(c.code)), ("Term", Some(c.display))])
    )
}

fn patient(r: &PatientRecord) -> String {
    let d = &r.demographics;
    let sex = match d.gender {
        Gender::Female => "F",
        Gender::Male => "M",
    };
    format!(
        "<Patient ID=\"{}\"><NHSNumber Traced=\"true\">{}</NHSNumber><FirstName>{}</FirstName><Surname>{}</Surname>\
         <Sex>{sex}</Sex><DateOfBirth>{}</DateOfBirth>{}<Address><Line1>{}</Line1><Town>{}</Town><PostCode>{}</PostCode></Address>\
         <RegisteredUnit ID=\"{}\" ODS=\"{}\">{}</RegisteredUnit></Patient>",
        esc(&r.local_id),
        esc(d.nhs_number.as_str()),
        esc(d.given),
        esc(d.family),
        esc(&d.birth_date),
        flags(d),
        esc(&d.address.line),
        esc(d.address.district),
        esc(&d.address.postcode),
        esc(&d.practice.ods_code),
        esc(&d.practice.ods_code),
        esc(&d.practice.name),
    )
}

/// The restriction and the date of death, written only when there are some.
fn flags(d: &crate::population::Demographics) -> String {
    let mut out = String::new();
    if let Some(date) = &d.deceased {
        out.push_str(&format!("<DateOfDeath>{}</DateOfDeath>", esc(date)));
    }
    if d.restricted {
        out.push_str("<SensitiveRecord>true</SensitiveRecord>");
    }
    out
}

/// The answer to a patient search.
pub fn search_answer(found: Option<&PatientRecord>) -> String {
    let inner = found.map(patient).unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PatientSearchResult xmlns=\"{}\">{inner}</PatientSearchResult>\n",
        tideway_adapters::systmone::NAMESPACE
    )
}

/// The practice of the record's patient.
pub fn unit(r: &PatientRecord) -> String {
    let p = &r.demographics.practice;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Unit xmlns=\"{}\" ID=\"{}\" ODS=\"{}\">{}</Unit>\n",
        tideway_adapters::systmone::NAMESPACE,
        esc(&p.ods_code),
        esc(&p.ods_code),
        esc(&p.name)
    )
}

/// The system's error document.
pub fn error(status: u16, text: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error Status=\"{status}\">{}</Error>\n", esc(text))
}

/// Problems coded in CTV3 at the time keep it alone; the rest are SNOMED CT (SystmOne migrated
/// Read v2 entries it received to its own coding, so a Read v2 legacy code is rendered as SNOMED).
fn problem_code(p: &crate::population::Problem) -> String {
    match p.legacy {
        Some(LegacyCode::Ctv3(c)) => code("CTV3", Concept { code: c, display: p.snomed.display }),
        _ => code("SNOMED", p.snomed),
    }
}

/// The record extract; `stray` adds another patient's problems filed under their own id, as a
/// system mixing up records would.
pub fn extract(r: &PatientRecord, stray: Option<&PatientRecord>) -> String {
    let pid = Some(r.local_id.as_str());
    let mut x = String::with_capacity(4096);
    let _ = write!(
        x,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SystmOneExtract xmlns=\"{}\">{}<Events>",
        tideway_adapters::systmone::NAMESPACE,
        patient(r)
    );
    for e in &r.encounters {
        let open = e.open_with.is_some();
        let kind = if e.start.as_str() < "2018-04-01" {
            code("CTV3", LOCAL_CONSULTATION_CODE)
        } else {
            code("SNOMED", e.kind)
        };
        let reasons: String =
            e.reasons.iter().map(|p| format!("<Reason ProblemID=\"{}\"/>", esc(p))).collect();
        let _ = write!(
            x,
            "<Event{}>{kind}{reasons}</Event>",
            attrs(&[
                ("ID", Some(&e.id)),
                ("PatientID", pid),
                ("Date", Some(&e.start)),
                ("End", (!open).then_some(e.end.as_str())),
                ("Open", open.then_some("true")),
                ("ServiceODS", e.open_with),
                ("LastUpdated", Some(&e.last_updated)),
            ])
        );
    }
    x.push_str("</Events><CodedEntries>");
    let mut problems: Vec<(&crate::population::Problem, &str)> =
        r.problems.iter().map(|p| (p, r.local_id.as_str())).collect();
    if let Some(s) = stray {
        problems.extend(s.problems.iter().take(1).map(|p| (p, s.local_id.as_str())));
    }
    for (p, owner) in problems {
        let stray_id = (owner != r.local_id).then(|| format!("{}-stray", p.id));
        let _ = write!(
            x,
            "<Entry{}>{}</Entry>",
            attrs(&[
                ("ID", Some(stray_id.as_deref().unwrap_or(&p.id))),
                ("Type", Some("Problem")),
                ("PatientID", Some(owner)),
                ("EventID", (owner == r.local_id).then_some(p.encounter.as_str())),
                ("Onset", Some(&p.onset)),
                ("Recorded", Some(&p.recorded)),
                ("Status", Some("Active")),
                ("LastUpdated", Some(&p.last_updated)),
            ]),
            problem_code(p)
        );
    }
    for a in &r.allergies {
        let _ = write!(
            x,
            "<Entry{}>{}</Entry>",
            attrs(&[
                ("ID", Some(&a.id)),
                ("Type", Some("Allergy")),
                ("PatientID", pid),
                ("Recorded", Some(&a.recorded)),
                ("Status", Some("Active")),
                ("LastUpdated", Some(&a.last_updated)),
            ]),
            code("SNOMED", a.code)
        );
    }
    for o in &r.observations {
        let _ = write!(
            x,
            "<Entry{}>{}<NumericValue Units=\"{}\">{}</NumericValue></Entry>",
            attrs(&[
                ("ID", Some(&o.id)),
                ("Type", Some("Observation")),
                ("PatientID", pid),
                ("EventID", Some(&o.encounter)),
                ("Date", Some(&o.effective)),
                ("LastUpdated", Some(&o.last_updated)),
            ]),
            code("SNOMED", o.code),
            esc(o.unit),
            esc(&o.value)
        );
    }
    for i in &r.immunisations {
        let _ = write!(
            x,
            "<Entry{}>{}<DoseML>{}</DoseML></Entry>",
            attrs(&[
                ("ID", Some(&i.id)),
                ("Type", Some("Immunisation")),
                ("PatientID", pid),
                ("Date", Some(&i.date)),
                ("LastUpdated", Some(&i.last_updated)),
            ]),
            code("DMD", i.vaccine),
            esc(i.dose_ml)
        );
    }
    for p in &r.procedures {
        let _ = write!(
            x,
            "<Entry{}>{}</Entry>",
            attrs(&[
                ("ID", Some(&p.id)),
                ("Type", Some("Procedure")),
                ("PatientID", pid),
                ("EventID", Some(&p.encounter)),
                ("Date", Some(&p.date)),
                ("LastUpdated", Some(&p.last_updated)),
            ]),
            code("SNOMED", p.code)
        );
    }
    x.push_str("</CodedEntries><Medication>");
    for m in &r.medications {
        let _ = write!(
            x,
            "<RepeatTemplate{}>{}<Dosage>{}</Dosage></RepeatTemplate>",
            attrs(&[
                ("ID", Some(&m.id)),
                ("PatientID", pid),
                ("Date", Some(&m.started)),
                ("Recorded", Some(&m.asserted)),
                ("Current", Some("true")),
                ("LastUpdated", Some(&m.last_updated)),
            ]),
            code("DMD", m.medicine),
            esc(m.dosage)
        );
    }
    for m in &r.prescriptions {
        let _ = write!(
            x,
            "<Issue{}>{}<Dosage>{}</Dosage><Quantity Units=\"{}\">{}</Quantity></Issue>",
            attrs(&[
                ("ID", Some(&m.id)),
                ("PatientID", pid),
                ("EventID", Some(&m.encounter)),
                ("Date", Some(&m.authored)),
                ("LastUpdated", Some(&m.last_updated)),
            ]),
            code("DMD", m.medicine),
            esc(m.dosage),
            esc(m.quantity_unit),
            m.quantity
        );
    }
    x.push_str("</Medication><Referrals>");
    for f in &r.referrals {
        let _ = write!(
            x,
            "<Referral{}>{}</Referral>",
            attrs(&[
                ("ID", Some(&f.id)),
                ("PatientID", pid),
                ("Date", Some(&f.authored)),
                ("To", Some(f.to)),
                ("ProblemID", Some(&f.problem)),
                ("Open", Some("true")),
                ("LastUpdated", Some(&f.last_updated)),
            ]),
            code("SNOMED", f.reason)
        );
    }
    x.push_str("</Referrals></SystmOneExtract>\n");
    x
}
