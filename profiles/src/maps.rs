//! Terminology maps: the SNOMED CT or dm+d coding a legacy or local code stands for, where a
//! published pair says so.
//!
//! GP systems still carry the codes their older entries were recorded with (Read v2 in EMIS and
//! Vision, CTV3 in SystmOne) and their own local ids (EMIS code and product ids, Gemscript). An
//! adapter keeps every original coding and asks [`enrich`] to add the SNOMED CT or dm+d coding a
//! map gives, marked with the map and its version ([`MAPPED_BY_URL`]). A code no map knows is
//! carried as it came and the resource is tagged [`UNMAPPED_TAG_CODE`]: never dropped, never
//! guessed.
//!
//! The maps are the files in `profiles/data/maps`, built by `scripts/build-maps.py` from the
//! CPRD code lists in `../shared/data/codelists` and embedded at compile time. Their one version
//! ([`version`]) is a digest of every pair, reported at `GET /metadata` and on every coding a map
//! added, so an answer can be tied to the maps that made it. There is no CTV3 map: the shared
//! lists hold no CTV3 to SNOMED CT pairs.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::systems;

/// Extension on a coding a map added: `valueString` is `{map} {version}`.
pub const MAPPED_BY_URL: &str = "https://fhir.tideway.london/StructureDefinition/coding-mapped-by";
/// Code system of the tags normalisation puts on `meta.tag`.
pub const NORMALISATION_TAGS: &str = "https://fhir.tideway.london/CodeSystem/normalisation";
/// Tag code on a resource carrying a legacy or local code that no map could translate.
pub const UNMAPPED_TAG_CODE: &str = "unmapped-code";
/// Tag code on a resource a map added a coding to.
pub const MAPPED_TAG_CODE: &str = "terminology-mapped";
/// Extension on a Read v2 coding keeping the 2-digit term id the source recorded beside the
/// 5-byte code (the code itself is the 5-byte form, as code sets and maps key on it).
pub const READ_V2_TERM_ID_URL: &str = "https://fhir.tideway.london/StructureDefinition/read-v2-term-id";

const READ_V2_SNOMED: &str = include_str!("../data/maps/readv2-snomed.csv");
const EMIS_SNOMED: &str = include_str!("../data/maps/emis-snomed.csv");
const EMIS_DMD: &str = include_str!("../data/maps/emis-dmd.csv");
const GEMSCRIPT_DMD: &str = include_str!("../data/maps/gemscript-dmd.csv");

/// One embedded map, as `GET /metadata` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapInfo {
    /// The map's name, e.g. `readv2-snomed`.
    pub name: &'static str,
    /// The code system it maps from.
    pub from: &'static str,
    /// The code system it maps to.
    pub to: &'static str,
    /// How many pairs it holds.
    pub pairs: usize,
}

/// What a map said about one code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The code maps to this coding.
    Mapped {
        /// Target system (SNOMED CT or dm+d).
        system: &'static str,
        /// Target code.
        code: &'static str,
        /// The map that said so.
        map: &'static str,
    },
    /// The code is of a system the maps translate, but no pair (or no unambiguous pair) exists.
    Unmapped,
    /// The system is not one the maps translate (SNOMED CT, dm+d, LOINC, ...).
    NotMapped,
}

struct Maps {
    version: &'static str,
    /// (Read v2 5-byte code, term id) -> SNOMED CT.
    read_v2: HashMap<(&'static str, &'static str), &'static str>,
    /// Read v2 5-byte code alone -> SNOMED CT, where the code's preferred term (`00`) is mapped,
    /// or else all its term ids agree.
    read_v2_code: HashMap<&'static str, &'static str>,
    emis: HashMap<&'static str, &'static str>,
    emis_product: HashMap<&'static str, &'static str>,
    gemscript: HashMap<&'static str, &'static str>,
    info: Vec<MapInfo>,
}

fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().map_while(|l| l.strip_prefix("# ")).find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
}

/// Data rows of a map file: everything after the `#` header and the column line.
fn data_rows(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').collect())
}

fn pairs(text: &'static str) -> HashMap<&'static str, &'static str> {
    data_rows(text).filter(|r| r.len() == 2).map(|r| (r[0], r[1])).collect()
}

fn build() -> Maps {
    let mut read_v2 = HashMap::new();
    let mut by_code: HashMap<&'static str, Vec<(&'static str, &'static str)>> = HashMap::new();
    for row in data_rows(READ_V2_SNOMED).filter(|r| r.len() == 3) {
        read_v2.insert((row[0], row[1]), row[2]);
        by_code.entry(row[0]).or_default().push((row[1], row[2]));
    }
    let read_v2_code = by_code
        .into_iter()
        .filter_map(|(code, terms)| {
            if let Some((_, snomed)) = terms.iter().find(|(term, _)| *term == "00") {
                return Some((code, *snomed));
            }
            let first = terms.first()?.1;
            terms.iter().all(|(_, s)| *s == first).then_some((code, first))
        })
        .collect();
    let emis = pairs(EMIS_SNOMED);
    let emis_product = pairs(EMIS_DMD);
    let gemscript = pairs(GEMSCRIPT_DMD);
    let info = vec![
        MapInfo {
            name: "readv2-snomed",
            from: systems::READ_V2,
            to: systems::SNOMED_CT,
            pairs: read_v2.len(),
        },
        MapInfo {
            name: "emis-snomed",
            from: systems::EMIS_CODE_ID,
            to: systems::SNOMED_CT,
            pairs: emis.len(),
        },
        MapInfo {
            name: "emis-dmd",
            from: systems::EMIS_PRODUCT_CODE_ID,
            to: systems::DM_D,
            pairs: emis_product.len(),
        },
        MapInfo {
            name: "gemscript-dmd",
            from: systems::GEMSCRIPT,
            to: systems::DM_D,
            pairs: gemscript.len(),
        },
    ];
    Maps {
        version: header(READ_V2_SNOMED, "version").unwrap_or("unknown"),
        read_v2,
        read_v2_code,
        emis,
        emis_product,
        gemscript,
        info,
    }
}

fn maps() -> &'static Maps {
    static MAPS: OnceLock<Maps> = OnceLock::new();
    MAPS.get_or_init(build)
}

/// The version of the embedded maps (a digest of every pair).
pub fn version() -> &'static str {
    maps().version
}

/// The embedded maps, for `GET /metadata`.
pub fn info() -> &'static [MapInfo] {
    &maps().info
}

/// What the maps say about `code` in `system`. A Read v2 `code` is the 5-byte form; `term_id` is
/// the 2-digit term id when the source recorded one. CTV3 is a legacy system with no map, and
/// EMIS's local codes are in none, so their codes are always [`Lookup::Unmapped`].
pub fn lookup(system: &str, code: &str, term_id: Option<&str>) -> Lookup {
    let m = maps();
    let (found, target, map) = match system {
        // A term id names one description of the code, which may be another concept than the
        // code's preferred term: with a term id only its own pair maps.
        systems::READ_V2 => {
            let found = match term_id {
                Some(t) => m.read_v2.get(&(code, t)),
                None => m.read_v2_code.get(code),
            };
            (found.copied(), systems::SNOMED_CT, "readv2-snomed")
        }
        systems::EMIS_CODE_ID => (m.emis.get(code).copied(), systems::SNOMED_CT, "emis-snomed"),
        systems::EMIS_PRODUCT_CODE_ID => (m.emis_product.get(code).copied(), systems::DM_D, "emis-dmd"),
        systems::GEMSCRIPT => (m.gemscript.get(code).copied(), systems::DM_D, "gemscript-dmd"),
        // EMIS's own local codes (e.g. `EMISNQ…`) are published in no map: always untranslated.
        systems::CTV3 | systems::EMIS_LOCAL_CODE => return Lookup::Unmapped,
        _ => return Lookup::NotMapped,
    };
    match found {
        Some(code) => Lookup::Mapped { system: target, code, map },
        None => Lookup::Unmapped,
    }
}

/// What [`enrich`] did to one resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enrichment {
    /// Codings a map added.
    pub added: usize,
    /// Legacy or local codes no map could translate (the resource is tagged).
    pub unmapped: usize,
}

/// Adds, to every CodeableConcept in `resource` (any object with a `coding` array), the SNOMED CT
/// or dm+d coding the maps give for its legacy or local codings, unless the concept already has a
/// coding in that target system. Original codings are never changed or removed. When a legacy
/// or local code stays untranslated, `meta.tag` gets [`UNMAPPED_TAG_CODE`].
pub fn enrich(resource: &mut Value) -> Enrichment {
    let mut done = Enrichment::default();
    walk(resource, &mut done);
    if done.added > 0 {
        tag(resource, MAPPED_TAG_CODE, "A Tideway terminology map added a coding");
    }
    if done.unmapped > 0 {
        tag(resource, UNMAPPED_TAG_CODE, "Carries a legacy or local code no terminology map translates");
    }
    done
}

fn tag(resource: &mut Value, code: &str, display: &str) {
    if let Some(obj) = resource.as_object_mut() {
        let meta = obj.entry("meta").or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut()
            && let Value::Array(tags) = meta.entry("tag").or_insert_with(|| Value::Array(Vec::new()))
            && !tags.iter().any(|t| t["system"] == NORMALISATION_TAGS && t["code"] == code)
        {
            tags.push(json!({"system": NORMALISATION_TAGS, "code": code, "display": display}));
        }
    }
}

fn walk(value: &mut Value, done: &mut Enrichment) {
    match value {
        Value::Object(obj) => {
            if let Some(Value::Array(codings)) = obj.get_mut("coding") {
                enrich_concept(codings, done);
            }
            for (key, child) in obj.iter_mut() {
                if key != "coding" && key != "meta" {
                    walk(child, done);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, done)),
        _ => {}
    }
}

fn enrich_concept(codings: &mut Vec<Value>, done: &mut Enrichment) {
    let has = |codings: &[Value], system: &str| {
        codings.iter().any(|c| c.get("system").and_then(Value::as_str) == Some(system))
    };
    let mut added = Vec::new();
    let mut untranslated = 0;
    for coding in codings.iter() {
        let (Some(system), Some(code)) =
            (coding.get("system").and_then(Value::as_str), coding.get("code").and_then(Value::as_str))
        else {
            continue;
        };
        let term_id = coding
            .get("extension")
            .and_then(Value::as_array)
            .and_then(|e| {
                e.iter().find(|x| x.get("url").and_then(Value::as_str) == Some(READ_V2_TERM_ID_URL))
            })
            .and_then(|x| x.get("valueString"))
            .and_then(Value::as_str);
        match lookup(system, code, term_id) {
            Lookup::Mapped { system: target, code: mapped, map } => {
                if has(codings, target) || has(&added, target) {
                    continue;
                }
                added.push(json!({
                    "extension": [{"url": MAPPED_BY_URL, "valueString": format!("{map} {}", version())}],
                    "system": target,
                    "code": mapped,
                    "userSelected": false,
                }));
            }
            Lookup::Unmapped => untranslated += 1,
            Lookup::NotMapped => {}
        }
    }
    // A legacy or local code beside a SNOMED CT or dm+d coding (the source's, or one a map gave
    // another of its codes) is not lost to anyone: the concept can still be checked.
    let checkable = |system| has(codings, system) || has(&added, system);
    if !checkable(systems::SNOMED_CT) && !checkable(systems::DM_D) {
        done.unmapped += untranslated;
    }
    done.added += added.len();
    codings.extend(added);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_map_is_embedded_with_one_version() {
        let names: Vec<_> = info().iter().map(|m| m.name).collect();
        assert_eq!(names, ["readv2-snomed", "emis-snomed", "emis-dmd", "gemscript-dmd"]);
        assert!(info().iter().all(|m| m.pairs > 100), "{:?}", info());
        assert_eq!(version().len(), 12);
        for text in [READ_V2_SNOMED, EMIS_SNOMED, EMIS_DMD, GEMSCRIPT_DMD] {
            assert_eq!(header(text, "version"), Some(version()));
        }
    }

    #[test]
    fn read_v2_maps_by_code_and_term_id_and_by_the_preferred_term() {
        // Published pairs (CPRD Aurum depression list): E2B..00 is depressive disorder NEC;
        // EMIS's own E2B..98 synonym maps to a different concept.
        assert_eq!(
            lookup(systems::READ_V2, "E2B..", Some("00")),
            Lookup::Mapped { system: systems::SNOMED_CT, code: "35489007", map: "readv2-snomed" }
        );
        assert_eq!(
            lookup(systems::READ_V2, "E2B..", Some("98")),
            Lookup::Mapped { system: systems::SNOMED_CT, code: "609311000000100", map: "readv2-snomed" }
        );
        assert!(matches!(lookup(systems::READ_V2, "E2B..", None), Lookup::Mapped { code: "35489007", .. }));
        // A term id no published pair holds is not mapped through the preferred term.
        assert_eq!(lookup(systems::READ_V2, "E2B..", Some("14")), Lookup::Unmapped);
        assert_eq!(lookup(systems::READ_V2, "zzzz.", None), Lookup::Unmapped);
        assert_eq!(lookup(systems::CTV3, "X00SO", None), Lookup::Unmapped);
        assert_eq!(lookup(systems::EMIS_LOCAL_CODE, "EMISNQCO303", None), Lookup::Unmapped);
        assert_eq!(lookup(systems::SNOMED_CT, "35489007", None), Lookup::NotMapped);
    }

    #[test]
    fn enrich_adds_the_mapped_coding_keeps_originals_and_tags_what_stays_unmapped() {
        let mut condition = json!({"resourceType": "Condition", "code": {"coding": [
            {"system": systems::READ_V2, "code": "E2B..", "extension": [{"url": READ_V2_TERM_ID_URL, "valueString": "00"}]}
        ]}, "bodySite": [{"coding": [{"system": systems::CTV3, "code": "Xa1Yz"}]}]});
        let original = condition["code"]["coding"][0].clone();
        let done = enrich(&mut condition);
        assert_eq!(done, Enrichment { added: 1, unmapped: 1 });
        let codings = condition["code"]["coding"].as_array().unwrap();
        assert_eq!(codings[0], original);
        assert_eq!(codings[1]["system"], systems::SNOMED_CT);
        assert_eq!(codings[1]["code"], "35489007");
        assert_eq!(codings[1]["extension"][0]["valueString"], format!("readv2-snomed {}", version()));
        let tags: Vec<&str> = condition["meta"]["tag"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["code"].as_str().unwrap())
            .collect();
        assert_eq!(tags, [MAPPED_TAG_CODE, UNMAPPED_TAG_CODE]);
        // Idempotent: a second pass adds nothing and tags once.
        assert_eq!(enrich(&mut condition), Enrichment { added: 0, unmapped: 1 });
        assert_eq!(condition["meta"]["tag"].as_array().unwrap().len(), 2);
    }

    /// An entry EMIS coded only in one of its local codes can be checked against no code set:
    /// it is tagged, so the sensitive rules fail closed on it.
    #[test]
    fn an_entry_coded_only_in_an_emis_local_code_is_flagged_unmapped() {
        let mut c = json!({"resourceType": "Observation", "code": {"coding": [
            {"system": systems::EMIS_LOCAL_CODE, "code": "EMISNQCO303"}
        ]}});
        assert_eq!(enrich(&mut c), Enrichment { added: 0, unmapped: 1 });
        assert_eq!(c["meta"]["tag"][0]["code"], UNMAPPED_TAG_CODE);
    }

    #[test]
    fn a_legacy_code_beside_the_sources_own_snomed_is_neither_mapped_nor_flagged() {
        let mut c = json!({"code": {"coding": [
            {"system": systems::CTV3, "code": "X40J5"}, {"system": systems::SNOMED_CT, "code": "44054006"}
        ]}});
        assert_eq!(enrich(&mut c), Enrichment::default());
        assert!(c.get("meta").is_none());
    }
}
