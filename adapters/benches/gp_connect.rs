//! GP Connect conversion throughput: one realistic structured record (GP Connect's own
//! consultations example: allergies resolved and active, medication statements, authorisations,
//! issues and Medications, 37 KB, 20 entries) parsed from bytes, converted STU3 -> R4,
//! normalised and checked as R4, as `fetch_record` does after the body is read.
//!
//! Run: `cargo bench -p tideway-adapters --bench gp_connect`. Reads
//! `../shared/data/gpconnect-stu3-examples`; results in `$CARGO_TARGET_DIR/criterion`.
//! Records/s is one over the time per record; MB/s is criterion's byte throughput.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "benchmarks")]

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use tideway_adapters::SourceId;
use tideway_adapters::fhir_r4::mapping::Normaliser;
use tideway_adapters::gp_connect::mapping::convert_record;

fn record_bytes() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/gpconnect-stu3-examples/accessrecord_structured/consultations_forwards_response1.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    // Compact, as a provider sends it on the wire.
    serde_json::to_vec(&serde_json::from_slice::<Value>(&bytes).unwrap()).unwrap()
}

fn bench(c: &mut Criterion) {
    let bytes = record_bytes();
    let source = SourceId::parse("gpc").unwrap();
    let base = url::Url::parse("https://gpc.example.nhs.uk/fhir/").unwrap();
    let n = Normaliser {
        source: &source,
        base_url: &base,
        patient_local_id: "04603d77-1a4e-4d63-b246-d7504f8bd833",
        gateway_patient_id: "gw-bench",
    };
    let entries = |b: &[u8]| {
        let mut bundle: Value = serde_json::from_slice(b).unwrap();
        match bundle.get_mut("entry").map(Value::take) {
            Some(Value::Array(e)) => e,
            _ => Vec::new(),
        }
    };
    let count = entries(&bytes).len();
    let converted = convert_record(&n, None, entries(&bytes));
    assert_eq!(converted.accounted(), count);
    assert!(converted.record.resources.len() >= 15, "the record converts");
    let mut group = c.benchmark_group("gp_connect");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("structured_record_to_r4", |b| {
        b.iter(|| black_box(convert_record(&n, None, entries(black_box(&bytes)))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(50);
    targets = bench
}
criterion_main!(benches);
