//! Concrete UK Core R4 rules the gateway's normalised output is held to: what the UK Core STU2
//! profiles require of the elements the adapters populate, beyond a `meta.profile` stamp. Pure:
//! no I/O. Every rule holds on the published UK Core examples (`../shared/data/uk-core-r4-examples`,
//! checked by this module's tests), and every adapter's output is checked against them by the
//! shared conformance suite.
//!
//! The rules:
//! - **profile**: a `meta.profile` naming a UK Core profile names the one of the resource's own
//!   type (`…/StructureDefinition/UKCore-{type}`);
//! - **nhs-number**: a Patient's NHS-number identifier is ten digits with a valid Mod 11 check
//!   digit, and its verification status, when the source gave one (the adapters never invent
//!   one), is UK Core's extension coded in UK Core's `UKCore-NHSNumberVerificationStatusEngland`
//!   system (a GP Connect status is repeated in it beside the original);
//! - **sctid**: a coding in the SNOMED CT system has a SNOMED CT identifier as its code (6 to 18
//!   digits), so a legacy code is never passed off as SNOMED CT;
//! - **r4-code-system**: no coding uses an STU3 URL of HL7's v2 tables or v3 code systems
//!   (`http://hl7.org/fhir/v2/…`, `http://hl7.org/fhir/v3/…`), which R4 publishes under
//!   `terminology.hl7.org`;
//! - **encounter-class**: an Encounter's `class` is coded in v3 ActCode (R4's URL);
//! - **clinical-status**: a Condition's and an AllergyIntolerance's `clinicalStatus` and
//!   `verificationStatus` are coded in R4's own systems for them.
//!
//! A violation names the rule and where, never the value.

use serde_json::Value;

use crate::NhsNumber;
use crate::systems;

/// Where UK Core's profiles are published.
pub const PROFILE_BASE: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-";
/// UK Core's NHS-number verification-status extension.
pub const NHS_VERIFICATION_URL: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
/// Its code system.
pub const NHS_VERIFICATION_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland";

const THO: &str = "http://terminology.hl7.org/CodeSystem/";

/// One rule broken: which, and where (a path of element names, never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule's name, as the module docs list it.
    pub rule: &'static str,
    /// Where, e.g. `Condition.clinicalStatus`.
    pub path: String,
}

/// Every rule `resource` breaks; empty when it meets them all.
pub fn check(resource: &Value) -> Vec<Violation> {
    let ty = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default();
    let mut out = Vec::new();
    let mut broke = |rule, path: String| out.push(Violation { rule, path });
    for profile in resource.pointer("/meta/profile").and_then(Value::as_array).into_iter().flatten() {
        if let Some(named) = profile.as_str().and_then(|p| p.strip_prefix(PROFILE_BASE))
            && named != ty
        {
            broke("profile", format!("{ty}.meta.profile"));
        }
    }
    if ty == "Patient" {
        for id in resource.get("identifier").and_then(Value::as_array).into_iter().flatten() {
            if id.get("system").and_then(Value::as_str) != Some(systems::NHS_NUMBER) {
                continue;
            }
            let value = id.get("value").and_then(Value::as_str).unwrap_or_default();
            if NhsNumber::parse(value).is_err() {
                broke("nhs-number", "Patient.identifier.value".into());
            }
            // A verification status is passed on as the source gave it, never invented; when
            // given, it is UK Core's extension coded in UK Core's system.
            let miscoded = id
                .get("extension")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|e| e.get("url").and_then(Value::as_str) == Some(NHS_VERIFICATION_URL))
                .any(|e| {
                    e.pointer("/valueCodeableConcept/coding/0/system").and_then(Value::as_str)
                        != Some(NHS_VERIFICATION_SYSTEM)
                });
            if miscoded {
                broke("nhs-number", "Patient.identifier.extension".into());
            }
        }
    }
    let mut codings = Vec::new();
    collect_codings(resource, ty.to_owned(), &mut codings);
    for (path, system, code) in codings {
        if system == systems::SNOMED_CT && !is_sctid(code) {
            broke("sctid", path.clone());
        }
        if system.starts_with("http://hl7.org/fhir/v2/") || system.starts_with("http://hl7.org/fhir/v3/") {
            broke("r4-code-system", path);
        }
    }
    if ty == "Encounter"
        && resource.pointer("/class/system").and_then(Value::as_str) != Some(&format!("{THO}v3-ActCode"))
    {
        broke("encounter-class", "Encounter.class".into());
    }
    let statuses: &[(&str, &str)] = match ty {
        "Condition" => {
            &[("clinicalStatus", "condition-clinical"), ("verificationStatus", "condition-ver-status")]
        }
        "AllergyIntolerance" => &[
            ("clinicalStatus", "allergyintolerance-clinical"),
            ("verificationStatus", "allergyintolerance-verification"),
        ],
        _ => &[],
    };
    for (element, system) in statuses {
        let coded = resource.pointer(&format!("/{element}/coding")).and_then(Value::as_array);
        if coded
            .into_iter()
            .flatten()
            .any(|c| c.get("system").and_then(Value::as_str) != Some(&format!("{THO}{system}")))
        {
            broke("clinical-status", format!("{ty}.{element}"));
        }
    }
    out
}

/// A SNOMED CT identifier: 6 to 18 digits, not starting with 0.
fn is_sctid(code: &str) -> bool {
    (6..=18).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) && !code.starts_with('0')
}

/// `(path, system, code)` of every coding in `v` (outside `meta`).
fn collect_codings<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a str, &'a str)>) {
    match v {
        Value::Object(map) => {
            if let (Some(Value::String(system)), Some(Value::String(code))) =
                (map.get("system"), map.get("code"))
            {
                out.push((path.clone(), system, code));
            }
            for (key, child) in map.iter().filter(|(k, _)| k.as_str() != "meta") {
                collect_codings(child, format!("{path}.{key}"), out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_codings(i, path.clone(), out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules(v: &Value) -> Vec<&'static str> {
        check(v).into_iter().map(|x| x.rule).collect()
    }

    /// Every rule holds on the published UK Core examples, but one: the baby patient example's
    /// NHS number fails its Mod 11 check digit (9912003890: the digit should be 6), which the
    /// gateway refuses wherever a number enters.
    #[test]
    fn every_published_uk_core_example_meets_the_rules() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/uk-core-r4-examples/json-converted-by-fhirjs");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("the UK Core examples are beside the project") {
            let path = entry.expect("a file").path();
            let v: Value = serde_json::from_slice(&std::fs::read(&path).expect("readable")).expect("JSON");
            let resources: Vec<&Value> = match v["resourceType"].as_str() {
                Some("Bundle") => {
                    v["entry"].as_array().into_iter().flatten().map(|e| &e["resource"]).collect()
                }
                _ => vec![&v],
            };
            for r in resources {
                let broken = check(r);
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if name == "UKCore-Patient-BabyPatient-Example.json" {
                    assert_eq!(
                        broken,
                        [Violation { rule: "nhs-number", path: "Patient.identifier.value".into() }]
                    );
                } else {
                    assert!(broken.is_empty(), "{name}: {broken:?}");
                }
                checked += 1;
            }
        }
        assert!(checked > 200, "{checked}");
    }

    #[test]
    fn each_rule_catches_what_it_names() {
        let patient = json!({"resourceType": "Patient", "meta": {"profile": [format!("{PROFILE_BASE}Condition")]},
            "identifier": [{"system": systems::NHS_NUMBER, "value": "9990000019",
                "extension": [{"url": NHS_VERIFICATION_URL, "valueCodeableConcept": {"coding": [{"system": "http://x", "code": "01"}]}}]}]});
        assert_eq!(rules(&patient), ["profile", "nhs-number", "nhs-number"]);
        let encounter = json!({"resourceType": "Encounter", "class": {"system": "http://hl7.org/fhir/v3/ActCode", "code": "AMB"},
            "type": [{"coding": [{"system": systems::SNOMED_CT, "code": "X40J5"}]}]});
        assert_eq!(rules(&encounter), ["r4-code-system", "sctid", "encounter-class"]);
        let condition = json!({"resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://hl7.org/fhir/condition-clinical", "code": "active"}]}});
        assert_eq!(rules(&condition), ["clinical-status"]);
        let fine = json!({"resourceType": "Condition", "meta": {"profile": [format!("{PROFILE_BASE}Condition")]},
            "clinicalStatus": {"coding": [{"system": format!("{THO}condition-clinical"), "code": "active"}]},
            "code": {"coding": [{"system": systems::SNOMED_CT, "code": "44054006"}, {"system": systems::CTV3, "code": "X40J5"}]}});
        assert!(check(&fine).is_empty(), "{:?}", check(&fine));
    }
}
