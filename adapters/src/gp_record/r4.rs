//! A GP record extract ([`Extract`]) as UK Core-flavoured FHIR R4, the same way for every GP
//! system.
//!
//! Pure: no I/O. Each entry becomes one resource in the source's own ids; the terminology maps
//! add SNOMED CT or dm+d codings beside the originals ([`tideway_profiles::maps::enrich`]); the
//! FHIR R4 adapter's normaliser then namespaces ids and references and stamps `meta.source`, and
//! the result is checked as R4 before it is passed on. What cannot be passed on is listed in
//! [`SourceRecord::rejected`] with a content-free reason, so every entry of the extract is
//! accounted for: `1 + practice + entries + unreadable == resources + rejected`.
//!
//! UK Core shapes followed (checked against the UK Core 2.0.0 examples in
//! `../shared/data/uk-core-r4-examples`): `meta.profile` names the UKCore profile of each type;
//! the NHS number identifier carries the `Extension-UKCore-NHSNumberVerificationStatus`
//! extension with the England verification-status code (`01` verified, `02` present but not
//! traced); the practice is an Organization with its ODS code identifier, which
//! `Patient.generalPractitioner` references; services the borough holds no resource for are
//! logical references by ODS code.

use serde_json::{Map, Value, json};
use tideway_profiles::{maps, systems};

use super::model::{CodeScheme, Entry, EntryKind, Extract, Patient, Practice, Sex, SourceCode};
use crate::adapter::{RejectedResource, RejectionKind, SourceRecord};
use crate::fhir_r4::mapping::{self, Normaliser};

const UK_CORE: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-";
const NHS_VERIFICATION_URL: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
const NHS_VERIFICATION_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland";
/// SNOMED CT 3457005 |Patient referral|.
const REFERRAL: (&str, &str) = ("3457005", "Patient referral");

/// What normalising one extract produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Normalised {
    /// Codings the maps added.
    pub mapped: usize,
    /// Resources that keep a legacy or local code no map translates (tagged, still passed on).
    pub unmapped: usize,
}

/// Turns `extract` into normalised R4 resources in `out`: the Patient first, then the practice,
/// then the entries in the source's order. Entries filed under another patient are refused as
/// [`RejectionKind::OtherPatient`] before anything of theirs is read.
pub fn normalise(n: &Normaliser<'_>, extract: Extract, out: &mut SourceRecord) -> Normalised {
    let mut done = Normalised::default();
    let mut push = |resource: Value, out: &mut SourceRecord| {
        // Normalised first, so the tags the maps set are not taken for a source's own.
        let mut resource = match n.normalise(resource) {
            Ok(r) => r,
            Err(rejected) => return out.rejected.push(rejected),
        };
        let enriched = maps::enrich(&mut resource);
        done.mapped += enriched.added;
        done.unmapped += usize::from(enriched.unmapped > 0);
        mapping::accept_normalised(n, &resource, out);
    };
    let practice_id = extract.practice.as_ref().map(|p| p.local_id.clone());
    push(patient(&extract.patient, extract.practice.as_ref()), out);
    if let Some(p) = &extract.practice {
        push(organization(p), out);
    }
    for entry in extract.entries {
        if entry.patient != extract.patient.local_id {
            out.rejected.push(RejectedResource {
                resource_type: Some(entry.kind.resource_type().to_owned()),
                kind: RejectionKind::OtherPatient,
                reason: "entry is filed under another patient".into(),
            });
            continue;
        }
        match clinical(&entry, &extract.patient.local_id, practice_id.as_deref()) {
            Ok(resource) => push(resource, out),
            Err(reason) => out
                .rejected
                .push(RejectedResource::unreadable(Some(entry.kind.resource_type().to_owned()), reason)),
        }
    }
    for u in extract.unreadable {
        out.rejected.push(RejectedResource::unreadable(u.resource_type, u.reason));
    }
    done
}

/// The Patient, UK Core style.
pub fn patient(p: &Patient, practice: Option<&Practice>) -> Value {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("Patient"));
    r.insert("id".into(), json!(p.local_id));
    r.insert("meta".into(), json!({"profile": [format!("{UK_CORE}Patient")]}));
    // The number as the NHS writes it: ten digits, whatever spacing the system displays.
    if let Some(nhs) = p.nhs_number.as_ref().map(|n| n.replace(' ', "")) {
        let (code, display) = if p.nhs_number_verified {
            ("01", "Number present and verified")
        } else {
            ("02", "Number present but not traced")
        };
        r.insert(
            "identifier".into(),
            json!([{
                "extension": [{"url": NHS_VERIFICATION_URL, "valueCodeableConcept": {"coding": [
                    {"system": NHS_VERIFICATION_SYSTEM, "code": code, "display": display}
                ]}}],
                "system": systems::NHS_NUMBER,
                "value": nhs
            }]),
        );
    }
    if p.given.is_some() || p.family.is_some() {
        let mut name = Map::new();
        name.insert("use".into(), json!("official"));
        if let Some(f) = &p.family {
            name.insert("family".into(), json!(f));
        }
        if let Some(g) = &p.given {
            name.insert("given".into(), json!([g]));
        }
        r.insert("name".into(), json!([name]));
    }
    let gender = match p.sex {
        Sex::Female => "female",
        Sex::Male => "male",
        Sex::Other => "other",
        Sex::Unknown => "unknown",
    };
    r.insert("gender".into(), json!(gender));
    if let Some(b) = &p.birth_date {
        r.insert("birthDate".into(), json!(b));
    }
    if p.address_line.is_some() || p.address_district.is_some() || p.postcode.is_some() {
        let mut address = Map::new();
        address.insert("use".into(), json!("home"));
        if let Some(l) = &p.address_line {
            address.insert("line".into(), json!([l]));
        }
        if let Some(d) = &p.address_district {
            address.insert("district".into(), json!(d));
        }
        if let Some(pc) = &p.postcode {
            address.insert("postalCode".into(), json!(pc));
        }
        r.insert("address".into(), json!([address]));
    }
    if let Some(d) = &p.date_of_death {
        r.insert("deceasedDateTime".into(), json!(d));
    }
    if p.restricted {
        r.insert(
            "meta".into(),
            json!({
                "profile": [format!("{UK_CORE}Patient")],
                "security": [{"system": systems::CONFIDENTIALITY, "code": "R", "display": "restricted"}]
            }),
        );
    }
    if let Some(practice) = practice {
        r.insert(
            "generalPractitioner".into(),
            json!([{"reference": format!("Organization/{}", practice.local_id), "display": practice.name}]),
        );
    }
    Value::Object(r)
}

/// The registered practice as an Organization.
pub fn organization(p: &Practice) -> Value {
    json!({
        "resourceType": "Organization",
        "id": p.local_id,
        "meta": {"profile": [format!("{UK_CORE}Organization")]},
        "identifier": [{"system": systems::ODS_ORGANIZATION_CODE, "value": p.ods_code}],
        "active": true,
        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov", "display": "Healthcare Provider"}]}],
        "name": p.name
    })
}

/// A FHIR coding for a source code; a Read v2 term id is kept in an extension on it.
pub fn coding(c: &SourceCode) -> Value {
    let mut out = Map::new();
    if let (CodeScheme::ReadV2, Some(term)) = (&c.scheme, &c.term_id) {
        out.insert("extension".into(), json!([{"url": maps::READ_V2_TERM_ID_URL, "valueString": term}]));
    }
    out.insert("system".into(), json!(c.scheme.system()));
    out.insert("code".into(), json!(c.code));
    if let Some(d) = &c.display {
        out.insert("display".into(), json!(d));
    }
    Value::Object(out)
}

fn concept(entry: &Entry) -> Value {
    let codings: Vec<Value> = entry.codes.iter().map(coding).collect();
    let text = entry.text.clone().or_else(|| entry.codes.iter().find_map(|c| c.display.clone()));
    match text {
        Some(t) => json!({"coding": codings, "text": t}),
        None => json!({"coding": codings}),
    }
}

fn status_coding(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

fn ods_reference(ods: &str) -> Value {
    json!({"type": "Organization", "identifier": {"system": systems::ODS_ORGANIZATION_CODE, "value": ods}})
}

fn decimal(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Number(_)) => Ok(v),
        _ => Err("a value that is not a decimal number".into()),
    }
}

/// One clinical entry as an R4 resource in the source's ids, or why it cannot be one.
fn clinical(entry: &Entry, patient: &str, practice: Option<&str>) -> Result<Value, String> {
    if entry.codes.is_empty() {
        return Err(format!("a {} entry without any code", entry.kind.resource_type()));
    }
    let ty = entry.kind.resource_type();
    let subject = json!({"reference": format!("Patient/{patient}")});
    let mut r = Map::new();
    r.insert("resourceType".into(), json!(ty));
    r.insert("id".into(), json!(entry.local_id));
    let mut meta = Map::new();
    if let Some(at) = &entry.last_updated {
        meta.insert("lastUpdated".into(), json!(at));
    }
    meta.insert("profile".into(), json!([format!("{UK_CORE}{ty}")]));
    r.insert("meta".into(), Value::Object(meta));
    let encounter = entry.consultation.as_ref().map(|c| json!({"reference": format!("Encounter/{c}")}));
    let date = entry.date.clone();
    match &entry.kind {
        EntryKind::Consultation { open, end, with_service, reasons } => {
            r.insert("status".into(), json!(if *open { "in-progress" } else { "finished" }));
            r.insert(
                "class".into(),
                json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"}),
            );
            r.insert("type".into(), json!([concept(entry)]));
            r.insert("subject".into(), subject);
            let mut period = Map::new();
            if let Some(d) = date {
                period.insert("start".into(), json!(d));
            }
            if let (false, Some(e)) = (*open, end) {
                period.insert("end".into(), json!(e));
            }
            r.insert("period".into(), Value::Object(period));
            if !reasons.is_empty() {
                let refs: Vec<Value> =
                    reasons.iter().map(|c| json!({"reference": format!("Condition/{c}")})).collect();
                r.insert("reasonReference".into(), Value::Array(refs));
            }
            match (with_service, practice) {
                (Some(ods), _) => r.insert("serviceProvider".into(), ods_reference(ods)),
                (None, Some(p)) => {
                    r.insert("serviceProvider".into(), json!({"reference": format!("Organization/{p}")}))
                }
                (None, None) => None,
            };
        }
        EntryKind::Problem { active, onset } => {
            // An ended problem is inactive: the systems do not say whether it resolved. No
            // verification status is claimed that the source did not give.
            let clinical = if *active { "active" } else { "inactive" };
            r.insert(
                "clinicalStatus".into(),
                status_coding("http://terminology.hl7.org/CodeSystem/condition-clinical", clinical),
            );
            r.insert(
                "category".into(),
                json!([status_coding(
                    "http://terminology.hl7.org/CodeSystem/condition-category",
                    "problem-list-item"
                )]),
            );
            r.insert("code".into(), concept(entry));
            r.insert("subject".into(), subject);
            if let Some(e) = encounter {
                r.insert("encounter".into(), e);
            }
            if let Some(o) = onset {
                r.insert("onsetDateTime".into(), json!(o));
            }
            if let Some(d) = &entry.recorded {
                r.insert("recordedDate".into(), json!(d));
            }
        }
        EntryKind::Medication { current, dosage } => {
            r.insert("status".into(), json!(if *current { "active" } else { "completed" }));
            r.insert("medicationCodeableConcept".into(), concept(entry));
            r.insert("subject".into(), subject);
            if let Some(d) = date {
                r.insert("effectivePeriod".into(), json!({"start": d}));
            }
            if let Some(d) = &entry.recorded {
                r.insert("dateAsserted".into(), json!(d));
            }
            if let Some(d) = dosage {
                r.insert("dosage".into(), json!([{"text": d}]));
            }
        }
        EntryKind::Prescription { dosage, quantity, quantity_unit } => {
            // One issue of a prescription, already issued: a past order, never a current one.
            r.insert("status".into(), json!("completed"));
            r.insert("intent".into(), json!("order"));
            r.insert("medicationCodeableConcept".into(), concept(entry));
            r.insert("subject".into(), subject);
            if let Some(e) = encounter {
                r.insert("encounter".into(), e);
            }
            if let Some(d) = date {
                r.insert("authoredOn".into(), json!(d));
            }
            if let Some(d) = dosage {
                r.insert("dosageInstruction".into(), json!([{"text": d}]));
            }
            if let Some(q) = quantity {
                let mut quantity = Map::new();
                quantity.insert("value".into(), decimal(q)?);
                if let Some(u) = quantity_unit {
                    quantity.insert("unit".into(), json!(u));
                }
                r.insert("dispenseRequest".into(), json!({"quantity": quantity}));
            }
        }
        EntryKind::Allergy { active } => {
            let clinical = if *active { "active" } else { "inactive" };
            r.insert(
                "clinicalStatus".into(),
                status_coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", clinical),
            );
            r.insert("code".into(), concept(entry));
            r.insert("patient".into(), subject);
            if let Some(d) = entry.recorded.clone().or(date) {
                r.insert("recordedDate".into(), json!(d));
            }
        }
        EntryKind::Observation { value, unit } => {
            r.insert("status".into(), json!("final"));
            r.insert("code".into(), concept(entry));
            r.insert("subject".into(), subject);
            if let Some(e) = encounter {
                r.insert("encounter".into(), e);
            }
            if let Some(d) = date {
                r.insert("effectiveDateTime".into(), json!(d));
            }
            if let Some(v) = value {
                let mut q = Map::new();
                q.insert("value".into(), decimal(v)?);
                // The unit as the system wrote it. It is not claimed to be a UCUM code: GP
                // systems write `mmHg` where UCUM says `mm[Hg]`, and a wrong code is worse than
                // none to a client converting units.
                if let Some(u) = unit {
                    q.insert("unit".into(), json!(u));
                }
                r.insert("valueQuantity".into(), Value::Object(q));
            }
        }
        EntryKind::Immunisation { dose_ml } => {
            r.insert("status".into(), json!("completed"));
            r.insert("vaccineCode".into(), concept(entry));
            r.insert("patient".into(), subject);
            r.insert("occurrenceDateTime".into(), json!(date.ok_or("an immunisation without a date")?));
            r.insert("primarySource".into(), json!(true));
            if let Some(d) = dose_ml {
                r.insert(
                    "doseQuantity".into(),
                    json!({"value": decimal(d)?, "unit": "ml", "system": "http://unitsofmeasure.org", "code": "mL"}),
                );
            }
        }
        EntryKind::Procedure => {
            r.insert("status".into(), json!("completed"));
            r.insert("code".into(), concept(entry));
            r.insert("subject".into(), subject);
            if let Some(e) = encounter {
                r.insert("encounter".into(), e);
            }
            if let Some(d) = date {
                r.insert("performedDateTime".into(), json!(d));
            }
        }
        EntryKind::Referral { to, problem, open } => {
            let referral = json!({"coding": [{"system": systems::SNOMED_CT, "code": REFERRAL.0, "display": REFERRAL.1}]});
            // A closed referral may have been seen, declined or withdrawn: the systems do not
            // say which, so it is not claimed to be completed.
            r.insert("status".into(), json!(if *open { "active" } else { "unknown" }));
            r.insert("intent".into(), json!("order"));
            r.insert("category".into(), json!([referral]));
            r.insert("code".into(), referral);
            r.insert("subject".into(), subject);
            if let Some(d) = date {
                r.insert("authoredOn".into(), json!(d));
            }
            if let Some(ods) = to {
                r.insert("performer".into(), json!([ods_reference(ods)]));
            }
            r.insert("reasonCode".into(), json!([concept(entry)]));
            if let Some(p) = problem {
                r.insert("reasonReference".into(), json!([{"reference": format!("Condition/{p}")}]));
            }
        }
    }
    Ok(Value::Object(r))
}
