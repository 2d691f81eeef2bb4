//! The FHIR R4 adapter: finds a patient by NHS number (or searches patients by demographics)
//! and fetches `$everything`, over reqwest.
//!
//! Every call is bounded by the context's deadline and body cap, redirects are never followed
//! and paging links are only followed on the source's own origin, because a compromised or
//! misconfigured source must not be able to point the gateway at another host.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tideway_profiles::{NhsNumber, schema, systems};

use super::mapping::{self, Normaliser, PlainR4, Profile};
use crate::adapter::{
    AdapterError, CallContext, DemographicQuery, NormalisedResource, PatientLink, SourceAdapter,
    SourcePatient, SourceRecord,
};
pub use crate::http::ClientBuildError;
use crate::http::{self, is_dot_segment};
use crate::source::SourceConfig;

/// Default most pages followed for one `$everything`.
pub const DEFAULT_MAX_PAGES: usize = 100;

/// An adapter for a source speaking plain FHIR R4 REST.
#[derive(Debug, Clone)]
pub struct FhirR4Adapter {
    config: SourceConfig,
    client: reqwest::Client,
    max_pages: usize,
    page_size: Option<usize>,
    profile: Arc<dyn Profile>,
}

impl FhirR4Adapter {
    /// An adapter for `config`. Its `base_url` should end in `/` (one is added if not).
    pub fn new(mut config: SourceConfig) -> Result<Self, ClientBuildError> {
        config.base_url = http::with_trailing_slash(config.base_url);
        let client = http::client(config.tls.as_ref())?;
        Ok(Self { config, client, max_pages: DEFAULT_MAX_PAGES, page_size: None, profile: Arc::new(PlainR4) })
    }

    /// Normalises every resource also with `profile`, for a dialect built on plain FHIR R4.
    pub fn with_profile(mut self, profile: Arc<dyn Profile>) -> Self {
        self.profile = profile;
        self
    }

    /// The common normalisation, then the profile's, then R4 validation.
    fn normalise(
        &self,
        normaliser: &Normaliser<'_>,
        resource: Value,
    ) -> Result<NormalisedResource, crate::adapter::RejectedResource> {
        normaliser.normalise(resource).and_then(|r| self.profile.apply(r)).and_then(|r| mapping::finish(&r))
    }

    /// Follows at most `n` pages (at least 1) of one `$everything`.
    pub fn with_max_pages(mut self, n: usize) -> Self {
        self.max_pages = n.max(1);
        self
    }

    /// Asks the source for pages of `n` entries (`_count`); by default the source chooses.
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = Some(n.max(1));
        self
    }

    fn url(&self, segments: &[&str]) -> Result<url::Url, AdapterError> {
        // The url crate drops `.` and `..` segments: `Patient/../$everything` would quietly
        // become a different request; `url_with` refuses them.
        http::url_with(&self.config.base_url, segments)
    }

    fn same_origin(&self, url: &url::Url) -> bool {
        url.origin() == self.config.base_url.origin()
    }

    /// Sends one request and reads its body as a Bundle, within the body cap.
    async fn bundle(
        &self,
        request: reqwest::RequestBuilder,
        ctx: &CallContext,
    ) -> Result<Value, AdapterError> {
        let value = self.json(request, ctx).await?;
        if value.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            return Err(AdapterError::Malformed("response is not a Bundle".into()));
        }
        Ok(value)
    }

    /// Sends one request and reads its body as JSON, within the body cap; redirects and error
    /// statuses are errors.
    async fn json(&self, request: reqwest::RequestBuilder, ctx: &CallContext) -> Result<Value, AdapterError> {
        http::send_json(request, ctx).await
    }
}

fn entries(bundle: Value) -> Result<Vec<Value>, AdapterError> {
    let Value::Object(mut bundle) = bundle else {
        return Err(AdapterError::Malformed("response is not a Bundle".into()));
    };
    match bundle.remove("entry") {
        None => Ok(Vec::new()),
        Some(Value::Array(entries)) => Ok(entries),
        Some(_) => Err(AdapterError::Malformed("Bundle.entry is not an array".into())),
    }
}

/// Every valid NHS number a Patient carries, current or kept as old (spaces allowed, as people
/// write them): a find by an old number still finds the patient it was.
fn nhs_numbers(patient: &Value) -> Vec<NhsNumber> {
    patient
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| i.get("system").and_then(Value::as_str) == Some(systems::NHS_NUMBER))
        .filter_map(|i| NhsNumber::parse(&i.get("value").and_then(Value::as_str)?.replace(' ', "")).ok())
        .collect()
}

/// The matching Patients of a search answer (outcome and included entries left out).
fn matched_patients(bundle: Value) -> Result<Vec<Value>, AdapterError> {
    Ok(entries(bundle)?
        .into_iter()
        .filter(|e| !mapping::is_outcome_entry(e))
        .filter(|e| e.pointer("/search/mode").and_then(Value::as_str).is_none_or(|m| m == "match"))
        .filter_map(|mut e| e.as_object_mut().and_then(|o| o.remove("resource")))
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Patient"))
        .collect())
}

fn next_link(bundle: &Value, current: &url::Url) -> Result<Option<url::Url>, AdapterError> {
    let Some(links) = bundle.get("link").and_then(Value::as_array) else {
        return Ok(None);
    };
    let Some(next) = links
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
        .and_then(|l| l.get("url"))
    else {
        return Ok(None);
    };
    let text = next.as_str().ok_or_else(|| AdapterError::Malformed("next link is not a string".into()))?;
    current.join(text).map(Some).map_err(|_| AdapterError::Malformed("next link is not a URL".into()))
}

#[async_trait]
impl SourceAdapter for FhirR4Adapter {
    fn config(&self) -> &SourceConfig {
        &self.config
    }

    async fn find(
        &self,
        nhs: &NhsNumber,
        gateway_id: &str,
        ctx: &CallContext,
    ) -> Result<Option<SourcePatient>, AdapterError> {
        let url = self.url(&["Patient", "_search"])?;
        let identifier = format!("{}|{}", systems::NHS_NUMBER, nhs.as_str());
        let bundle = self.bundle(self.client.post(url).form(&[("identifier", identifier)]), ctx).await?;
        let mut matches = matched_patients(bundle)?;
        let patient = match matches.len() {
            0 => return Ok(None),
            1 => matches.remove(0),
            _ => return Err(AdapterError::Malformed("ambiguous".into())),
        };
        // A server that ignores a search parameter answers with everyone (or whoever it has):
        // only a Patient carrying the NHS number asked for is this patient.
        if !nhs_numbers(&patient).contains(nhs) {
            return Err(AdapterError::Malformed(
                "the matched Patient does not carry the NHS number searched for".into(),
            ));
        }
        let local_id = patient
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| mapping::is_fhir_id(id))
            .ok_or_else(|| AdapterError::Malformed("matched Patient has no usable id".into()))?
            .to_owned();
        let normaliser = Normaliser {
            source: &self.config.id,
            base_url: &self.config.base_url,
            patient_local_id: &local_id,
            gateway_patient_id: gateway_id,
        };
        let resource = self
            .normalise(&normaliser, patient)
            .map_err(|_| AdapterError::Malformed("matched Patient is not valid R4".into()))?;
        Ok(Some(SourcePatient { local_id, resource }))
    }

    /// `POST Patient/_search` with `birthdate`, `family` (and `gender`) in a form body, never
    /// the URL. Only Patients born on the date asked count (a server that ignores a parameter
    /// answers with whoever it has), and only by their current, valid NHS number (not one kept
    /// as `use = old`), which the gateway then asks every source about.
    async fn search(
        &self,
        query: &DemographicQuery,
        ctx: &CallContext,
    ) -> Result<Option<Vec<NhsNumber>>, AdapterError> {
        let url = self.url(&["Patient", "_search"])?;
        let mut form = vec![
            ("birthdate", query.birth_date.clone()),
            ("family", query.family.clone()),
            ("_count", query.limit.to_string()),
        ];
        if let Some(g) = &query.gender {
            form.push(("gender", g.clone()));
        }
        let bundle = self.bundle(self.client.post(url).form(&form), ctx).await?;
        let mut found: Vec<NhsNumber> = matched_patients(bundle)?
            .iter()
            .filter(|p| p.get("birthDate").and_then(Value::as_str) == Some(query.birth_date.as_str()))
            .filter_map(mapping::nhs_number_of)
            .collect();
        let mut seen = HashSet::new();
        found.retain(|n| seen.insert(n.clone()));
        found.truncate(query.limit);
        Ok(Some(found))
    }

    async fn read_one(
        &self,
        resource_type: &str,
        local_id: &str,
        ctx: &CallContext,
    ) -> Result<Option<NormalisedResource>, AdapterError> {
        // An id the gateway could not have handed out names nothing: never sent to the source.
        if is_dot_segment(local_id)
            || !mapping::is_fhir_id(local_id)
            || !schema::is_resource_type(resource_type)
        {
            return Ok(None);
        }
        let url = self.url(&[resource_type, local_id])?;
        let value = match self.json(self.client.get(url), ctx).await {
            Err(AdapterError::Status(404 | 410)) => return Ok(None),
            other => other?,
        };
        mapping::expect_resource(&value, resource_type, local_id)?;
        // A shared resource belongs to no patient: no patient id to map.
        let normaliser = Normaliser {
            source: &self.config.id,
            base_url: &self.config.base_url,
            patient_local_id: "",
            gateway_patient_id: "",
        };
        self.normalise(&normaliser, value)
            .map(Some)
            .map_err(|_| AdapterError::Malformed("the resource is not valid R4".into()))
    }

    async fn fetch(&self, patient: &PatientLink, ctx: &CallContext) -> Result<SourceRecord, AdapterError> {
        let mut url = self.url(&["Patient", &patient.local_id, "$everything"])?;
        if let Some(n) = self.page_size {
            url.query_pairs_mut().append_pair("_count", &n.to_string());
        }
        let normaliser = Normaliser {
            source: &self.config.id,
            base_url: &self.config.base_url,
            patient_local_id: &patient.local_id,
            gateway_patient_id: &patient.gateway_id,
        };
        let mut record = SourceRecord::default();
        let mut pages = 0;
        let mut seen_pages = HashSet::new();
        loop {
            pages += 1;
            seen_pages.insert(url.clone());
            let bundle = self.bundle(self.client.get(url.clone()), ctx).await?;
            let next = next_link(&bundle, &url)?;
            mapping::normalise_entries_with(
                &normaliser,
                self.profile.as_ref(),
                entries(bundle)?,
                &mut record,
            );
            // The cap is on the whole record, not on each page: a source paging forever in
            // small pages must not grow one request's memory without bound.
            let held: usize = record.resources.iter().map(|r| r.json.len()).sum();
            if held > ctx.max_body_bytes {
                return Err(AdapterError::TooLarge(ctx.max_body_bytes));
            }
            let Some(next) = next else { break };
            if !self.same_origin(&next) {
                return Err(AdapterError::ForeignLink);
            }
            if pages >= self.max_pages || seen_pages.contains(&next) {
                return Err(AdapterError::Malformed("paging did not end within the page limit".into()));
            }
            url = next;
        }
        // A source may repeat an entry across pages; the gateway wants each resource once.
        let mut seen = HashSet::new();
        record.resources.retain(|r| seen.insert((r.resource_type.clone(), r.id.clone())));
        Ok(record)
    }
}
