//! Writes de-identified forms of published examples as NDJSON, for checking with the shared
//! validators: `cargo run -p tideway-deid --example deidentify_samples > out.ndjson`, then
//! `../shared/tools/fhir-check out.ndjson`. Reads the UK Core examples and the first Synthea
//! bundles from `../shared/data`, under each profile's three date precisions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a tool run by hand: a panic says what is missing"
)]

use serde_json::Value;
use std::path::PathBuf;
use tideway_deid::{BirthDetail, DatePrecision, PlaceDetail, Profile, ProjectKey, Pseudonymiser, deidentify};
use time::macros::date;

fn main() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let mut resources: Vec<Value> = Vec::new();
    let uk_core = data.join("uk-core-r4-examples/json-converted-by-fhirjs");
    let mut names: Vec<_> =
        std::fs::read_dir(&uk_core).expect("the UK Core examples").flatten().map(|e| e.path()).collect();
    names.sort();
    for path in names.iter().filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("UKCore-")) {
        let value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        resources.push(value);
    }
    let mut bundles: Vec<_> = std::fs::read_dir(data.join("synthea-r4"))
        .expect("the Synthea bundles")
        .flatten()
        .map(|e| e.path())
        .collect();
    bundles.sort();
    for path in bundles.iter().filter(|p| p.extension().is_some_and(|e| e == "json")).take(3) {
        let bundle: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for entry in bundle["entry"].as_array().into_iter().flatten() {
            resources.push(entry["resource"].clone());
        }
    }
    let pseudonyms = Pseudonymiser::new("samples", ProjectKey::new("s1", vec![5; 32]).unwrap());
    let (mut written, mut dropped) = (0, std::collections::BTreeMap::<String, usize>::new());
    for (birth, place, event_dates) in [
        (BirthDetail::YearOfBirth, PlaceDetail::District, DatePrecision::Month),
        (BirthDetail::AgeBand5, PlaceDetail::Drop, DatePrecision::Year),
        (BirthDetail::YearOfBirth, PlaceDetail::District, DatePrecision::Day),
    ] {
        let profile = Profile { birth, place, event_dates };
        for resource in &resources {
            match deidentify(resource, &profile, &pseudonyms, "9912003888", date!(2026 - 12 - 01)) {
                Some(out) => {
                    println!("{out}");
                    written += 1;
                }
                None => {
                    *dropped
                        .entry(resource["resourceType"].as_str().unwrap_or("?").to_owned())
                        .or_default() += 1
                }
            }
        }
    }
    eprintln!("{written} de-identified resources written; not exported, by type: {dropped:?}");
}
