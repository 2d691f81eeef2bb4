//! The schema walker against published examples and what CI's fhir-check says of them.
//!
//! The examples live outside the repository in `../shared/data` (see its README); these tests
//! fail, rather than skip, when that folder is missing, so a green run means they ran.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "tests")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tideway_profiles::schema;

fn shared_data() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    assert!(dir.is_dir(), "{} is missing: these tests read HL7's examples from there", dir.display());
    dir
}

/// Every `.json` file under `dir`, sorted, as (path relative to the shared data folder, value).
fn json_files(data: &Path, dir: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut stack = vec![data.join(dir)];
    assert!(stack[0].is_dir(), "{} is missing", stack[0].display());
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&path).expect("readable file");
                let value = serde_json::from_slice(&bytes).expect("examples are JSON");
                let rel = path.strip_prefix(data).expect("under data").to_string_lossy().into_owned();
                out.push((rel, value));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// fhir-check's verdicts: file -> the checkers that reject it.
fn fhir_check_rejects() -> HashMap<String, String> {
    include_str!("fixtures/fhir-check-rejects.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split_once(' '))
        .map(|(f, who)| (f.to_owned(), who.to_owned()))
        .collect()
}

/// Examples both of fhir-check's checkers accept that break an R4 rule the schema cannot state
/// (so fhirbolt strict, the validator before this one, rejected them too), with the error the
/// walker must give.
const R4_INVALID_THOUGH_SCHEMA_VALID: [(&str, &str); 1] = [(
    "uk-core-r4-examples/json-converted-by-fhirjs/Extension-UKCore-ConditionEpisode-Example.json",
    // Its extension has both valueCode and valueCodeableConcept; Extension.value[x] is 0..1.
    "Condition.extension[0].value[x]: more than one type given",
)];

fn check_folder(dir: &str, expect_at_least: usize) {
    let data = shared_data();
    let rejects = fhir_check_rejects();
    let files = json_files(&data, dir);
    assert!(files.len() >= expect_at_least, "{dir}: only {} files", files.len());
    let mut wrongly_rejected = Vec::new();
    let mut wrongly_accepted = Vec::new();
    let mut schema_rejects = 0;
    let mut fhirclient_only = 0;
    for (file, value) in &files {
        let verdict = rejects.get(file).map(String::as_str);
        // Files only fhirclient rejects miss an element R4 requires, which the walker may also
        // see (it adds R4's required primitives to the schema); they are counted, not asserted.
        if verdict == Some("fhirclient") {
            fhirclient_only += 1;
            continue;
        }
        if let Some((_, expected)) = R4_INVALID_THOUGH_SCHEMA_VALID.iter().find(|(f, _)| f == file) {
            let got = schema::check_resource(value).map_err(|e| e.to_string());
            assert_eq!(got, Err((*expected).to_owned()), "{file}");
            continue;
        }
        let schema_says_no = verdict.is_some_and(|who| who.contains("schema"));
        match (schema::check_resource(value), schema_says_no) {
            (Ok(()), true) => wrongly_accepted.push(file.clone()),
            (Err(e), false) => wrongly_rejected.push(format!("{file}: {e}")),
            (Err(_), true) => schema_rejects += 1,
            (Ok(()), false) => {}
        }
    }
    assert!(
        wrongly_rejected.is_empty(),
        "{} accepted by the schema but not here:\n{}",
        wrongly_rejected.len(),
        wrongly_rejected.join("\n")
    );
    assert!(
        wrongly_accepted.is_empty(),
        "rejected by the schema but accepted here:\n{}",
        wrongly_accepted.join("\n")
    );
    eprintln!(
        "{dir}: {} files, {schema_rejects} rejected as the schema rejects them, {fhirclient_only} rejected by fhirclient alone",
        files.len()
    );
}

#[test]
fn accepts_every_hl7_example_the_schema_accepts_and_rejects_the_rest() {
    check_folder("hl7-fhir-r4-examples", 5000);
}

#[test]
fn accepts_every_uk_core_example_the_schema_accepts() {
    check_folder("uk-core-r4-examples/json-converted-by-fhirjs", 200);
}

#[test]
fn the_gateways_recorded_everything_bundle_validates() {
    // A $everything answer the gateway gave over the simulators' synthetic population
    // (bench/load.sh records it): what the gateway emits must pass.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results/raw-latest/everything.json");
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("recorded bundle")).expect("JSON");
    assert_eq!(schema::check_resource(&bundle).map_err(|e| e.to_string()), Ok(()));
}

#[test]
fn every_subset_of_every_valid_hl7_example_is_still_valid_and_only_ever_narrower() {
    use tideway_profiles::elements::{Subset, is_subsetted};
    let data = shared_data();
    let mut checked = 0;
    for (file, value) in json_files(&data, "hl7-fhir-r4-examples") {
        let Some(rt) = value.get("resourceType").and_then(Value::as_str).map(str::to_owned) else { continue };
        if rt == "Bundle" || schema::check_resource(&value).is_err() {
            continue;
        }
        let elements = Subset::of_elements("id", &[rt.as_str()]).expect("every resource has an id");
        for subset in [Subset::Summary, Subset::Text, Subset::Data, elements] {
            let out = subset.apply(&value);
            if let Err(e) = schema::check_resource(&out) {
                panic!("{file} under {subset:?}: {e}");
            }
            assert_eq!(subset.apply(&out), out, "{file} under {subset:?}: applying twice changes it");
            let whole = value.as_object().unwrap();
            for key in out.as_object().unwrap().keys() {
                assert!(whole.contains_key(key) || key == "meta", "{file} under {subset:?}: {key} added");
            }
            if out != value {
                assert!(is_subsetted(&out), "{file} under {subset:?}: narrower but not tagged");
            }
        }
        checked += 1;
    }
    assert!(checked > 2000, "only {checked} examples subsetted");
}
