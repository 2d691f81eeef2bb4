//! R4's reference search parameters of the clinical types, as `_include` and `_revinclude`
//! read them: the element each follows and the types it may point at.

use serde_json::Value;

/// One reference search parameter: the type it belongs to, its name, the element path it
/// reads (object keys from the resource down to the Reference) and what it may point at
/// (empty: any type).
#[derive(Debug, PartialEq, Eq)]
pub struct ReferenceParam {
    /// The resource type that holds the reference.
    pub source: &'static str,
    /// Its R4 name.
    pub name: &'static str,
    path: &'static [&'static str],
    pub(super) targets: &'static [&'static str],
}

const fn r(
    source: &'static str,
    name: &'static str,
    path: &'static [&'static str],
    targets: &'static [&'static str],
) -> ReferenceParam {
    ReferenceParam { source, name, path, targets }
}

const PATIENT: &[&str] = &["Patient"];
const SUBJECT: &[&str] = &["Patient", "Group"];
const PEOPLE: &[&str] = &["Practitioner", "Patient", "PractitionerRole", "RelatedPerson"];
const ACTORS: &[&str] =
    &["Practitioner", "Organization", "Patient", "PractitionerRole", "RelatedPerson", "Device"];
const ENCOUNTER: &[&str] = &["Encounter"];
const ANY: &[&str] = &[];

/// R4's reference search parameters on the types the gateway searches, and Provenance's
/// `target`, `agent` and `entity` (for `_revinclude`).
pub const PARAMS: &[ReferenceParam] = &[
    r("Condition", "subject", &["subject"], SUBJECT),
    r("Condition", "patient", &["subject"], PATIENT),
    r("Condition", "encounter", &["encounter"], ENCOUNTER),
    r("Condition", "asserter", &["asserter"], PEOPLE),
    r("Condition", "evidence-detail", &["evidence", "detail"], ANY),
    r("AllergyIntolerance", "patient", &["patient"], PATIENT),
    r("AllergyIntolerance", "recorder", &["recorder"], PEOPLE),
    r("AllergyIntolerance", "asserter", &["asserter"], PEOPLE),
    r("Observation", "subject", &["subject"], &["Patient", "Group", "Device", "Location"]),
    r("Observation", "patient", &["subject"], PATIENT),
    r("Observation", "encounter", &["encounter"], ENCOUNTER),
    r(
        "Observation",
        "performer",
        &["performer"],
        &["Practitioner", "Organization", "CareTeam", "Patient", "PractitionerRole", "RelatedPerson"],
    ),
    r(
        "Observation",
        "has-member",
        &["hasMember"],
        &["Observation", "QuestionnaireResponse", "MolecularSequence"],
    ),
    r(
        "Observation",
        "derived-from",
        &["derivedFrom"],
        &[
            "Observation",
            "DocumentReference",
            "ImagingStudy",
            "Media",
            "QuestionnaireResponse",
            "MolecularSequence",
        ],
    ),
    r(
        "Observation",
        "based-on",
        &["basedOn"],
        &[
            "CarePlan",
            "DeviceRequest",
            "ImmunizationRecommendation",
            "MedicationRequest",
            "NutritionOrder",
            "ServiceRequest",
        ],
    ),
    r(
        "Observation",
        "part-of",
        &["partOf"],
        &[
            "MedicationAdministration",
            "MedicationDispense",
            "MedicationStatement",
            "Procedure",
            "Immunization",
            "ImagingStudy",
        ],
    ),
    r("Observation", "specimen", &["specimen"], &["Specimen"]),
    r("Observation", "device", &["device"], &["Device", "DeviceMetric"]),
    r("Observation", "focus", &["focus"], ANY),
    r("DiagnosticReport", "subject", &["subject"], SUBJECT),
    r("DiagnosticReport", "patient", &["subject"], PATIENT),
    r("DiagnosticReport", "encounter", &["encounter"], ENCOUNTER),
    r(
        "DiagnosticReport",
        "performer",
        &["performer"],
        &["Practitioner", "PractitionerRole", "Organization", "CareTeam"],
    ),
    r("DiagnosticReport", "result", &["result"], &["Observation"]),
    r("DiagnosticReport", "specimen", &["specimen"], &["Specimen"]),
    r(
        "DiagnosticReport",
        "based-on",
        &["basedOn"],
        &["CarePlan", "ImmunizationRecommendation", "MedicationRequest", "NutritionOrder", "ServiceRequest"],
    ),
    r("Procedure", "subject", &["subject"], SUBJECT),
    r("Procedure", "patient", &["subject"], PATIENT),
    r("Procedure", "encounter", &["encounter"], ENCOUNTER),
    r("Procedure", "performer", &["performer", "actor"], ACTORS),
    r("Procedure", "location", &["location"], &["Location"]),
    r("Procedure", "based-on", &["basedOn"], &["CarePlan", "ServiceRequest"]),
    r("Procedure", "part-of", &["partOf"], &["Procedure", "Observation", "MedicationAdministration"]),
    r(
        "Procedure",
        "reason-reference",
        &["reasonReference"],
        &["Condition", "Observation", "Procedure", "DiagnosticReport", "DocumentReference"],
    ),
    r("MedicationStatement", "subject", &["subject"], SUBJECT),
    r("MedicationStatement", "patient", &["subject"], PATIENT),
    r("MedicationStatement", "context", &["context"], &["Encounter", "EpisodeOfCare"]),
    r("MedicationStatement", "medication", &["medicationReference"], &["Medication"]),
    r(
        "MedicationStatement",
        "part-of",
        &["partOf"],
        &[
            "MedicationAdministration",
            "MedicationDispense",
            "MedicationStatement",
            "Procedure",
            "Observation",
        ],
    ),
    r(
        "MedicationStatement",
        "source",
        &["informationSource"],
        &["Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Organization"],
    ),
    r("MedicationRequest", "subject", &["subject"], SUBJECT),
    r("MedicationRequest", "patient", &["subject"], PATIENT),
    r("MedicationRequest", "encounter", &["encounter"], ENCOUNTER),
    r("MedicationRequest", "medication", &["medicationReference"], &["Medication"]),
    r("MedicationRequest", "requester", &["requester"], ACTORS),
    r(
        "MedicationRequest",
        "intended-performer",
        &["performer"],
        &[
            "Practitioner",
            "Organization",
            "Patient",
            "Device",
            "RelatedPerson",
            "PractitionerRole",
            "CareTeam",
            "HealthcareService",
        ],
    ),
    r("MedicationRequest", "intended-dispenser", &["dispenseRequest", "performer"], &["Organization"]),
    r("Immunization", "patient", &["patient"], PATIENT),
    r(
        "Immunization",
        "performer",
        &["performer", "actor"],
        &["Practitioner", "PractitionerRole", "Organization"],
    ),
    r("Immunization", "location", &["location"], &["Location"]),
    r("Immunization", "manufacturer", &["manufacturer"], &["Organization"]),
    r("Immunization", "reaction", &["reaction", "detail"], &["Observation"]),
    r(
        "Immunization",
        "reason-reference",
        &["reasonReference"],
        &["Condition", "Observation", "DiagnosticReport"],
    ),
    r("Encounter", "subject", &["subject"], SUBJECT),
    r("Encounter", "patient", &["subject"], PATIENT),
    r("Encounter", "practitioner", &["participant", "individual"], &["Practitioner"]),
    r(
        "Encounter",
        "participant",
        &["participant", "individual"],
        &["Practitioner", "PractitionerRole", "RelatedPerson"],
    ),
    r("Encounter", "location", &["location", "location"], &["Location"]),
    r("Encounter", "service-provider", &["serviceProvider"], &["Organization"]),
    r("Encounter", "diagnosis", &["diagnosis", "condition"], &["Condition", "Procedure"]),
    r("Encounter", "part-of", &["partOf"], ENCOUNTER),
    r("Encounter", "episode-of-care", &["episodeOfCare"], &["EpisodeOfCare"]),
    r("Encounter", "based-on", &["basedOn"], &["ServiceRequest"]),
    r("Encounter", "appointment", &["appointment"], &["Appointment"]),
    r("Provenance", "target", &["target"], ANY),
    r(
        "Provenance",
        "agent",
        &["agent", "who"],
        &["Practitioner", "PractitionerRole", "RelatedPerson", "Patient", "Device", "Organization"],
    ),
    r("Provenance", "entity", &["entity", "what"], ANY),
];

impl ReferenceParam {
    /// `Source:name`, as `_include` writes it.
    pub fn spelled(&self) -> String {
        format!("{}:{}", self.source, self.name)
    }

    pub(super) fn may_point_at(&self, resource_type: &str) -> bool {
        self.targets.is_empty() || self.targets.contains(&resource_type)
    }

    /// Every relative `Type/id` reference `resource` makes through this parameter.
    pub(super) fn references<'a>(&self, resource: &'a Value) -> Vec<&'a str> {
        let mut level = vec![resource];
        for key in self.path {
            level = level
                .into_iter()
                .filter_map(|v| v.get(key))
                .flat_map(|v| match v {
                    Value::Array(items) => items.iter().collect::<Vec<_>>(),
                    one => vec![one],
                })
                .collect();
        }
        level
            .into_iter()
            .filter_map(|v| v.get("reference").and_then(Value::as_str))
            .map(|s| s.split("/_history/").next().unwrap_or(s))
            .collect()
    }
}
