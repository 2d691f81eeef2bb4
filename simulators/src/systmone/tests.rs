//! The SystmOne-style simulator and adapter together: the shared conformance suite, the golden
//! fixture, and what only this dialect does (CTV3-only older entries, local codes).

use std::net::SocketAddr;
use std::path::PathBuf;

use async_trait::async_trait;
use serde_json::Value;
use tideway_adapters::{SourceRecord, SystemKind, systmone};
use tideway_profiles::{maps, systems};

use super::render;
use crate::conformance::{self, BOROUGH, Simulated, Target};
use crate::faults::FaultConfig;
use crate::population::Scenario;

struct SystmOneTarget;

#[async_trait]
impl Target for SystmOneTarget {
    fn kind(&self) -> SystemKind {
        SystemKind::Systmone
    }

    async fn start(&self, faults: FaultConfig) -> std::io::Result<Box<dyn Simulated>> {
        let bind = SocketAddr::from(([127, 0, 0, 1], 0));
        Ok(Box::new(super::start(bind, conformance::population(), BOROUGH, faults)?))
    }

    fn external_entity_faults(&self) -> Option<FaultConfig> {
        Some(FaultConfig { external_entity_rate: 1.0, ..FaultConfig::default() })
    }

    fn expected_entries(
        &self,
        record: &crate::population::PatientRecord,
    ) -> Vec<(&'static str, String, Option<String>)> {
        crate::gp_system::expected_entries(record)
    }

    /// One extract per patient, with no links in it.
    fn next_links(&self) -> conformance::NextLinks {
        conformance::NextLinks::Absent
    }
}

mod suite {
    crate::conformance_suite!(super::SystmOneTarget);
}

/// Renders and normalises one record as the adapter does, without HTTP (the GP dialects'
/// shared helper, which also checks every entry is accounted for).
fn normalised(index: usize) -> (String, SourceRecord) {
    let pop = conformance::population();
    let record = pop.record(BOROUGH, index).expect("held");
    let xml = render::extract(&record, None);
    let extract = systmone::mapping::extract(xml.as_bytes()).expect("reads");
    let out = crate::gp_system::testing::normalise(&record, extract);
    (xml, out)
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/systmone")
}

/// Compares `got` with the committed snapshot `name`, or writes it when `UPDATE_GOLDEN=1`.
fn snapshot(name: &str, got: &str) {
    let path = golden_dir().join(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(golden_dir()).expect("golden dir");
        std::fs::write(&path, got).expect("written");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(got, want, "{name} differs from its snapshot (UPDATE_GOLDEN=1 to accept a change)");
}

/// Patient 7 of the conformance population is a Sensitive scenario patient at home in borough 0.
const GOLDEN_PATIENT: usize = 7;

#[test]
fn golden_extract_in_uk_core_r4_out() {
    assert_eq!(Scenario::of(GOLDEN_PATIENT), Some(Scenario::Sensitive));
    let (xml, out) = normalised(GOLDEN_PATIENT);
    snapshot("record.xml", &xml);
    let resources: Vec<Value> =
        out.resources.iter().map(|r| serde_json::from_slice(&r.json).expect("json")).collect();
    let pretty = serde_json::to_string_pretty(&resources).expect("json");
    snapshot("record.r4.json", &format!("{pretty}\n"));
}

#[test]
fn every_entry_of_every_record_is_accounted_for() {
    let pop = conformance::population();
    for index in pop.patients_in_borough(BOROUGH) {
        let (xml, out) = normalised(index);
        let extract = systmone::mapping::extract(xml.as_bytes()).expect("reads");
        let input =
            1 + usize::from(extract.practice.is_some()) + extract.entries.len() + extract.unreadable.len();
        assert_eq!(out.resources.len() + out.rejected.len(), input, "patient {index}");
        assert!(out.rejected.is_empty(), "patient {index}: {:?}", out.rejected);
    }
}

#[test]
fn older_problems_keep_ctv3_alone_and_are_flagged_unmapped() {
    let (_, out) = normalised(GOLDEN_PATIENT);
    let hiv = out.resources.iter().find(|r| r.id.ends_with("-cond-s0")).expect("the HIV problem");
    let v: Value = serde_json::from_slice(&hiv.json).expect("json");
    let codings = v["code"]["coding"].as_array().expect("codings");
    assert_eq!(codings.len(), 1, "no SNOMED CT is guessed for a CTV3 code");
    assert_eq!(codings[0]["system"], systems::CTV3);
    assert_eq!(codings[0]["code"], "43C3.");
    assert_eq!(v["meta"]["tag"][0]["code"], maps::UNMAPPED_TAG_CODE);
    // The policy's HIV set carries this CTV3 code, so the facts the policy reads see it.
    assert!(hiv.facts.codings.iter().any(|c| c.system == systems::CTV3 && c.code == "43C3."));
}

#[test]
fn older_consultations_carry_the_local_code_newer_ones_snomed() {
    let pop = conformance::population();
    let mut local = 0;
    let mut snomed = 0;
    for index in pop.patients_in_borough(BOROUGH).into_iter().take(20) {
        let (_, out) = normalised(index);
        for r in out.resources.iter().filter(|r| r.resource_type == "Encounter") {
            let v: Value = serde_json::from_slice(&r.json).expect("json");
            let coding = &v["type"][0]["coding"][0];
            let start = v["period"]["start"].as_str().expect("start");
            if start < "2018-04-01" {
                assert_eq!(coding["code"], render::LOCAL_CONSULTATION_CODE.code);
                assert_eq!(v["meta"]["tag"][0]["code"], maps::UNMAPPED_TAG_CODE);
                local += 1;
            } else {
                assert_eq!(coding["system"], systems::SNOMED_CT);
                snomed += 1;
            }
        }
    }
    assert!(local > 0 && snomed > 0, "both kinds are exercised: {local} local, {snomed} SNOMED");
}

/// A record that names another NHS number than the patient asked about (a local id reused or
/// merged at the practice) is refused whole, as another patient's, and nothing of it passed on.
#[tokio::test]
async fn a_record_under_another_nhs_number_is_refused_as_another_patients() {
    let bind = SocketAddr::from(([127, 0, 0, 1], 0));
    let sim = super::start(bind, conformance::population(), BOROUGH, FaultConfig::default()).expect("starts");
    let adapter =
        tideway_adapters::registry::build(conformance::source_config(SystemKind::Systmone, sim.base_url()))
            .expect("adapter");
    let pop = conformance::population();
    let index = pop.patients_in_borough(BOROUGH)[3];
    let record = pop.record(BOROUGH, index).expect("held");
    let ok = adapter
        .fetch_record(
            &conformance::link(&record.demographics.nhs_number, &record.local_id),
            &conformance::ctx(),
        )
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    let err = adapter
        .fetch_record(&conformance::link(&conformance::stranger(), &record.local_id), &conformance::ctx())
        .await
        .expect_err("refused");
    assert_eq!(err, tideway_adapters::AdapterError::OtherPatient);
    assert!(!err.is_transient());
    sim.stop().await;
}
