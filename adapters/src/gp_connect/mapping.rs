//! A GP Connect structured record (an STU3 `collection` Bundle) as a [`SourceRecord`]: pure, no
//! I/O.
//!
//! Every entry is converted to R4 ([`super::stu3`]), then normalised and checked exactly as an
//! R4 source's entries are ([`normalise_resource`]: ids `{source}.{local}`, references,
//! `meta.source`, R4 validity, about this patient). Each entry ends up in `resources`, in
//! `rejected` with a content-free reason, or, for the OperationOutcome GP Connect may add about
//! the request, counted in [`Conversion::outcome_entries`].
//!
//! Lists get more care, because they are how GP Connect says what a section holds and what it
//! could not send:
//! - GP Connect Lists have no id; each gets `list-{section code}` (`-2`, `-3`... for repeats).
//! - Their warning codes become [`ListWarning`]s on the record and stay visible in the R4 List
//!   (the extension, and a note a clinician can read).
//! - An entry the List names but that is not in the answer, or could not be passed on, is
//!   replaced by a display-only item saying so, with a note and an
//!   [`ListWarningCode::EntryNotShown`] warning: a section never looks complete when it is not,
//!   and no List reference dangles.
//! - A `subject` given only as an NHS-number identifier (as one GP Connect example does) is
//!   tied to the patient when the number is the patient's; otherwise the List is about
//!   someone else and is rejected as such.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use tideway_profiles::{NhsNumber, systems};

use super::stu3;
use crate::adapter::{
    ListWarning, ListWarningCode, NormalisedResource, RejectedResource, RejectionKind, SourceRecord,
};
use crate::fhir_r4::mapping::{self, Normaliser, nhs_number_of, normalise_resource};

/// The result of converting one structured record.
#[derive(Debug, Clone, Default)]
pub struct Conversion {
    /// What is passed on, rejected and warned about.
    pub record: SourceRecord,
    /// OperationOutcome entries (the provider's remarks on the request, such as an include it
    /// does not support): neither clinical data nor rejected.
    pub outcome_entries: usize,
}

impl Conversion {
    /// Every entry accounted for: converted, rejected or an outcome.
    pub fn accounted(&self) -> usize {
        self.record.resources.len() + self.record.rejected.len() + self.outcome_entries
    }
}

/// What a clinician reads on a List some of whose entries could not be shown.
pub const ENTRY_NOT_SHOWN_NOTE: &str = "Some entries this GP practice listed in this section could not be shown \
(not sent, or not convertible): this section is incomplete.";

/// The display of a List item that could not be shown.
pub const ENTRY_NOT_SHOWN_DISPLAY: &str = "Entry not shown: not sent by the source, or not convertible";

/// Converts the entries of a structured record for the patient `n.patient_local_id`, whose NHS
/// number is `nhs` (read from that Patient entry when `None`).
pub fn convert_record(n: &Normaliser<'_>, nhs: Option<&NhsNumber>, entries: Vec<Value>) -> Conversion {
    let mut out = Conversion::default();
    let mut pending = Vec::new();
    for mut entry in entries {
        match entry.as_object_mut().and_then(|e| e.remove("resource")) {
            Some(r) if r.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome") => {
                out.outcome_entries += 1;
            }
            Some(r) => pending.push(r),
            None => out.record.rejected.push(RejectedResource::unreadable(None, "entry has no resource")),
        }
    }
    let own_number = nhs.cloned().or_else(|| {
        pending
            .iter()
            .find(|r| r["resourceType"] == "Patient" && r["id"] == n.patient_local_id)
            .and_then(nhs_number_of)
    });
    let (lists, others): (Vec<Value>, Vec<Value>) =
        pending.into_iter().partition(|r| r.get("resourceType").and_then(Value::as_str) == Some("List"));

    // Local `Type/id` (R4 type) of every resource passed on, for the Lists to check against.
    let mut kept = HashSet::new();
    for mut resource in others {
        tie_subject(&mut resource, n.patient_local_id, own_number.as_ref());
        let local = local_key(&resource);
        match convert_one(n, resource) {
            Ok(r) => {
                kept.extend(local);
                out.record.resources.push(r);
            }
            Err(r) => out.record.rejected.push(r),
        }
    }
    let mut used_ids = HashMap::new();
    for mut list in lists {
        tie_subject(&mut list, n.patient_local_id, own_number.as_ref());
        let section = section_code(&list);
        if list.get("id").is_none()
            && let Some(obj) = list.as_object_mut()
        {
            obj.insert("id".into(), Value::String(list_id(section.as_deref(), &mut used_ids)));
        }
        let mut warnings: Vec<ListWarning> = stu3::list_warning_codes(&list)
            .iter()
            .map(|c| ListWarning { section: section.clone(), code: ListWarningCode::parse(c) })
            .collect();
        if hide_missing_entries(&mut list, &kept) > 0 {
            warnings.push(ListWarning { section: section.clone(), code: ListWarningCode::EntryNotShown });
        }
        match convert_one(n, list) {
            Ok(r) => {
                out.record.resources.push(r);
                out.record.warnings.extend(warnings);
            }
            // Another patient's List says nothing about this record.
            Err(r) if r.kind == RejectionKind::OtherPatient => out.record.rejected.push(r),
            Err(r) => {
                // The List could not be passed on, but what it warns of is still true of the
                // record: the warnings stay.
                out.record.rejected.push(r);
                out.record.warnings.extend(warnings);
            }
        }
    }
    // The Patient first, as every adapter hands it on.
    out.record.resources.sort_by_key(|r| r.resource_type != "Patient");
    out
}

fn convert_one(n: &Normaliser<'_>, resource: Value) -> Result<NormalisedResource, RejectedResource> {
    let ty = mapping::resource_type_of(&resource);
    let carried = resource.get("resourceType").and_then(Value::as_str).and_then(stu3::r4_type).is_some();
    let r4 = stu3::convert(resource).map_err(|e| match carried {
        true => RejectedResource::unreadable(ty.clone(), e.0),
        false => RejectedResource::not_carried(ty.clone(), e.0),
    })?;
    normalise_resource(n, r4)
}

/// `Type/id` of a resource before conversion, with its R4 type.
fn local_key(resource: &Value) -> Option<String> {
    let ty = stu3::r4_type(resource.get("resourceType")?.as_str()?)?;
    Some(format!("{ty}/{}", resource.get("id")?.as_str()?))
}

/// The List's section code (its first coding's code), when it is a plain token.
fn section_code(list: &Value) -> Option<String> {
    let code = list.pointer("/code/coding/0/code")?.as_str()?;
    ((1..=32).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| code.to_owned())
}

fn list_id(section: Option<&str>, used: &mut HashMap<String, usize>) -> String {
    let base = format!("list-{}", section.unwrap_or("section"));
    let n = used.entry(base.clone()).or_insert(0);
    *n += 1;
    if *n == 1 { base } else { format!("{base}-{n}") }
}

/// Replaces every List item that points at nothing passed on by a display-only item, and says
/// so in a note. Returns how many were replaced.
fn hide_missing_entries(list: &mut Value, kept: &HashSet<String>) -> usize {
    let contained: HashSet<String> = list
        .get("contained")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(|r| r.get("id")?.as_str().map(|id| format!("#{id}"))).collect())
        .unwrap_or_default();
    let mut hidden = 0;
    if let Some(Value::Array(entries)) = list.get_mut("entry") {
        for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
            let reference = entry.get("item").and_then(|i| i.get("reference")).and_then(Value::as_str);
            let shown = match reference {
                Some(r) if r.starts_with('#') => contained.contains(r),
                Some(r) => r
                    .split_once('/')
                    .and_then(|(ty, id)| Some(format!("{}/{id}", stu3::r4_type(ty)?)))
                    .is_some_and(|key| kept.contains(&key)),
                // A logical reference (identifier or display only) points at nothing to check.
                None => true,
            };
            if !shown {
                entry.insert("item".into(), json!({"display": ENTRY_NOT_SHOWN_DISPLAY}));
                hidden += 1;
            }
        }
    }
    if hidden > 0
        && let Some(obj) = list.as_object_mut()
        && let Value::Array(notes) = obj.entry("note").or_insert_with(|| Value::Array(Vec::new()))
    {
        notes.push(json!({"text": ENTRY_NOT_SHOWN_NOTE}));
    }
    hidden
}

/// A `subject`/`patient` given only as the patient's own NHS number becomes a reference to the
/// patient (the identifier kept). Any other identifier is left, and the resource is then about
/// someone the record cannot tie to this patient.
fn tie_subject(resource: &mut Value, patient_local_id: &str, nhs: Option<&NhsNumber>) {
    let Some(nhs) = nhs else { return };
    let Some(obj) = resource.as_object_mut() else { return };
    for key in ["subject", "patient"] {
        if let Some(Value::Object(subject)) = obj.get_mut(key)
            && !subject.contains_key("reference")
            && subject.get("identifier").and_then(|i| i.get("system")).and_then(Value::as_str)
                == Some(systems::NHS_NUMBER)
            && subject.get("identifier").and_then(|i| i.get("value")).and_then(Value::as_str)
                == Some(nhs.as_str())
        {
            subject.insert("reference".into(), Value::String(format!("Patient/{patient_local_id}")));
        }
    }
}
