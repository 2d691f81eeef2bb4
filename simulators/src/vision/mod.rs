//! A simulated Vision-style practice system: the population's facts as Vision-style XML
//! journals (see `tideway_adapters::vision` for the dialect and its assumptions, [`render`] for
//! what the simulator decides), served by the shared GP-system server with the shared faults:
//! start one with `gp_system::start(bind, VisionRender, population, borough, faults)`.

pub mod render;

#[cfg(test)]
mod tests;

use actix_web::http::StatusCode;
use bytes::Bytes;
use tideway_profiles::NhsNumber;

use crate::gp_system::{Paths, Render};
use crate::population::PatientRecord;

/// The Vision-style renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct VisionRender;

/// Where the simulator answers: `http://127.0.0.1:PORT/vision/`.
pub const PATHS: Paths = Paths {
    base: "/vision/",
    search: "patients/search",
    record: ("patients", "journal"),
    practice: "practices",
};

impl Render for VisionRender {
    fn paths(&self) -> Paths {
        PATHS
    }

    fn media_type(&self) -> &'static str {
        tideway_adapters::vision::MEDIA_TYPE
    }

    fn search_request(&self, body: &[u8]) -> Option<NhsNumber> {
        let doc = tideway_adapters::xml::parse(body).ok()?;
        (doc.name == "PatientSearch").then_some(())?;
        NhsNumber::parse(doc.child_text("NhsNumber")?).ok()
    }

    fn search_answer(&self, found: Option<&PatientRecord>) -> Vec<u8> {
        render::search_answer(found).into_bytes()
    }

    fn record(&self, record: &PatientRecord, stray: Option<&PatientRecord>) -> Vec<u8> {
        render::record(record, stray).into_bytes()
    }

    fn practice(&self, record: &PatientRecord) -> Vec<u8> {
        render::practice_document(record).into_bytes()
    }

    fn error(&self, status: StatusCode, text: &str) -> Vec<u8> {
        render::error(status.as_u16(), text).into_bytes()
    }

    fn truncated(&self) -> Vec<u8> {
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VisionRecord><Patient id=\"".to_vec()
    }

    fn oversized(&self) -> (Bytes, Bytes, Bytes) {
        let filler = format!(
            "<Clinical id=\"x\" patient=\"x\" category=\"procedure\"><Snomed concept=\"1\">{}</Snomed></Clinical>",
            "x".repeat(64 * 1024 - 100)
        );
        (
            Bytes::from_static(b"<?xml version=\"1.0\"?><VisionRecord><Journal>"),
            Bytes::from(filler),
            Bytes::from_static(b"</Journal></VisionRecord>"),
        )
    }
}
