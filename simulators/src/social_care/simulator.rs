//! A simulated council social care system over real HTTP: the plain FHIR R4 exchange's server
//! serving one council's social-care records, with the same injectable faults.

use std::sync::Arc;

use serde_json::{Value, json};
use tideway_profiles::NhsNumber;

use super::render;
use crate::fhir_r4::simulator::{Records, RunningSimulator, serve};
use crate::population::Population;

/// The types a social care record is searched by (`GET /{type}?patient=`).
pub const SEARCHABLE: &[&str] = &["EpisodeOfCare", "CarePlan", "ServiceRequest", "Task"];

/// The simulator's settings: which borough's council it plays, of which population.
pub use crate::server::BoroughConfig as SocialCareConfig;

/// One council's records.
struct Council {
    population: Population,
    borough: usize,
}

impl Records for Council {
    fn find(&self, nhs: &NhsNumber) -> Option<Value> {
        let index = self.population.patient_index(nhs)?;
        Some(render::patient(&self.population.social_care_record(self.borough, index)?))
    }

    fn shared(&self, ty: &str, id: &str) -> Option<Value> {
        let is = |r: &&Value| r["resourceType"] == ty && r["id"] == id && ty != "Patient";
        self.population.social_care_patients(self.borough).into_iter().find_map(|i| {
            let record = self.population.social_care_record(self.borough, i)?;
            render::resources(&record).iter().find(is).cloned()
        })
    }

    fn everything(&self, local_id: &str) -> Option<Arc<Vec<Value>>> {
        let index = self.population.index_from_social_care_id(self.borough, local_id)?;
        Some(Arc::new(render::resources(&self.population.social_care_record(self.borough, index)?)))
    }

    fn born_on(&self, birth_date: &str) -> Vec<Value> {
        self.population
            .social_care_patients(self.borough)
            .into_iter()
            .filter_map(|i| Some(render::patient(&self.population.social_care_record(self.borough, i)?)))
            .filter(|p| p["birthDate"] == birth_date)
            .collect()
    }

    fn searchable(&self) -> &'static [&'static str] {
        SEARCHABLE
    }

    fn software(&self) -> &'static str {
        "Tideway social care simulator (council case management, FHIR R4)"
    }

    /// A task the council filed against someone else.
    fn stray(&self, id: &str) -> Value {
        json!({
            "resourceType": "Task",
            "id": format!("{id}-stray"),
            "status": "requested",
            "intent": "order",
            "for": {"reference": format!("Patient/{id}-someone-else")}
        })
    }
}

/// Starts a council's simulator. The port is bound before this returns, so port 0 works.
pub async fn start(cfg: SocialCareConfig) -> std::io::Result<RunningSimulator> {
    let population = Population::new(cfg.seed, cfg.borough_count, cfg.patients_per_borough);
    if cfg.borough_index >= population.borough_count() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "borough_index out of range"));
    }
    serve(cfg.bind, cfg.faults, Box::new(Council { population, borough: cfg.borough_index })).await
}
