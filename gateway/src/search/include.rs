//! `_include` and `_revinclude` over the references the record holds: R4's reference search
//! parameters of the clinical types (and `Provenance:target`, for `_revinclude`), each with the
//! element it reads and the types it may point at. Included resources come only from the same
//! decided record as the matches (never fetched by following a reference elsewhere), so an
//! include can never carry what the requester could not have been given anyway.

use std::collections::HashSet;

use serde_json::Value;
use tideway_adapters::NormalisedResource;

use super::BadParam;

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
    targets: &'static [&'static str],
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

    fn may_point_at(&self, resource_type: &str) -> bool {
        self.targets.is_empty() || self.targets.contains(&resource_type)
    }

    /// Every relative `Type/id` reference `resource` makes through this parameter.
    fn references<'a>(&self, resource: &'a Value) -> Vec<&'a str> {
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

/// The parameters `_include` takes on a search of `resource_type` (`Type:name`).
pub fn includes_of(resource_type: &str) -> impl Iterator<Item = &'static ReferenceParam> {
    PARAMS.iter().filter(move |p| p.source == resource_type && p.source != "Provenance")
}

/// The parameters `_revinclude` takes on a search of `resource_type`: those of another searched
/// type (or Provenance) that may point at it.
pub fn revincludes_of(resource_type: &str) -> impl Iterator<Item = &'static ReferenceParam> {
    PARAMS.iter().filter(move |p| p.may_point_at(resource_type))
}

/// One `_include` or `_revinclude` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// `_revinclude` (resources that refer to the matches) rather than `_include`.
    pub reverse: bool,
    /// The parameter, from [`PARAMS`].
    pub param: &'static ReferenceParam,
    /// `Type:name:Target`: only references to that type.
    pub target: Option<String>,
}

impl Include {
    /// Reads `_include` (`reverse` false) or `_revinclude` on a search of `searched`. An
    /// unsupported value is a 400 naming the parameter (`*`, `:iterate`, a parameter this table
    /// does not have), never silently ignored.
    pub fn parse(value: &str, reverse: bool, searched: &str) -> Result<Self, BadParam> {
        let name = if reverse { "_revinclude" } else { "_include" };
        let unsupported = |problem| BadParam { name, problem, unsupported: true };
        let mut parts = value.split(':');
        let (Some(source), Some(param)) = (parts.next(), parts.next()) else {
            return Err(BadParam {
                name,
                problem: "must be Type:parameter[:TargetType]",
                unsupported: false,
            });
        };
        let target = parts.next().map(str::to_owned);
        if target.as_deref().is_some_and(|t| !tideway_profiles::schema::is_resource_type(t)) {
            return Err(BadParam {
                name,
                problem: "names a target that is not a resource type",
                unsupported: false,
            });
        }
        if parts.next().is_some() {
            return Err(BadParam {
                name,
                problem: "must be Type:parameter[:TargetType]",
                unsupported: false,
            });
        }
        if source == "*" || param == "*" {
            return Err(unsupported("wildcards are not supported: name each Type:parameter"));
        }
        let Some(p) = PARAMS.iter().find(|p| p.source == source && p.name == param) else {
            return Err(unsupported("names a reference parameter this gateway does not include by"));
        };
        if reverse {
            if !p.may_point_at(searched) {
                return Err(BadParam {
                    name,
                    problem: "names a parameter that cannot refer to the type searched",
                    unsupported: false,
                });
            }
        } else if p.source != searched || p.source == "Provenance" {
            return Err(BadParam {
                name,
                problem: "must name a parameter of the type searched",
                unsupported: false,
            });
        }
        if let Some(t) = &target
            && (!p.may_point_at(t) || (reverse && t != searched))
        {
            return Err(BadParam {
                name,
                problem: "names a target type the parameter cannot refer to",
                unsupported: false,
            });
        }
        Ok(Self { reverse, param: p, target })
    }

    /// The resource types this may bring into an answer (`None`: any type).
    pub fn brings(&self) -> Option<Vec<&'static str>> {
        let p = self.param;
        if self.reverse {
            return Some(vec![p.source]);
        }
        if p.targets.is_empty() {
            return match &self.target {
                Some(t) => tideway_profiles::schema::resource_type_named(t).map(|t| vec![t]),
                None => None,
            };
        }
        Some(match &self.target {
            Some(t) => p.targets.iter().copied().filter(|x| x == t).collect(),
            None => p.targets.to_vec(),
        })
    }
}

/// Every type `includes` may bring in (`None`: any type).
pub fn brought_types(includes: &[Include]) -> Option<Vec<&'static str>> {
    let mut all = Vec::new();
    for i in includes {
        for t in i.brings()? {
            if !all.contains(&t) {
                all.push(t);
            }
        }
    }
    Some(all)
}

/// One include ready to test candidates: the parameter, the target type it is limited to, and
/// the keys it selects (`None` for a reverse include, which tests what a candidate refers to).
type Wanted<'a> = (&'static ReferenceParam, Option<&'a str>, Option<HashSet<String>>);

/// The `candidates` (released, not matching) that `includes` bring in beside `matches`, in
/// candidate order. Each include is turned into one set of keys first (what the matches refer
/// to through it, or the matches themselves for a reverse one), so each candidate costs one
/// look-up per include. Only parsed when includes were asked for.
pub fn select(
    includes: &[Include],
    matches: &[NormalisedResource],
    candidates: Vec<NormalisedResource>,
) -> Vec<NormalisedResource> {
    if includes.is_empty() || candidates.is_empty() {
        return Vec::new();
    }
    let match_keys: HashSet<String> = matches.iter().map(|m| m.reference()).collect();
    let parsed: Vec<Value> =
        matches.iter().map(|m| serde_json::from_slice(&m.json).unwrap_or(Value::Null)).collect();
    let wanted: Vec<Wanted<'_>> = includes
        .iter()
        .map(|i| {
            let p = i.param;
            let forward = (!i.reverse).then(|| {
                parsed.iter().flat_map(|json| p.references(json)).map(str::to_owned).collect::<HashSet<_>>()
            });
            (p, i.target.as_deref(), forward)
        })
        .collect();
    let needs_json = wanted.iter().any(|(_, _, forward)| forward.is_none());
    candidates
        .into_iter()
        .filter(|c| {
            let key = c.reference();
            let json = needs_json.then(|| serde_json::from_slice::<Value>(&c.json).unwrap_or(Value::Null));
            wanted.iter().any(|(p, target, forward)| match (forward, &json) {
                (Some(keys), _) => {
                    p.may_point_at(&c.resource_type)
                        && target.is_none_or(|t| t == c.resource_type)
                        && keys.contains(&key)
                }
                (None, Some(json)) => {
                    c.resource_type == p.source && p.references(json).iter().any(|x| match_keys.contains(*x))
                }
                (None, None) => false,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(v: Value) -> NormalisedResource {
        NormalisedResource::from_value(&v).unwrap()
    }

    #[test]
    fn parses_what_the_table_has_and_refuses_the_rest_by_name() {
        let i = Include::parse("Condition:encounter", false, "Condition").unwrap();
        assert_eq!(i.brings(), Some(vec!["Encounter"]));
        let patient = Include::parse("Condition:subject:Patient", false, "Condition").unwrap();
        assert_eq!(patient.brings(), Some(vec!["Patient"]));
        assert_eq!(Include::parse("Condition:evidence-detail", false, "Condition").unwrap().brings(), None);
        assert_eq!(brought_types(&[i, patient]), Some(vec!["Encounter", "Patient"]));
        assert!(Include::parse("Provenance:target", true, "Condition").is_ok());
        assert!(Include::parse("Condition:encounter", true, "Encounter").is_ok());
        let e = Include::parse("*", false, "Condition").unwrap_err();
        assert_eq!((e.name, e.unsupported), ("_include", false));
        assert!(Include::parse("Condition:*", false, "Condition").unwrap_err().unsupported);
        assert!(Include::parse("Condition:evidence", false, "Condition").unwrap_err().unsupported);
        // Another type's parameter, or a target the parameter cannot have.
        assert!(!Include::parse("Observation:encounter", false, "Condition").unwrap_err().unsupported);
        assert!(Include::parse("Condition:encounter:Patient", false, "Condition").is_err());
        assert!(Include::parse("Condition:encounter", true, "Observation").is_err());
        assert!(Include::parse("Provenance:target", false, "Condition").is_err());
    }

    #[test]
    fn forward_includes_follow_the_named_element_only_and_reverse_ones_point_back() {
        let cond =
            res(json!({"resourceType": "Condition", "id": "s.c1", "subject": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/s.e1"}, "asserter": {"reference": "Practitioner/s.pr1"}}));
        let enc = res(json!({"resourceType": "Encounter", "id": "s.e1", "status": "finished",
            "class": {"code": "AMB"}}));
        let other_enc = res(json!({"resourceType": "Encounter", "id": "s.e2", "status": "finished",
            "class": {"code": "AMB"}}));
        let pr = res(json!({"resourceType": "Practitioner", "id": "s.pr1"}));
        let prov = res(
            json!({"resourceType": "Provenance", "id": "s.pv", "recorded": "2024-01-01T00:00:00Z",
            "target": [{"reference": "Condition/s.c1"}], "agent": [{"who": {"reference": "Practitioner/s.pr1"}}]}),
        );
        let candidates = vec![enc.clone(), other_enc, pr.clone(), prov.clone()];
        let by = |spec: &str, reverse: bool| {
            let i = Include::parse(spec, reverse, "Condition").unwrap();
            select(&[i], std::slice::from_ref(&cond), candidates.clone())
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(by("Condition:encounter", false), ["s.e1"]);
        assert_eq!(by("Condition:asserter", false), ["s.pr1"]);
        assert_eq!(by("Condition:asserter:Patient", false), Vec::<String>::new());
        assert_eq!(by("Provenance:target", true), ["s.pv"]);
        assert!(by("Condition:subject", false).is_empty(), "the Patient is not among the candidates");
    }

    #[test]
    fn every_type_searched_declares_includes_and_provenance_revincludes() {
        for t in tideway_profiles::PATIENT_SEARCH_TYPES {
            assert!(includes_of(t).count() >= 2, "{t}");
            assert!(revincludes_of(t).any(|p| p.spelled() == "Provenance:target"), "{t}");
        }
    }
}
