//! A simulated SystmOne-style practice system: the population's facts as SystmOne-style XML
//! extracts (see `tideway_adapters::systmone` for the dialect and its assumptions), served by the
//! shared GP-system server with the shared faults.
//!
//! What the rendering does that a FHIR R4 exchange would not: problems recorded before the move
//! to SNOMED CT carry their CTV3 code alone; consultations before April 2018 carry a TPP local
//! consultation-type code ([`LOCAL_CONSULTATION_CODE`], a `Y…` code: local codes have no
//! meaning outside the system, so this one is the simulator's own); every row names its patient.

pub mod render;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use actix_web::http::StatusCode;
use bytes::Bytes;
use tideway_profiles::NhsNumber;

use crate::faults::FaultConfig;
use crate::gp_system::{self, Paths, Render};
use crate::population::{PatientRecord, Population};
use crate::server::RunningSimulator;

pub use render::LOCAL_CONSULTATION_CODE;

/// The SystmOne-style renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystmOneRender;

/// Where the simulator answers: `http://127.0.0.1:PORT/systmone/`.
pub const PATHS: Paths = Paths {
    base: "/systmone/",
    search: "patients/search",
    record: ("patients", "extract"),
    practice: "units",
};

impl Render for SystmOneRender {
    fn paths(&self) -> Paths {
        PATHS
    }

    fn media_type(&self) -> &'static str {
        tideway_adapters::systmone::MEDIA_TYPE
    }

    fn search_request(&self, body: &[u8]) -> Option<NhsNumber> {
        let doc = tideway_adapters::xml::parse(body).ok()?;
        (doc.name == "PatientSearch").then_some(())?;
        NhsNumber::parse(doc.child_text("NHSNumber")?).ok()
    }

    fn search_answer(&self, found: Option<&PatientRecord>) -> Vec<u8> {
        render::search_answer(found).into_bytes()
    }

    fn record(&self, record: &PatientRecord, stray: Option<&PatientRecord>) -> Vec<u8> {
        render::extract(record, stray).into_bytes()
    }

    fn practice(&self, record: &PatientRecord) -> Vec<u8> {
        render::unit(record).into_bytes()
    }

    fn error(&self, status: StatusCode, text: &str) -> Vec<u8> {
        render::error(status.as_u16(), text).into_bytes()
    }

    fn truncated(&self) -> Vec<u8> {
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SystmOneExtract><Patient ID=\"".to_vec()
    }

    fn oversized(&self) -> (Bytes, Bytes, Bytes) {
        let filler = format!(
            "<Entry ID=\"x\" Type=\"Procedure\" PatientID=\"x\"><Code Scheme=\"SNOMED\" Value=\"1\" Term=\"{}\"/></Entry>",
            "x".repeat(64 * 1024 - 100)
        );
        (
            Bytes::from_static(b"<?xml version=\"1.0\"?><SystmOneExtract><CodedEntries>"),
            Bytes::from(filler),
            Bytes::from_static(b"</CodedEntries></SystmOneExtract>"),
        )
    }
}

/// Starts a SystmOne-style simulator playing `borough` of `population`.
pub fn start(
    bind: SocketAddr,
    population: Population,
    borough: usize,
    faults: FaultConfig,
) -> std::io::Result<RunningSimulator> {
    gp_system::start(bind, SystmOneRender, population, borough, faults)
}
