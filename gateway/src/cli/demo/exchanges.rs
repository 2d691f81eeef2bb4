//! The demo's simulated borough exchanges (the regional mix of systems, and the `--from-dir`
//! exchange), each with its registry entry.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tideway_adapters::{SourceConfig, SourceId, SystemKind};
use tideway_profiles::OdsCode;
use tideway_simulators::fhir_r4::from_dir::FromDir;
use tideway_simulators::fhir_r4::simulator::{self, PopulationSpec, RunningSimulator, SimulatorConfig};
use tideway_simulators::kinds;
use tideway_simulators::population::Population;

use super::DemoArgs;
use crate::cli::faults::CliError;

/// The running exchanges.
pub(super) struct Exchanges {
    /// Every simulator, the boroughs' then the `--from-dir` one.
    pub simulators: Vec<RunningSimulator>,
    /// Each borough's index and system.
    pub kinds_of: Vec<(usize, SystemKind)>,
    /// Their registry entries, in the same order.
    pub sources: Vec<SourceConfig>,
    /// With `--from-dir`: file name -> NHS number of each patient it serves.
    pub from_dir_patients: Option<std::collections::BTreeMap<String, String>>,
}

/// The registry entry of a demo exchange: attested, 5 s and 32 MiB per call, plain HTTP.
fn entry(
    id: SourceId,
    name: String,
    kind: SystemKind,
    ods_code: OdsCode,
    sim: &RunningSimulator,
) -> SourceConfig {
    SourceConfig {
        id,
        name,
        kind,
        ods_code,
        base_url: sim.base_url(),
        timeout_ms: 5_000,
        max_body_bytes: 32 * 1024 * 1024,
        tls: None,
        attestation: Some(demo_attestation()),
    }
}

/// Starts every exchange the demo runs.
pub(super) async fn start(args: &DemoArgs, population: Population) -> Result<Exchanges, CliError> {
    let mut simulators = Vec::with_capacity(args.boroughs);
    let mut kinds_of = Vec::with_capacity(args.boroughs);
    let mut sources = Vec::with_capacity(args.boroughs);
    for i in 0..args.boroughs {
        let kind = kinds::regional_mix(i);
        kinds_of.push((i, kind));
        let sim = kinds::start(
            kind,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            population,
            i,
            args.faults.resolve(args.seed.wrapping_add(i as u64))?,
        )
        .await?;
        let name = format!(
            "{} exchange ({}, simulated)",
            population.borough_name(i).unwrap_or("London"),
            kind.as_str()
        );
        let ods = kinds::ods_code(kind, &population, i).ok_or("no ODS code for borough")?;
        sources.push(entry(SourceId::parse(&format!("borough-{i:02}"))?, name, kind, ods, &sim));
        simulators.push(sim);
    }
    let from_dir_patients = match &args.from_dir {
        Some(dir) => {
            let sim = simulator::start(SimulatorConfig {
                bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                population: PopulationSpec::Loaded(Arc::new(registered_at_demo_practice(dir).await?)),
                faults: args.faults.resolve(args.seed.wrapping_add(args.boroughs as u64))?,
            })
            .await?;
            let name = "Exchange serving the bundles of --from-dir (simulated)".to_owned();
            let ods = OdsCode::parse("LBX99")?;
            sources.push(entry(SourceId::parse("from-dir")?, name, SystemKind::FhirR4, ods, &sim));
            simulators.push(sim);
            let assigned = tideway_simulators::fhir_r4::from_dir::assign_nhs_numbers(dir)
                .map_err(|e| format!("--from-dir: {e}"))?;
            Some(assigned.into_iter().map(|(nhs, _, file)| (file, nhs.as_str().to_owned())).collect())
        }
        None => None,
    };
    Ok(Exchanges { simulators, kinds_of, sources, from_dir_patients })
}

/// The attestation the demo's sources and organisations hold: the Data Security and Protection
/// Toolkit's standards met, for a year from today.
pub(super) fn demo_attestation() -> tideway_adapters::Attestation {
    tideway_adapters::Attestation {
        scheme: "dspt".to_owned(),
        status: tideway_adapters::AttestationStatus::StandardsMet,
        expires: time::OffsetDateTime::now_utc().date() + time::Duration::days(365),
    }
}

/// The `registered-gp` persona's practice, where the `--from-dir` patients are registered.
pub(super) const REGISTERED_PRACTICE: &str = "F80001";

/// The bundles of `dir`, every patient registered at [`REGISTERED_PRACTICE`].
async fn registered_at_demo_practice(dir: &std::path::Path) -> Result<FromDir, CliError> {
    let dir = dir.to_owned();
    let loaded = tokio::task::spawn_blocking(move || FromDir::load(&dir))
        .await
        .map_err(|e| format!("--from-dir: {e}"))?
        .map_err(|e| format!("--from-dir: {e}"))?;
    Ok(loaded.register_all_at(REGISTERED_PRACTICE))
}
