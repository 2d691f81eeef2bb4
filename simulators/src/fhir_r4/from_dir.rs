//! Serving a directory of Synthea R4 transaction bundles as a borough's records.
//!
//! Synthea writes one transaction bundle per patient (entries addressed by `urn:uuid:` fullUrls)
//! plus `hospitalInformation*.json` and `practitionerInformation*.json` holding the shared
//! Organizations, Locations, Practitioners and PractitionerRoles. A FHIR server would assign ids
//! and resolve references when the transactions are posted; this module does the same once at
//! load: each resource's id is the uuid of its fullUrl, `urn:uuid:X` references become `Type/X`,
//! conditional references (`Organization?identifier=system|value`) are resolved against the
//! shared bundles, and each patient gets a test-range NHS number (see [`assign_nhs_numbers`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tideway_profiles::{NhsNumber, systems};

/// Why a directory could not be loaded. Synthea names files after the (synthetic) patient, so
/// the path is kept as a field for the caller but never put in the message.
#[derive(Debug, thiserror::Error)]
pub enum FromDirError {
    /// The directory or a file could not be read.
    #[error("a file of the directory cannot be read: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not a Bundle of the expected shape.
    #[error("a file is not a Synthea bundle: {reason}")]
    Shape {
        /// The path.
        path: PathBuf,
        /// What was wrong (structural only).
        reason: &'static str,
    },
    /// More patient files than test-range NHS numbers set aside for them.
    #[error("too many patient bundles")]
    TooMany,
}

/// First stem of the NHS numbers given to Synthea patients.
const FROM_DIR_STEM_BASE: u32 = 999_100_000;

/// The NHS number for the `k`-th patient file (0-based, files sorted by name): the number with
/// stem `999_100_000 + 10k`, or stem `999_100_000 + 10k + 1` when the first has no Mod 11 check
/// digit (two neighbouring stems are never both without one).
pub fn nhs_number_for_patient_file(k: usize) -> Option<NhsNumber> {
    let k = u32::try_from(k).ok()?;
    let stem = FROM_DIR_STEM_BASE.checked_add(k.checked_mul(10)?)?;
    if stem > 999_999_998 {
        return None;
    }
    NhsNumber::from_stem(stem).or_else(|| NhsNumber::from_stem(stem + 1))
}

/// Whether a file name is one of Synthea's shared-resource bundles.
fn is_shared_file(name: &str) -> bool {
    name.starts_with("hospitalInformation") || name.starts_with("practitionerInformation")
}

/// The patient bundle files of `dir`, sorted by file name.
fn patient_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, FromDirError> {
    let io = |source| FromDirError::Io { path: dir.to_owned(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !is_shared_file(&name) {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn shared_files(dir: &Path) -> Result<Vec<PathBuf>, FromDirError> {
    let io = |source| FromDirError::Io { path: dir.to_owned(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && is_shared_file(&name) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>, FromDirError> {
    std::fs::read(path).map_err(|source| FromDirError::Io { path: path.to_owned(), source })
}

/// Which NHS number each patient file's patient gets: `(NHS number, the Patient's local id,
/// file name)`, in file-name order, by the rule of [`nhs_number_for_patient_file`].
pub fn assign_nhs_numbers(dir: &Path) -> Result<Vec<(NhsNumber, String, String)>, FromDirError> {
    #[derive(Deserialize)]
    struct Slim {
        entry: Vec<SlimEntry>,
    }
    #[derive(Deserialize)]
    struct SlimEntry {
        #[serde(rename = "fullUrl")]
        full_url: Option<String>,
        resource: SlimResource,
    }
    #[derive(Deserialize)]
    struct SlimResource {
        #[serde(rename = "resourceType")]
        resource_type: String,
        id: Option<String>,
    }
    let mut out = Vec::new();
    for (k, (name, path)) in patient_files(dir)?.into_iter().enumerate() {
        let bytes = read(&path)?;
        let slim: Slim = serde_json::from_slice(&bytes)
            .map_err(|_| FromDirError::Shape { path: path.clone(), reason: "not a JSON Bundle" })?;
        let local = slim
            .entry
            .iter()
            .find(|e| e.resource.resource_type == "Patient")
            .and_then(|e| entry_id(e.full_url.as_deref(), e.resource.id.as_deref()))
            .ok_or(FromDirError::Shape { path, reason: "no Patient entry with an id" })?;
        out.push((nhs_number_for_patient_file(k).ok_or(FromDirError::TooMany)?, local, name));
    }
    Ok(out)
}

/// A resource's id: the uuid of a `urn:uuid:` fullUrl, else its own id.
fn entry_id(full_url: Option<&str>, id: Option<&str>) -> Option<String> {
    full_url.and_then(|u| u.strip_prefix("urn:uuid:")).or(id).map(str::to_owned)
}

/// One Synthea patient, ready to serve.
#[derive(Debug, Clone)]
pub struct DirPatient {
    /// The assigned NHS number.
    pub nhs_number: NhsNumber,
    /// The Patient's id.
    pub local_id: String,
    /// The bundle's file name.
    pub file_name: String,
    /// The Patient first, then the rest of the bundle, then the shared resources it references.
    pub resources: Arc<Vec<Value>>,
}

/// A loaded directory: every patient's resources, with ids and references fixed.
#[derive(Debug, Default)]
pub struct FromDir {
    patients: Vec<DirPatient>,
    by_local: HashMap<String, usize>,
    by_nhs: HashMap<String, usize>,
}

impl FromDir {
    /// Loads and prepares every bundle of `dir`.
    pub fn load(dir: &Path) -> Result<Self, FromDirError> {
        let mut shared: BTreeMap<(String, String), Value> = BTreeMap::new();
        let mut urls: HashMap<String, String> = HashMap::new();
        let mut identifiers: HashMap<String, String> = HashMap::new();
        for path in shared_files(dir)? {
            for (ty, id, resource) in bundle_resources(&path, &read(&path)?)? {
                index_resource(&ty, &id, &resource, &mut identifiers);
                urls.insert(format!("urn:uuid:{id}"), format!("{ty}/{id}"));
                shared.insert((ty, id), resource);
            }
        }
        // Shared resources may point at each other (PractitionerRole -> Practitioner).
        let shared_urls = urls.clone();
        for resource in shared.values_mut() {
            resolve_references(resource, &shared_urls, &identifiers);
        }

        let mut out = Self::default();
        for (k, (file_name, path)) in patient_files(dir)?.into_iter().enumerate() {
            let nhs_number = nhs_number_for_patient_file(k).ok_or(FromDirError::TooMany)?;
            let entries = bundle_resources(&path, &read(&path)?)?;
            let mut local_urls = shared_urls.clone();
            let mut local_identifiers = identifiers.clone();
            for (ty, id, resource) in &entries {
                local_urls.insert(format!("urn:uuid:{id}"), format!("{ty}/{id}"));
                index_resource(ty, id, resource, &mut local_identifiers);
            }
            let mut resources = Vec::with_capacity(entries.len() + 8);
            let mut own = std::collections::HashSet::new();
            let mut local_id = None;
            for (ty, id, mut resource) in entries {
                resolve_references(&mut resource, &local_urls, &local_identifiers);
                if ty == "Patient" && local_id.is_none() {
                    local_id = Some(id.clone());
                    add_nhs_identifier(&mut resource, &nhs_number);
                    resources.insert(0, resource);
                } else {
                    resources.push(resource);
                }
                own.insert((ty, id));
            }
            let local_id =
                local_id.ok_or(FromDirError::Shape { path: path.clone(), reason: "no Patient entry" })?;
            let mut wanted = Vec::new();
            for r in &resources {
                collect_references(r, &mut wanted);
            }
            wanted.sort();
            wanted.dedup();
            for key in wanted {
                if !own.contains(&key)
                    && let Some(r) = shared.get(&key)
                {
                    resources.push(r.clone());
                    own.insert(key);
                }
            }
            let index = out.patients.len();
            out.by_local.insert(local_id.clone(), index);
            out.by_nhs.insert(nhs_number.as_str().to_owned(), index);
            out.patients.push(DirPatient { nhs_number, local_id, file_name, resources: Arc::new(resources) });
        }
        Ok(out)
    }

    /// Registers every patient at the practice with ODS code `ods`: each Patient's
    /// `generalPractitioner` becomes that practice, referenced by its ODS identifier (the
    /// bundles' own practices are usually fictional).
    pub fn register_all_at(mut self, ods: &str) -> Self {
        for p in &mut self.patients {
            let resources = Arc::make_mut(&mut p.resources);
            if let Some(obj) = resources.first_mut().and_then(Value::as_object_mut) {
                obj.insert(
                    "generalPractitioner".into(),
                    json!([{"type": "Organization", "identifier": {"system": systems::ODS_ORGANIZATION_CODE, "value": ods}}]),
                );
            }
        }
        self
    }

    /// Every patient, in file-name order.
    pub fn patients(&self) -> &[DirPatient] {
        &self.patients
    }

    /// The patient with this NHS number.
    pub fn by_nhs_number(&self, nhs: &NhsNumber) -> Option<&DirPatient> {
        self.by_nhs.get(nhs.as_str()).map(|&i| &self.patients[i])
    }

    /// The patient with this local id.
    pub fn by_local_id(&self, local_id: &str) -> Option<&DirPatient> {
        self.by_local.get(local_id).map(|&i| &self.patients[i])
    }
}

type Entry = (String, String, Value);

fn bundle_resources(path: &Path, bytes: &[u8]) -> Result<Vec<Entry>, FromDirError> {
    let shape = |reason| FromDirError::Shape { path: path.to_owned(), reason };
    let bundle: Value = serde_json::from_slice(bytes).map_err(|_| shape("not JSON"))?;
    let Value::Object(mut bundle) = bundle else {
        return Err(shape("not a JSON object"));
    };
    let Some(Value::Array(entries)) = bundle.remove("entry") else {
        return Err(shape("no entry array"));
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Object(mut entry) = entry else {
            return Err(shape("entry is not an object"));
        };
        let full_url = entry.get("fullUrl").and_then(Value::as_str).map(str::to_owned);
        let Some(mut resource) = entry.remove("resource") else {
            return Err(shape("entry without resource"));
        };
        let ty = resource.get("resourceType").and_then(Value::as_str).map(str::to_owned);
        let id = entry_id(full_url.as_deref(), resource.get("id").and_then(Value::as_str));
        let (Some(ty), Some(id)) = (ty, id) else {
            return Err(shape("entry without resourceType or id"));
        };
        if let Some(obj) = resource.as_object_mut() {
            obj.insert("id".into(), Value::String(id.clone()));
        }
        out.push((ty, id, resource));
    }
    Ok(out)
}

/// Indexes `Type?identifier=system|value` keys for conditional references.
fn index_resource(ty: &str, id: &str, resource: &Value, index: &mut HashMap<String, String>) {
    for ident in resource.get("identifier").and_then(Value::as_array).into_iter().flatten() {
        let (Some(system), Some(value)) =
            (ident.get("system").and_then(Value::as_str), ident.get("value").and_then(Value::as_str))
        else {
            continue;
        };
        index.insert(format!("{ty}?identifier={system}|{value}"), format!("{ty}/{id}"));
    }
}

fn resolve_references(
    value: &mut Value,
    urls: &HashMap<String, String>,
    identifiers: &HashMap<String, String>,
) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "reference"
                    && let Value::String(s) = child
                {
                    if let Some(new) = urls.get(s.as_str()).or_else(|| identifiers.get(s.as_str())) {
                        *s = new.clone();
                    }
                    continue;
                }
                resolve_references(child, urls, identifiers);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| resolve_references(v, urls, identifiers)),
        _ => {}
    }
}

fn collect_references(value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if let (true, Some(s)) = (key == "reference", child.as_str()) {
                    if let Some((ty, id)) = s.split_once('/') {
                        out.push((ty.to_owned(), id.to_owned()));
                    }
                } else {
                    collect_references(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

fn add_nhs_identifier(patient: &mut Value, nhs: &NhsNumber) {
    let Some(obj) = patient.as_object_mut() else {
        return;
    };
    let ident = json!({"system": systems::NHS_NUMBER, "value": nhs.as_str()});
    match obj.entry("identifier").or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(list) => list.push(ident),
        other => *other = Value::Array(vec![ident]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_numbers_are_valid_and_distinct() {
        let numbers: Vec<NhsNumber> = (0..500).map(|k| nhs_number_for_patient_file(k).unwrap()).collect();
        let set: std::collections::HashSet<_> = numbers.iter().collect();
        assert_eq!(set.len(), numbers.len());
        assert!(numbers.iter().all(NhsNumber::is_test_range));
        assert!(numbers[0].as_str().starts_with("99910000"));
    }

    #[test]
    fn conditional_and_urn_references_resolve() {
        let urls = HashMap::from([("urn:uuid:a".to_owned(), "Encounter/a".to_owned())]);
        let idents = HashMap::from([(
            "Organization?identifier=https://github.com/synthetichealth/synthea|o1".to_owned(),
            "Organization/org-1".to_owned(),
        )]);
        let mut r = json!({"encounter": {"reference": "urn:uuid:a"},
            "serviceProvider": {"reference": "Organization?identifier=https://github.com/synthetichealth/synthea|o1"},
            "x": [{"reference": "#c"}]});
        resolve_references(&mut r, &urls, &idents);
        assert_eq!(
            r,
            json!({"encounter": {"reference": "Encounter/a"}, "serviceProvider": {"reference": "Organization/org-1"}, "x": [{"reference": "#c"}]})
        );
    }
}
