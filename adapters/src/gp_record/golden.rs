//! Golden tests for the GP dialects: a committed record file in a dialect goes in, the R4 it
//! normalises to comes out and is compared exactly with a committed snapshot. Run with
//! `UPDATE_GOLDEN=1` to rewrite the snapshots after a deliberate change (and read the diff).
//!
//! Every fixture is also checked for the accounting equality: each entry of the extract (the
//! patient, the practice, every entry and every unreadable one) is either a resource or a
//! rejection.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::model::Extract;
use super::r4::{Normalised, normalise};
use crate::adapter::SourceRecord;
use crate::fhir_r4::mapping::Normaliser;
use crate::source::SourceId;

/// The source id the fixtures are normalised as.
pub const SOURCE: &str = "golden";
/// The gateway id the fixtures' patient is linked to.
pub const GATEWAY_ID: &str = "gw-golden";

/// Where a dialect's fixtures live: `adapters/tests/golden/{dialect}/`.
pub fn dir(dialect: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(dialect)
}

/// Normalises `extract` as the fixture source would, linked to [`GATEWAY_ID`], and checks the
/// accounting equality.
pub fn run(extract: Extract) -> (SourceRecord, Normalised) {
    let source = SourceId::parse(SOURCE).expect("a valid source id");
    let base = url::Url::parse("http://golden.example/gp/").expect("a URL");
    let local = extract.patient.local_id.clone();
    let n = Normaliser {
        source: &source,
        base_url: &base,
        patient_local_id: &local,
        gateway_patient_id: GATEWAY_ID,
    };
    let entries =
        1 + usize::from(extract.practice.is_some()) + extract.entries.len() + extract.unreadable.len();
    let mut out = SourceRecord::default();
    let done = normalise(&n, extract, &mut out);
    assert_eq!(out.resources.len() + out.rejected.len(), entries, "every entry is accounted for");
    (out, done)
}

/// The snapshot text of a normalised record: every resource as sent, then every rejection.
pub fn snapshot(record: &SourceRecord) -> String {
    let resources: Vec<Value> = record
        .resources
        .iter()
        .map(|r| serde_json::from_slice(&r.json).expect("resources are JSON"))
        .collect();
    let rejected: Vec<Value> = record
        .rejected
        .iter()
        .map(|r| json!({"resourceType": r.resource_type, "kind": r.kind.as_str(), "reason": r.reason}))
        .collect();
    let mut text = serde_json::to_string_pretty(&json!({"resources": resources, "rejected": rejected}))
        .expect("serialisable");
    text.push('\n');
    text
}

/// Reads `{dir}/{name}.{ext}` with `read`, normalises it and compares the result with
/// `{dir}/{name}.r4.json` (rewritten under `UPDATE_GOLDEN=1`). Returns the record.
pub fn check(dialect: &str, name: &str, ext: &str, read: impl Fn(&[u8]) -> Extract) -> SourceRecord {
    let dir = dir(dialect);
    let input = std::fs::read(dir.join(format!("{name}.{ext}"))).expect("the fixture is committed");
    let (record, _) = run(read(&input));
    compare(dialect, name, &record);
    record
}

/// Compares `record`'s snapshot with `{dir}/{name}.r4.json` (rewritten under `UPDATE_GOLDEN=1`).
pub fn compare(dialect: &str, name: &str, record: &SourceRecord) {
    let got = snapshot(record);
    let expected_path = dir(dialect).join(format!("{name}.r4.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &got).expect("the snapshot is written");
    }
    let expected = std::fs::read_to_string(&expected_path).expect("the snapshot is committed");
    assert!(
        got == expected,
        "{dialect}/{name}: the R4 differs from {} (UPDATE_GOLDEN=1 rewrites it)",
        expected_path.display()
    );
}

/// The normalised resource of the fixture's local id `local`, as JSON.
pub fn resource(record: &SourceRecord, local: &str) -> Value {
    let id = format!("{}.{local}", SOURCE);
    let r = record.resources.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("{id} missing"));
    serde_json::from_slice(&r.json).expect("JSON")
}

/// `(system, code)` of every coding of a CodeableConcept.
pub fn codings(concept: &Value) -> Vec<(String, String)> {
    concept["coding"]
        .as_array()
        .expect("codings")
        .iter()
        .map(|c| (c["system"].as_str().unwrap().to_owned(), c["code"].as_str().unwrap().to_owned()))
        .collect()
}

/// A `(system, code)` pair.
pub fn pair(system: &str, code: &str) -> (String, String) {
    (system.to_owned(), code.to_owned())
}

/// The `{map} {version}` a map stamped on the concept's coding in `system`.
pub fn mapped_by(concept: &Value, system: &str) -> Option<String> {
    concept["coding"].as_array()?.iter().find(|c| c["system"] == system)?["extension"][0]["valueString"]
        .as_str()
        .map(str::to_owned)
}
