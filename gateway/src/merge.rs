//! Merging what several sources answered into one record: pure functions, no I/O.
//!
//! The same clinical fact reported by several sources (equal merge keys: type, the SNOMED CT
//! codes the sources sent, clinically relevant date, value, status, dose and detail; see
//! `ResourceFacts::merge_key`) appears once, as the first source in registry order sent it,
//! with every code the other copies carried added to its main code (each marked with the copy
//! it came from); a Provenance resource names that entry as its target and every source that
//! reported the fact as an entity, so no origin and no original code is lost. Everything else
//! is kept as sent, in registry order then source order. One Patient represents the patient:
//! the first one.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tideway_adapters::{NormalisedResource, SourceId};
use tideway_profiles::ResourceFacts;

/// Ids of the Provenance resources the gateway makes start with this (`merged` is a reserved
/// source id, so no source's resource can collide with them).
pub const PROVENANCE_ID_PREFIX: &str = "merged.";

/// A kept entry (its index in the output) and every (source, resource id) that reported it.
type KeptFact<'a> = (usize, Vec<(&'a SourceId, &'a str)>);

/// One source's resources, in the order the source sent them.
#[derive(Debug, Clone)]
pub struct SourceResources {
    /// The source.
    pub source: SourceId,
    /// Its resources.
    pub resources: Vec<NormalisedResource>,
}

/// The merged record.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    /// The patient first, then every distinct resource, then the Provenance resources.
    pub resources: Vec<NormalisedResource>,
    /// How many duplicate entries were folded into another source's entry.
    pub folded: usize,
}

/// Merges per-source resources (given in registry order). The patient is the Patient whose id is
/// `patient_id` (adapters give the requested patient the gateway's id); another Patient would be an
/// ordinary entry, though adapters withhold those as another patient's data before this. `recorded` is the Provenance
/// `recorded` instant (passed in so the function stays pure).
pub fn merge(sources: &[SourceResources], patient_id: &str, recorded: &str) -> Merged {
    merge_with(sources, patient_id, |fact| provenance_for(fact, recorded), with_codes_of)
}

/// One merged fact that needs a Provenance: the kept entry and every (source, resource id)
/// that reported it, the first being the kept entry's own.
#[derive(Debug)]
pub struct MergedFact<'a> {
    /// The fact's merge key.
    pub key: &'a str,
    /// The entry kept for it.
    pub target: &'a NormalisedResource,
    /// Every origin, in registry order.
    pub origins: &'a [(&'a SourceId, &'a str)],
}

impl MergedFact<'_> {
    /// A string naming this fact, its kept entry and its origins exactly: equal for equal
    /// Provenance content (apart from `recorded`), so a caller may reuse one it made before.
    pub fn identity(&self) -> String {
        let mut out = format!("{}\u{1f}{}/{}", self.key, self.target.resource_type, self.target.id);
        for (source, id) in self.origins {
            out.push('\u{1f}');
            out.push_str(source.as_str());
            out.push('/');
            out.push_str(id);
        }
        out
    }
}

/// [`merge`] with the Provenance for each merged fact made by `provenance` (which may reuse one
/// made for an earlier answer; see [`MergedFact::identity`]), and each kept entry widened with a
/// folded copy's codes by `widen` ([`with_codes_of`], or a memo of it).
pub fn merge_with(
    sources: &[SourceResources],
    patient_id: &str,
    mut provenance: impl FnMut(&MergedFact<'_>) -> NormalisedResource,
    mut widen: impl FnMut(&NormalisedResource, &SourceId, &NormalisedResource) -> Option<NormalisedResource>,
) -> Merged {
    let mut patient: Option<NormalisedResource> = None;
    let mut kept: Vec<NormalisedResource> = Vec::new();
    // fact key -> the entries kept for it, each with its origins as (source, resource id). A
    // source's own repeated entries stay separate (only the source knows whether they are one
    // fact); another source's matching entry folds into the first one it has not yet matched.
    let mut facts: HashMap<&str, Vec<KeptFact<'_>>> = HashMap::new();
    let mut folded = 0;
    // Every folded copy: the index of the entry kept for it, its source and the copy.
    let mut copies: Vec<(usize, &SourceId, &NormalisedResource)> = Vec::new();
    for s in sources {
        for r in &s.resources {
            if r.resource_type == "Patient" && r.id == patient_id {
                if patient.is_none() {
                    patient = Some(r.clone());
                }
                continue;
            }
            let Some(key) = r.merge_key() else {
                kept.push(r.clone());
                continue;
            };
            let entries = facts.entry(key).or_default();
            match entries.iter_mut().find(|(_, origins)| origins.iter().all(|(src, _)| *src != &s.source)) {
                Some((index, origins)) => {
                    origins.push((&s.source, &r.id));
                    copies.push((*index, &s.source, r));
                    folded += 1;
                }
                None => {
                    entries.push((kept.len(), vec![(&s.source, &r.id)]));
                    kept.push(r.clone());
                }
            }
        }
    }
    for (index, source, copy) in copies {
        if let Some(widened) = widen(&kept[index], source, copy) {
            kept[index] = widened;
        }
    }
    let mut made: Vec<(usize, NormalisedResource)> = facts
        .into_iter()
        .flat_map(|(key, entries)| entries.into_iter().map(move |(index, origins)| (key, index, origins)))
        .filter(|(_, _, origins)| origins.len() > 1)
        .map(|(key, index, origins)| {
            (index, provenance(&MergedFact { key, target: &kept[index], origins: &origins }))
        })
        .collect();
    // Stable order: Provenance follows the order of the entries it describes.
    made.sort_by_key(|(index, _)| *index);
    let mut resources: Vec<NormalisedResource> = patient.into_iter().collect();
    resources.extend(kept);
    resources.extend(made.into_iter().map(|(_, p)| p));
    Merged { resources, folded }
}

/// Marks a coding the kept entry gained from another source's copy of the same fact: the
/// source and its resource id, as the Provenance entity names them.
pub const CODING_FROM_URL: &str = "https://fhir.tideway.london/StructureDefinition/coding-reported-by";

/// Whether `copy`'s main code carries a coding `kept`'s lacks, read from their facts: most
/// copies add nothing, and then no JSON need be read (nor remembered).
pub fn may_add_codes(kept: &NormalisedResource, copy: &NormalisedResource) -> bool {
    !copy.facts.codes.iter().all(|c| kept.facts.codes.contains(c))
}

/// `kept` with the main-code codings of `copy` (another source's copy of the same fact) that it
/// lacks appended, each marked with [`CODING_FROM_URL`], so folding keeps every code any source
/// recorded (a SystmOne CTV3 code beside an EMIS code id); `None` when it lacks none. Codings a
/// terminology map added to the copy are not carried over: the kept entry's own maps speak
/// for it.
pub fn with_codes_of(
    kept: &NormalisedResource,
    source: &SourceId,
    copy: &NormalisedResource,
) -> Option<NormalisedResource> {
    if !may_add_codes(kept, copy) {
        return None;
    }
    let pointer = tideway_profiles::facts::main_code_pointer(&kept.resource_type)?;
    let copy_json: Value = serde_json::from_slice(&copy.json).ok()?;
    let offered = copy_json.pointer(pointer)?.get("coding")?.as_array()?;
    let mut resource: Value = serde_json::from_slice(&kept.json).ok()?;
    let codings = resource.pointer_mut(pointer)?.get_mut("coding")?.as_array_mut()?;
    let same = |a: &Value, b: &Value| a.get("system") == b.get("system") && a.get("code") == b.get("code");
    let mut added = false;
    for c in offered.iter().filter(|c| !tideway_profiles::facts::is_mapped_coding(c)) {
        if c.get("code").is_none() || codings.iter().any(|k| same(k, c)) {
            continue;
        }
        let mut carried = c.clone();
        let mark = json!({"url": CODING_FROM_URL, "valueIdentifier": {
            "system": format!("urn:tideway:source:{source}"), "value": copy.id
        }});
        match carried.get_mut("extension").and_then(Value::as_array_mut) {
            Some(extensions) => extensions.push(mark),
            None => carried["extension"] = json!([mark]),
        }
        codings.push(carried);
        added = true;
    }
    if !added {
        return None;
    }
    NormalisedResource::from_value(&resource).ok()
}

/// The gateway's Provenance for a merged fact, recorded at `recorded`.
pub fn provenance_for(fact: &MergedFact<'_>, recorded: &str) -> NormalisedResource {
    let MergedFact { key, target, origins } = *fact;
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update(target.id.as_bytes());
    let digest = hasher.finalize();
    let id: String = format!(
        "{PROVENANCE_ID_PREFIX}{}",
        digest[..12].iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let target_ref = target.reference();
    let entities: Vec<Value> = origins
        .iter()
        .enumerate()
        .map(|(i, (source, rid))| {
            let what = if i == 0 {
                json!({"reference": target_ref, "display": format!("as reported by {source}")})
            } else {
                json!({
                    "identifier": {"system": format!("urn:tideway:source:{source}"), "value": rid},
                    "display": format!("the same fact as reported by {source}")
                })
            };
            json!({"role": "source", "what": what})
        })
        .collect();
    let body = json!({
        "resourceType": "Provenance",
        "id": id,
        "meta": {"source": "urn:tideway:gateway"},
        "target": [{"reference": target_ref}],
        "recorded": recorded,
        "activity": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
            "code": "UPDATE",
            "display": "revise"
        }], "text": "merged duplicate entries from several sources"},
        "agent": [gateway_agent()],
        "entity": entities
    });
    let json = serde_json::to_vec(&body).unwrap_or_default();
    NormalisedResource {
        resource_type: "Provenance".to_owned(),
        id,
        facts: Arc::new(ResourceFacts::of(&body)),
        json: Arc::from(json),
    }
}

/// The gateway as the assembler of what its Provenance describes.
fn gateway_agent() -> Value {
    json!({
        "type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "code": "assembler",
            "display": "Assembler"
        }]},
        "who": {"display": "Tideway gateway"}
    })
}

/// Where the terminology maps of one version are named, as a Provenance `policy`.
pub const TERMINOLOGY_MAPS_POLICY: &str = "https://fhir.tideway.london/terminology-maps/";

/// The gateway's Provenance for the codings its terminology maps added to `targets` (one
/// source's resources, as released and kept), recorded at `recorded`: its `policy` names the
/// maps' version, so a reader can tie each added coding to the maps that made it.
pub fn mapping_provenance(
    source: &SourceId,
    targets: &[&NormalisedResource],
    recorded: &str,
) -> NormalisedResource {
    let version = tideway_profiles::maps::version();
    let mut hasher = Sha256::new();
    hasher.update(b"terminology-maps\x1f");
    hasher.update(version.as_bytes());
    hasher.update(source.as_str().as_bytes());
    for t in targets {
        hasher.update(b"\x1f");
        hasher.update(t.id.as_bytes());
    }
    let digest = hasher.finalize();
    let id = format!(
        "{PROVENANCE_ID_PREFIX}{}",
        digest[..12].iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let target: Vec<Value> = targets.iter().map(|t| json!({"reference": t.reference()})).collect();
    let body = json!({
        "resourceType": "Provenance",
        "id": id,
        "meta": {"source": "urn:tideway:gateway"},
        "target": target,
        "recorded": recorded,
        "policy": [format!("{TERMINOLOGY_MAPS_POLICY}{version}")],
        "activity": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
            "code": "UPDATE",
            "display": "revise"
        }], "text": format!("SNOMED CT or dm+d codings added from Tideway's terminology maps (version {version}) beside the codes {source} sent")},
        "agent": [gateway_agent()],
        "entity": [{"role": "source", "what": {"display": format!("the entries as {source} sent them")}}]
    });
    let json = serde_json::to_vec(&body).unwrap_or_default();
    NormalisedResource {
        resource_type: "Provenance".to_owned(),
        id,
        facts: Arc::new(ResourceFacts::of(&body)),
        json: Arc::from(json),
    }
}

#[cfg(test)]
mod tests;
