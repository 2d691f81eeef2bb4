//! Does fhirbolt strict (the validator before the schema walker) reject anything the walker
//! accepts? Run by hand; it prints what it finds:
//!
//!     cargo run --release -p tideway-profiles --example validator_differential
//!
//! It takes every resource both accept from the example folders in `../shared/data`, then
//! mutates each in the ways invalid source data tends to be wrong (an element dropped, a
//! primitive of another JSON type or format, an object for an array and back, an unknown key,
//! a second choice-type variant, null) and counts where the two disagree.
//!
//! With `SAMPLE_EVERY=3 SITES=30` (about 12 minutes): 17,908 resources, 1,464,180 mutants, none
//! rejected by fhirbolt alone; fhirbolt panicked on every mutant with an empty array.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "a measurement run by hand")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::{Map, Value, json};
use tideway_profiles::schema;

fn fhirbolt_strict(value: &Value) -> Result<(), String> {
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    let config = DeserializationConfig { mode: DeserializationMode::Strict };
    // fhirbolt 0.4 panics on some malformed input (an unwrap in its element deserialiser).
    std::panic::catch_unwind(|| fhirbolt::json::from_slice::<Resource>(&bytes, Some(config)).map(|_| ()))
        .map_err(|_| "PANIC".to_owned())?
        .map_err(|e| e.to_string())
}

fn shared_data() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    assert!(dir.is_dir(), "{} is missing", dir.display());
    dir
}

fn resources_under(dir: &Path, out: &mut Vec<(String, Value)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.expect("entry").path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            resources_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(&path).expect("read")) else {
                continue;
            };
            if v.get("resourceType").is_some() {
                out.push((path.display().to_string(), v));
            }
        }
    }
}

/// Each mutation: a label (what was done where) and the mutated resource.
fn mutations(root: &Value, budget: usize) -> Vec<(String, Value)> {
    let mut sites = Vec::new();
    collect_sites(root, String::new(), &mut Vec::new(), &mut sites);
    // Spread the budget over the whole resource rather than its first elements.
    let step = (sites.len() / budget.max(1)).max(1);
    let mut out = Vec::new();
    for (label, ptr, v) in sites.into_iter().step_by(step) {
        let mut variants: Vec<(&str, Option<Value>)> = vec![("remove", None), ("null", Some(Value::Null))];
        match &v {
            Value::String(_) => variants.extend([
                ("string->number", Some(json!(1))),
                ("string->bool", Some(json!(true))),
                ("string->empty", Some(json!(""))),
                ("string->padded", Some(json!(" x "))),
                ("string->bad-date", Some(json!("2020-13-45"))),
                ("string->slash-date", Some(json!("01/02/1980"))),
                ("string->code-bogus", Some(json!("bogus"))),
            ]),
            Value::Number(_) => variants.extend([
                ("number->string", Some(json!("1"))),
                ("number->fraction", Some(json!(1.5))),
                ("number->negative", Some(json!(-1))),
                ("number->zero", Some(json!(0))),
                ("number->huge", Some(serde_json::from_str("99999999999999999999").expect("number"))),
            ]),
            Value::Bool(_) => variants.push(("bool->string", Some(json!("true")))),
            Value::Object(_) => variants.extend([
                ("object->array", Some(json!([v.clone()]))),
                ("object->string", Some(json!("x"))),
                ("object->empty", Some(json!({}))),
            ]),
            Value::Array(items) => {
                variants.push(("array->empty", Some(json!([]))));
                if let Some(first) = items.first() {
                    variants.push(("array->single", Some(first.clone())));
                }
                variants.push(("array->with-null", Some(json!([Value::Null]))));
            }
            Value::Null => {}
        }
        for (what, replacement) in variants {
            let mut m = root.clone();
            if set_at(&mut m, &ptr, replacement) {
                out.push((format!("{what} {label}"), m));
            }
        }
    }
    // Object-level mutations: an unknown key, and a second choice-type variant.
    let mut objects = Vec::new();
    collect_objects(root, String::new(), &mut Vec::new(), &mut objects);
    for (label, ptr) in objects.into_iter().step_by(step) {
        let mut m = root.clone();
        if let Some(obj) = get_obj_mut(&mut m, &ptr) {
            obj.insert("zzUnknown".into(), json!(1));
            out.push((format!("add-unknown {label}"), m));
        }
        let mut m = root.clone();
        if let Some(obj) = get_obj_mut(&mut m, &ptr) {
            let choice = obj.keys().find_map(|k| {
                ["Quantity", "CodeableConcept", "String", "DateTime", "Period", "Reference", "Boolean"]
                    .iter()
                    .find_map(|t| k.strip_suffix(t).filter(|base| !base.is_empty()).map(str::to_owned))
            });
            if let Some(base) = choice.filter(|base| !obj.contains_key(&format!("{base}Boolean"))) {
                obj.insert(format!("{base}Boolean"), json!(true));
                out.push((format!("second-choice {label}.{base}[x]"), m));
            }
        }
    }
    out
}

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// (label, pointer, value) for every member below the root, labels like `Observation.code.text`.
fn collect_sites(v: &Value, label: String, ptr: &mut Vec<Step>, out: &mut Vec<(String, Vec<Step>, Value)>) {
    match v {
        Value::Object(obj) => {
            for (k, child) in obj {
                if k == "resourceType" {
                    continue;
                }
                let l = if label.is_empty() { rt(v) + "." + k } else { format!("{label}.{k}") };
                ptr.push(Step::Key(k.clone()));
                out.push((l.clone(), ptr.clone(), child.clone()));
                collect_sites(child, l, ptr, out);
                ptr.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                ptr.push(Step::Index(i));
                collect_sites(child, label.clone(), ptr, out);
                ptr.pop();
            }
        }
        _ => {}
    }
}

fn collect_objects(v: &Value, label: String, ptr: &mut Vec<Step>, out: &mut Vec<(String, Vec<Step>)>) {
    match v {
        Value::Object(obj) => {
            out.push((if label.is_empty() { rt(v) } else { label.clone() }, ptr.clone()));
            for (k, child) in obj {
                let l = if label.is_empty() { rt(v) + "." + k } else { format!("{label}.{k}") };
                ptr.push(Step::Key(k.clone()));
                collect_objects(child, l, ptr, out);
                ptr.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                ptr.push(Step::Index(i));
                collect_objects(child, label.clone(), ptr, out);
                ptr.pop();
            }
        }
        _ => {}
    }
}

fn rt(v: &Value) -> String {
    v.get("resourceType").and_then(Value::as_str).unwrap_or("?").to_owned()
}

fn get_obj_mut<'a>(v: &'a mut Value, ptr: &[Step]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for s in ptr {
        cur = match s {
            Step::Key(k) => cur.get_mut(k.as_str())?,
            Step::Index(i) => cur.get_mut(*i)?,
        };
    }
    cur.as_object_mut()
}

fn set_at(v: &mut Value, ptr: &[Step], replacement: Option<Value>) -> bool {
    let Some((last, parent)) = ptr.split_last() else { return false };
    let mut cur = &mut *v;
    for s in parent {
        cur = match s {
            Step::Key(k) => match cur.get_mut(k.as_str()) {
                Some(c) => c,
                None => return false,
            },
            Step::Index(i) => match cur.get_mut(*i) {
                Some(c) => c,
                None => return false,
            },
        };
    }
    match (last, cur) {
        (Step::Key(k), Value::Object(obj)) => {
            match replacement {
                Some(r) => {
                    obj.insert(k.clone(), r);
                }
                None => {
                    obj.shift_remove(k);
                }
            }
            true
        }
        (Step::Index(i), Value::Array(items)) => {
            match replacement {
                Some(r) => items[*i] = r,
                None => {
                    items.remove(*i);
                }
            }
            true
        }
        _ => false,
    }
}

/// Normalises a label so that similar findings group: drops nothing but the resource's own
/// path below two levels.
fn group(label: &str) -> String {
    let (what, path) = label.split_once(' ').unwrap_or((label, ""));
    format!("{what} {}", path.split('.').take(3).collect::<Vec<_>>().join("."))
}

fn main() {
    let data = shared_data();
    std::panic::set_hook(Box::new(|_| {}));
    let mut panics: BTreeMap<String, usize> = BTreeMap::new();
    let mut all = Vec::new();
    for dir in [
        "hl7-fhir-r4-examples",
        "uk-core-r4-examples/json-converted-by-fhirjs",
        "fhir-test-cases",
        "synthea-r4",
    ] {
        resources_under(&data.join(dir), &mut all);
    }
    let sample_every: usize = std::env::var("SAMPLE_EVERY").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let budget: usize = std::env::var("SITES").ok().and_then(|s| s.parse().ok()).unwrap_or(40);

    let (mut both_ok, mut only_fhirbolt_rejects, mut only_walker_rejects, mut both_reject) = (0, 0, 0, 0);
    let mut unmutated_disagreements = Vec::new();
    let mut bases = Vec::new();
    for (file, v) in &all {
        // Synthea bundles are large; their entries are checked one by one like other resources.
        let items: Vec<Value> = if file.contains("synthea") {
            v["entry"].as_array().into_iter().flatten().map(|e| e["resource"].clone()).collect()
        } else {
            vec![v.clone()]
        };
        for r in items {
            let a = fhirbolt_strict(&r).is_ok();
            let b = schema::check_resource(&r).is_ok();
            match (a, b) {
                (true, true) => {
                    both_ok += 1;
                    bases.push((file.clone(), r));
                }
                (false, true) => {
                    only_fhirbolt_rejects += 1;
                    unmutated_disagreements
                        .push(format!("fhirbolt only: {file}: {}", fhirbolt_strict(&r).unwrap_err()));
                }
                (true, false) => {
                    only_walker_rejects += 1;
                    let e = schema::check_resource(&r).unwrap_err();
                    unmutated_disagreements.push(format!("walker only: {file}: {e}"));
                }
                (false, false) => both_reject += 1,
            }
        }
    }
    println!(
        "unmutated: {both_ok} both accept, {both_reject} both reject, {only_fhirbolt_rejects} only fhirbolt rejects, {only_walker_rejects} only the walker rejects"
    );
    for d in unmutated_disagreements.iter().take(40) {
        println!("  {}", d.chars().take(220).collect::<String>());
    }

    let mut fhirbolt_only: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut walker_only: BTreeMap<String, usize> = BTreeMap::new();
    let mut n = 0;
    let (mut agree_reject, mut agree_accept) = (0, 0);
    for (_, base) in bases.iter().step_by(sample_every) {
        for (label, m) in mutations(base, budget) {
            n += 1;
            let fb = fhirbolt_strict(&m);
            if fb.as_ref().is_err_and(|e| e == "PANIC") {
                *panics.entry(group(&label)).or_default() += 1;
            }
            match (fb, schema::check_resource(&m)) {
                (Err(e), Ok(())) => {
                    let entry = fhirbolt_only.entry(group(&label)).or_insert((0, String::new()));
                    entry.0 += 1;
                    if entry.1.is_empty() {
                        entry.1 = e.chars().take(140).collect();
                    }
                }
                (Ok(()), Err(_)) => {
                    *walker_only.entry(label.split(' ').next().unwrap_or("").to_owned()).or_default() += 1
                }
                (Err(_), Err(_)) => agree_reject += 1,
                (Ok(()), Ok(())) => agree_accept += 1,
            }
        }
    }
    println!("fhirbolt panicked on: {panics:?}");
    println!("mutants: {n}; both reject {agree_reject}, both accept {agree_accept}");
    println!("only the walker rejects, by mutation: {walker_only:?}");
    let total: usize = fhirbolt_only.values().map(|v| v.0).sum();
    println!("only fhirbolt rejects: {total} mutants in {} groups", fhirbolt_only.len());
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for (g, (c, _)) in &fhirbolt_only {
        *by_kind.entry(g.split(' ').next().unwrap_or("")).or_default() += c;
    }
    println!("  by mutation: {by_kind:?}");
    for (g, (c, e)) in &fhirbolt_only {
        println!("  {c:5} {g}  [{e}]");
    }
}
