//! Subsets of a resource for the `_summary` and `_elements` parameters, from each resource
//! type's top-level elements and their R4 flags (`data/r4-elements.txt`, derived from HL7's
//! StructureDefinitions).
//!
//! Whatever is asked, a subset keeps `id`, `meta`, every mandatory element and every modifier
//! element (`status`, `clinicalStatus`, `verificationStatus`, `modifierExtension`, ...): a
//! clinician shown a Condition without the element that says it was refuted or entered in error
//! would read it the wrong way round. R4 only asks clients to list modifiers; keeping them
//! regardless is allowed (servers "are not obliged to return just the requested elements"). A
//! `contained` resource that a kept element refers to (`#id`) is kept with it. A resource that
//! lost anything is tagged `SUBSETTED`, as R4 asks.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

const ELEMENTS_TEXT: &str = include_str!("../data/r4-elements.txt");

/// The tag R4 puts on a resource that is not whole.
pub const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
/// The code of that tag.
pub const SUBSETTED_CODE: &str = "SUBSETTED";

/// Which part of each resource an answer carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subset {
    /// The whole resource (`_summary=false`, or nothing asked).
    #[default]
    Whole,
    /// `_summary=true`: the elements R4 marks as summary.
    Summary,
    /// `_summary=text`: the narrative, `id` and `meta`.
    Text,
    /// `_summary=data`: everything but the narrative.
    Data,
    /// `_elements`: the named top-level elements (base names, `value` for `value[x]`), each
    /// optionally limited to one resource type (`Observation.code`).
    Elements(Vec<ElementName>),
}

/// What a `_summary` value asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Summary {
    /// `count`: not a subset of each resource but an answer without resources.
    Count,
    /// A subset of each resource.
    Of(Subset),
}

/// One name in `_elements`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ElementName {
    /// The type it was qualified with, if any.
    pub resource_type: Option<String>,
    /// The element's base name (`onset` for `onset[x]`).
    pub name: String,
}

/// Why an `_elements` value cannot be used. Never repeats the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementsError {
    /// Empty, or an empty item between commas.
    Empty,
    /// A path below the top level (`name.family`): R4 `_elements` names top-level elements.
    Nested,
    /// No resource type in scope has an element of that name.
    Unknown,
}

impl ElementsError {
    /// What is wrong, in words that do not repeat the value.
    pub fn message(self) -> &'static str {
        match self {
            Self::Empty => "must be a comma-separated list of element names",
            Self::Nested => "names top-level elements only (such as code or onset), not paths within them",
            Self::Unknown => "names an element that the searched resource types do not have",
        }
    }
}

impl std::fmt::Display for ElementsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl Subset {
    /// Reads a `_summary` value; `None` for anything R4 does not define.
    pub fn of_summary(value: &str) -> Option<Summary> {
        Some(match value {
            "true" => Summary::Of(Self::Summary),
            "text" => Summary::Of(Self::Text),
            "data" => Summary::Of(Self::Data),
            "false" => Summary::Of(Self::Whole),
            "count" => Summary::Count,
            _ => return None,
        })
    }

    /// Reads an `_elements` value for an answer that may hold `types` (each name must be an
    /// element of at least one of them, or of its own qualifying type; no types: any type).
    pub fn of_elements(value: &str, types: &[&str]) -> Result<Self, ElementsError> {
        let mut names = Vec::new();
        for item in value.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(ElementsError::Empty);
            }
            let (resource_type, name) = match item.split_once('.') {
                Some((t, n)) if is_resource_type(t) => (Some(t), n),
                Some(_) => return Err(ElementsError::Nested),
                None => (None, item),
            };
            if name.contains('.') {
                return Err(ElementsError::Nested);
            }
            let name = name.strip_suffix("[x]").unwrap_or(name);
            let known = match &resource_type {
                Some(t) => element(t, name).is_some(),
                None if types.is_empty() => table().keys().any(|t| element(t, name).is_some()),
                None => types.iter().any(|t| element(t, name).is_some()),
            };
            if !known {
                return Err(ElementsError::Unknown);
            }
            names
                .push(ElementName { resource_type: resource_type.map(str::to_owned), name: name.to_owned() });
        }
        Ok(Self::Elements(names))
    }

    /// Whether every resource is sent whole.
    pub fn is_whole(&self) -> bool {
        *self == Self::Whole
    }

    /// Whether `resource` keeps its top-level element `name` (a base name).
    fn keeps(&self, resource_type: &str, name: &str, flags: Flags) -> bool {
        if flags.mandatory || flags.modifier || name == "id" || name == "meta" {
            return true;
        }
        match self {
            Self::Whole => true,
            Self::Summary => flags.summary,
            Self::Text => name == "text",
            Self::Data => name != "text",
            Self::Elements(names) => names
                .iter()
                .any(|n| n.name == name && n.resource_type.as_deref().is_none_or(|t| t == resource_type)),
        }
    }

    /// The part of `resource` this subset keeps, tagged `SUBSETTED` when anything was left out.
    /// A resource of a type R4 does not define is returned as it is.
    pub fn apply(&self, resource: &Value) -> Value {
        let Some(obj) = resource.as_object() else { return resource.clone() };
        let Some(resource_type) = obj.get("resourceType").and_then(Value::as_str) else {
            return resource.clone();
        };
        if self.is_whole() || !is_resource_type(resource_type) {
            return resource.clone();
        }
        let mut kept = Map::new();
        let mut dropped_contained = false;
        let mut dropped = false;
        for (key, value) in obj {
            if key == "resourceType" {
                kept.insert(key.clone(), value.clone());
                continue;
            }
            let base = key.strip_prefix('_').unwrap_or(key);
            let keep = match element_of_key(resource_type, base) {
                Some((name, flags)) => self.keeps(resource_type, name, flags),
                None => false,
            };
            if keep {
                kept.insert(key.clone(), value.clone());
            } else {
                dropped = true;
                dropped_contained |= key == "contained";
            }
        }
        if dropped_contained {
            keep_referenced_contained(obj, &mut kept);
            // All of it referred to from what stays: nothing of it was left out after all.
            let others = obj.keys().filter(|k| *k != "contained").all(|k| kept.contains_key(k));
            dropped = !(others && kept.get("contained") == obj.get("contained"));
        }
        let mut out = Value::Object(kept);
        if dropped {
            tag_subsetted(&mut out);
        }
        out
    }
}

/// Puts back the contained resources that something kept still refers to as `#id`.
fn keep_referenced_contained(whole: &Map<String, Value>, kept: &mut Map<String, Value>) {
    let mut wanted = Vec::new();
    for (k, v) in kept.iter() {
        if k != "meta" {
            local_references(v, &mut wanted);
        }
    }
    if wanted.is_empty() {
        return;
    }
    let Some(contained) = whole.get("contained").and_then(Value::as_array) else { return };
    let keep: Vec<Value> = contained
        .iter()
        .filter(|c| c.get("id").and_then(Value::as_str).is_some_and(|id| wanted.contains(&id)))
        .cloned()
        .collect();
    if !keep.is_empty() {
        kept.insert("contained".to_owned(), Value::Array(keep));
    }
}

/// Every `#id` that a `reference` within `v` names.
fn local_references<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("reference", Value::String(s)) => {
                        if let Some(id) = s.strip_prefix('#') {
                            out.push(id);
                        }
                    }
                    _ => local_references(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| local_references(x, out)),
        _ => {}
    }
}

/// Adds the `SUBSETTED` tag to `meta.tag` (once).
fn tag_subsetted(resource: &mut Value) {
    let Some(obj) = resource.as_object_mut() else { return };
    let meta = obj.entry("meta").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else { return };
    let tags = meta.entry("tag").or_insert_with(|| json!([]));
    let Some(tags) = tags.as_array_mut() else { return };
    let present = tags.iter().any(|t| {
        t.get("system").and_then(Value::as_str) == Some(SUBSETTED_SYSTEM)
            && t.get("code").and_then(Value::as_str) == Some(SUBSETTED_CODE)
    });
    if !present {
        tags.push(json!({"system": SUBSETTED_SYSTEM, "code": SUBSETTED_CODE, "display": "subsetted"}));
    }
}

/// Whether `r` carries the `SUBSETTED` tag.
pub fn is_subsetted(r: &Value) -> bool {
    r.pointer("/meta/tag").and_then(Value::as_array).is_some_and(|tags| {
        tags.iter().any(|t| {
            t.get("system").and_then(Value::as_str) == Some(SUBSETTED_SYSTEM)
                && t.get("code").and_then(Value::as_str) == Some(SUBSETTED_CODE)
        })
    })
}

#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    summary: bool,
    mandatory: bool,
    modifier: bool,
}

/// One top-level element: its base name, whether it is a choice (`[x]`), its flags.
#[derive(Debug)]
struct Element {
    name: &'static str,
    choice: bool,
    flags: Flags,
}

fn table() -> &'static HashMap<&'static str, Vec<Element>> {
    static TABLE: OnceLock<HashMap<&'static str, Vec<Element>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t: HashMap<&'static str, Vec<Element>> = HashMap::new();
        for line in ELEMENTS_TEXT.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let mut parts = line.split(' ');
            let (Some(ty), Some(name), Some(flags)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let (name, choice) = match name.strip_suffix("[x]") {
                Some(base) => (base, true),
                None => (name, false),
            };
            let flags = Flags {
                summary: flags.contains('S'),
                mandatory: flags.contains('M'),
                modifier: flags.contains('X'),
            };
            t.entry(ty).or_default().push(Element { name, choice, flags });
        }
        t
    })
}

fn is_resource_type(t: &str) -> bool {
    table().contains_key(t)
}

/// The element called `name` (a base name) of `resource_type`.
fn element(resource_type: &str, name: &str) -> Option<&'static Element> {
    table().get(resource_type)?.iter().find(|e| e.name == name)
}

/// The element a JSON key (without its `_`) belongs to: itself, or the choice it is a variant of
/// (`onsetDateTime` is `onset[x]`).
fn element_of_key(resource_type: &str, key: &str) -> Option<(&'static str, Flags)> {
    let elements = table().get(resource_type)?;
    elements
        .iter()
        .find(|e| e.name == key)
        .or_else(|| {
            elements.iter().find(|e| {
                e.choice
                    && key
                        .strip_prefix(e.name)
                        .and_then(|rest| rest.chars().next())
                        .is_some_and(|c| c.is_ascii_uppercase())
            })
        })
        .map(|e| (e.name, e.flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition() -> Value {
        json!({
            "resourceType": "Condition",
            "id": "c1",
            "meta": {"lastUpdated": "2024-01-01T00:00:00Z"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Asthma</div>"},
            "contained": [{"resourceType": "Practitioner", "id": "pr"}, {"resourceType": "Practitioner", "id": "other"}],
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "verificationStatus": {"coding": [{"code": "refuted"}]},
            "category": [{"coding": [{"code": "problem-list-item"}]}],
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "195967001"}]},
            "subject": {"reference": "Patient/p1"},
            "onsetDateTime": "2020-01-01",
            "_onsetDateTime": {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
            "recorder": {"reference": "#pr"},
            "note": [{"text": "free text"}]
        })
    }

    #[test]
    fn summary_keeps_summary_mandatory_and_modifier_elements_and_tags() {
        let out = Subset::Summary.apply(&condition());
        for kept in [
            "id",
            "meta",
            "clinicalStatus",
            "verificationStatus",
            "code",
            "subject",
            "onsetDateTime",
            "_onsetDateTime",
            "recorder",
        ] {
            assert!(out.get(kept).is_some(), "{kept} kept");
        }
        for gone in ["text", "category", "note"] {
            assert!(out.get(gone).is_none(), "{gone} dropped");
        }
        // The recorder refers to a contained resource: that one stays, the other goes.
        assert_eq!(out["contained"], json!([{"resourceType": "Practitioner", "id": "pr"}]));
        assert!(is_subsetted(&out));
        assert_eq!(out["meta"]["lastUpdated"], "2024-01-01T00:00:00Z");
    }

    #[test]
    fn data_drops_only_the_narrative_and_text_keeps_it() {
        let data = Subset::Data.apply(&condition());
        assert!(data.get("text").is_none() && data.get("note").is_some() && is_subsetted(&data));
        let text = Subset::Text.apply(&condition());
        assert!(text.get("text").is_some() && text.get("note").is_none() && text.get("subject").is_some());
        assert!(text.get("verificationStatus").is_some(), "a modifier is never dropped");
    }

    #[test]
    fn elements_keep_what_is_named_plus_what_may_never_go() {
        let s = Subset::of_elements("code,onset[x]", &["Condition"]).unwrap();
        let out = s.apply(&condition());
        let mut keys: Vec<&str> = out.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "_onsetDateTime",
                "clinicalStatus",
                "code",
                "id",
                "meta",
                "onsetDateTime",
                "resourceType",
                "subject",
                "verificationStatus"
            ]
        );
        // Qualified by another type: not this one's.
        let other = Subset::of_elements("Observation.code", &["Condition"]).unwrap().apply(&condition());
        assert!(other.get("code").is_none());
    }

    #[test]
    fn elements_refuses_paths_unknown_names_and_empty_items() {
        assert_eq!(Subset::of_elements("code.coding", &["Condition"]), Err(ElementsError::Nested));
        assert_eq!(Subset::of_elements("valueQuantity", &["Condition"]), Err(ElementsError::Unknown));
        assert_eq!(Subset::of_elements("code,,note", &["Condition"]), Err(ElementsError::Empty));
        assert!(Subset::of_elements("value", &["Condition", "Observation"]).is_ok());
    }

    #[test]
    fn whole_and_nothing_dropped_leave_the_resource_untagged() {
        assert_eq!(Subset::Whole.apply(&condition()), condition());
        let minimal = json!({"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p"}});
        assert_eq!(Subset::Summary.apply(&minimal), minimal);
    }

    #[test]
    fn the_table_knows_every_resource_and_its_flags() {
        assert!(table().len() > 140);
        let status = element("Observation", "status").unwrap();
        assert!(status.flags.summary && status.flags.mandatory && status.flags.modifier);
        assert!(element("Observation", "value").unwrap().choice);
        assert_eq!(element_of_key("Observation", "valueQuantity").map(|e| e.0), Some("value"));
        assert!(element_of_key("Observation", "valuex").is_none());
    }
}
