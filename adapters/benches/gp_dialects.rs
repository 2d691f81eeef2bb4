//! SystmOne-, EMIS- and Vision-style normalisation throughput: each dialect's committed golden
//! fixtures (EMIS and Vision: the scenario patients rendered by their simulators and the
//! edge-case record; SystmOne: its one golden extract, a scenario patient) read from bytes into
//! the GP record model and normalised to checked UK Core R4, as `fetch_record` does after the
//! body is read.
//!
//! Run: `cargo bench -p tideway-adapters --bench gp_dialects`. Results in
//! `$CARGO_TARGET_DIR/criterion`. One iteration is the dialect's fixtures (the benchmark's name
//! says how many records): records/s is that many over the time per iteration; MB/s is
//! criterion's byte throughput.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "benchmarks")]

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tideway_adapters::fhir_r4::mapping::Normaliser;
use tideway_adapters::gp_record::{model::Extract, r4};
use tideway_adapters::{AdapterError, SourceId, SourceRecord, emis, systmone, vision};

fn fixtures(dialect: &str, ext: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(dialect);
    ["sensitive", "podiatry-diabetic", "edge-cases"]
        .iter()
        .map(|name| std::fs::read(dir.join(format!("{name}.{ext}"))).unwrap())
        .collect()
}

/// The SystmOne golden extract the simulators' tests keep.
fn systmone_fixture() -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../simulators/tests/golden/systmone/record.xml");
    vec![std::fs::read(path).unwrap()]
}

fn normalise(source: &SourceId, base: &url::Url, extract: Extract) -> SourceRecord {
    let local = extract.patient.local_id.clone();
    let n = Normaliser { source, base_url: base, patient_local_id: &local, gateway_patient_id: "gw-bench" };
    let mut out = SourceRecord::default();
    r4::normalise(&n, extract, &mut out);
    out
}

fn bench_dialect(
    c: &mut Criterion,
    name: &str,
    records: Vec<Vec<u8>>,
    read: fn(&[u8]) -> Result<Extract, AdapterError>,
) {
    let source = SourceId::parse("bench").unwrap();
    let base = url::Url::parse("http://bench.example/gp/").unwrap();
    let resources: usize =
        records.iter().map(|b| normalise(&source, &base, read(b).unwrap()).resources.len()).sum();
    assert!(resources > 10 * records.len(), "the fixtures normalise");
    let bytes: usize = records.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("gp_dialects");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(format!("{name}_parse_normalise_{}_records", records.len()), |b| {
        b.iter(|| {
            for r in &records {
                black_box(normalise(&source, &base, read(black_box(r)).unwrap()));
            }
        });
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    bench_dialect(c, "systmone", systmone_fixture(), systmone::mapping::extract);
    bench_dialect(c, "emis", fixtures("emis", "emis.json"), emis::mapping::read_record);
    bench_dialect(c, "vision", fixtures("vision", "vision.xml"), vision::mapping::record);
}

criterion_group!(benches, bench);
criterion_main!(benches);
