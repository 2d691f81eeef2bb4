//! What makes two sources' entries one clinical fact: the merge key, computed once per
//! resource with its other facts, and the helpers the merge uses to carry a folded copy's codes.

use serde_json::Value;

use super::{Coding, coding, shape};

/// Deliberately strict: every coding of the main code, the clinically relevant date, the value
/// and the status must agree, and a resource missing codes or a date gets no key. Ids, `meta` and
/// references are ignored: they differ between sources by construction.
pub(super) fn merge_key(r: &Value, resource_type: &str, codes: &[Coding]) -> Option<String> {
    let date_at: &[&str] = match resource_type {
        "Condition" => &["/onsetDateTime", "/onsetPeriod/start", "/recordedDate"],
        "AllergyIntolerance" => &["/onsetDateTime", "/recordedDate"],
        "MedicationStatement" => &["/effectiveDateTime", "/effectivePeriod/start", "/dateAsserted"],
        "MedicationRequest" => &["/authoredOn"],
        "Observation" => &["/effectiveDateTime", "/effectivePeriod/start", "/effectiveInstant", "/issued"],
        "Immunization" => &["/occurrenceDateTime"],
        "Procedure" => &["/performedDateTime", "/performedPeriod/start"],
        _ => return None,
    };
    let keyed = key_codes(r, resource_type, codes)?;
    let date = date_at.iter().find_map(|p| r.pointer(p).and_then(Value::as_str))?;
    let value = ["/valueQuantity", "/valueCodeableConcept", "/valueString", "/valueBoolean", "/valueInteger"]
        .iter()
        .find_map(|p| r.pointer(p))
        .map(Value::to_string)
        .unwrap_or_default();
    let status = ["/clinicalStatus", "/status"]
        .iter()
        .find_map(|p| r.pointer(p))
        .map(Value::to_string)
        .unwrap_or_default();
    // What one source knows of a fact that another's copy may not say (a reaction, its
    // severity, a refuted diagnosis) keeps the copies apart: folding would lose it.
    let detail = ["/verificationStatus", "/criticality", "/reaction", "/severity"]
        .iter()
        .filter_map(|p| r.pointer(p))
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\u{1e}");
    // Two reports of one medicine on one day that differ in dose are two facts: merging them
    // would hide a change of dose from the clinician.
    let dose = ["/dosage", "/dosageInstruction", "/dispenseRequest", "/doseQuantity"]
        .iter()
        .filter_map(|p| r.pointer(p))
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\u{1e}");
    Some(format!(
        "{resource_type}\u{1f}{keyed}\u{1f}{date}\u{1f}{value}\u{1f}{status}\u{1f}{dose}\u{1f}{detail}"
    ))
}

/// JSON pointer to the main code of a resource of `resource_type` (`/code`,
/// `/medicationCodeableConcept`, `/vaccineCode`, ...), for the types whose facts name one.
pub fn main_code_pointer(resource_type: &str) -> Option<&'static str> {
    shape(resource_type).map(|s| s.code)
}

/// Whether a coding was added by the gateway's terminology maps rather than sent by the source.
pub fn is_mapped_coding(coding: &Value) -> bool {
    coding.get("extension").and_then(Value::as_array).is_some_and(|extensions| {
        extensions.iter().any(|e| e.get("url").and_then(Value::as_str) == Some(crate::maps::MAPPED_BY_URL))
    })
}

/// The codes a merge key compares, or `None` when the main code has none with a system.
///
/// Since 2018 every English GP system records in SNOMED CT (dm+d for medicines, whose ids are
/// SNOMED CT ids), and each adds its own legacy or local codes beside it (CTV3, Read v2, EMIS
/// code ids). So when the source itself sent SNOMED CT or dm+d codings, the key compares those
/// alone: two systems' copies of one fact agree there, whatever else each adds. A coding a
/// terminology map added never counts (a wrong map must not make two facts one), so an entry
/// the source coded only in legacy codes keys on every coding it carries and merges only with
/// an entry coded exactly alike. The two forms are tagged so they can never be equal.
fn key_codes(r: &Value, resource_type: &str, codes: &[Coding]) -> Option<String> {
    let recorded_snomed: Vec<String> = main_code_pointer(resource_type)
        .and_then(|p| r.pointer(p))
        .and_then(|concept| concept.get("coding"))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter(|c| !is_mapped_coding(c))
                .filter_map(coding)
                .filter(|c| c.system == crate::systems::SNOMED_CT || c.system == crate::systems::DM_D)
                .map(|c| c.code)
                .collect()
        })
        .unwrap_or_default();
    let (form, mut keyed) = if recorded_snomed.is_empty() {
        let all: Vec<String> = codes
            .iter()
            .filter(|c| !c.system.is_empty())
            .map(|c| format!("{}|{}", c.system, c.code))
            .collect();
        ("all", all)
    } else {
        ("sct", recorded_snomed)
    };
    if keyed.is_empty() {
        return None;
    }
    keyed.sort();
    keyed.dedup();
    Some(format!("{form}:{}", keyed.join(",")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::ResourceFacts;
    use super::super::tests::condition;
    use super::*;

    const SCT: &str = "http://snomed.info/sct";

    #[test]
    fn a_change_of_dose_is_a_different_fact_to_the_merge() {
        let statement = |dose: &str| {
            json!({"resourceType": "MedicationStatement", "id": "m", "status": "active",
                "medicationCodeableConcept": {"coding": [{"system": "https://dmd.nhs.uk", "code": "318858000"}]},
                "subject": {"reference": "Patient/p"}, "effectivePeriod": {"start": "2024-01-01"},
                "dosage": [{"text": dose}]})
        };
        let once = ResourceFacts::of(&statement("One capsule daily")).merge_key;
        assert!(once.is_some());
        assert_eq!(once, ResourceFacts::of(&statement("One capsule daily")).merge_key);
        assert_ne!(once, ResourceFacts::of(&statement("Two capsules daily")).merge_key);
    }

    #[test]
    fn merge_key_needs_codes_and_a_date() {
        let mut r = condition();
        r.as_object_mut().unwrap().remove("onsetDateTime");
        r.as_object_mut().unwrap().remove("recordedDate");
        assert_eq!(ResourceFacts::of(&r).merge_key, None);
        let enc = json!({"resourceType": "Encounter", "id": "e", "period": {"start": "2020-01-01"}});
        assert_eq!(ResourceFacts::of(&enc).merge_key, None);
        assert_eq!(ResourceFacts::of(&enc).clinical_date.as_deref(), Some("2020-01-01"));
    }

    #[test]
    fn a_task_is_about_the_patient_it_is_for() {
        let task = json!({"resourceType": "Task", "id": "t", "for": {"reference": "Patient/pabc"}});
        assert_eq!(ResourceFacts::of(&task).patient.as_deref(), Some("Patient/pabc"));
        assert!(ResourceFacts::of(&task).is_about("pabc"));
        assert!(!ResourceFacts::of(&task).is_about("pother"));
    }

    /// An allergy as a system codes it: `codings` in order, each `(system, code, mapped)`.
    fn allergy(codings: &[(&str, &str, bool)]) -> Value {
        let coding: Vec<Value> = codings
            .iter()
            .map(|(system, code, mapped)| {
                let mut c = json!({"system": system, "code": code});
                if *mapped {
                    c["extension"] = json!([{"url": crate::maps::MAPPED_BY_URL, "valueString": "v"}]);
                }
                c
            })
            .collect();
        json!({"resourceType": "AllergyIntolerance", "id": "a", "code": {"coding": coding},
               "patient": {"reference": "Patient/p"}, "recordedDate": "2019-05-01",
               "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]}})
    }

    #[test]
    fn two_systems_copies_of_a_fact_key_alike_on_the_snomed_codes_they_sent() {
        let key = |codings: &[(&str, &str, bool)]| ResourceFacts::of(&allergy(codings)).merge_key;
        let r4 = key(&[(SCT, "91936005", false)]);
        assert!(r4.is_some());
        // SystmOne adds its CTV3 code, EMIS its code id: the SNOMED CT code they sent agrees.
        assert_eq!(key(&[(SCT, "91936005", false), ("http://read.info/ctv3", "XaBL2", false)]), r4);
        assert_eq!(
            key(&[
                ("https://fhir.tideway.london/CodeSystem/emis-code-id", "123", false),
                (SCT, "91936005", false)
            ]),
            r4
        );
        // A medicine's dm+d code is a SNOMED CT id, whichever system URI carries it.
        assert_eq!(key(&[("https://dmd.nhs.uk", "91936005", false)]), r4);
        // Another SNOMED CT code, or one more, is another fact.
        assert_ne!(key(&[(SCT, "294505008", false)]), r4);
        assert_ne!(key(&[(SCT, "91936005", false), (SCT, "294505008", false)]), r4);
    }

    #[test]
    fn a_coding_a_map_added_never_makes_two_entries_one() {
        let key = |codings: &[(&str, &str, bool)]| ResourceFacts::of(&allergy(codings)).merge_key;
        let r4 = key(&[(SCT, "91936005", false)]);
        // A Read v2-only entry whose SNOMED CT coding the maps added keys on every coding.
        let mapped = key(&[("http://read.info/readv2", "TJ00.", false), (SCT, "91936005", true)]);
        assert!(mapped.is_some());
        assert_ne!(mapped, r4);
        assert_eq!(mapped, key(&[("http://read.info/readv2", "TJ00.", false), (SCT, "91936005", true)]));
        assert_ne!(mapped, key(&[("http://read.info/readv2", "TJ00.", false), (SCT, "91936005", false)]));
        // Only mapped SNOMED CT and nothing else with a system: every coding, not the mapped one alone.
        assert_ne!(key(&[(SCT, "91936005", true)]), r4);
    }
}
