//! The EMIS-style interface as a [`Dialect`] of the one GP system client.

use serde_json::json;
use tideway_profiles::NhsNumber;

use super::{MEDIA_TYPE, mapping};
use crate::adapter::AdapterError;
use crate::gp_record::client::{Call, Dialect, GpSystemAdapter};
use crate::gp_record::model::{Extract, Practice};

/// The EMIS-style dialect: MEDIA_TYPE over `patients/search`, `patients/{guid}/record` and
/// `organisations/{guid}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Emis;

/// An adapter for an EMIS-style source.
pub type EmisAdapter = GpSystemAdapter<Emis>;

impl Dialect for Emis {
    fn media_type(&self) -> &'static str {
        MEDIA_TYPE
    }

    fn search(&self, nhs: &NhsNumber) -> Call {
        let body = json!({"nhsNumber": nhs.as_str()}).to_string().into_bytes();
        Call { path: vec!["patients".into(), "search".into()], body: Some((body, MEDIA_TYPE)) }
    }

    fn read_search(&self, body: &[u8]) -> Result<Vec<Extract>, AdapterError> {
        mapping::read_search(body)
    }

    fn record(&self, local_id: &str) -> Call {
        Call { path: vec!["patients".into(), local_id.into(), "record".into()], body: None }
    }

    fn read_record(&self, body: &[u8]) -> Result<Extract, AdapterError> {
        mapping::read_record(body)
    }

    fn practice(&self, local_id: &str) -> Call {
        Call { path: vec!["organisations".into(), local_id.into()], body: None }
    }

    fn read_practice(&self, body: &[u8]) -> Result<Practice, AdapterError> {
        mapping::read_organisation(body)
    }
}
