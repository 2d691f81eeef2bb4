//! One adapter for every GP system that serves record extracts: [`GpSystemAdapter`] does the
//! HTTP (bounded by [`crate::http`]), the identity checks and the normalisation; a [`Dialect`]
//! says only how its system's requests look and how its documents read.
//!
//! The three calls every GP system here offers: a patient search by NHS number (a POST, so the
//! number never sits in a URL), the record extract of one patient by the system's own id, and
//! the practice by its id. A search answer is trusted only when the matched patient carries the
//! NHS number asked for; an extract only when it is the record of the patient asked for.

use async_trait::async_trait;
use tideway_profiles::NhsNumber;

use super::model::{Extract, Practice};
use super::r4;
use crate::adapter::{
    AdapterError, CallContext, NormalisedResource, PatientLink, SourceAdapter, SourcePatient, SourceRecord,
};
use crate::fhir_r4::mapping::{self, Normaliser};
use crate::http::{self, ClientBuildError};
use crate::source::SourceConfig;

/// One request to a GP system: path steps under its base URL, and for a POST, the body and its
/// media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Path steps under the base URL (each one step, percent-encoded).
    pub path: Vec<String>,
    /// Body and content type of a POST; `None` for a GET.
    pub body: Option<(Vec<u8>, &'static str)>,
}

/// What one GP system's interface looks like: its requests and its documents.
pub trait Dialect: std::fmt::Debug + Send + Sync + 'static {
    /// The media type of the system's documents (sent as `Accept`).
    fn media_type(&self) -> &'static str;
    /// The patient search for an NHS number (a POST).
    fn search(&self, nhs: &NhsNumber) -> Call;
    /// The patients a search answer names, demographics and practice only (no entries).
    fn read_search(&self, body: &[u8]) -> Result<Vec<Extract>, AdapterError>;
    /// The record extract of the patient with the system's id `local_id`.
    fn record(&self, local_id: &str) -> Call;
    /// The extract a record answer holds.
    fn read_record(&self, body: &[u8]) -> Result<Extract, AdapterError>;
    /// The practice with the system's id `local_id`.
    fn practice(&self, local_id: &str) -> Call;
    /// The practice a practice answer describes.
    fn read_practice(&self, body: &[u8]) -> Result<Practice, AdapterError>;
}

/// An adapter for a GP system speaking dialect `D`.
#[derive(Debug, Clone)]
pub struct GpSystemAdapter<D> {
    config: SourceConfig,
    client: reqwest::Client,
    dialect: D,
}

impl<D: Dialect> GpSystemAdapter<D> {
    /// An adapter for `config` speaking `dialect`.
    pub fn new(config: SourceConfig, dialect: D) -> Result<Self, ClientBuildError> {
        Ok(Self { client: http::client(config.tls.as_ref())?, config, dialect })
    }

    async fn send(&self, call: Call, ctx: &CallContext) -> Result<Vec<u8>, AdapterError> {
        let path: Vec<&str> = call.path.iter().map(String::as_str).collect();
        let url = http::url_with(&self.config.base_url, &path)?;
        let request = match call.body {
            Some((body, content_type)) => {
                self.client.post(url).header(reqwest::header::CONTENT_TYPE, content_type).body(body)
            }
            None => self.client.get(url),
        };
        http::body(request, self.dialect.media_type(), ctx).await
    }

    fn normaliser<'a>(&'a self, patient_local_id: &'a str, gateway_id: &'a str) -> Normaliser<'a> {
        Normaliser {
            source: &self.config.id,
            base_url: &self.config.base_url,
            patient_local_id,
            gateway_patient_id: gateway_id,
        }
    }
}

#[async_trait]
impl<D: Dialect> SourceAdapter for GpSystemAdapter<D> {
    fn config(&self) -> &SourceConfig {
        &self.config
    }

    async fn find(
        &self,
        nhs: &NhsNumber,
        gateway_id: &str,
        ctx: &CallContext,
    ) -> Result<Option<SourcePatient>, AdapterError> {
        let body = self.send(self.dialect.search(nhs), ctx).await?;
        let mut found = self.dialect.read_search(&body)?;
        let extract = match found.len() {
            0 => return Ok(None),
            1 => found.remove(0),
            _ => return Err(AdapterError::Malformed("ambiguous".into())),
        };
        // A system that ignored the number would answer with whoever it has.
        let carries = extract.patient.nhs_number.as_deref().map(|n| n.replace(' ', ""));
        if carries.as_deref() != Some(nhs.as_str()) {
            return Err(AdapterError::Malformed(
                "the matched patient does not carry the NHS number searched for".into(),
            ));
        }
        let local_id = extract.patient.local_id.clone();
        if !mapping::is_fhir_id(&local_id) {
            return Err(AdapterError::Malformed("the matched patient has no usable id".into()));
        }
        let n = self.normaliser(&local_id, gateway_id);
        let patient = r4::patient(&extract.patient, extract.practice.as_ref());
        let resource = n
            .normalise(patient)
            .and_then(|r| mapping::finish(&r))
            .map_err(|_| AdapterError::Malformed("the matched patient is not valid R4".into()))?;
        Ok(Some(SourcePatient { local_id, resource }))
    }

    async fn read_one(
        &self,
        resource_type: &str,
        local_id: &str,
        ctx: &CallContext,
    ) -> Result<Option<NormalisedResource>, AdapterError> {
        // GP extracts name one shared resource: the practice. An id the gateway could not have
        // handed out names nothing and is never sent.
        if resource_type != "Organization" || http::is_dot_segment(local_id) || !mapping::is_fhir_id(local_id)
        {
            return Ok(None);
        }
        let body = match self.send(self.dialect.practice(local_id), ctx).await {
            Err(AdapterError::Status(404 | 410)) => return Ok(None),
            other => other?,
        };
        let practice = self.dialect.read_practice(&body)?;
        if practice.local_id != local_id {
            return Err(AdapterError::Malformed("the source answered with another practice".into()));
        }
        self.normaliser("", "")
            .normalise(r4::organization(&practice))
            .and_then(|r| mapping::finish(&r))
            .map(Some)
            .map_err(|_| AdapterError::Malformed("the practice is not valid R4".into()))
    }

    async fn fetch(&self, link: &PatientLink, ctx: &CallContext) -> Result<SourceRecord, AdapterError> {
        let body = self.send(self.dialect.record(&link.local_id), ctx).await?;
        let extract = self.dialect.read_record(&body)?;
        // The record must be the patient's by the system's id and, when it names one, by NHS
        // number too: a local id reused or merged at the source must not bring another
        // person's record.
        let same_number = extract
            .patient
            .nhs_number
            .as_deref()
            .is_none_or(|n| NhsNumber::parse(&n.replace(' ', "")).is_ok_and(|n| n == link.nhs_number));
        if extract.patient.local_id != link.local_id || !same_number {
            return Err(AdapterError::OtherPatient);
        }
        let mut record = SourceRecord::default();
        let done = r4::normalise(&self.normaliser(&link.local_id, &link.gateway_id), extract, &mut record);
        tracing::debug!(mapped = done.mapped, unmapped = done.unmapped, "record normalised");
        Ok(record)
    }
}
