//! Starting a simulated borough of any kind, and the region's mix of kinds.
//!
//! London's borough exchanges front different systems: mostly SystmOne and EMIS practices,
//! some Vision, some GP Connect endpoints, some plain FHIR R4 exchanges, and the local
//! authorities' social care systems. [`regional_mix`] gives borough `i` its kind so that the
//! demo runs that mix, and so that any three neighbouring boroughs run three different kinds
//! (the population holds some patients in three neighbouring boroughs, so those patients'
//! records always come from three different systems).

use std::net::SocketAddr;

use tideway_adapters::SystemKind;

use crate::faults::FaultConfig;
use crate::fhir_r4::simulator::{self as fhir_r4, PopulationSpec, SimulatorConfig};
use crate::gp_connect::simulator::{self as gp_connect};
use crate::population::Population;
use crate::server::RunningSimulator;

/// The kinds the boroughs after each SystmOne and FHIR R4 pair run, in turn.
const BETWEEN: [SystemKind; 1] = [SystemKind::GpConnect];

/// The kind borough `i` runs in the regional mix: SystmOne, FHIR R4, then one of the others, in
/// turn. Of 25 boroughs, SystmOne runs 9, FHIR R4 8 and the others share 8.
pub fn regional_mix(i: usize) -> SystemKind {
    match i % 3 {
        0 => SystemKind::Systmone,
        1 => SystemKind::FhirR4,
        _ => BETWEEN[(i / 3) % BETWEEN.len()],
    }
}

/// Whether [`start`] can simulate `kind`.
pub fn is_simulated(kind: SystemKind) -> bool {
    matches!(
        kind,
        SystemKind::FhirR4
            | SystemKind::Systmone
            | SystemKind::GpConnect
            | SystemKind::Emis
            | SystemKind::Vision
    )
}

/// Starts a simulator of `kind` playing `borough` of `population`, with `faults`.
pub async fn start(
    kind: SystemKind,
    bind: SocketAddr,
    population: Population,
    borough: usize,
    faults: FaultConfig,
) -> std::io::Result<RunningSimulator> {
    match kind {
        SystemKind::FhirR4 => {
            fhir_r4::start(SimulatorConfig {
                bind,
                population: PopulationSpec::Synthetic {
                    seed: population.seed(),
                    borough_index: borough,
                    borough_count: population.borough_count(),
                    patients_per_borough: population.patients_per_borough(),
                },
                faults,
            })
            .await
        }
        SystemKind::Systmone => crate::systmone::start(bind, population, borough, faults),
        SystemKind::Emis => {
            crate::gp_system::start(bind, crate::emis::EmisRender, population, borough, faults)
        }
        SystemKind::Vision => {
            crate::gp_system::start(bind, crate::vision::VisionRender, population, borough, faults)
        }
        SystemKind::GpConnect => Ok(gp_connect::start(gp_connect::SimulatorConfig {
            bind,
            seed: population.seed(),
            borough_index: borough,
            borough_count: population.borough_count(),
            patients_per_borough: population.patients_per_borough(),
            faults,
        })
        .await?
        .into_running()),
        other => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("no simulator is built yet for kind '{}'", other.as_str()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_three_neighbouring_boroughs_run_three_kinds() {
        for i in 0..25 {
            let kinds = [regional_mix(i), regional_mix(i + 1), regional_mix(i + 2)];
            assert!(kinds[0] != kinds[1] && kinds[1] != kinds[2] && kinds[0] != kinds[2], "{i}: {kinds:?}");
        }
    }

    #[test]
    fn every_kind_of_the_mix_is_simulated() {
        assert!((0..25).map(regional_mix).all(is_simulated));
    }
}
