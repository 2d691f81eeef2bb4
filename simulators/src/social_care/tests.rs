//! The social care simulator and adapter together: the shared conformance suite, and what only
//! a council's system serves. The golden record is in `golden.rs`.

use std::net::SocketAddr;

use async_trait::async_trait;
use serde_json::Value;
use tideway_adapters::SystemKind;

use super::render;
use super::simulator::{SEARCHABLE, SocialCareConfig, start};
use crate::conformance::{self, BOROUGH, BOROUGHS, Entry, PER_BOROUGH, SEED, Simulated, Target};
use crate::faults::FaultConfig;
use crate::population::Population;
use crate::population::social_care::SocialCareRecord;

/// A council's social care system under the shared suite.
struct SocialCareSystem;

#[async_trait]
impl Target for SocialCareSystem {
    fn kind(&self) -> SystemKind {
        SystemKind::SocialCare
    }

    async fn start(&self, faults: FaultConfig) -> std::io::Result<Box<dyn Simulated>> {
        Ok(Box::new(simulator(faults).await))
    }

    fn held_patients(&self) -> Vec<usize> {
        conformance::population().social_care_patients(BOROUGH)
    }

    fn expected(&self, index: usize) -> Option<(String, Vec<Entry>)> {
        let r = conformance::population().social_care_record(BOROUGH, index)?;
        Some((r.local_id.clone(), expected_entries(&r)))
    }
}

mod suite {
    crate::conformance_suite!(super::SocialCareSystem);
}

/// Every entry of a social-care record but the Patient, as the suite expects it.
fn expected_entries(r: &SocialCareRecord) -> Vec<Entry> {
    let directory = Some("2024-01-01T09:00:00Z".to_owned());
    let mut out: Vec<Entry> = vec![
        ("Organization", r.authority.id.clone(), directory.clone()),
        (
            "Organization",
            r.demographics.practice.ods_code.clone(),
            Some(crate::fhir_r4::render::PRACTICE_UPDATED.to_owned()),
        ),
        ("Practitioner", r.social_worker.id.clone(), directory.clone()),
        ("PractitionerRole", r.social_worker.role_id.clone(), directory),
        ("EpisodeOfCare", r.episode.id.clone(), Some(r.episode.last_updated.clone())),
    ];
    out.extend(r.care_plans.iter().map(|p| ("CarePlan", p.id.clone(), Some(p.last_updated.clone()))));
    for f in &r.referrals {
        out.push(("ServiceRequest", f.id.clone(), Some(f.last_updated.clone())));
        out.push(("Task", f.task_id.clone(), Some(f.task_last_updated.clone())));
    }
    out
}

async fn simulator(faults: FaultConfig) -> crate::fhir_r4::simulator::RunningSimulator {
    let _ = rustls::crypto::ring::default_provider().install_default();
    start(SocialCareConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        seed: SEED,
        borough_index: BOROUGH,
        borough_count: BOROUGHS,
        patients_per_borough: PER_BOROUGH,
        faults,
    })
    .await
    .unwrap()
}

#[test]
fn every_rendered_resource_is_valid_r4_and_every_kind_of_entry_occurs() {
    let p = Population::new(7, 3, 120);
    let mut types = std::collections::BTreeSet::new();
    let mut count = 0;
    for b in 0..p.borough_count() {
        for i in p.social_care_patients(b) {
            let record = p.social_care_record(b, i).unwrap();
            for r in render::resources(&record) {
                if let Err(e) = tideway_profiles::validate::check_r4_value(&r) {
                    panic!("{} invalid: {e}", r["resourceType"]);
                }
                assert!(r["meta"]["lastUpdated"].is_string());
                types.insert(r["resourceType"].as_str().unwrap().to_owned());
                count += 1;
            }
        }
    }
    assert!(count > 1_000, "{count}");
    let want = [
        "CarePlan",
        "EpisodeOfCare",
        "Organization",
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "ServiceRequest",
        "Task",
    ];
    assert_eq!(types.iter().map(String::as_str).collect::<Vec<_>>(), want);
}

#[tokio::test]
async fn the_simulator_answers_reads_and_searches_of_a_social_care_record() {
    let sim = simulator(FaultConfig::default()).await;
    let pop = conformance::population();
    let index = pop.social_care_patients(BOROUGH)[0];
    let record = pop.social_care_record(BOROUGH, index).unwrap();
    let base = sim.base_url();
    let client = reqwest::Client::new();
    let get = |path: String| {
        let url = base.join(&path).unwrap();
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, meta) = get("metadata".into()).await;
    assert_eq!(status, 200);
    assert!(meta["software"]["name"].as_str().unwrap().contains("social care"));
    let listed: Vec<&str> =
        meta["rest"][0]["resource"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(listed[1..], *SEARCHABLE);
    let rendered = render::resources(&record);
    for ty in SEARCHABLE {
        let (_, bundle) = get(format!("{ty}?patient={}", record.local_id)).await;
        let want = rendered.iter().filter(|r| r["resourceType"] == *ty).count();
        assert_eq!(bundle["entry"].as_array().map_or(0, Vec::len), want, "{ty}");
        assert!(want > 0, "{ty}");
    }
    let (status, _) = get("Condition?patient=x".into()).await;
    assert_eq!(status, 404, "a social care system holds no conditions");
    let (status, worker) = get(format!("Practitioner/{}", record.social_worker.id)).await;
    assert_eq!((status, worker["id"].as_str()), (200, Some(record.social_worker.id.as_str())));
    let gp_id = pop.local_id(BOROUGH, index);
    let (status, _) = get(format!("Patient/{gp_id}/$everything")).await;
    assert_eq!(status, 404, "the council answers to its own ids only");
    sim.stop().await;
}
