//! Golden tests of the GP Connect converter: a small fixture derived from GP Connect's own
//! examples against its expected R4 (a snapshot), and the converter over every file of
//! `../shared/data/gpconnect-stu3-examples`, the invalid ones included: every entry is
//! converted or reported, nothing converted is invalid R4, and List warnings survive.
//!
//! Snapshots are regenerated with `UPDATE_GOLDEN=1`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failure is a failing test with its message"
)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tideway_adapters::fhir_r4::mapping::Normaliser;
use tideway_adapters::gp_connect::mapping::{Conversion, convert_record};
use tideway_adapters::gp_connect::stu3::WARNING_CODE_URL;
use tideway_adapters::{ListWarningCode, RejectionKind, SourceId};
use tideway_profiles::validate::check_r4_value;

const GATEWAY_ID: &str = "gw-golden";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gp_connect")
}

fn examples_dir() -> PathBuf {
    let dir = workspace_root().join("../shared/data/gpconnect-stu3-examples");
    assert!(
        dir.is_dir(),
        "the GP Connect STU3 examples are expected at {} (the shared data folder next to the repository)",
        dir.display()
    );
    dir
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// A file's entries: a Bundle's, or the file's one resource.
fn entries_of(document: Value) -> Vec<Value> {
    if document["resourceType"] == "Bundle" {
        document["entry"].as_array().cloned().unwrap_or_default()
    } else {
        vec![json!({"resource": document})]
    }
}

/// Converts `entries` for the first Patient among them (or for no patient).
fn convert(entries: Vec<Value>) -> Conversion {
    let local = entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .and_then(|e| e["resource"]["id"].as_str())
        .unwrap_or("")
        .to_owned();
    let source = SourceId::parse("gpc").unwrap();
    let base = url::Url::parse("https://gpc.example.nhs.uk/gpconnect/fhir/").unwrap();
    let n = Normaliser {
        source: &source,
        base_url: &base,
        patient_local_id: &local,
        gateway_patient_id: GATEWAY_ID,
    };
    convert_record(&n, None, entries)
}

fn parse(json: &[u8]) -> Value {
    serde_json::from_slice(json).unwrap()
}

/// The conversion as one JSON document: what a reviewer reads in the snapshot.
fn as_document(c: &Conversion) -> Value {
    json!({
        "resources": c.record.resources.iter().map(|r| parse(&r.json)).collect::<Vec<_>>(),
        "rejected": c.record.rejected.iter().map(|r| json!({
            "resourceType": r.resource_type,
            "kind": format!("{:?}", r.kind),
            "reason": r.reason,
        })).collect::<Vec<_>>(),
        "warnings": c.record.warnings.iter().map(|w| json!({"section": w.section, "code": w.code.as_str()})).collect::<Vec<_>>(),
        "outcomeEntries": c.outcome_entries,
    })
}

/// Compares `actual` with the snapshot at `path`, or writes it under `UPDATE_GOLDEN=1`.
fn snapshot(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create the snapshot)", path.display())
    });
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(a, b)| a != b);
        panic!(
            "{} differs from the conversion (first differing line {:?}); rerun with UPDATE_GOLDEN=1 and review the diff",
            path.display(),
            first.map(|l| l + 1)
        );
    }
}

#[test]
fn the_allergies_fixture_converts_to_the_expected_r4() {
    let input = read_json(&fixtures().join("allergies_small.stu3.json"));
    let entries = entries_of(input);
    let count = entries.len();
    let out = convert(entries);
    assert_eq!(out.accounted(), count, "every entry converted, rejected or an outcome");
    for r in &out.record.resources {
        check_r4_value(&parse(&r.json)).unwrap_or_else(|e| panic!("{} {}: {e}", r.resource_type, r.id));
    }
    // The fixture's own facts, independent of the snapshot: both allergies come through with
    // their codes and R4 statuses, the resolved one inside its List; the active List keeps its
    // warning and says that two of the allergies it names were not sent.
    let allergies: Vec<Value> = out
        .record
        .resources
        .iter()
        .filter(|r| r.resource_type == "AllergyIntolerance")
        .map(|r| parse(&r.json))
        .collect();
    assert_eq!(allergies.len(), 2);
    assert!(
        allergies
            .iter()
            .all(|a| a["recordedDate"].is_string() && a["clinicalStatus"]["coding"][0]["code"] == "active")
    );
    let codes: Vec<(ListWarningCode, Option<&str>)> =
        out.record.warnings.iter().map(|w| (w.code, w.section.as_deref())).collect();
    assert_eq!(
        codes,
        [
            (ListWarningCode::ConfidentialItems, Some("886921000000105")),
            (ListWarningCode::EntryNotShown, Some("886921000000105"))
        ]
    );
    let resolved =
        out.record.resources.iter().find(|r| r.id == "gpc.list-TBD").expect("the resolved allergies List");
    let resolved = parse(&resolved.json);
    assert_eq!(resolved["contained"][0]["clinicalStatus"]["coding"][0]["code"], "resolved");
    assert_eq!(resolved["subject"]["reference"], format!("Patient/{GATEWAY_ID}"));
    let text = serde_json::to_string_pretty(&as_document(&out)).unwrap() + "\n";
    snapshot(&fixtures().join("allergies_small.r4.json"), &text);
}

fn example_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            example_files(&path, out);
        } else if path.extension().and_then(|e| e.to_str()) == Some("json") {
            out.push(path);
        }
    }
}

/// Every List of a document given a `data-in-transit` warning, so each file also shows that
/// warnings survive conversion whatever else is wrong with it.
fn with_warning_on_every_list(document: &mut Value) -> usize {
    let mut lists = 0;
    let mut add = |r: &mut Value| {
        if r["resourceType"] == "List"
            && let Some(obj) = r.as_object_mut()
        {
            let ext = json!({"url": WARNING_CODE_URL, "valueCode": "data-in-transit"});
            match obj.get_mut("extension") {
                Some(Value::Array(list)) => list.push(ext),
                _ => {
                    obj.insert("extension".into(), json!([ext]));
                }
            }
            lists += 1;
        }
    };
    match document.get_mut("entry").and_then(Value::as_array_mut) {
        Some(entries) => entries.iter_mut().for_each(|e| add(&mut e["resource"])),
        None => add(document),
    }
    lists
}

#[test]
fn every_shared_example_is_converted_or_reported_and_nothing_invalid_passes() {
    let dir = examples_dir();
    let mut files = Vec::new();
    example_files(&dir, &mut files);
    assert!(files.len() >= 25, "expected the whole example set, found {}", files.len());
    let mut report = String::new();
    let (mut total_in, mut total_converted) = (0, 0);
    for path in &files {
        let name = path.strip_prefix(&dir).unwrap().display().to_string();
        let mut document = read_json(path);
        let lists = with_warning_on_every_list(&mut document);
        let entries = entries_of(document);
        let count = entries.len();
        let out = convert(entries);
        assert_eq!(out.accounted(), count, "{name}: entries in = converted + rejected + outcomes");
        for r in &out.record.resources {
            let json = parse(&r.json);
            if let Err(e) = check_r4_value(&json) {
                panic!("{name}: {} {} passed on but invalid: {e}", r.resource_type, r.id);
            }
            assert!(
                r.facts.is_about(GATEWAY_ID),
                "{name}: {} {} is about someone else",
                r.resource_type,
                r.id
            );
        }
        let other_lists = out
            .record
            .rejected
            .iter()
            .filter(|r| r.kind == RejectionKind::OtherPatient && r.resource_type.as_deref() == Some("List"))
            .count();
        let transit = out.record.warnings.iter().filter(|w| w.code == ListWarningCode::DataInTransit).count();
        assert_eq!(
            transit,
            lists - other_lists,
            "{name}: every List's warning survives, but another patient's"
        );
        for list in out.record.resources.iter().filter(|r| r.resource_type == "List") {
            let list = parse(&list.json);
            assert!(
                list["extension"].to_string().contains("data-in-transit"),
                "{name}: warning extension kept"
            );
            assert!(
                list["note"].to_string().contains("GP Connect warning (data-in-transit)"),
                "{name}: note added"
            );
        }
        total_in += count;
        total_converted += out.record.resources.len();
        report.push_str(&format!(
            "{name}: {count} in, {} converted, {} rejected, {} outcome, {} warnings\n",
            out.record.resources.len(),
            out.record.rejected.len(),
            out.outcome_entries,
            out.record.warnings.len()
        ));
        for r in &out.record.rejected {
            report.push_str(&format!("  rejected {:?} {:?}: {}\n", r.resource_type, r.kind, r.reason));
        }
    }
    report.push_str(&format!("total: {total_in} in, {total_converted} converted\n"));
    assert!(total_converted * 2 > total_in, "most entries are recovered: {total_converted} of {total_in}");
    snapshot(&fixtures().join("examples_report.txt"), &report);
}
