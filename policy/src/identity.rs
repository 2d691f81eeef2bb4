//! What the patient's own record says about how every answer must present them, whoever asks:
//! restricted (the Spine "S" flag) and deceased.
//!
//! Both are read from the facts of every source's Patient at once, so a patient restricted or
//! recorded as deceased at any one source is treated so everywhere. A restricted patient's
//! address, telecom, contacts' details and registered practice never leave the gateway: the
//! decision withholds the practice's directory entries ([`crate::Reason::Restricted`]) and
//! [`PatientMarks::present`] strips the Patient itself. Agreements, consent and break-glass do
//! not reach this: it is decided before and beside them, for every requester alike.

use serde_json::{Map, Value, json};
use tideway_profiles::ResourceFacts;
use tideway_profiles::systems::CONFIDENTIALITY;

/// The Patient elements a restricted patient's answers never carry: the details, and the
/// narrative and contained resources that could repeat them.
const RESTRICTED_ELEMENTS: &[&str] =
    &["address", "telecom", "generalPractitioner", "managingOrganization", "text", "contained"];

/// The elements of each `Patient.contact` (and of a RelatedPerson) that are withheld likewise.
const CONTACT_ELEMENTS: &[&str] = &["address", "telecom", "organization"];

/// How every answer presents the patient, from the Patients of all sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientMarks {
    /// Some source flags the patient restricted.
    pub restricted: bool,
    /// Some source records the patient as deceased.
    pub deceased: bool,
    /// The latest date of death any source gives, as written.
    pub deceased_at: Option<String>,
    /// Whom any source's Patient names as the registered practice (see
    /// [`ResourceFacts::registered_practice`]).
    practice: Vec<String>,
}

impl PatientMarks {
    /// The marks of a record: over every Patient among `resources`.
    pub fn of(resources: &[&ResourceFacts]) -> Self {
        let mut marks = Self::default();
        for f in resources.iter().filter(|f| f.resource_type == "Patient") {
            marks.restricted |= f.restricted;
            marks.deceased |= f.deceased;
            if let Some(at) = &f.deceased_at
                && marks.deceased_at.as_ref().is_none_or(|have| at > have)
            {
                marks.deceased_at = Some(at.clone());
            }
            marks.practice.extend(f.registered_practice.iter().cloned());
        }
        marks.practice.sort();
        marks.practice.dedup();
        marks
    }

    /// Which of `resources` are the registered practice's directory entries, for a restricted
    /// patient (none otherwise): an Organization a Patient's `generalPractitioner` names (by
    /// reference or ODS code), a Practitioner or PractitionerRole it names, and a
    /// PractitionerRole or Location of such an Organization.
    pub fn practice_entries(&self, resources: &[&ResourceFacts]) -> Vec<bool> {
        if !self.restricted {
            return vec![false; resources.len()];
        }
        let named = |f: &ResourceFacts| self.practice.contains(&format!("{}/{}", f.resource_type, f.id));
        let orgs: Vec<String> = resources
            .iter()
            .filter(|f| f.resource_type == "Organization")
            .filter(|f| {
                named(f) || f.ods_code.as_ref().is_some_and(|c| self.practice.contains(&format!("ods:{c}")))
            })
            .map(|f| format!("Organization/{}", f.id))
            .chain(self.practice.iter().filter(|p| p.starts_with("Organization/")).cloned())
            .collect();
        resources
            .iter()
            .map(|f| match f.resource_type.as_str() {
                "Organization" => orgs.contains(&format!("Organization/{}", f.id)),
                "Practitioner" => named(f),
                "PractitionerRole" | "Location" => named(f) || f.references.iter().any(|r| orgs.contains(r)),
                _ => false,
            })
            .collect()
    }

    /// The Patient (or RelatedPerson) as every answer shows it: for a restricted patient
    /// without address, telecom, registered practice and contacts' addresses and telecoms, and
    /// labelled restricted; for a deceased one, marked deceased with the latest date known.
    /// Other resources pass unchanged.
    pub fn present(&self, resource: &Value) -> Value {
        let mut out = resource.clone();
        let ty = resource.get("resourceType").and_then(Value::as_str);
        let Some(obj) = out.as_object_mut() else { return out };
        match ty {
            Some("Patient") => {
                if self.restricted {
                    for key in RESTRICTED_ELEMENTS {
                        obj.remove(*key);
                    }
                    if let Some(Value::Array(contacts)) = obj.get_mut("contact") {
                        for c in contacts.iter_mut().filter_map(Value::as_object_mut) {
                            strip_contact(c);
                        }
                        contacts.retain(|c| c.as_object().is_some_and(|m| !m.is_empty()));
                        if contacts.is_empty() {
                            obj.remove("contact");
                        }
                    }
                    label_restricted(obj);
                }
                if self.deceased {
                    obj.remove("deceasedBoolean");
                    match &self.deceased_at {
                        Some(at) => obj.insert("deceasedDateTime".into(), Value::String(at.clone())),
                        None => obj.insert("deceasedBoolean".into(), Value::Bool(true)),
                    };
                }
            }
            Some("RelatedPerson") if self.restricted => {
                strip_contact(obj);
                label_restricted(obj);
            }
            _ => {}
        }
        out
    }

    /// Whether [`Self::present`] changes anything.
    pub fn changes_patient(&self) -> bool {
        self.restricted || self.deceased
    }
}

fn strip_contact(contact: &mut Map<String, Value>) {
    for key in CONTACT_ELEMENTS {
        contact.remove(*key);
    }
}

/// Labels the resource restricted (`R`), replacing a source's weaker confidentiality label
/// (`U`, `N`...) and keeping a `V` (very restricted).
fn label_restricted(obj: &mut Map<String, Value>) {
    let meta = obj.entry("meta").or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else { return };
    let security = meta.entry("security").or_insert_with(|| Value::Array(Vec::new()));
    let Some(labels) = security.as_array_mut() else { return };
    let strict = |l: &Value| l.get("code").and_then(Value::as_str).is_some_and(|c| c == "R" || c == "V");
    labels.retain(|l| l.get("system").and_then(Value::as_str) != Some(CONFIDENTIALITY) || strict(l));
    if !labels.iter().any(|l| l.get("system").and_then(Value::as_str) == Some(CONFIDENTIALITY)) {
        labels.push(json!({"system": CONFIDENTIALITY, "code": "R", "display": "restricted"}));
    }
}
