//! The seam between the gateway and every source system.
//!
//! An adapter fetches a patient's record from one source in that source's own dialect and hands
//! back FHIR R4 resources, normalised once: ids namespaced by source (`{source}.{local id}`),
//! references rewritten to match, patient references pointing at the gateway's opaque patient
//! id, `meta.source` naming the source, every original coding kept. A resource that is not valid
//! R4 after normalisation is not passed on; it is listed in [`SourceRecord::rejected`].
//!
//! The trait is shaped for what comes next: bodies other than R4 JSON (STU3, XML) stay inside the
//! adapter, operations may be POSTs, and every call carries a deadline and a response-size cap in
//! its [`CallContext`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tideway_profiles::{NhsNumber, ResourceFacts};
use tokio::time::Instant;

use crate::source::{SourceConfig, SourceId};

/// Limits and correlation for one call to a source.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The call must be finished by then; adapters give up and return [`AdapterError::Timeout`].
    pub deadline: Instant,
    /// Largest response body the adapter may read; beyond it, [`AdapterError::TooLarge`].
    pub max_body_bytes: usize,
    /// The gateway's request id, forwarded as `X-Request-ID` for correlation.
    pub request_id: String,
    /// The end user the gateway asks for, when a person asked (`None` for the gateway's own
    /// work). Dialects whose calls name the user send it (GP Connect's JWT); others ignore it.
    pub requester: Option<Requester>,
}

impl CallContext {
    /// A context whose deadline is `timeout` from now, made for no particular user.
    pub fn with_timeout(timeout: Duration, max_body_bytes: usize, request_id: impl Into<String>) -> Self {
        Self {
            deadline: Instant::now() + timeout,
            max_body_bytes,
            request_id: request_id.into(),
            requester: None,
        }
    }

    /// The same context, made on behalf of `requester`.
    pub fn for_requester(mut self, requester: Requester) -> Self {
        self.requester = Some(requester);
        self
    }
}

/// The person a call is made for, as the access token that asked names them (IHE IUA claims):
/// who a source system that audits its own readers (a GP Connect provider) is told asked.
/// Staff identity, never patient data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// The user's id as the client asserted it (an SDS user id for NHS staff).
    pub user_id: String,
    /// Their national RBAC job role code (e.g. `R8000`).
    pub role: String,
    /// The ODS code of the organisation they work for.
    pub organisation: String,
}

/// The link between the gateway's patient and a source's local patient record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientLink {
    /// The gateway's opaque patient id (never the NHS number).
    pub gateway_id: String,
    /// The source's own id for the patient.
    pub local_id: String,
    /// The patient's NHS number, for dialects whose record request names the patient by it
    /// (GP Connect's `$gpc.getstructuredrecord`). Adapters must never put it in a URL.
    pub nhs_number: NhsNumber,
}

/// A demographic search of a source's patients, for `Patient/$match` without an NHS number.
/// Patient data: never logged, and sent in a request body, never a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemographicQuery {
    /// The birth date, `YYYY-MM-DD` (always asked: a search by name alone is a trawl).
    pub birth_date: String,
    /// The family name, as letters and digits in lower case (`O'Brien` is `obrien`).
    pub family: String,
    /// The administrative gender code, when given.
    pub gender: Option<String>,
    /// At most so many patients are wanted.
    pub limit: usize,
}

/// A source's Patient resource for an NHS number.
#[derive(Debug, Clone)]
pub struct SourcePatient {
    /// The source's own id for the patient.
    pub local_id: String,
    /// The normalised Patient (id already set to the gateway id).
    pub resource: NormalisedResource,
}

/// One resource as normalised by an adapter, kept as serialised JSON so the gateway can splice
/// it into responses without parsing it again, with the facts a policy and a merge decide on
/// computed once beside it.
#[derive(Debug, Clone)]
pub struct NormalisedResource {
    /// R4 resource type, e.g. `Condition`.
    pub resource_type: String,
    /// The id the gateway publishes (`{source}.{local}` or, for the Patient, the gateway id).
    pub id: String,
    /// Type, codings, section, dates, patient, source, references and merge key.
    pub facts: Arc<ResourceFacts>,
    /// The resource's JSON, valid R4.
    pub json: Arc<[u8]>,
}

impl NormalisedResource {
    /// About how many bytes it holds in memory: the struct, its type and id, its JSON and its
    /// facts (two reference counts included). What a cache bounded in bytes counts it as.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.resource_type.len()
            + self.id.len()
            + self.json.len()
            + 2 * 2 * std::mem::size_of::<usize>()
            + self.facts.memory_bytes()
    }

    /// Serialises `resource` and reads its facts. Does not validate: adapters check R4
    /// validity before they hand a resource on.
    pub fn from_value(resource: &Value) -> Result<Self, serde_json::Error> {
        let json = serde_json::to_vec(resource)?;
        let facts = ResourceFacts::of(resource);
        Ok(Self {
            resource_type: facts.resource_type.clone(),
            id: resource.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
            facts: Arc::new(facts),
            json: Arc::from(json),
        })
    }

    /// `Type/id`: how a relative reference names this resource.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.resource_type, self.id)
    }

    /// `meta.lastUpdated` as given by the source, if any (RFC 3339).
    pub fn last_updated(&self) -> Option<&str> {
        self.facts.last_updated.as_deref()
    }

    /// What makes this the same clinical fact as another source's entry, if anything does.
    pub fn merge_key(&self) -> Option<&str> {
        self.facts.merge_key.as_deref()
    }
}

/// Why a source's resource was not passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// Not a valid FHIR R4 resource (or not readable as one).
    Invalid,
    /// An entry in the source's own format that could not be read, or not turned into R4
    /// without guessing (a row without a code, an STU3 entry the converter cannot place).
    Unreadable,
    /// A kind of entry this kind of source does not share (a diagnosis in a council's record,
    /// an appointment in a GP Connect structured record).
    NotCarried,
    /// About a patient other than the one asked for.
    OtherPatient,
}

impl RejectionKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [Self; 4] = [Self::Invalid, Self::Unreadable, Self::NotCarried, Self::OtherPatient];

    /// The kind as metrics and reports name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Unreadable => "unreadable",
            Self::NotCarried => "not-carried",
            Self::OtherPatient => "other-patient",
        }
    }
}

/// A resource the source sent that could not be passed on. Carries no clinical content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedResource {
    /// The resource type the source claimed, if it was readable.
    pub resource_type: Option<String>,
    /// Why, in kind.
    pub kind: RejectionKind,
    /// Structural reason, e.g. "not a valid FHIR R4 resource: unknown field".
    pub reason: String,
}

impl RejectedResource {
    /// A resource that is not valid R4.
    pub fn invalid(resource_type: Option<String>, reason: impl Into<String>) -> Self {
        Self { resource_type, kind: RejectionKind::Invalid, reason: reason.into() }
    }

    /// An entry of the source's own format that could not be read or converted.
    pub fn unreadable(resource_type: Option<String>, reason: impl Into<String>) -> Self {
        Self { resource_type, kind: RejectionKind::Unreadable, reason: reason.into() }
    }

    /// An entry of a kind this kind of source does not share.
    pub fn not_carried(resource_type: Option<String>, reason: impl Into<String>) -> Self {
        Self { resource_type, kind: RejectionKind::NotCarried, reason: reason.into() }
    }
}

/// What one source holds for one patient.
#[derive(Debug, Clone, Default)]
pub struct SourceRecord {
    /// Valid, normalised resources (the Patient included).
    pub resources: Vec<NormalisedResource>,
    /// Resources that were dropped, for the per-source report.
    pub rejected: Vec<RejectedResource>,
    /// Warnings the source attached to parts of the record (GP Connect's List warning codes:
    /// items withheld as confidential, a record still in transit, data awaiting filing), for
    /// the gateway to surface beside the record. Empty for dialects without such warnings.
    pub warnings: Vec<ListWarning>,
}

/// A source's warning that one section of the record may be incomplete. Carries the section's
/// code and the warning's code only, never clinical content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListWarning {
    /// The section's code as the source's List names it (for GP Connect a SNOMED CT code such
    /// as `886921000000105`, allergies), when it is a plain code.
    pub section: Option<String>,
    /// What the warning says.
    pub code: ListWarningCode,
}

/// The warnings a source can attach to a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListWarningCode {
    /// Items were withheld for confidentiality or the patient's preferences
    /// (`confidential-items`).
    ConfidentialItems,
    /// The record is still being transferred from the previous practice; older entries may be
    /// missing (`data-in-transit`).
    DataInTransit,
    /// Data received by the practice has not yet been filed into the record (`data-awaiting-filing`).
    DataAwaitingFiling,
    /// The section listed an entry that could not be shown (missing from the answer, or not
    /// convertible to R4): the section as shown is incomplete.
    EntryNotShown,
    /// A warning code the adapter does not know.
    Unrecognised,
}

impl ListWarningCode {
    /// The code as GP Connect spells it (`entry-not-shown` and `unrecognised` are Tideway's).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfidentialItems => "confidential-items",
            Self::DataInTransit => "data-in-transit",
            Self::DataAwaitingFiling => "data-awaiting-filing",
            Self::EntryNotShown => "entry-not-shown",
            Self::Unrecognised => "unrecognised",
        }
    }

    /// The code for GP Connect's spelling; anything else is [`Self::Unrecognised`].
    pub fn parse(code: &str) -> Self {
        match code {
            "confidential-items" => Self::ConfidentialItems,
            "data-in-transit" => Self::DataInTransit,
            "data-awaiting-filing" => Self::DataAwaitingFiling,
            "entry-not-shown" => Self::EntryNotShown,
            _ => Self::Unrecognised,
        }
    }
}

/// Why a call to a source failed. Messages never contain the source's body or patient data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// The deadline passed before the source answered completely.
    #[error("the source did not answer within its deadline")]
    Timeout,
    /// The source could not be reached (connection refused, reset, DNS).
    #[error("the source could not be reached")]
    Unreachable,
    /// The source answered with an HTTP error status.
    #[error("the source answered HTTP {0}")]
    Status(u16),
    /// The source's response was larger than the cap.
    #[error("the source's response exceeded {0} bytes")]
    TooLarge(usize),
    /// The source's response could not be understood (not JSON, not a Bundle, wrong shape).
    #[error("the source's response was malformed: {0}")]
    Malformed(String),
    /// The source tried to send us elsewhere (a redirect or a link to another origin).
    #[error("the source pointed to another origin, which is never followed")]
    ForeignLink,
    /// The source answered with a record that is another patient's (another local id or NHS
    /// number than the one asked for). Nothing of it is passed on.
    #[error("the source answered with another patient's record, which was withheld")]
    OtherPatient,
    /// The gateway did not ask the source at all (a fixed phrase says why: its registration is
    /// suspended, or its information-governance attestation is not current).
    #[error("the source was not asked: {0}")]
    NotAsked(&'static str),
}

impl AdapterError {
    /// Whether asking again later might succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Timeout | Self::Unreachable | Self::Status(429 | 500..=599))
    }
}

/// One source system's client. Implementations are cheap to share (`Arc<dyn SourceAdapter>`).
#[async_trait]
pub trait SourceAdapter: Send + Sync + 'static {
    /// The source's registry entry.
    fn config(&self) -> &SourceConfig;

    /// The source's id.
    fn id(&self) -> &SourceId {
        &self.config().id
    }

    /// Whether the source's terms of use let its records be read for secondary use
    /// (de-identified exports and the dashboards' figures). A source that serves direct care
    /// only is never asked for them: a call to it says why it is made, and that must be true.
    fn serves_secondary_use(&self) -> bool {
        true
    }

    /// Finds the source's record of the patient with this NHS number. `gateway_id` is the id the
    /// gateway publishes for the patient; the returned Patient already carries it. The NHS
    /// number must never be put in a URL (use POST `_search` or a body). Callers use
    /// [`Self::find_patient`], which holds this to the context's deadline.
    async fn find(
        &self,
        nhs_number: &NhsNumber,
        gateway_id: &str,
        ctx: &CallContext,
    ) -> Result<Option<SourcePatient>, AdapterError>;

    /// Reads one resource that belongs to no patient's record (an Organization, Practitioner,
    /// PractitionerRole or Location the record points at) by the source's own id, normalised.
    /// `None` when the source does not have it. Callers use [`Self::read_shared`].
    async fn read_one(
        &self,
        resource_type: &str,
        local_id: &str,
        ctx: &CallContext,
    ) -> Result<Option<NormalisedResource>, AdapterError>;

    /// Fetches everything the source holds for the linked patient, normalised. Callers use
    /// [`Self::fetch_record`].
    async fn fetch(&self, patient: &PatientLink, ctx: &CallContext) -> Result<SourceRecord, AdapterError>;

    /// The NHS numbers of the source's patients that `query` describes (at most its limit),
    /// for the gateway to ask about one by one; `None` when this dialect has no demographic
    /// search (the default). Callers use [`Self::search_patients`].
    async fn search(
        &self,
        _query: &DemographicQuery,
        _ctx: &CallContext,
    ) -> Result<Option<Vec<NhsNumber>>, AdapterError> {
        Ok(None)
    }

    // Every adapter's calls end at the context's deadline, here and nowhere else: an adapter
    // implements the call, the trait bounds it.

    /// [`Self::find`], ended with [`AdapterError::Timeout`] at the context's deadline.
    #[tracing::instrument(skip_all, fields(source = %self.id()))]
    async fn find_patient(
        &self,
        nhs_number: &NhsNumber,
        gateway_id: &str,
        ctx: &CallContext,
    ) -> Result<Option<SourcePatient>, AdapterError> {
        crate::http::within(ctx, self.find(nhs_number, gateway_id, ctx)).await
    }

    /// [`Self::read_one`], ended with [`AdapterError::Timeout`] at the context's deadline.
    #[tracing::instrument(skip_all, fields(source = %self.id()))]
    async fn read_shared(
        &self,
        resource_type: &str,
        local_id: &str,
        ctx: &CallContext,
    ) -> Result<Option<NormalisedResource>, AdapterError> {
        crate::http::within(ctx, self.read_one(resource_type, local_id, ctx)).await
    }

    /// [`Self::search`], ended with [`AdapterError::Timeout`] at the context's deadline.
    #[tracing::instrument(skip_all, fields(source = %self.id()))]
    async fn search_patients(
        &self,
        query: &DemographicQuery,
        ctx: &CallContext,
    ) -> Result<Option<Vec<NhsNumber>>, AdapterError> {
        crate::http::within(ctx, self.search(query, ctx)).await
    }

    /// [`Self::fetch`], ended with [`AdapterError::Timeout`] at the context's deadline.
    #[tracing::instrument(skip_all, fields(source = %self.id()))]
    async fn fetch_record(
        &self,
        patient: &PatientLink,
        ctx: &CallContext,
    ) -> Result<SourceRecord, AdapterError> {
        crate::http::within(ctx, self.fetch(patient, ctx)).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod memory_tests {
    use serde_json::json;

    use super::NormalisedResource;

    #[test]
    fn a_resources_memory_counts_its_facts_beside_its_json() {
        let condition = json!({
            "resourceType": "Condition", "id": "borough-00.c1",
            "meta": {"source": "urn:tideway:source:borough-00"},
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [
                {"system": "http://snomed.info/sct", "code": "44054006"},
                {"system": "http://read.info/ctv3", "code": "C10F."}
            ]},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "onsetDateTime": "2019-03-01", "recordedDate": "2019-03-02"
        });
        let r = NormalisedResource::from_value(&condition).unwrap();
        let facts = r.facts.memory_bytes();
        assert!(
            facts > std::mem::size_of::<tideway_profiles::facts::ResourceFacts>(),
            "the codings' text counts"
        );
        assert_eq!(
            r.memory_bytes(),
            std::mem::size_of::<NormalisedResource>()
                + r.resource_type.len()
                + r.id.len()
                + r.json.len()
                + 32
                + facts
        );
        let mut more = condition.clone();
        more["code"]["coding"]
            .as_array_mut()
            .unwrap()
            .push(json!({"system": "http://snomed.info/sct", "code": "73211009"}));
        assert!(
            NormalisedResource::from_value(&more).unwrap().facts.memory_bytes() > facts,
            "grows with what it holds"
        );
    }
}
