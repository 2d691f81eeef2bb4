//! The SystmOne-style dialect's requests, for the shared GP-system adapter.

use tideway_profiles::NhsNumber;

use super::{MEDIA_TYPE, mapping};
use crate::adapter::AdapterError;
use crate::gp_record::client::{Call, Dialect, GpSystemAdapter};
use crate::gp_record::model::{Extract, Practice};

/// The SystmOne-style dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystmOne;

/// An adapter for a SystmOne-style source.
pub type SystmOneAdapter = GpSystemAdapter<SystmOne>;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Dialect for SystmOne {
    fn media_type(&self) -> &'static str {
        MEDIA_TYPE
    }

    fn search(&self, nhs: &NhsNumber) -> Call {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><PatientSearch xmlns=\"{}\"><NHSNumber>{}</NHSNumber></PatientSearch>",
            super::NAMESPACE,
            escape(nhs.as_str())
        );
        Call { path: vec!["patients".into(), "search".into()], body: Some((body.into_bytes(), MEDIA_TYPE)) }
    }

    fn read_search(&self, body: &[u8]) -> Result<Vec<Extract>, AdapterError> {
        mapping::search(body)
    }

    fn record(&self, local_id: &str) -> Call {
        Call { path: vec!["patients".into(), local_id.into(), "extract".into()], body: None }
    }

    fn read_record(&self, body: &[u8]) -> Result<Extract, AdapterError> {
        mapping::extract(body)
    }

    fn practice(&self, local_id: &str) -> Call {
        Call { path: vec!["units".into(), local_id.into()], body: None }
    }

    fn read_practice(&self, body: &[u8]) -> Result<Practice, AdapterError> {
        mapping::unit(body)
    }
}
