//! How every answer presents the patient, whoever asks: a restricted (S-flagged) patient's
//! Patient without address, telecom and registered practice; a deceased patient marked so. The
//! marks come from the decision ([`tideway_policy::Decision::marks`]), over every source's
//! Patient at once, so a mark at any one source holds everywhere; each marked answer says so
//! in its outcome entry.

use std::sync::Arc;

use tideway_adapters::NormalisedResource;
use tideway_policy::PatientMarks;

use crate::bundle::Notice;

/// `resource` as `marks` present it: Patients and RelatedPersons reworked, the rest as they are.
/// Its facts stay those of the source's copy (what the policy decides on, never sent).
pub(super) fn present(marks: &PatientMarks, resource: &NormalisedResource) -> NormalisedResource {
    let reworked = match resource.resource_type.as_str() {
        "Patient" => marks.changes_patient(),
        "RelatedPerson" => marks.restricted,
        _ => false,
    };
    if !reworked {
        return resource.clone();
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&resource.json) else {
        // Adapters only keep JSON they wrote; fail closed all the same.
        return withheld_everything(resource);
    };
    match serde_json::to_vec(&marks.present(&value)) {
        Ok(json) => NormalisedResource { json: Arc::from(json), ..resource.clone() },
        Err(_) => withheld_everything(resource),
    }
}

/// A Patient reduced to its type and id, when its JSON cannot be reworked.
fn withheld_everything(resource: &NormalisedResource) -> NormalisedResource {
    let bare = serde_json::json!({"resourceType": resource.resource_type, "id": resource.id});
    NormalisedResource { json: Arc::from(bare.to_string().into_bytes()), ..resource.clone() }
}

/// What the answer says about the marks.
pub(super) fn notices(marks: &PatientMarks) -> Vec<Notice> {
    let mut out = Vec::new();
    if marks.restricted {
        out.push(Notice::Restricted);
    }
    if marks.deceased {
        out.push(Notice::Deceased);
    }
    out
}
