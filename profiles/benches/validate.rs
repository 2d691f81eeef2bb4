//! R4 validation: fhirbolt strict (the check before the schema walker) against the walker, on
//! single 2-4 KB resources and on every resource of one Synthea patient, each resource checked
//! on its own as the gateway does.
//!
//! Run: `cargo bench -p tideway-profiles --bench validate`. Reads `../shared/data` (HL7's
//! examples and Synthea); results in `$CARGO_TARGET_DIR/criterion`. `check_r4_resource` parses
//! the bytes and walks the value; `check_r4_value` walks an already-parsed value.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "benchmarks")]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::Value;
use tideway_profiles::validate::{check_r4_resource, check_r4_value};

fn shared_data() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    assert!(dir.is_dir(), "{} is missing", dir.display());
    dir
}

fn fhirbolt_strict(json: &[u8]) -> bool {
    let config = DeserializationConfig { mode: DeserializationMode::Strict };
    fhirbolt::json::from_slice::<Resource>(json, Some(config)).is_ok()
}

/// Compact bytes and parsed value of each resource, as a source would send them.
fn set(values: Vec<Value>) -> Vec<(Vec<u8>, Value)> {
    values.into_iter().map(|v| (serde_json::to_vec(&v).unwrap(), v)).collect()
}

fn bench_set(c: &mut Criterion, name: &str, set: &[(Vec<u8>, Value)]) {
    let bytes: usize = set.iter().map(|(b, _)| b.len()).sum();
    for (b, v) in set {
        assert!(fhirbolt_strict(b), "{name}: fhirbolt rejects the input");
        assert_eq!(check_r4_value(v), Ok(()), "{name}: the walker rejects the input");
    }
    let mut g = c.benchmark_group(format!("{name}_{}_resources_{bytes}B", set.len()));
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("fhirbolt_strict", |b| {
        b.iter(|| set.iter().all(|(json, _)| fhirbolt_strict(black_box(json))))
    });
    g.bench_function("check_r4_resource", |b| {
        b.iter(|| set.iter().all(|(json, _)| check_r4_resource(black_box(json)).is_ok()))
    });
    g.bench_function("check_r4_value", |b| {
        b.iter(|| set.iter().all(|(_, v)| check_r4_value(black_box(v)).is_ok()))
    });
    g.finish();
}

fn validate(c: &mut Criterion) {
    let data = shared_data();
    let read =
        |rel: &str| -> Value { serde_json::from_slice(&std::fs::read(data.join(rel)).unwrap()).unwrap() };
    bench_set(c, "condition", &set(vec![read("hl7-fhir-r4-examples/Condition-f201.json")]));
    bench_set(c, "observation", &set(vec![read("hl7-fhir-r4-examples/Observation-example-genetics-1.json")]));
    // The median of the 57 patient bundles by file size (0.76 MB as written, indented).
    let bundle = read("synthea-r4/Max_Dicki_d9f8849f-e4a7-4ced-b057-c618db16a117.json");
    let resources = bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect();
    bench_set(c, "synthea_patient", &set(resources));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = validate
}
criterion_main!(benches);
