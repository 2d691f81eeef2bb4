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
use tideway_profiles::NhsNumber;

use crate::faults::FaultConfig;
use crate::fhir_r4::simulator::{self as fhir_r4, PopulationSpec, SimulatorConfig};
use crate::gp_connect::simulator::{self as gp_connect};
use crate::population::Population;
use crate::server::{BoroughConfig, RunningSimulator};

/// The ODS code of the organisation running borough `borough`'s system of `kind`: the
/// council's for social care, the borough exchange's otherwise.
pub fn ods_code(
    kind: SystemKind,
    population: &Population,
    borough: usize,
) -> Option<tideway_profiles::OdsCode> {
    match kind {
        SystemKind::SocialCare => population.local_authority_ods_code(borough),
        _ => population.borough_ods_code(borough),
    }
}

/// The kinds the boroughs after each SystmOne and EMIS pair run, in turn.
const BETWEEN: [SystemKind; 4] =
    [SystemKind::Vision, SystemKind::GpConnect, SystemKind::FhirR4, SystemKind::SocialCare];

/// The kind borough `i` runs in the regional mix: SystmOne, EMIS, then one of the others, in
/// turn. Of 25 boroughs, SystmOne runs 9, EMIS 8, and Vision, GP Connect, FHIR R4 and social
/// care 2 each.
pub fn regional_mix(i: usize) -> SystemKind {
    match i % 3 {
        0 => SystemKind::Systmone,
        1 => SystemKind::Emis,
        _ => BETWEEN[(i / 3) % BETWEEN.len()],
    }
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
        SystemKind::GpConnect => {
            Ok(gp_connect::start(borough_config(bind, population, borough, faults)).await?.into_running())
        }
        SystemKind::SocialCare => {
            crate::social_care::simulator::start(borough_config(bind, population, borough, faults)).await
        }
    }
}

/// The patients a simulator of `kind` playing `borough` registers, with its own id for each:
/// what a borough exchange's registration feed would list (a council lists the residents it
/// holds a social care record for, under its own ids).
pub fn registered(kind: SystemKind, population: &Population, borough: usize) -> Vec<(NhsNumber, String)> {
    let council = kind == SystemKind::SocialCare;
    let patients = if council {
        population.social_care_patients(borough)
    } else {
        population.patients_in_borough(borough)
    };
    patients
        .into_iter()
        .filter_map(|p| {
            let local = if council {
                population.social_care_local_id(borough, p)
            } else {
                population.local_id(borough, p)
            };
            population.nhs_number(p).map(|nhs| (nhs, local))
        })
        .collect()
}

/// The settings of a simulator playing `borough` of `population`.
fn borough_config(
    bind: SocketAddr,
    population: Population,
    borough: usize,
    faults: FaultConfig,
) -> BoroughConfig {
    BoroughConfig {
        bind,
        seed: population.seed(),
        borough_index: borough,
        borough_count: population.borough_count(),
        patients_per_borough: population.patients_per_borough(),
        faults,
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
    fn twenty_five_boroughs_run_every_kind_mostly_systmone_and_emis() {
        let count = |k| (0..25).filter(|i| regional_mix(*i) == k).count();
        assert_eq!((count(SystemKind::Systmone), count(SystemKind::Emis)), (9, 8));
        for k in [SystemKind::Vision, SystemKind::GpConnect, SystemKind::FhirR4, SystemKind::SocialCare] {
            assert_eq!(count(k), 2, "{}", k.as_str());
        }
    }
}
