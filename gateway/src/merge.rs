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
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// The gateway id every source gives the requested patient in these tests.
    const PID: &str = "p0";

    fn res(source: &str, ty: &str, n: u32, key: Option<u32>) -> NormalisedResource {
        // Patient n = 0 is the requested patient; other Patients are someone else.
        let id = if ty == "Patient" && n == 0 { PID.to_owned() } else { format!("{source}.{ty}-{n}") };
        let facts = ResourceFacts {
            resource_type: ty.to_owned(),
            merge_key: key.map(|k| format!("{ty}|fact-{k}")),
            ..ResourceFacts::default()
        };
        NormalisedResource {
            resource_type: ty.to_owned(),
            json: Arc::from(json!({"resourceType": ty, "id": id}).to_string().into_bytes()),
            id,
            facts: Arc::new(facts),
        }
    }

    fn sid(s: &str) -> SourceId {
        SourceId::parse(s).unwrap()
    }

    #[test]
    fn the_same_fact_from_two_sources_appears_once_with_provenance() {
        let a = SourceResources {
            source: sid("a"),
            resources: vec![res("a", "Patient", 0, None), res("a", "AllergyIntolerance", 1, Some(7))],
        };
        let b = SourceResources {
            source: sid("b"),
            resources: vec![
                res("b", "Patient", 0, None),
                res("b", "AllergyIntolerance", 1, Some(7)),
                res("b", "Condition", 2, Some(8)),
            ],
        };
        let m = merge(&[a, b], PID, "2026-01-01T00:00:00Z");
        let ids: Vec<&str> = m.resources.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids[..3], [PID, "a.AllergyIntolerance-1", "b.Condition-2"]);
        assert_eq!(m.resources.len(), 4);
        assert_eq!(m.folded, 1);
        let prov: Value = serde_json::from_slice(&m.resources[3].json).unwrap();
        assert_eq!(prov["target"][0]["reference"], "AllergyIntolerance/a.AllergyIntolerance-1");
        assert_eq!(prov["entity"][1]["what"]["identifier"]["value"], "b.AllergyIntolerance-1");
        assert_eq!(tideway_profiles::validate::check_r4_value(&prov), Ok(()));
    }

    /// Real resources, facts read from them as adapters do: the same medicine on the same day
    /// with a different dose is two facts, shown twice; the same dose is one fact, shown once.
    #[test]
    fn a_change_of_dose_reported_by_another_source_is_never_merged_away() {
        let statement = |source: &str, dose: &str| {
            let v = json!({"resourceType": "MedicationStatement", "id": format!("{source}.ms1"), "status": "active",
                "medicationCodeableConcept": {"coding": [{"system": "https://dmd.nhs.uk", "code": "318858000"}]},
                "subject": {"reference": format!("Patient/{PID}")}, "effectivePeriod": {"start": "2024-01-01"},
                "dosage": [{"text": dose}]});
            NormalisedResource::from_value(&v).unwrap()
        };
        let of = |source: &str, dose: &str| SourceResources {
            source: sid(source),
            resources: vec![res(source, "Patient", 0, None), statement(source, dose)],
        };
        let changed = merge(
            &[of("a", "One capsule daily"), of("b", "Two capsules daily")],
            PID,
            "2026-01-01T00:00:00Z",
        );
        let statements =
            changed.resources.iter().filter(|r| r.resource_type == "MedicationStatement").count();
        assert_eq!((statements, changed.folded), (2, 0), "both doses reach the clinician");
        let same =
            merge(&[of("a", "One capsule daily"), of("b", "One capsule daily")], PID, "2026-01-01T00:00:00Z");
        let statements = same.resources.iter().filter(|r| r.resource_type == "MedicationStatement").count();
        assert_eq!((statements, same.folded), (1, 1));
    }

    /// One allergy from three systems, each with its own codes beside the one SNOMED CT code:
    /// shown once, carrying every original code, each added one marked with the copy it came
    /// from; a coding a map added to a copy is not carried over.
    #[test]
    fn a_folded_copys_own_codes_are_kept_on_the_entry_shown() {
        let allergy = |source: &str, extra: Value| {
            let mut coding = vec![
                json!({"system": "http://snomed.info/sct", "code": "91936005", "display": "Penicillin allergy"}),
            ];
            coding.extend(extra.as_array().cloned().unwrap_or_default());
            let v = json!({"resourceType": "AllergyIntolerance", "id": format!("{source}.al1"),
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
                "code": {"coding": coding}, "patient": {"reference": format!("Patient/{PID}")}, "recordedDate": "2019-05-01"});
            SourceResources {
                source: sid(source),
                resources: vec![res(source, "Patient", 0, None), NormalisedResource::from_value(&v).unwrap()],
            }
        };
        let mapped = json!({"system": "http://snomed.info/sct", "code": "294505008",
            "extension": [{"url": tideway_profiles::maps::MAPPED_BY_URL, "valueString": "v"}]});
        let m = merge(
            &[
                allergy("r4", json!([])),
                allergy("s1", json!([{"system": "http://read.info/ctv3", "code": "XaBL2"}])),
                allergy(
                    "emis",
                    json!([{"system": "https://fhir.tideway.london/CodeSystem/emis-code-id", "code": "1234"}, mapped]),
                ),
            ],
            PID,
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(m.folded, 2);
        let shown: Vec<&NormalisedResource> =
            m.resources.iter().filter(|r| r.resource_type == "AllergyIntolerance").collect();
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].id, "r4.al1", "the first source's copy is the one shown");
        let v: Value = serde_json::from_slice(&shown[0].json).unwrap();
        let codes: Vec<(&str, &str)> = v["code"]["coding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["system"].as_str().unwrap(), c["code"].as_str().unwrap()))
            .collect();
        assert_eq!(
            codes,
            [
                ("http://snomed.info/sct", "91936005"),
                ("http://read.info/ctv3", "XaBL2"),
                ("https://fhir.tideway.london/CodeSystem/emis-code-id", "1234")
            ]
        );
        assert_eq!(v["code"]["coding"][1]["extension"][0]["url"], CODING_FROM_URL);
        assert_eq!(
            v["code"]["coding"][1]["extension"][0]["valueIdentifier"]["system"],
            "urn:tideway:source:s1"
        );
        assert_eq!(v["code"]["coding"][2]["extension"][0]["valueIdentifier"]["value"], "emis.al1");
        assert!(shown[0].facts.codes.iter().any(|c| c.code == "XaBL2"), "the facts see the added codes");
        let before = allergy("r4", json!([])).resources[1].merge_key().map(str::to_owned);
        assert_eq!(shown[0].merge_key(), before.as_deref(), "widening keeps the fact's key");
        assert_eq!(tideway_profiles::validate::check_r4_value(&v), Ok(()));
        let prov = m.resources.iter().find(|r| r.resource_type == "Provenance").unwrap();
        let prov: Value = serde_json::from_slice(&prov.json).unwrap();
        assert_eq!(prov["entity"].as_array().unwrap().len(), 3, "every origin is named");
    }

    #[test]
    fn the_requested_patient_represents_the_record_even_after_another_patient() {
        // A source lists a linked person (a mother, say) before the patient asked about.
        let a = SourceResources {
            source: sid("a"),
            resources: vec![
                res("a", "Patient", 5, None),
                res("a", "Patient", 0, None),
                res("a", "Condition", 1, None),
            ],
        };
        let m = merge(&[a], PID, "2026-01-01T00:00:00Z");
        let ids: Vec<&str> = m.resources.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, [PID, "a.Patient-5", "a.Condition-1"]);
    }

    fn arb_sources() -> impl Strategy<Value = Vec<SourceResources>> {
        let names = ["a", "b", "c", "d"];
        prop::collection::vec(prop::collection::vec((0u32..5, prop::option::of(0u32..6)), 0..8), 1..4)
            .prop_map(move |per| {
                per.into_iter()
                    .enumerate()
                    .map(|(i, rs)| SourceResources {
                        source: sid(names[i]),
                        resources: rs
                            .into_iter()
                            .enumerate()
                            .map(|(n, (t, k))| {
                                let ty = [
                                    "Condition",
                                    "Observation",
                                    "AllergyIntolerance",
                                    "Patient",
                                    "Encounter",
                                ][t as usize];
                                res(names[i], ty, n as u32, if ty == "Patient" { None } else { k })
                            })
                            .collect(),
                    })
                    .collect()
            })
    }

    /// Every input resource is either in the output or named by a Provenance entity: merging
    /// never silently drops a fact (the requested patient's Patients aside: one represents them).
    fn accounted_for(input: &[SourceResources], m: &Merged) -> bool {
        let out: BTreeSet<String> = m.resources.iter().map(|r| r.id.clone()).collect();
        let named: BTreeSet<String> = m
            .resources
            .iter()
            .filter(|r| r.resource_type == "Provenance")
            .flat_map(|p| {
                let v: Value = serde_json::from_slice(&p.json).unwrap();
                v["entity"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|e| e["what"]["identifier"]["value"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect();
        input
            .iter()
            .flat_map(|s| &s.resources)
            .filter(|r| r.id != PID)
            .all(|r| out.contains(&r.id) || named.contains(&r.id))
    }

    proptest! {
        #[test]
        fn merging_loses_nothing(input in arb_sources()) {
            let m = merge(&input, PID, "2026-01-01T00:00:00Z");
            prop_assert!(accounted_for(&input, &m));
            let patients = m.resources.iter().filter(|r| r.id == PID).count();
            let any_patient = input.iter().flat_map(|s| &s.resources).any(|r| r.id == PID);
            prop_assert_eq!(patients, usize::from(any_patient));
            if any_patient {
                prop_assert_eq!(m.resources[0].id.as_str(), PID, "the requested patient comes first");
            }
        }

        #[test]
        fn merging_is_idempotent(input in arb_sources()) {
            let once = merge(&input, PID, "2026-01-01T00:00:00Z");
            let non_prov: Vec<NormalisedResource> =
                once.resources.iter().filter(|r| r.resource_type != "Provenance").cloned().collect();
            let twice = merge(&[SourceResources { source: sid("z"), resources: non_prov.clone() }], PID, "2026-01-01T00:00:00Z");
            let ids = |v: &[NormalisedResource]| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
            prop_assert_eq!(ids(&twice.resources), ids(&non_prov));
            prop_assert_eq!(twice.folded, 0);
        }

        #[test]
        fn one_sources_repeated_entries_are_never_folded(input in arb_sources()) {
            for s in &input {
                let m = merge(std::slice::from_ref(s), PID, "2026-01-01T00:00:00Z");
                prop_assert_eq!(m.folded, 0);
            }
        }

        #[test]
        fn the_set_of_facts_does_not_depend_on_source_order(input in arb_sources()) {
            let facts = |m: &Merged| m.resources.iter()
                .filter(|r| r.resource_type != "Provenance" && r.id != PID)
                .map(|r| r.merge_key().map_or_else(|| r.id.clone(), str::to_owned))
                .collect::<BTreeSet<_>>();
            let mut reversed = input.clone();
            reversed.reverse();
            let a = merge(&input, PID, "2026-01-01T00:00:00Z");
            let b = merge(&reversed, PID, "2026-01-01T00:00:00Z");
            prop_assert_eq!(facts(&a), facts(&b));
            prop_assert_eq!(a.resources.len(), b.resources.len());
        }
    }
}
