//! The Vision-style interface as a [`Dialect`] of the one GP system client.

use tideway_profiles::NhsNumber;

use super::{MEDIA_TYPE, NAMESPACE, mapping};
use crate::adapter::AdapterError;
use crate::gp_record::client::{Call, Dialect, GpSystemAdapter};
use crate::gp_record::model::{Extract, Practice};

/// The Vision-style dialect: XML over `patients/search`, `patients/{id}/journal` and
/// `practices/{id}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vision;

/// An adapter for a Vision-style source.
pub type VisionAdapter = GpSystemAdapter<Vision>;

impl Dialect for Vision {
    fn media_type(&self) -> &'static str {
        MEDIA_TYPE
    }

    fn search(&self, nhs: &NhsNumber) -> Call {
        // An NHS number is ten digits: nothing in it needs escaping.
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><PatientSearch xmlns=\"{NAMESPACE}\"><NhsNumber>{}</NhsNumber></PatientSearch>",
            nhs.as_str()
        );
        Call { path: vec!["patients".into(), "search".into()], body: Some((body.into_bytes(), MEDIA_TYPE)) }
    }

    fn read_search(&self, body: &[u8]) -> Result<Vec<Extract>, AdapterError> {
        mapping::search(body)
    }

    fn record(&self, local_id: &str) -> Call {
        Call { path: vec!["patients".into(), local_id.into(), "journal".into()], body: None }
    }

    fn read_record(&self, body: &[u8]) -> Result<Extract, AdapterError> {
        mapping::record(body)
    }

    fn practice(&self, local_id: &str) -> Call {
        Call { path: vec!["practices".into(), local_id.into()], body: None }
    }

    fn read_practice(&self, body: &[u8]) -> Result<Practice, AdapterError> {
        mapping::practice_document(body)
    }
}
