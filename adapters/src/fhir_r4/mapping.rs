//! Normalisation of a FHIR R4 source's resources: pure functions, no I/O.
//!
//! Ids are namespaced by source so two boroughs' `Condition/1` never collide, references follow
//! the ids, the patient's own id becomes the gateway's opaque id, and `meta.source` names the
//! source. Nothing else is touched: codings, extensions and decimals pass through as the source
//! wrote them (the workspace's serde_json keeps `1.50` as `1.50` and key order as sent).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tideway_profiles::validate::check_r4_value;
use tideway_profiles::{NhsNumber, systems};

use crate::adapter::{AdapterError, NormalisedResource, RejectedResource, RejectionKind};
use crate::source::SourceId;

/// Extension on `meta` keeping a source's own `meta.source` when ours replaces it.
pub const ORIGINAL_META_SOURCE_URL: &str =
    "https://fhir.tideway.london/StructureDefinition/original-meta-source";

/// The `meta.source` value for a source: `urn:tideway:source:{id}`.
pub fn meta_source(source: &SourceId) -> String {
    format!("urn:tideway:source:{source}")
}

/// The NHS number a Patient carries, if it carries a valid one (never one kept as `use = old`).
pub fn nhs_number_of(patient: &Value) -> Option<NhsNumber> {
    patient.get("identifier")?.as_array()?.iter().find_map(|i| {
        (i.get("system").and_then(Value::as_str) == Some(systems::NHS_NUMBER)
            && i.get("use").and_then(Value::as_str) != Some("old"))
        .then(|| i.get("value").and_then(Value::as_str))
        .flatten()
        .and_then(|v| NhsNumber::parse(&v.replace(' ', "")).ok())
    })
}

/// Whether `id` is a valid FHIR id (1 to 64 of `A-Z a-z 0-9 - .`).
pub fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The id the gateway publishes for a source's resource: `{source}.{local}`, or, when that would
/// not be a valid FHIR id, `{source}.` followed by the first 32 hex digits of SHA-256 of the
/// local id (stable, and it leaks nothing of an odd-looking local id).
pub fn gateway_resource_id(source: &SourceId, local: &str) -> String {
    let plain = format!("{source}.{local}");
    if is_fhir_id(local) && is_fhir_id(&plain) {
        return plain;
    }
    let digest = Sha256::digest(local.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{source}.{hex}")
}

/// What a dialect built on plain FHIR R4 adds to its normalisation: the checks and marks it
/// applies to each resource after the common steps (ids, references, `meta.source`) and before
/// R4 validation. A rejection carries no content.
pub trait Profile: std::fmt::Debug + Send + Sync + 'static {
    /// Checks and amends one normalised resource.
    fn apply(&self, resource: Value) -> Result<Value, RejectedResource>;
}

/// Plain FHIR R4: the common steps alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainR4;

impl Profile for PlainR4 {
    fn apply(&self, resource: Value) -> Result<Value, RejectedResource> {
        Ok(resource)
    }
}

/// What normalisation needs to know about the call.
#[derive(Debug, Clone, Copy)]
pub struct Normaliser<'a> {
    /// The source the resources came from.
    pub source: &'a SourceId,
    /// The source's base URL; absolute references on it are treated as relative ones.
    pub base_url: &'a url::Url,
    /// The source's id for the patient whose record this is.
    pub patient_local_id: &'a str,
    /// The gateway's id for that patient.
    pub gateway_patient_id: &'a str,
}

impl Normaliser<'_> {
    /// The gateway id for a resource of `resource_type` with source id `local`.
    pub fn map_id(&self, resource_type: &str, local: &str) -> String {
        if resource_type == "Patient" && local == self.patient_local_id {
            self.gateway_patient_id.to_owned()
        } else {
            gateway_resource_id(self.source, local)
        }
    }

    /// Rewrites one reference string, or returns `None` to leave it as it is (contained `#x`,
    /// `urn:` and other absolute URLs, conditional references, anything unrecognised).
    pub fn map_reference(&self, reference: &str) -> Option<String> {
        let base = self.base_url.as_str();
        let relative = if let Some(rest) = reference.strip_prefix(base) {
            rest
        } else if reference.contains(':') || reference.starts_with('#') {
            return None;
        } else {
            reference
        };
        let mut parts = relative.split('/');
        let resource_type = parts.next()?;
        let local = parts.next()?;
        let history: Vec<&str> = parts.collect();
        let type_ok = resource_type.starts_with(|c: char| c.is_ascii_uppercase())
            && resource_type.bytes().all(|b| b.is_ascii_alphanumeric());
        if !type_ok || local.is_empty() || local.contains('?') {
            return None;
        }
        let history_ok =
            history.is_empty() || (history.len() == 2 && history[0] == "_history" && is_fhir_id(history[1]));
        if !history_ok {
            return None;
        }
        let mut out = format!("{resource_type}/{}", self.map_id(resource_type, local));
        if !history.is_empty() {
            out.push_str("/_history/");
            out.push_str(history[1]);
        }
        Some(out)
    }

    /// Normalises one resource in place of its JSON: new id, rewritten references,
    /// `meta.source`. Fails (without content) when the resource has no type or no id.
    pub fn normalise(&self, mut resource: Value) -> Result<Value, RejectedResource> {
        let resource_type = resource_type_of(&resource);
        let reject = |reason: &str| RejectedResource::invalid(resource_type.clone(), reason);
        let Some(ty) = resource_type.clone() else {
            return Err(reject("entry has no readable resourceType"));
        };
        let Some(obj) = resource.as_object_mut() else {
            return Err(reject("entry resource is not a JSON object"));
        };
        let Some(local) = obj.get("id").and_then(Value::as_str).map(str::to_owned) else {
            return Err(reject("resource has no id"));
        };
        for (key, value) in obj.iter_mut() {
            if key != "id" && key != "meta" {
                self.rewrite_references(value);
            }
        }
        obj.insert("id".into(), Value::String(self.map_id(&ty, &local)));
        let meta = obj.entry("meta").or_insert_with(|| Value::Object(Map::new()));
        let Some(meta) = meta.as_object_mut() else {
            return Err(reject("meta is not an object"));
        };
        // The record-origin and normalisation tags are Tideway's to set (they decide a
        // resource's section, and whether the gateway's Provenance names its maps): a source's
        // own are dropped, and an emptied list with them.
        if let Some(Value::Array(tags)) = meta.get_mut("tag") {
            tags.retain(|t| {
                let system = t.get("system").and_then(Value::as_str);
                system != Some(systems::RECORD_ORIGIN)
                    && system != Some(tideway_profiles::maps::NORMALISATION_TAGS)
            });
            if tags.is_empty() {
                meta.remove("tag");
            }
        }
        let ours = meta_source(self.source);
        if let Some(original) = meta.insert("source".into(), Value::String(ours.clone()))
            && original.as_str() != Some(ours.as_str())
        {
            {
                let ext = serde_json::json!({"url": ORIGINAL_META_SOURCE_URL, "valueUri": original});
                match meta.entry("extension").or_insert_with(|| Value::Array(Vec::new())) {
                    Value::Array(list) => list.push(ext),
                    _ => return Err(reject("meta.extension is not an array")),
                }
            }
        }
        Ok(resource)
    }

    fn rewrite_references(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if key == "reference"
                        && let Value::String(s) = child
                    {
                        if let Some(new) = self.map_reference(s) {
                            *s = new;
                        }
                        continue;
                    }
                    self.rewrite_references(child);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.rewrite_references(v)),
            _ => {}
        }
    }
}

/// Refuses an answer to a read of `resource_type/local_id` that is some other resource.
pub fn expect_resource(value: &Value, resource_type: &str, local_id: &str) -> Result<(), AdapterError> {
    let same = resource_type_of(value).as_deref() == Some(resource_type)
        && value.get("id").and_then(Value::as_str) == Some(local_id);
    if same {
        Ok(())
    } else {
        Err(AdapterError::Malformed("the source answered with another resource".into()))
    }
}

/// The resource's `resourceType` when it looks like a type name (so a hostile value is never
/// carried into reports).
pub fn resource_type_of(resource: &Value) -> Option<String> {
    let ty = resource.get("resourceType")?.as_str()?;
    let ok = (1..=64).contains(&ty.len())
        && ty.starts_with(|c: char| c.is_ascii_uppercase())
        && ty.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| ty.to_owned())
}

/// Serialises a normalised resource, checks it is valid R4 and reads its facts.
pub fn finish(resource: &Value) -> Result<NormalisedResource, RejectedResource> {
    let resource_type = resource_type_of(resource);
    let reject = |reason: String| RejectedResource::invalid(resource_type.clone(), reason);
    // Validated as the parsed value it already is: serialising only what will be kept.
    check_r4_value(resource).map_err(|e| reject(e.to_string()))?;
    NormalisedResource::from_value(resource).map_err(|_| reject("resource could not be serialised".into()))
}

/// Whether a Bundle entry is an OperationOutcome about the search rather than a resource.
pub fn is_outcome_entry(entry: &Value) -> bool {
    entry.pointer("/search/mode").and_then(Value::as_str) == Some("outcome")
        || entry.pointer("/resource/resourceType").and_then(Value::as_str) == Some("OperationOutcome")
}

/// Normalises a page's worth of entries: outcome entries are skipped, the rest become
/// normalised resources or rejections. An entry about another patient (its `subject` or
/// `patient` names a different patient, or another server) is rejected: a source's answer for
/// one patient must never carry another's data into that patient's record.
pub fn normalise_entries(n: &Normaliser<'_>, entries: Vec<Value>, out: &mut crate::adapter::SourceRecord) {
    normalise_entries_with(n, &PlainR4, entries, out);
}

/// [`normalise_entries`] for a dialect: `profile` applies to each resource between the common
/// steps and validation.
pub fn normalise_entries_with(
    n: &Normaliser<'_>,
    profile: &dyn Profile,
    entries: Vec<Value>,
    out: &mut crate::adapter::SourceRecord,
) {
    for mut entry in entries {
        if is_outcome_entry(&entry) {
            continue;
        }
        let Some(resource) = entry.as_object_mut().and_then(|e| e.remove("resource")) else {
            out.rejected.push(RejectedResource::invalid(None, "entry has no resource"));
            continue;
        };
        match normalise_resource_with(n, profile, resource) {
            Ok(r) => out.resources.push(r),
            Err(r) => out.rejected.push(r),
        }
    }
}

/// Normalises one resource and passes it on, or lists it as rejected ([`normalise_resource`]).
pub fn accept(n: &Normaliser<'_>, resource: Value, out: &mut crate::adapter::SourceRecord) {
    match normalise_resource_with(n, &PlainR4, resource) {
        Ok(r) => out.resources.push(r),
        Err(r) => out.rejected.push(r),
    }
}

/// Normalises one resource of the patient's record and checks it: valid R4, and about this
/// patient (or no patient); otherwise the rejection, without content.
pub fn normalise_resource(
    n: &Normaliser<'_>,
    resource: Value,
) -> Result<NormalisedResource, RejectedResource> {
    normalise_resource_with(n, &PlainR4, resource)
}

/// [`normalise_resource`] for a dialect: `profile` applies between the common steps and
/// validation.
pub fn normalise_resource_with(
    n: &Normaliser<'_>,
    profile: &dyn Profile,
    resource: Value,
) -> Result<NormalisedResource, RejectedResource> {
    let mut resource = n.normalise(resource).and_then(|r| profile.apply(r))?;
    // Every source's legacy and local codes gain the SNOMED CT or dm+d coding a map gives.
    tideway_profiles::maps::enrich(&mut resource);
    checked(n, &resource)
}

/// Passes on a resource already normalised by `n` (ids, references, `meta.source`), or lists
/// it as rejected, as [`accept`] does.
pub fn accept_normalised(n: &Normaliser<'_>, resource: &Value, out: &mut crate::adapter::SourceRecord) {
    match checked(n, resource) {
        Ok(r) => out.resources.push(r),
        Err(r) => out.rejected.push(r),
    }
}

/// A normalised resource checked: valid R4, and about the record's patient (or no patient).
fn checked(n: &Normaliser<'_>, resource: &Value) -> Result<NormalisedResource, RejectedResource> {
    let r = finish(resource)?;
    if !r.facts.is_about(n.gateway_patient_id) {
        return Err(RejectedResource {
            resource_type: Some(r.resource_type),
            kind: RejectionKind::OtherPatient,
            reason: "entry is about another patient".into(),
        });
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture() -> (SourceId, url::Url) {
        (SourceId::parse("camden").unwrap(), url::Url::parse("https://camden.example/fhir/").unwrap())
    }

    fn with<T>(f: impl FnOnce(&Normaliser<'_>) -> T) -> T {
        let (source, base) = fixture();
        f(&Normaliser {
            source: &source,
            base_url: &base,
            patient_local_id: "p1",
            gateway_patient_id: "gw-123",
        })
    }

    #[test]
    fn ids_are_namespaced_or_hashed_when_unusable() {
        let s = SourceId::parse("camden").unwrap();
        assert_eq!(gateway_resource_id(&s, "abc-1.2"), "camden.abc-1.2");
        let odd = gateway_resource_id(&s, "a b/c");
        assert!(odd.starts_with("camden.") && odd.len() == 7 + 32 && is_fhir_id(&odd), "{odd}");
        assert_eq!(odd, gateway_resource_id(&s, "a b/c"));
        let long = gateway_resource_id(&s, &"x".repeat(60));
        assert!(is_fhir_id(&long));
    }

    #[test]
    fn references_follow_ids_and_patient_gets_gateway_id() {
        with(|n| {
            assert_eq!(n.map_reference("Condition/c1").as_deref(), Some("Condition/camden.c1"));
            assert_eq!(n.map_reference("Patient/p1").as_deref(), Some("Patient/gw-123"));
            assert_eq!(n.map_reference("Patient/p2").as_deref(), Some("Patient/camden.p2"));
            assert_eq!(
                n.map_reference("https://camden.example/fhir/Encounter/e1").as_deref(),
                Some("Encounter/camden.e1")
            );
            assert_eq!(
                n.map_reference("Observation/o1/_history/3").as_deref(),
                Some("Observation/camden.o1/_history/3")
            );
            assert_eq!(n.map_reference("#med1"), None);
            assert_eq!(n.map_reference("https://elsewhere.example/fhir/Patient/p1"), None);
            assert_eq!(n.map_reference("urn:uuid:1234"), None);
            assert_eq!(n.map_reference("Organization?identifier=x|y"), None);
        });
    }

    #[test]
    fn normalise_keeps_codings_decimals_and_contained_refs() {
        let input: Value = serde_json::from_str(
            r##"{"resourceType":"Observation","id":"o1","meta":{"source":"urn:own","lastUpdated":"2024-01-01T00:00:00Z"},
            "contained":[{"resourceType":"Medication","id":"m","code":{"text":"x"}}],
            "extension":[{"url":"http://x.org/e","valueDecimal":1.50}],
            "status":"final","code":{"coding":[{"system":"http://read.info/readv2","code":"44M4."}]},
            "subject":{"reference":"Patient/p1"},"focus":[{"reference":"#m"}],
            "valueQuantity":{"value":1.50,"unit":"mmol/L"}}"##,
        )
        .unwrap();
        let out = with(|n| n.normalise(input)).unwrap();
        let text = serde_json::to_string(&out).unwrap();
        assert!(text.contains(r#""extension":[{"url":"http://x.org/e","valueDecimal":1.50}]"#), "{text}");
        assert!(text.contains(r#""valueQuantity":{"value":1.50,"unit":"mmol/L"}"#));
        assert!(text.contains(r#""coding":[{"system":"http://read.info/readv2","code":"44M4."}]"#));
        assert_eq!(out["id"], "camden.o1");
        assert_eq!(out["subject"]["reference"], "Patient/gw-123");
        assert_eq!(out["focus"][0]["reference"], "#m");
        assert_eq!(out["meta"]["source"], "urn:tideway:source:camden");
        assert_eq!(
            out["meta"]["extension"][0],
            json!({"url": ORIGINAL_META_SOURCE_URL, "valueUri": "urn:own"})
        );
        let done = finish(&out).unwrap();
        assert_eq!(done.id, "camden.o1");
        assert_eq!(done.last_updated(), Some("2024-01-01T00:00:00Z"));
    }

    #[test]
    fn a_sources_own_record_origin_tags_are_dropped_and_other_tags_kept() {
        let tagged = |tags: Value| json!({"resourceType": "CarePlan", "id": "c1", "meta": {"tag": tags}, "status": "active", "intent": "plan", "subject": {"reference": "Patient/p1"}});
        let origin = json!({"system": systems::RECORD_ORIGIN, "code": "social-care"});
        let other = json!({"system": "http://x.org/tags", "code": "keep"});
        let out = with(|n| n.normalise(tagged(json!([origin.clone(), other.clone()])))).unwrap();
        assert_eq!(out["meta"]["tag"], json!([other]));
        let out = with(|n| n.normalise(tagged(json!([origin])))).unwrap();
        assert!(out["meta"].get("tag").is_none(), "{out}");
        assert_eq!(finish(&out).unwrap().facts.section, Some(tideway_profiles::Section::CarePlans));
    }

    #[test]
    fn invalid_resources_are_rejected_without_content() {
        let mut record = crate::adapter::SourceRecord::default();
        let entries = vec![
            json!({"resource": {"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"},"colour":"SECRET-VALUE"}}),
            json!({"resource": {"resourceType":"Condition","id":"c2","subject":{"reference":"Patient/p1"}}}),
            json!({"resource": {"resourceType":"OperationOutcome","issue":[]}, "search": {"mode": "outcome"}}),
            json!({"resource": {"resourceType":"Condition"}}),
            json!({"fullUrl": "x"}),
        ];
        with(|n| normalise_entries(n, entries, &mut record));
        assert_eq!(record.resources.len(), 1);
        assert_eq!(record.resources[0].id, "camden.c2");
        assert_eq!(record.rejected.len(), 3);
        assert_eq!(record.rejected[0].resource_type.as_deref(), Some("Condition"));
        assert!(record.rejected.iter().all(|r| !r.reason.contains("SECRET")));
    }

    #[test]
    fn entries_about_another_patient_are_rejected_as_such() {
        let mut record = crate::adapter::SourceRecord::default();
        let entries = vec![
            json!({"resource": {"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"}}}),
            json!({"resource": {"resourceType":"Condition","id":"c2","subject":{"reference":"Patient/p2"}}}),
            json!({"resource": {"resourceType":"AllergyIntolerance","id":"a1","patient":{"reference":"https://other.example/fhir/Patient/p1"}}}),
            json!({"resource": {"resourceType":"Organization","id":"o1"}}),
        ];
        with(|n| normalise_entries(n, entries, &mut record));
        let kept: Vec<_> = record.resources.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(kept, ["camden.c1", "camden.o1"]);
        assert_eq!(record.rejected.len(), 2);
        assert!(record.rejected.iter().all(|r| r.kind == RejectionKind::OtherPatient));
        assert_eq!(record.rejected[1].resource_type.as_deref(), Some("AllergyIntolerance"));
    }
}
