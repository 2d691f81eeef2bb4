//! The facts a policy and a merge decide on, read once from a normalised resource.
//!
//! An adapter computes [`ResourceFacts`] when it normalises a resource and keeps them beside the
//! resource's bytes (and in the cache with them), so deciding what a requester may see never
//! parses JSON again. Facts are plain data: type, every coding the resource carries in any
//! system, categories, the clinical section, the relevant dates, the patient it is about, its
//! source and the references it makes (so withholding can follow links).

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod merge_key;

use merge_key::merge_key;
pub use merge_key::{is_mapped_coding, main_code_pointer};

/// One coding: a code in a system, exactly as the source wrote them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Coding {
    /// The code system URI (empty when the source gave none).
    pub system: String,
    /// The code.
    pub code: String,
}

/// The part of a record a resource belongs to, as sharing agreements name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// Demographics: the Patient (and linked persons).
    Demographics,
    /// Problems and diagnoses.
    Problems,
    /// Medications, prescribed or stated.
    Medications,
    /// Allergies and intolerances.
    Allergies,
    /// Results and measurements.
    Investigations,
    /// Immunisations.
    Immunisations,
    /// Procedures.
    Procedures,
    /// Consultations and encounters.
    Consultations,
    /// Referrals and requests for services.
    Referrals,
    /// Care plans and episodes of care.
    CarePlans,
    /// Documents and letters.
    Documents,
    /// Who and where: organisations, practitioners, locations, provenance.
    Administrative,
    /// A local authority's social care record (care plans, episodes, referrals and their
    /// tasks, assessments), whatever the resource type: the council is a data controller of its
    /// own, so agreements name its record apart from the NHS's. Assigned from the
    /// record-origin `meta.tag` its adapter sets ([`crate::systems::RECORD_ORIGIN`]); the
    /// person and the directory entries (organisations, practitioners) keep their own
    /// sections, so they still go with whatever is shared.
    SocialCare,
    /// Anything the gateway does not classify. Policies that restrict by section withhold it.
    Unclassified,
}

impl Section {
    /// The section a resource type belongs to.
    pub fn of_type(resource_type: &str) -> Self {
        match resource_type {
            "Patient" | "RelatedPerson" => Self::Demographics,
            "Condition" => Self::Problems,
            "MedicationStatement"
            | "MedicationRequest"
            | "MedicationDispense"
            | "MedicationAdministration"
            | "Medication" => Self::Medications,
            "AllergyIntolerance" => Self::Allergies,
            "Observation" | "DiagnosticReport" | "Specimen" => Self::Investigations,
            "Immunization" => Self::Immunisations,
            "Procedure" => Self::Procedures,
            "Encounter" => Self::Consultations,
            "ServiceRequest" | "ReferralRequest" | "Task" => Self::Referrals,
            "CarePlan" | "EpisodeOfCare" | "CareTeam" | "Goal" => Self::CarePlans,
            "DocumentReference" | "Composition" | "Binary" => Self::Documents,
            "Organization" | "Practitioner" | "PractitionerRole" | "Location" | "Provenance" | "Device"
            | "Endpoint" => Self::Administrative,
            _ => Self::Unclassified,
        }
    }
}

/// What a policy or a merge needs to know about one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceFacts {
    /// R4 resource type.
    pub resource_type: String,
    /// The codings of the resource's main code (`code`, `medicationCodeableConcept`,
    /// `vaccineCode`, `type`), in the order written.
    pub codes: Vec<Coding>,
    /// Every coding anywhere in the resource (main code, reasons, body sites, contained
    /// resources...), sorted and without repeats: what a code-based rule classifies on.
    pub codings: Vec<Coding>,
    /// `category` codings.
    pub categories: Vec<Coding>,
    /// The clinical section.
    pub section: Option<Section>,
    /// The clinically relevant date (onset, effective, occurrence, authored...), as written.
    pub clinical_date: Option<String>,
    /// The end of the clinically relevant period, when it is a period with an end.
    pub clinical_end: Option<String>,
    /// When the fact was recorded (`recordedDate`, `dateAsserted`, `issued`...), as written.
    pub recorded_date: Option<String>,
    /// `status`, as written.
    pub status: Option<String>,
    /// The codings of `clinicalStatus` (Condition, AllergyIntolerance).
    pub clinical_status: Vec<Coding>,
    /// The clinically relevant date is a period that has not ended (ongoing).
    pub clinical_open: bool,
    /// `meta.lastUpdated`, as written.
    pub last_updated: Option<String>,
    /// The resource's own id (as normalised).
    pub id: String,
    /// The reference to the patient the resource is about (`subject`, `patient`,
    /// `beneficiary` or a Task's `for`), as written.
    pub patient: Option<String>,
    /// The resource names whom it is about in a way that cannot be tied to one patient here: a
    /// `subject`/`patient` given only as an identifier or display, or several of them.
    pub subject_unresolved: bool,
    /// The source id named by `meta.source` (`urn:tideway:source:{id}`), if any.
    pub source: Option<String>,
    /// Every relative reference the resource makes (`Type/id`), sorted and without repeats.
    pub references: Vec<String>,
    /// What makes this the same clinical fact as another source's entry (type, the SNOMED CT
    /// codes the source sent or else every code, clinically relevant date, value, status, dose
    /// and what else one copy could know that another does not), or `None` when there is too
    /// little to tell: such resources are never merged.
    pub merge_key: Option<String>,
    /// For an Organization: its ODS code (its identifier in the ODS system).
    #[serde(default)]
    pub ods_code: Option<String>,
    /// The organisations this resource shows are caring for the patient now, each as
    /// `ods:{code}` (a logical reference by ODS identifier) or `Organization/{id}`: a Patient's
    /// registered practice (`generalPractitioner`), an unfinished Encounter's `serviceProvider`,
    /// an active referral's `performer`, an active EpisodeOfCare's or CareTeam's
    /// `managingOrganization`. What a legitimate relationship is established from.
    #[serde(default)]
    pub care_providers: Vec<String>,
    /// Whether a terminology map added a coding to this resource (its `meta.tag` carries
    /// [`crate::maps::MAPPED_TAG_CODE`]): the gateway's Provenance then names the maps' version.
    #[serde(default)]
    pub mapped: bool,
    /// Whether the resource carries a legacy or local code no terminology map translates and
    /// no SNOMED CT or dm+d coding beside it (`meta.tag` [`crate::maps::UNMAPPED_TAG_CODE`]): a
    /// code no code set can be checked against.
    #[serde(default)]
    pub unmapped: bool,
    /// For a Patient: the source flags the record restricted (the Spine "S" flag):
    /// `meta.security` holds [`crate::systems::CONFIDENTIALITY`] `R` (restricted) or `V` (very
    /// restricted), as the PDS FHIR API writes it.
    #[serde(default)]
    pub restricted: bool,
    /// For a Patient: the source records the patient as deceased (`deceasedBoolean: true` or a
    /// `deceasedDateTime`).
    #[serde(default)]
    pub deceased: bool,
    /// For a Patient: the `deceasedDateTime`, as written.
    #[serde(default)]
    pub deceased_at: Option<String>,
    /// For a Patient: whom `generalPractitioner` and `managingOrganization` name (the
    /// registered practice and its GPs),
    /// each as a relative reference (`Organization/{id}`, `Practitioner/{id}`,
    /// `PractitionerRole/{id}`) or, named by identifier only, `ods:{code}`.
    #[serde(default)]
    pub registered_practice: Vec<String>,
    /// For a Patient: NHS numbers the source keeps as no longer in use (an NHS-number
    /// `identifier` with `use = old`), as written: the numbers this one superseded.
    #[serde(default)]
    pub former_nhs_numbers: Vec<String>,
}

/// `meta.source` prefix that names a registered source.
pub const SOURCE_URN_PREFIX: &str = "urn:tideway:source:";

/// Where each type keeps its main code and its dates.
struct Shape {
    code: &'static str,
    clinical: &'static [&'static str],
    recorded: &'static [&'static str],
}

fn shape(resource_type: &str) -> Option<Shape> {
    let s = |code, clinical, recorded| Some(Shape { code, clinical, recorded });
    match resource_type {
        "Condition" => s("/code", &["/onsetDateTime", "/onsetPeriod/start"], &["/recordedDate"]),
        "AllergyIntolerance" => s("/code", &["/onsetDateTime", "/onsetPeriod/start"], &["/recordedDate"]),
        "MedicationStatement" => s(
            "/medicationCodeableConcept",
            &["/effectiveDateTime", "/effectivePeriod/start"],
            &["/dateAsserted"],
        ),
        "MedicationRequest" => s("/medicationCodeableConcept", &["/authoredOn"], &[]),
        "Observation" => {
            s("/code", &["/effectiveDateTime", "/effectivePeriod/start", "/effectiveInstant"], &["/issued"])
        }
        "DiagnosticReport" => s("/code", &["/effectiveDateTime", "/effectivePeriod/start"], &["/issued"]),
        "Immunization" => s("/vaccineCode", &["/occurrenceDateTime"], &["/recorded"]),
        "Procedure" => s("/code", &["/performedDateTime", "/performedPeriod/start"], &[]),
        "Encounter" => s("/type", &["/period/start"], &[]),
        "ServiceRequest" => s("/code", &["/occurrenceDateTime", "/occurrencePeriod/start"], &["/authoredOn"]),
        "CarePlan" => s("/category/0", &["/period/start"], &["/created"]),
        "DocumentReference" => s("/type", &["/context/period/start"], &["/date"]),
        _ => None,
    }
}

/// Bytes a string holds on the heap.
fn text_bytes(s: &str) -> usize {
    s.len()
}

fn texts_bytes(v: &[String]) -> usize {
    std::mem::size_of_val(v) + v.iter().map(|s| text_bytes(s)).sum::<usize>()
}

fn optional_bytes(s: &Option<String>) -> usize {
    s.as_deref().map_or(0, text_bytes)
}

fn codings_bytes(v: &[Coding]) -> usize {
    std::mem::size_of_val(v) + v.iter().map(|c| text_bytes(&c.system) + text_bytes(&c.code)).sum::<usize>()
}

impl ResourceFacts {
    /// About how many bytes these facts take in memory (the struct and what its strings and
    /// lists hold; allocator rounding left out), so a cache bounded in bytes can count them
    /// beside the resource's JSON: they are often as large.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + text_bytes(&self.resource_type)
            + text_bytes(&self.id)
            + [&self.codes, &self.codings, &self.categories, &self.clinical_status]
                .into_iter()
                .map(|v| codings_bytes(v))
                .sum::<usize>()
            + [
                &self.clinical_date,
                &self.clinical_end,
                &self.recorded_date,
                &self.status,
                &self.last_updated,
                &self.patient,
                &self.source,
                &self.merge_key,
                &self.ods_code,
                &self.deceased_at,
            ]
            .into_iter()
            .map(optional_bytes)
            .sum::<usize>()
            + [&self.references, &self.care_providers, &self.registered_practice, &self.former_nhs_numbers]
                .into_iter()
                .map(|v| texts_bytes(v))
                .sum::<usize>()
    }

    /// Reads the facts of one resource.
    pub fn of(resource: &Value) -> Self {
        let resource_type =
            resource.get("resourceType").and_then(Value::as_str).unwrap_or_default().to_owned();
        let shape = shape(&resource_type);
        let text_at =
            |paths: &[&str]| paths.iter().find_map(|p| resource.pointer(p)?.as_str()).map(str::to_owned);
        let codes = shape
            .as_ref()
            .and_then(|s| resource.pointer(s.code))
            .map(|v| match v {
                Value::Array(items) => items.iter().flat_map(codings_of).collect(),
                concept => codings_of(concept),
            })
            .unwrap_or_default();
        let mut codings = Vec::new();
        collect_codings(resource, &mut codings);
        codings.sort();
        codings.dedup();
        // AllergyIntolerance's category is a list of plain codes; elsewhere CodeableConcepts.
        let category = |v: &Value| match v {
            Value::String(code) => vec![Coding { system: String::new(), code: code.clone() }],
            concept => codings_of(concept),
        };
        let categories = match resource.get("category") {
            Some(Value::Array(items)) => items.iter().flat_map(category).collect(),
            Some(single) => category(single),
            None => Vec::new(),
        };
        let mut references = Vec::new();
        collect_references(resource, &mut references);
        references.sort();
        references.dedup();
        let (patient, subject_unresolved) = subject_of(resource);
        let source = resource
            .pointer("/meta/source")
            .and_then(Value::as_str)
            .and_then(|s| s.strip_prefix(SOURCE_URN_PREFIX))
            .map(str::to_owned);
        Self {
            section: Some(section_of(resource, &resource_type)),
            clinical_date: shape.as_ref().and_then(|s| text_at(s.clinical)),
            clinical_end: shape.as_ref().and_then(|s| period_end(resource, s.clinical)),
            status: text_at(&["/status"]),
            clinical_status: resource.get("clinicalStatus").map(codings_of).unwrap_or_default(),
            clinical_open: shape.as_ref().is_some_and(|s| period_is_open(resource, s.clinical)),
            recorded_date: shape.as_ref().and_then(|s| text_at(s.recorded)),
            last_updated: text_at(&["/meta/lastUpdated"]),
            merge_key: merge_key(resource, &resource_type, &codes),
            ods_code: (resource_type == "Organization")
                .then(|| ods_identifier(resource.get("identifier")))
                .flatten(),
            care_providers: care_providers(resource, &resource_type),
            mapped: has_tag(resource, crate::maps::NORMALISATION_TAGS, crate::maps::MAPPED_TAG_CODE),
            unmapped: has_tag(resource, crate::maps::NORMALISATION_TAGS, crate::maps::UNMAPPED_TAG_CODE),
            restricted: resource_type == "Patient" && is_restricted(resource),
            deceased: resource_type == "Patient" && is_deceased(resource),
            deceased_at: (resource_type == "Patient")
                .then(|| resource.get("deceasedDateTime").and_then(Value::as_str).map(str::to_owned))
                .flatten(),
            registered_practice: if resource_type == "Patient" {
                registered_practice(resource)
            } else {
                Vec::new()
            },
            former_nhs_numbers: if resource_type == "Patient" {
                former_nhs_numbers(resource)
            } else {
                Vec::new()
            },
            resource_type,
            codes,
            codings,
            categories,
            id: resource.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
            patient,
            subject_unresolved,
            source,
            references,
        }
    }

    /// Whether the resource is about the patient whose gateway id is `patient_id`, or about no
    /// patient at all. A reference to any other patient, or an absolute reference to another
    /// server (normalisation makes references to the source itself relative), is not.
    pub fn is_about(&self, patient_id: &str) -> bool {
        // Another Patient resource (a linked mother or baby, say) is another patient's data.
        if self.resource_type == "Patient" {
            return self.id == patient_id;
        }
        if self.subject_unresolved {
            return false;
        }
        match self.patient.as_deref() {
            None => true,
            Some(r) if r.contains("://") || r.starts_with("urn:") => false,
            Some(r) => match r.split_once('/') {
                Some(("Patient", id)) => id == patient_id,
                // A subject that is not a patient (a Group, a Device, a Location) says nothing
                // about another patient.
                Some(_) => true,
                None => false,
            },
        }
    }
}

/// The type's section, or [`Section::SocialCare`] for the clinical and care content of a
/// resource tagged as coming from a social care record.
fn section_of(resource: &Value, resource_type: &str) -> Section {
    let by_type = Section::of_type(resource_type);
    let context = matches!(by_type, Section::Demographics | Section::Administrative);
    let social_care = resource.pointer("/meta/tag").and_then(Value::as_array).is_some_and(|tags| {
        tags.iter().any(|t| {
            t.get("system").and_then(Value::as_str) == Some(crate::systems::RECORD_ORIGIN)
                && t.get("code").and_then(Value::as_str) == Some(crate::systems::RECORD_ORIGIN_SOCIAL_CARE)
        })
    });
    if social_care && !context { Section::SocialCare } else { by_type }
}

/// The end of the first of `paths` that is a period's start and is present.
fn period_end(resource: &Value, paths: &[&str]) -> Option<String> {
    let start = paths.iter().find(|p| resource.pointer(p).is_some())?;
    let end = format!("{}/end", start.strip_suffix("/start")?);
    resource.pointer(&end)?.as_str().map(str::to_owned)
}

/// Whether the first present of `paths` is a period's start with no end.
fn period_is_open(resource: &Value, paths: &[&str]) -> bool {
    let Some(start) = paths.iter().find(|p| resource.pointer(p).is_some()) else { return false };
    start.strip_suffix("/start").is_some_and(|period| resource.pointer(&format!("{period}/end")).is_none())
}

/// The patient reference of `subject`, `patient`, `beneficiary` or (a Task's) `for`, and
/// whether whom the resource is about could not be tied to one reference.
fn subject_of(resource: &Value) -> (Option<String>, bool) {
    let Some(subject) = ["subject", "patient", "beneficiary", "for"].iter().find_map(|k| resource.get(*k))
    else {
        return (None, false);
    };
    let one = match subject {
        Value::Array(items) if items.len() == 1 => &items[0],
        Value::Array(items) if items.is_empty() => return (None, false),
        Value::Array(_) => return (None, true),
        other => other,
    };
    match one.get("reference").and_then(Value::as_str) {
        Some(r) => (Some(r.to_owned()), false),
        None => (None, true),
    }
}

/// The ODS code among `identifier` (an Identifier or a list of them).
fn ods_identifier(identifier: Option<&Value>) -> Option<String> {
    let is_ods =
        |i: &&Value| i.get("system").and_then(Value::as_str) == Some(crate::systems::ODS_ORGANIZATION_CODE);
    let found = match identifier? {
        Value::Array(items) => items.iter().find(is_ods),
        one => Some(one).filter(is_ods),
    };
    found?.get("value").and_then(Value::as_str).map(str::to_owned)
}

/// Whether `meta.security` marks the record restricted or very restricted.
fn is_restricted(resource: &Value) -> bool {
    resource.pointer("/meta/security").and_then(Value::as_array).is_some_and(|labels| {
        labels.iter().any(|l| {
            l.get("system").and_then(Value::as_str) == Some(crate::systems::CONFIDENTIALITY)
                && l.get("code").and_then(Value::as_str).is_some_and(|c| c == "R" || c == "V")
        })
    })
}

/// The NHS numbers a Patient's identifiers mark as old.
fn former_nhs_numbers(resource: &Value) -> Vec<String> {
    resource
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| {
            i.get("system").and_then(Value::as_str) == Some(crate::systems::NHS_NUMBER)
                && i.get("use").and_then(Value::as_str) == Some("old")
        })
        .filter_map(|i| i.get("value").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Whether the Patient is recorded as deceased.
fn is_deceased(resource: &Value) -> bool {
    resource.get("deceasedBoolean").and_then(Value::as_bool) == Some(true)
        || resource.get("deceasedDateTime").and_then(Value::as_str).is_some_and(|d| !d.is_empty())
}

/// Whom a Patient's `generalPractitioner` and `managingOrganization` (GP Connect's practice)
/// name: by reference, else by ODS identifier.
fn registered_practice(resource: &Value) -> Vec<String> {
    let named = |r: &Value| -> Option<String> {
        match r.get("reference").and_then(Value::as_str) {
            Some(x) if !x.contains(':') => Some(x.to_owned()),
            _ => ods_identifier(r.get("identifier")).map(|ods| format!("ods:{ods}")),
        }
    };
    let mut out: Vec<String> = match resource.get("generalPractitioner") {
        Some(Value::Array(items)) => items.iter().filter_map(named).collect(),
        Some(one) => named(one).into_iter().collect(),
        None => Vec::new(),
    };
    out.extend(resource.get("managingOrganization").and_then(named));
    out.sort();
    out.dedup();
    out
}

/// Where each type names the organisation caring for the patient, and the statuses under
/// which that care is current.
fn care_providers(resource: &Value, resource_type: &str) -> Vec<String> {
    let (field, current): (&str, &[&str]) = match resource_type {
        "Patient" => ("generalPractitioner", &[]),
        "Encounter" => ("serviceProvider", &["planned", "arrived", "triaged", "in-progress", "onleave"]),
        "ServiceRequest" => ("performer", &["active"]),
        "EpisodeOfCare" => ("managingOrganization", &["planned", "waitlist", "active"]),
        "CareTeam" => ("managingOrganization", &["proposed", "active"]),
        _ => return Vec::new(),
    };
    let status = resource.get("status").and_then(Value::as_str);
    if !current.is_empty() && !status.is_some_and(|s| current.contains(&s)) {
        return Vec::new();
    }
    let named = |r: &Value| -> Option<String> {
        if let Some(ods) = ods_identifier(r.get("identifier")) {
            return Some(format!("ods:{ods}"));
        }
        r.get("reference")
            .and_then(Value::as_str)
            .filter(|x| x.starts_with("Organization/"))
            .map(str::to_owned)
    };
    let mut out: Vec<String> = match resource.get(field) {
        Some(Value::Array(items)) => items.iter().filter_map(named).collect(),
        Some(one) => named(one).into_iter().collect(),
        None => Vec::new(),
    };
    out.sort();
    out.dedup();
    out
}

fn codings_of(concept: &Value) -> Vec<Coding> {
    concept
        .get("coding")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(coding).collect())
        .unwrap_or_default()
}

fn coding(c: &Value) -> Option<Coding> {
    let code = c.get("code")?.as_str()?;
    let system = c.get("system").and_then(Value::as_str).unwrap_or_default();
    Some(Coding { system: system.to_owned(), code: code.to_owned() })
}

fn collect_codings(v: &Value, out: &mut Vec<Coding>) {
    match v {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "meta" {
                    continue;
                }
                if key == "coding"
                    && let Value::Array(items) = child
                {
                    out.extend(items.iter().filter_map(coding));
                    continue;
                }
                collect_codings(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_codings(i, out)),
        _ => {}
    }
}

/// Whether `meta.tag` holds `system|code`.
fn has_tag(resource: &Value, system: &str, code: &str) -> bool {
    resource.pointer("/meta/tag").and_then(Value::as_array).is_some_and(|tags| {
        tags.iter().any(|t| {
            t.get("system").and_then(Value::as_str) == Some(system)
                && t.get("code").and_then(Value::as_str) == Some(code)
        })
    })
}

fn collect_references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "reference"
                    && let Value::String(s) = child
                {
                    if !s.starts_with('#') && !s.contains(':') && s.contains('/') {
                        out.push(s.clone());
                    }
                    continue;
                }
                collect_references(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_references(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn condition() -> Value {
        json!({
            "resourceType": "Condition", "id": "s.c1",
            "meta": {"source": "urn:tideway:source:camden", "lastUpdated": "2024-02-01T10:00:00Z",
                     "security": [{"system": "http://x", "code": "meta-only"}]},
            "code": {"coding": [
                {"system": "http://snomed.info/sct", "code": "44054006"},
                {"system": "http://read.info/readv2", "code": "C10F."}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
            "bodySite": [{"coding": [{"system": "http://snomed.info/sct", "code": "56459004"}]}],
            "subject": {"reference": "Patient/pabc"},
            "encounter": {"reference": "Encounter/s.e1"},
            "evidence": [{"detail": [{"reference": "#local"}, {"reference": "Observation/s.o1"}]}],
            "onsetDateTime": "2019-03-04",
            "recordedDate": "2019-03-05"
        })
    }

    #[test]
    fn facts_name_every_coding_section_dates_patient_source_and_references() {
        let f = ResourceFacts::of(&condition());
        assert_eq!(f.resource_type, "Condition");
        assert_eq!(f.section, Some(Section::Problems));
        assert_eq!(f.codes.len(), 2);
        assert_eq!(f.codes[1], Coding { system: "http://read.info/readv2".into(), code: "C10F.".into() });
        // Every coding anywhere but meta: main code, category, body site.
        assert_eq!(f.codings.len(), 4);
        assert!(f.codings.iter().all(|c| c.code != "meta-only"));
        assert_eq!(f.categories[0].code, "problem-list-item");
        assert_eq!(f.clinical_date.as_deref(), Some("2019-03-04"));
        assert_eq!(f.recorded_date.as_deref(), Some("2019-03-05"));
        assert_eq!(f.last_updated.as_deref(), Some("2024-02-01T10:00:00Z"));
        assert_eq!(f.patient.as_deref(), Some("Patient/pabc"));
        assert_eq!(f.source.as_deref(), Some("camden"));
        assert_eq!(f.references, ["Encounter/s.e1", "Observation/s.o1", "Patient/pabc"]);
        assert!(f.merge_key.is_some());
    }

    #[test]
    fn care_providers_are_the_organisations_caring_now_and_organisations_know_their_ods_code() {
        let ods = |v: &str| json!({"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": v});
        let org = json!({"resourceType": "Organization", "id": "o1", "identifier": [ods("F80001")]});
        assert_eq!(ResourceFacts::of(&org).ods_code.as_deref(), Some("F80001"));
        let patient = json!({"resourceType": "Patient", "id": "p", "generalPractitioner": [{"reference": "Organization/o1"}]});
        assert_eq!(ResourceFacts::of(&patient).care_providers, ["Organization/o1"]);
        let mut referral = json!({"resourceType": "ServiceRequest", "id": "s", "status": "active",
            "performer": [{"identifier": ods("YPOD1")}, {"reference": "Practitioner/x"}]});
        assert_eq!(ResourceFacts::of(&referral).care_providers, ["ods:YPOD1"]);
        referral["status"] = json!("completed");
        assert!(
            ResourceFacts::of(&referral).care_providers.is_empty(),
            "a finished referral is no relationship"
        );
        let mut visit = json!({"resourceType": "Encounter", "id": "e", "status": "in-progress",
            "serviceProvider": {"identifier": ods("YOOH1")}});
        assert_eq!(ResourceFacts::of(&visit).care_providers, ["ods:YOOH1"]);
        visit["status"] = json!("finished");
        assert!(ResourceFacts::of(&visit).care_providers.is_empty());
        let condition = ResourceFacts::of(&condition());
        assert!(condition.care_providers.is_empty() && condition.ods_code.is_none());
    }

    #[test]
    fn a_resource_is_about_its_own_patient_only() {
        let mut r = condition();
        assert!(ResourceFacts::of(&r).is_about("pabc"));
        assert!(!ResourceFacts::of(&r).is_about("pother"));
        r["subject"]["reference"] = json!("https://elsewhere.example/fhir/Patient/pabc");
        assert!(!ResourceFacts::of(&r).is_about("pabc"));
        r["subject"]["reference"] = json!("Group/g1");
        assert!(ResourceFacts::of(&r).is_about("pabc"));
        let org = json!({"resourceType": "Organization", "id": "o"});
        assert!(ResourceFacts::of(&org).is_about("pabc"));
        // Another Patient, or a subject given only by identifier, is not shown to be this one.
        assert!(!ResourceFacts::of(&json!({"resourceType": "Patient", "id": "q9"})).is_about("pabc"));
        assert!(ResourceFacts::of(&json!({"resourceType": "Patient", "id": "pabc"})).is_about("pabc"));
        r["subject"] =
            json!({"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}});
        assert!(!ResourceFacts::of(&r).is_about("pabc"));
        let cov =
            json!({"resourceType": "Coverage", "id": "c", "beneficiary": {"reference": "Patient/pother"}});
        assert!(!ResourceFacts::of(&cov).is_about("pabc"));
    }

    #[test]
    fn social_care_content_is_its_own_section_and_its_directory_entries_are_not() {
        let tag = json!([{"system": crate::systems::RECORD_ORIGIN, "code": "social-care"}]);
        let mut plan = json!({"resourceType": "CarePlan", "id": "c", "meta": {"tag": tag}});
        assert_eq!(ResourceFacts::of(&plan).section, Some(Section::SocialCare));
        plan["meta"]["tag"][0]["code"] = json!("something-else");
        assert_eq!(ResourceFacts::of(&plan).section, Some(Section::CarePlans));
        plan["meta"]["tag"] = json!([{"system": "http://other.example/origin", "code": "social-care"}]);
        assert_eq!(ResourceFacts::of(&plan).section, Some(Section::CarePlans), "only Tideway's system");
        for (ty, section) in [
            ("Task", Section::SocialCare),
            ("ServiceRequest", Section::SocialCare),
            ("Patient", Section::Demographics),
            ("Organization", Section::Administrative),
            ("PractitionerRole", Section::Administrative),
        ] {
            let r = json!({"resourceType": ty, "id": "x", "meta": {"tag": tag}});
            assert_eq!(ResourceFacts::of(&r).section, Some(section), "{ty}");
        }
        assert_eq!(serde_json::to_value(Section::SocialCare).unwrap(), "social-care");
    }
}
