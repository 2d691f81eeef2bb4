//! Criterion micro-benchmarks of the request path's CPU-bound steps, on the deterministic
//! synthetic population the simulators serve (seed 42, 25 boroughs x 200 patients).
//!
//! Run: `cargo bench -p tideway-gateway --bench hot_paths` (about a minute; results in
//! `$CARGO_TARGET_DIR/criterion`). Public APIs only.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use tideway_adapters::NormalisedResource;
use tideway_adapters::SourceId;
use tideway_adapters::fhir_r4::mapping::{Normaliser, finish};
use tideway_gateway::audit::AuditRecord;
use tideway_gateway::audit::chain::ChainHash;
use tideway_gateway::bundle::{Searchset, searchset};
use tideway_gateway::store::{AuditLog, Store};
use tideway_profiles::NhsNumber;
use tideway_profiles::validate::check_r4_resource;
use tideway_simulators::population::Population;

const SEED: u64 = 42;
const BOROUGHS: usize = 25;
const PATIENTS: usize = 200;

fn population() -> Population {
    Population::new(SEED, BOROUGHS, PATIENTS)
}

/// One borough's record of one patient, as the source sends it, with what normalising it needs.
struct SourceRecord {
    source: SourceId,
    base: url::Url,
    local_id: String,
    resources: Vec<Value>,
}

/// The record borough `borough` holds for patient `index`.
fn source_record(borough: usize, index: usize) -> SourceRecord {
    let pop = population();
    let record = pop.record(borough, index).expect("the borough holds the patient");
    SourceRecord {
        source: SourceId::parse(&format!("borough-{borough:02}")).expect("valid source id"),
        base: url::Url::parse(&format!("http://127.0.0.1:9/b{borough:02}/fhir/")).expect("valid url"),
        resources: tideway_simulators::fhir_r4::render::resources(&record),
        local_id: record.local_id,
    }
}

fn normaliser(r: &SourceRecord) -> Normaliser<'_> {
    Normaliser {
        source: &r.source,
        base_url: &r.base,
        patient_local_id: &r.local_id,
        gateway_patient_id: "p0123456789abcdef0123456789abcdef",
    }
}

/// Normalised resources from consecutive patients' home records until there are `n`.
fn normalised_resources(n: usize) -> Vec<NormalisedResource> {
    let pop = population();
    let mut out = Vec::with_capacity(n);
    for index in 0..pop.patient_count() {
        let rec = source_record(pop.home_borough(index), index);
        let norm = normaliser(&rec);
        for r in rec.resources.iter().cloned() {
            let value = norm.normalise(r).expect("synthetic resources normalise");
            out.push(finish(&value).expect("synthetic resources are valid R4"));
            if out.len() == n {
                return out;
            }
        }
    }
    out
}

fn bench_bundle(c: &mut Criterion) {
    let entries = normalised_resources(500);
    let bytes: usize = entries.iter().map(|e| e.json.len()).sum();
    let mut g = c.benchmark_group("bundle");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("searchset_500_resources", |b| {
        b.iter(|| {
            black_box(searchset(black_box(&Searchset {
                base_url: "http://127.0.0.1:8080",
                self_link: "http://127.0.0.1:8080/Patient/p0123456789abcdef0123456789abcdef/$everything",
                next_link: None,
                total: entries.len(),
                entries: &entries,
                includes: &[],
                outcome: None,
            })))
        });
    });
    g.finish();
}

fn bench_mapping(c: &mut Criterion) {
    // Patient 0 is held by boroughs 0, 1 and 2: the load run's patient. Borough 0's record.
    let rec = source_record(0, 0);
    let n = rec.resources.len();
    let mut g = c.benchmark_group("mapping");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("normalise_record_{n}_resources"), |b| {
        let norm = normaliser(&rec);
        b.iter_batched(
            || rec.resources.clone(),
            |resources| {
                for r in resources {
                    black_box(norm.normalise(r).expect("normalises"));
                }
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function(format!("normalise_and_finish_record_{n}_resources"), |b| {
        let norm = normaliser(&rec);
        b.iter_batched(
            || rec.resources.clone(),
            |resources| {
                for r in resources {
                    let v = norm.normalise(r).expect("normalises");
                    black_box(finish(&v).expect("valid R4"));
                }
            },
            BatchSize::SmallInput,
        );
    });
    // The whole source answer as the adapter receives it: parse the Bundle body, then
    // normalise and finish every entry.
    let body = serde_json::to_vec(&serde_json::json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": n,
        "entry": rec.resources.iter().map(|r| serde_json::json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>(),
    }))
    .expect("serialises");
    g.bench_function(format!("parse_bundle_normalise_finish_{n}_resources"), |b| {
        let norm = normaliser(&rec);
        b.iter(|| {
            let mut bundle: Value = serde_json::from_slice(black_box(&body)).expect("parses");
            let entries = bundle["entry"].as_array_mut().map(std::mem::take).unwrap_or_default();
            for mut e in entries {
                let r = e["resource"].take();
                let v = norm.normalise(r).expect("normalises");
                black_box(finish(&v).expect("valid R4"));
            }
        });
    });
    g.finish();
}

fn bench_validate(c: &mut Criterion) {
    // ~100 KB of normalised resources, checked one by one as `finish` does.
    let mut set: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0usize;
    for r in normalised_resources(5_000) {
        if bytes >= 100 * 1024 {
            break;
        }
        bytes += r.json.len();
        set.push(r.json.to_vec());
    }
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function(format!("check_r4_resource_{}_resources_{}KB", set.len(), bytes / 1024), |b| {
        b.iter(|| {
            for json in &set {
                check_r4_resource(black_box(json)).expect("valid R4");
            }
        });
    });
    g.finish();
}

fn bench_nhs(c: &mut Criterion) {
    let pop = population();
    let numbers: Vec<String> =
        (0..1000).filter_map(|i| pop.nhs_number(i)).map(|n| n.as_str().to_owned()).collect();
    let spaced: Vec<String> =
        numbers.iter().map(|n| format!("{} {} {}", &n[..3], &n[3..6], &n[6..])).collect();
    let mut g = c.benchmark_group("nhs_number");
    g.throughput(Throughput::Elements(numbers.len() as u64));
    g.bench_function(format!("parse_{}_valid", numbers.len()), |b| {
        b.iter(|| {
            for n in &numbers {
                black_box(NhsNumber::parse(black_box(n)).is_ok());
            }
        });
    });
    g.bench_function(format!("parse_{}_spaced", spaced.len()), |b| {
        b.iter(|| {
            for n in &spaced {
                black_box(NhsNumber::parse(black_box(n)).is_ok());
            }
        });
    });
    g.finish();
}

/// Durable audit appends, hash-chained, to a fresh SQLite store in the temp directory and to a
/// fresh schema of the PostgreSQL at `$TIDEWAY_TEST_POSTGRES_URL`: one at a time (each pays its
/// own commit and fsync) and 64 at once (group-committed). Wall time, so the disk's fsync is in
/// the figure; `gateway/examples/audit_appends.rs` is the fixed-count workload for counting CPU
/// (`perf stat`, callgrind). `audit/chain_link` is the hash the chain adds to each record.
fn bench_audit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("tideway-bench-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = format!("sqlite://{}", dir.join("audit.db").display()).into();
    let postgres = rt.block_on(fresh_postgres_schema()).into();
    let mut record = AuditRecord::new("bench-0123456789abcdef", "patient-everything", None);
    record.patient_id = Some("p0123456789abcdef0123456789abcdef".into());
    record.sources = Arc::from(r#"["borough-00","borough-01","borough-02"]"#);
    let mut g = c.benchmark_group("audit");
    g.bench_function("chain_link", |b| {
        let prev = ChainHash::GENESIS;
        b.iter(|| black_box(prev.then(black_box(&record))));
    });
    for (backend, url) in [("sqlite", sqlite), ("postgres", postgres)] {
        let store: Arc<Store> =
            Arc::new(rt.block_on(Store::connect(&url, 4, Duration::from_secs(5))).unwrap());
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{backend}_append_1"), |b| {
            b.iter(|| rt.block_on(store.append_audit(black_box(&record))).unwrap());
        });
        g.throughput(Throughput::Elements(64));
        g.bench_function(format!("{backend}_append_64_concurrent"), |b| {
            b.iter(|| {
                rt.block_on(futures::future::join_all((0..64).map(|_| store.append_audit(&record))))
                    .into_iter()
                    .for_each(|r| {
                        black_box(r.unwrap());
                    });
            });
        });
        drop(store);
    }
    g.finish();
    rt.shutdown_timeout(Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh schema in the benchmark PostgreSQL, as a store URL.
async fn fresh_postgres_schema() -> String {
    use sqlx::Connection;
    let base = std::env::var("TIDEWAY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("bench_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&base).await.expect("PostgreSQL for the audit benchmark");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// The one decision over a record the size of the benchmark patient's (43 entries), for a
/// hospital clinician (the whole record less the sensitive set), a podiatrist (code sets), and
/// the clinician again under a partial consent restriction.
fn bench_decide(c: &mut Criterion) {
    use tideway_auth::{Principal, PurposeOfUse, RoleCode};
    use tideway_policy::{Ask, Policy, Standing, read_consent};
    use tideway_profiles::{OdsCode, ResourceFacts};
    let resources = normalised_resources(43);
    let facts: Vec<&ResourceFacts> = resources.iter().map(|r| r.facts.as_ref()).collect();
    let policy = Policy::examples([]).expect("examples load");
    let today = time::macros::date!(2026 - 12 - 01);
    let who = |org: &str, role: &str| Principal {
        client_id: "c".into(),
        user_id: "u".into(),
        role: RoleCode::parse(role).expect("role"),
        organisation: OdsCode::parse(org).expect("ods"),
        purpose: PurposeOfUse::Treat,
        scopes: vec!["system/*.read".into()],
        token_id: "t".into(),
        break_glass_reason: None,
    };
    let consent = read_consent(&serde_json::json!({
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p1"},
        "provision": {"type": "deny", "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"identifier": {
            "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RJ122"}}}],
            "class": [{"code": "Observation"}]}
    }))
    .expect("consent reads")
    .directive
    .expect("active");
    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(facts.len() as u64));
    for (name, principal, directives, standing) in [
        ("hospital_clinician_43_resources", who("RJ122", "R8000"), vec![], Standing::Agreement),
        ("podiatrist_43_resources", who("YPOD1", "R8003"), vec![], Standing::Care),
        (
            "hospital_clinician_with_consent_43_resources",
            who("RJ122", "R8000"),
            vec![consent],
            Standing::Agreement,
        ),
    ] {
        let ask = Ask::everything().standing_as(standing);
        g.bench_function(name, |b| {
            b.iter(|| policy.decide(&principal, &ask, today, &directives, &facts));
        });
    }
    // The relationship check before the decision, at its dearest: a podiatrist with no referral
    // on the record, so every resource is looked at and none shows one.
    let podiatrist = who("YPOD1", "R8003");
    g.bench_function("standing_none_shown_43_resources", |b| {
        b.iter(|| policy.standing(&podiatrist, today, &[], &facts));
    });
    g.finish();
}

criterion_group! {
    name = hot_paths;
    config = config();
    targets = bench_bundle, bench_mapping, bench_validate, bench_nhs, bench_audit, bench_decide
}
criterion_main!(hot_paths);
