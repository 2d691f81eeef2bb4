//! A simulated EMIS-style practice system: the population's facts as EMIS-style JSON exports
//! (see `tideway_adapters::emis` for the dialect and its assumptions, [`render`] for what the
//! simulator decides), served by the shared GP-system server with the shared faults: start one
//! with `gp_system::start(bind, EmisRender, population, borough, faults)`.

pub mod render;

#[cfg(test)]
mod tests;

use actix_web::http::StatusCode;
use bytes::Bytes;
use serde_json::Value;
use tideway_profiles::NhsNumber;

use crate::gp_system::{Paths, Render};
use crate::population::PatientRecord;

/// The EMIS-style renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmisRender;

/// Where the simulator answers: `http://127.0.0.1:PORT/emis/`.
pub const PATHS: Paths = Paths {
    base: "/emis/",
    search: "patients/search",
    record: ("patients", "record"),
    practice: "organisations",
};

fn bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

impl Render for EmisRender {
    fn paths(&self) -> Paths {
        PATHS
    }

    fn media_type(&self) -> &'static str {
        tideway_adapters::emis::MEDIA_TYPE
    }

    fn search_request(&self, body: &[u8]) -> Option<NhsNumber> {
        let v: Value = serde_json::from_slice(body).ok()?;
        NhsNumber::parse(v.get("nhsNumber")?.as_str()?).ok()
    }

    fn search_answer(&self, found: Option<&PatientRecord>) -> Vec<u8> {
        bytes(&render::search(found))
    }

    fn record(&self, record: &PatientRecord, stray: Option<&PatientRecord>) -> Vec<u8> {
        bytes(&render::record(record, stray))
    }

    fn practice(&self, record: &PatientRecord) -> Vec<u8> {
        bytes(&render::organisation(&record.demographics))
    }

    fn error(&self, status: StatusCode, text: &str) -> Vec<u8> {
        bytes(&render::error(status.as_u16(), text))
    }

    /// The export with `links.next` pointing at another origin.
    fn continued_elsewhere(&self, record: &PatientRecord) -> Option<Vec<u8>> {
        let mut doc = render::record(record, None);
        doc["links"] = serde_json::json!({"next": format!("{}/emis/next", crate::server::ELSEWHERE)});
        Some(bytes(&doc))
    }

    fn truncated(&self) -> Vec<u8> {
        format!(r#"{{"exportVersion":"{}","patient":{{"patientGuid":"#, render::EXPORT_VERSION).into_bytes()
    }

    fn oversized(&self) -> (Bytes, Bytes, Bytes) {
        let filler = format!(
            r#"{{"guid":"x","patientGuid":"x","eventType":"Procedure","code":{{"term":"{}"}}}},"#,
            "x".repeat(64 * 1024 - 80)
        );
        (
            Bytes::from(format!(r#"{{"exportVersion":"{}","events":["#, render::EXPORT_VERSION)),
            Bytes::from(filler),
            Bytes::from_static(b"{}]}"),
        )
    }
}
