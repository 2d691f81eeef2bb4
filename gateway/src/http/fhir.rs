//! The clinical FHIR interactions: Patient search and read, `$everything`, per-type searches
//! and paging.
//!
//! Each handler follows DESIGN.md's request flow: authenticate, resolve identity, write the
//! audit intent (503 and no source asked if that fails), fan out, build the answer, write the
//! audit outcome (503 and nothing released if that fails), respond.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use tideway_adapters::{AdapterError, NormalisedResource, PatientLink, SourceAdapter};
use tideway_auth::service::TokenError;
use tideway_profiles::{NhsNumber, systems};

use super::middleware::request_id;
use super::params::{Params, negotiate};
use super::{ApiError, FHIR_JSON};
use crate::Principal;
use crate::app::AppState;
use crate::audit::{AuditOutcome, AuditPhase, AuditRecord};
use crate::bundle::{self, Notice, Searchset};
use crate::federation::SourceAnswer;
use crate::identity::PatientIds;
use crate::merge::{SourceResources, merge};
use crate::pages::{PageSnapshot, principal_key};
use crate::store::SourceLink;
use crate::telemetry::metrics;

/// Resource types searchable by `patient`.
pub const SEARCHABLE_TYPES: &[&str] = &tideway_profiles::PATIENT_SEARCH_TYPES;

/// Longest wait for an audit append before the request is answered 503.
const AUDIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One request in flight: who asks, its id, and the audit record being filled in.
struct Call {
    state: web::Data<AppState>,
    principal: Principal,
    audit: AuditRecord,
}

impl Call {
    /// Authenticates the request; a refusal is audited (best effort: the request is refused
    /// whether or not the audit write succeeds, as nothing is released).
    async fn begin(
        state: web::Data<AppState>,
        req: &HttpRequest,
        action: &'static str,
    ) -> Result<Self, ApiError> {
        let rid = request_id(req);
        let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        match state.tokens.authenticate(header) {
            Ok(principal) => {
                let audit = AuditRecord::new(&rid, action, Some(&principal));
                Ok(Self { state, principal, audit })
            }
            Err(e) => {
                let err = match e {
                    TokenError::Missing => ApiError::missing_token(),
                    TokenError::Expired => ApiError::invalid_token("the access token has expired"),
                    _ => ApiError::invalid_token("the access token is not valid"),
                };
                let mut rec = AuditRecord::new(&rid, action, None);
                rec.outcome = AuditOutcome::Denied;
                rec.http_status = 401;
                rec.detail = json!({"reason": "invalid-token"});
                if state.store.append_audit(&rec).await.is_err() {
                    tracing::error!(request_id = %rid, "audit write failed while refusing a request");
                }
                Err(err)
            }
        }
    }

    /// Refuses with `err` and audits the refusal.
    async fn refuse(mut self, err: ApiError, reason: &str) -> ApiError {
        self.refuse_ref(err, reason).await
    }

    /// [`Self::refuse`] for a call still borrowed.
    async fn refuse_ref(&mut self, err: ApiError, reason: &str) -> ApiError {
        self.audit.phase = AuditPhase::Outcome;
        // 501 is a refusal of what is not offered; other 5xx are failures on our side.
        let failed = err.status.is_server_error() && err.status != StatusCode::NOT_IMPLEMENTED;
        self.audit.outcome = if failed { AuditOutcome::Error } else { AuditOutcome::Denied };
        self.audit.http_status = err.status.as_u16();
        self.audit.released = 0;
        self.audit.detail = json!({"reason": reason});
        if self.append().await.is_err() {
            tracing::error!(request_id = %self.audit.request_id, "audit write failed while refusing a request");
        }
        err
    }

    /// Resolves a published patient id (refusing, audited, when it is unknown), then writes the
    /// audit intent for that patient. Nothing may be asked of a source before this succeeds.
    async fn open_patient(&mut self, id: &str) -> Result<NhsNumber, ApiError> {
        let nhs = match resolve(&self.state, id).await {
            Ok(Some(n)) => n,
            Ok(None) => return Err(self.refuse_ref(unknown_patient(), "unknown-patient").await),
            Err(e) => return Err(self.refuse_ref(e, "store").await),
        };
        self.audit.patient_id = Some(id.to_owned());
        let sources = self.state.source_ids();
        self.intent(sources).await?;
        Ok(nhs)
    }

    fn require_read(&self, resource_type: &str) -> Result<(), ApiError> {
        if self.principal.may_read(resource_type) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("the granted scopes do not allow reading {resource_type}")))
        }
    }

    /// Appends the current audit record, giving up (as a failure: nothing is released) if the
    /// store does not answer within [`AUDIT_TIMEOUT`].
    async fn append(&self) -> Result<i64, crate::store::StoreError> {
        match tokio::time::timeout(AUDIT_TIMEOUT, self.state.store.append_audit(&self.audit)).await {
            Ok(r) => r,
            Err(_) => Err(crate::store::StoreError::timed_out("append audit")),
        }
    }

    /// Writes the intent record; nothing may be asked of a source before this succeeds.
    async fn intent(&mut self, sources: Vec<String>) -> Result<(), ApiError> {
        self.audit.phase = AuditPhase::Intent;
        self.audit.outcome = AuditOutcome::Pending;
        self.audit.sources = sources;
        self.audit.recorded_at = time::OffsetDateTime::now_utc();
        match self.append().await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(request_id = %self.audit.request_id, error = %e, "audit intent could not be written");
                Err(ApiError::audit_unavailable())
            }
        }
    }

    /// Writes the outcome record and, only if that succeeded, the response.
    async fn respond(
        mut self,
        status: StatusCode,
        body: Vec<u8>,
        released: usize,
        outcome: AuditOutcome,
        detail: serde_json::Value,
    ) -> Result<HttpResponse, ApiError> {
        self.audit.phase = AuditPhase::Outcome;
        self.audit.outcome = outcome;
        self.audit.http_status = status.as_u16();
        self.audit.released = released as u64;
        self.audit.detail = detail;
        self.audit.recorded_at = time::OffsetDateTime::now_utc();
        if let Err(e) = self.append().await {
            tracing::error!(request_id = %self.audit.request_id, error = %e, "audit outcome could not be written; nothing released");
            return Err(ApiError::audit_unavailable());
        }
        Ok(HttpResponse::build(status).content_type(FHIR_JSON).body(body))
    }
}

/// Parses `system|value` for the NHS number system.
fn parse_identifier(value: &str) -> Result<NhsNumber, ApiError> {
    let (system, number) = value.split_once('|').ok_or_else(|| {
        ApiError::invalid(format!("identifier must be given as '{}|<NHS number>'", systems::NHS_NUMBER))
            .at("identifier")
    })?;
    if system != systems::NHS_NUMBER {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            tideway_profiles::IssueType::NotSupported,
            format!("only identifiers of system {} can be searched", systems::NHS_NUMBER),
        )
        .at("identifier"));
    }
    NhsNumber::parse(number)
        .map_err(|e| ApiError::invalid(format!("invalid NHS number: {e}")).at("identifier"))
}

/// Turns failed answers into notices and decides whether the whole request failed: 502 when
/// every source failed, 504 when every source timed out.
fn failures<T>(answers: &[SourceAnswer<T>]) -> (Vec<Notice>, Option<ApiError>) {
    let notices: Vec<Notice> = answers
        .iter()
        .filter_map(|a| match &a.result {
            Err(e) => Some(Notice::SourceFailed { source: a.source.clone(), error: e.clone() }),
            Ok(_) => None,
        })
        .collect();
    let all_failed = !answers.is_empty() && notices.len() == answers.len();
    let fatal = all_failed.then(|| {
        if answers.iter().all(|a| matches!(a.result, Err(AdapterError::Timeout))) {
            ApiError::gateway_timeout("no source answered in time")
        } else {
            ApiError::bad_gateway("every source that could hold this record failed to answer")
        }
    });
    (notices, fatal)
}

fn per_source_detail<T>(answers: &[SourceAnswer<T>], count: impl Fn(&T) -> usize) -> serde_json::Value {
    let map: BTreeMap<String, serde_json::Value> = answers
        .iter()
        .map(|a| {
            let v = match &a.result {
                Ok(t) => json!({"ok": true, "count": count(t), "ms": a.elapsed.as_millis() as u64}),
                Err(e) => {
                    json!({"ok": false, "error": metrics::outcome_code(Some(e)), "ms": a.elapsed.as_millis() as u64})
                }
            };
            (a.source.to_string(), v)
        })
        .collect();
    json!({ "sources": map })
}

/// `GET /Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}`
pub async fn patient_search(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let mut call = Call::begin(state.clone(), &req, "patient-search").await?;
    if let Err(e) = negotiate(&req) {
        return Err(call.refuse(e, "not-acceptable").await);
    }
    if let Err(e) = call.require_read("Patient") {
        return Err(call.refuse(e, "scope").await);
    }
    let params = match Params::parse(&req, &["identifier", "_count"]) {
        Ok(p) => p,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let nhs = match params.one("identifier").and_then(|v| {
        v.ok_or_else(|| {
            ApiError::invalid(
                "a Patient search needs an NHS number: identifier=https://fhir.nhs.uk/Id/nhs-number|<number>",
            )
            .at("identifier")
        })
        .and_then(parse_identifier)
    }) {
        Ok(n) => n,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    if let Err(e) =
        params.count(state.settings.federation.default_page_size, state.settings.federation.max_page_size)
    {
        return Err(call.refuse(e, "bad-request").await);
    }
    let gateway_id = state.ids.id_for(&nhs);
    call.audit.patient_id = Some(gateway_id.clone());
    call.intent(state.source_ids()).await?;

    let (patient, answers) = find_everywhere(&state, &nhs, &gateway_id, &call.audit.request_id).await;
    let (mut notices, fatal) = failures(&answers);
    if let Some(err) = fatal {
        return Err(call.refuse(err, "sources-failed").await);
    }
    if patient.is_some()
        && let Err(e) = remember(&state, &nhs, &gateway_id, &answers).await
    {
        tracing::error!(error = %e, "patient index could not be written");
        return Err(call
            .refuse(ApiError::unavailable("the patient index cannot be written; try again later"), "store")
            .await);
    }
    notices.extend(params.ignored.iter().cloned());
    let entries: Vec<NormalisedResource> = patient.into_iter().collect();
    let outcome = bundle::notices_outcome(&notices);
    // The self link does not repeat the NHS number: links end up in logs and browser histories.
    let self_link = format!("{}/Patient", state.base_url);
    let body = bundle::searchset(&Searchset {
        base_url: &state.base_url,
        self_link: &self_link,
        next_link: None,
        total: entries.len(),
        entries: &entries,
        outcome: outcome.as_ref(),
    });
    let detail = per_source_detail(&answers, |p| usize::from(p.is_some()));
    let audit_outcome =
        if answers.iter().any(|a| a.result.is_err()) { AuditOutcome::Partial } else { AuditOutcome::Success };
    call.respond(StatusCode::OK, body, entries.len(), audit_outcome, detail).await
}

/// Asks every source for the patient; returns the representative Patient (first source in
/// registry order that holds one) and every answer.
async fn find_everywhere(
    state: &AppState,
    nhs: &NhsNumber,
    gateway_id: &str,
    request_id: &str,
) -> (Option<NormalisedResource>, Vec<SourceAnswer<Option<tideway_adapters::SourcePatient>>>) {
    let answers =
        state.federation.find_patient(nhs, gateway_id, request_id, state.federation.deadline()).await;
    let patient = answers
        .iter()
        .find_map(|a| a.result.as_ref().ok().and_then(|p| p.as_ref()).map(|p| p.resource.clone()));
    (patient, answers)
}

async fn remember(
    state: &AppState,
    nhs: &NhsNumber,
    gateway_id: &str,
    answers: &[SourceAnswer<Option<tideway_adapters::SourcePatient>>],
) -> Result<(), crate::store::StoreError> {
    state.store.remember_patient(gateway_id, nhs.as_str()).await?;
    // Sources that failed to answer keep whatever the locator knew about them before.
    let links: Vec<SourceLink> = answers
        .iter()
        .filter_map(|a| match &a.result {
            Ok(p) => Some(SourceLink {
                source_id: a.source.to_string(),
                local_id: p.as_ref().map(|p| p.local_id.clone()),
            }),
            Err(_) => None,
        })
        .collect();
    state.store.upsert_links(gateway_id, &links).await
}

/// Resolves a published patient id to its NHS number; 404 when the id was never published.
async fn resolve(state: &AppState, id: &str) -> Result<Option<NhsNumber>, ApiError> {
    if !PatientIds::is_well_formed(id) {
        return Ok(None);
    }
    match state.store.nhs_number_of(id).await {
        Ok(Some(n)) => Ok(NhsNumber::parse(&n).ok()),
        Ok(None) => Ok(None),
        Err(e) => {
            tracing::error!(error = %e, "patient index could not be read");
            Err(ApiError::unavailable("the patient index cannot be read; try again later"))
        }
    }
}

fn unknown_patient() -> ApiError {
    ApiError::not_found("no patient with this id is known to the gateway")
}

/// `GET /Patient/{id}`
pub async fn patient_read(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let mut call = Call::begin(state.clone(), &req, "patient-read").await?;
    if let Err(e) = negotiate(&req) {
        return Err(call.refuse(e, "not-acceptable").await);
    }
    if let Err(e) = call.require_read("Patient") {
        return Err(call.refuse(e, "scope").await);
    }
    if let Err(e) = Params::parse(&req, &[]) {
        return Err(call.refuse(e, "bad-request").await);
    }
    let nhs = call.open_patient(&id).await?;
    let (patient, answers) = find_everywhere(&state, &nhs, &id, &call.audit.request_id).await;
    let (_, fatal) = failures(&answers);
    if let Some(err) = fatal {
        return Err(call.refuse(err, "sources-failed").await);
    }
    let Some(patient) = patient else {
        return Err(call
            .refuse(ApiError::not_found("no source holds this patient any more"), "not-held")
            .await);
    };
    if let Err(e) = remember(&state, &nhs, &id, &answers).await {
        tracing::error!(error = %e, "patient index could not be written");
    }
    let detail = per_source_detail(&answers, |p| usize::from(p.is_some()));
    let audit_outcome =
        if answers.iter().any(|a| a.result.is_err()) { AuditOutcome::Partial } else { AuditOutcome::Success };
    call.respond(StatusCode::OK, patient.json.to_vec(), 1, audit_outcome, detail).await
}

/// Everything the sources hold for a patient, merged: the representative Patient first, then
/// each source's resources in registry order. Sources the record locator has no answer from
/// yet are asked whether they hold the patient first. Returns the resources, notices, per-source
/// audit detail and whether any source is missing.
async fn gather_record(
    state: &AppState,
    nhs: &NhsNumber,
    gateway_id: &str,
    request_id: &str,
    keep: &(dyn Fn(&NormalisedResource) -> bool + Sync),
    provenance: bool,
) -> Result<(Vec<NormalisedResource>, Vec<Notice>, serde_json::Value, bool), ApiError> {
    let overall = state.federation.deadline();
    let known =
        state.store.links(gateway_id, state.settings.federation.locator_max_age_secs).await.map_err(|e| {
            tracing::error!(error = %e, "record locator could not be read");
            ApiError::unavailable("the record locator cannot be read; try again later")
        })?;
    let adapters = state.federation.adapters();
    let unknown: Vec<Arc<dyn SourceAdapter>> =
        adapters.iter().filter(|a| !known.iter().any(|l| l.source_id == a.id().as_str())).cloned().collect();
    let mut notices = Vec::new();
    let mut failed_kinds: Vec<AdapterError> = Vec::new();
    let mut held: Vec<(String, String)> =
        known.iter().filter_map(|l| l.local_id.clone().map(|local| (l.source_id.clone(), local))).collect();
    if !unknown.is_empty() {
        let answers = state.federation.find_patient_in(&unknown, nhs, gateway_id, request_id, overall).await;
        let (n, _) = failures(&answers);
        notices.extend(n);
        failed_kinds.extend(answers.iter().filter_map(|a| a.result.as_ref().err().cloned()));
        if let Err(e) = remember(state, nhs, gateway_id, &answers).await {
            tracing::error!(error = %e, "record locator could not be written");
        }
        held.extend(answers.iter().filter_map(|a| match &a.result {
            Ok(Some(p)) => Some((a.source.to_string(), p.local_id.clone())),
            _ => None,
        }));
    }
    let targets: Vec<(Arc<dyn SourceAdapter>, PatientLink)> = adapters
        .iter()
        .filter_map(|a| {
            held.iter().find(|(s, _)| s == a.id().as_str()).map(|(_, local)| {
                (a.clone(), PatientLink { gateway_id: gateway_id.to_owned(), local_id: local.clone() })
            })
        })
        .collect();
    let answers = state.federation.fetch_records(&targets, request_id, overall).await;
    let (n, _) = failures(&answers);
    notices.extend(n);
    failed_kinds.extend(answers.iter().filter_map(|a| a.result.as_ref().err().cloned()));
    let succeeded = answers.iter().filter(|a| a.result.is_ok()).count();
    if succeeded == 0 {
        if failed_kinds.is_empty() {
            return Err(ApiError::not_found("no source holds this patient any more"));
        }
        return Err(if failed_kinds.iter().all(|e| matches!(e, AdapterError::Timeout)) {
            ApiError::gateway_timeout("no source answered in time")
        } else {
            ApiError::bad_gateway("every source that could hold this record failed to answer")
        });
    }
    let mut detail = per_source_detail(&answers, |r| r.resources.len());
    // The per-source report in the audit trail also counts what was withheld as invalid.
    if let Some(sources) = detail.get_mut("sources").and_then(serde_json::Value::as_object_mut) {
        for a in &answers {
            if let (Ok(record), Some(entry)) = (&a.result, sources.get_mut(a.source.as_str())) {
                entry["rejected"] = json!(record.rejected.len());
            }
        }
    }
    let mut per_source = Vec::with_capacity(answers.len());
    for a in answers {
        let Ok(record) = a.result else { continue };
        if !record.rejected.is_empty() {
            let mut types: Vec<String> =
                record.rejected.iter().filter_map(|r| r.resource_type.clone()).collect();
            types.sort();
            types.dedup();
            notices.push(Notice::SourceRejected {
                source: a.source.clone(),
                count: record.rejected.len(),
                types,
            });
        }
        // Filters (`_type`, `_since`, scopes, the searched type) apply to each source's answer
        // before merging, so a fact folded into another source's copy cannot vanish with it,
        // and no Provenance points at an entry the caller does not receive.
        let resources = record.resources.iter().filter(|r| keep(r)).cloned().collect();
        per_source.push(SourceResources { source: a.source, resources });
    }
    let recorded = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let partial = !notices.is_empty();
    let merged = merge(&per_source, gateway_id, &recorded);
    if let Some(obj) = detail.as_object_mut() {
        obj.insert("merged_duplicates".into(), json!(merged.folded));
    }
    let mut all = merged.resources;
    if !provenance {
        all.retain(|r| {
            r.resource_type != "Provenance" || !r.id.starts_with(crate::merge::PROVENANCE_ID_PREFIX)
        });
    }
    Ok((all, notices, detail, partial))
}

/// `GET /Patient/{id}/{operation}`: `$everything`, and 501 for any other operation.
pub async fn patient_operation(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, operation) = path.into_inner();
    let mut call = Call::begin(state.clone(), &req, "patient-everything").await?;
    if operation != "$everything" {
        let e = ApiError::not_implemented(format!(
            "only $everything is supported on Patient instances{}",
            if operation.starts_with('$') { "" } else { " (this is not an operation)" }
        ));
        return Err(call.refuse(e, "unsupported").await);
    }
    if let Err(e) = negotiate(&req) {
        return Err(call.refuse(e, "not-acceptable").await);
    }
    if let Err(e) = call.require_read("Patient") {
        return Err(call.refuse(e, "scope").await);
    }
    let params = match Params::parse(&req, &["_type", "_since", "_count"]) {
        Ok(p) => p,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let parsed = (|| {
        let types: Option<Vec<String>> = params
            .one("_type")?
            .map(|t| t.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect());
        if let Some(ts) = &types
            && (ts.is_empty()
                || ts.iter().any(|t| {
                    !t.chars().all(|c| c.is_ascii_alphabetic())
                        || !t.starts_with(|c: char| c.is_ascii_uppercase())
                }))
        {
            return Err(
                ApiError::invalid("_type must be a comma-separated list of resource types").at("_type")
            );
        }
        let since = match params.one("_since")? {
            Some(s) => Some(bundle::parse_instant(s).ok_or_else(|| {
                ApiError::invalid("_since must be a FHIR instant, e.g. 2024-01-31T09:00:00Z").at("_since")
            })?),
            None => None,
        };
        let count = params
            .count(state.settings.federation.default_page_size, state.settings.federation.max_page_size)?;
        Ok((types, since, count))
    })();
    let (types, since, count) = match parsed {
        Ok(p) => p,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    if let Some(ts) = &types
        && let Some(t) = ts.iter().find(|t| !call.principal.may_read(t))
    {
        let e = ApiError::forbidden(format!("the granted scopes do not allow reading {t}"));
        return Err(call.refuse(e, "scope").await);
    }
    let nhs = call.open_patient(&id).await?;
    let principal = call.principal.clone();
    let keep = move |r: &NormalisedResource| {
        types.as_ref().is_none_or(|ts| ts.contains(&r.resource_type))
            && since.is_none_or(|t| bundle::is_updated_since(r, t))
            && principal.may_read(&r.resource_type)
    };
    let self_link = format!(
        "{}/Patient/{}/$everything{}",
        state.base_url,
        id,
        echo_query(&params, &["_type", "_since", "_count"])
    );
    record_answer(call, &nhs, &id, &keep, &params, count, self_link).await
}

/// Gathers the patient's record through `keep` and answers its first page: the shared tail of
/// `$everything` and the per-type searches.
async fn record_answer(
    call: Call,
    nhs: &NhsNumber,
    patient_id: &str,
    keep: &(dyn Fn(&NormalisedResource) -> bool + Sync),
    params: &Params,
    count: usize,
    self_link: String,
) -> Result<HttpResponse, ApiError> {
    let provenance = call.principal.may_read("Provenance");
    let gathered =
        gather_record(&call.state, nhs, patient_id, &call.audit.request_id, keep, provenance).await;
    let (resources, mut notices, detail, partial) = match gathered {
        Ok(r) => r,
        Err(e) => return Err(call.refuse(e, "sources-failed").await),
    };
    notices.extend(params.ignored.iter().cloned());
    paged_answer(call, resources, notices, detail, partial, count, self_link).await
}

/// The query for a `self` link: only the parameters this search understood (an ignored one could
/// carry anything, an NHS number included).
fn echo_query(params: &Params, known: &[&str]) -> String {
    let pairs: Vec<(&str, &str)> = params.pairs().filter(|(k, _)| known.contains(k)).collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", serde_urlencoded::to_string(&pairs).unwrap_or_default())
    }
}

/// Answers the first page, keeping the rest (if any) for `next` links bound to the principal.
async fn paged_answer(
    call: Call,
    resources: Vec<NormalisedResource>,
    notices: Vec<Notice>,
    detail: serde_json::Value,
    partial: bool,
    count: usize,
    self_link: String,
) -> Result<HttpResponse, ApiError> {
    let state = call.state.clone();
    let outcome = bundle::notices_outcome(&notices);
    let total = resources.iter().filter(|r| !bundle::is_included(r)).count();
    let snapshot = Arc::new(PageSnapshot {
        owner: principal_key(&call.principal),
        resources,
        outcome: outcome.clone(),
        page_size: count,
        patient_id: call.audit.patient_id.clone(),
    });
    let next_link = if snapshot.resources.len() > count {
        match state.pages.insert(snapshot.clone(), &state.base_url, count).await {
            Ok(link) => Some(link),
            Err(e) => {
                tracing::error!(error = %e, "page snapshot could not be stored");
                let err =
                    ApiError::unavailable("paging is unavailable; try again later or ask for fewer results");
                return Err(call.refuse(err, "page-store").await);
            }
        }
    } else {
        None
    };
    let page = &snapshot.resources[..snapshot.resources.len().min(count)];
    let body = bundle::searchset(&Searchset {
        base_url: &state.base_url,
        self_link: &self_link,
        next_link: next_link.as_deref(),
        total,
        entries: page,
        outcome: outcome.as_ref(),
    });
    let audit_outcome = if partial { AuditOutcome::Partial } else { AuditOutcome::Success };
    let released = page.len();
    call.respond(StatusCode::OK, body, released, audit_outcome, detail).await
}

/// `GET /{type}?patient={id}` for the searchable clinical types.
pub async fn type_search(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let resource_type = path.into_inner();
    let mut call = Call::begin(state.clone(), &req, "search").await?;
    if !SEARCHABLE_TYPES.contains(&resource_type.as_str()) {
        let e = ApiError::not_found(format!("resource type '{resource_type}' is not served by this gateway"));
        return Err(call.refuse(e, "unsupported").await);
    }
    if let Err(e) = negotiate(&req) {
        return Err(call.refuse(e, "not-acceptable").await);
    }
    if let Err(e) = call.require_read(&resource_type) {
        return Err(call.refuse(e, "scope").await);
    }
    let params = match Params::parse(&req, &["patient", "subject", "_count"]) {
        Ok(p) => p,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let parsed = (|| {
        let patient = match (params.one("patient")?, params.one("subject")?) {
            (Some(p), None) | (None, Some(p)) => p.strip_prefix("Patient/").unwrap_or(p).to_owned(),
            _ => {
                return Err(ApiError::invalid(format!(
                    "a {resource_type} search needs exactly one of patient or subject"
                ))
                .at("patient"));
            }
        };
        let count = params
            .count(state.settings.federation.default_page_size, state.settings.federation.max_page_size)?;
        Ok((patient, count))
    })();
    let (patient_id, count) = match parsed {
        Ok(p) => p,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let nhs = match resolve(&state, &patient_id).await {
        Ok(Some(n)) => n,
        // A search for an unknown patient matches nothing: an empty searchset, as FHIR expects.
        Ok(None) => {
            let self_link = format!(
                "{}/{}{}",
                state.base_url,
                resource_type,
                echo_query(&params, &["patient", "subject", "_count"])
            );
            let body = bundle::searchset(&Searchset {
                base_url: &state.base_url,
                self_link: &self_link,
                next_link: None,
                total: 0,
                entries: &[],
                outcome: bundle::notices_outcome(&params.ignored).as_ref(),
            });
            return call
                .respond(StatusCode::OK, body, 0, AuditOutcome::Success, json!({"reason": "unknown-patient"}))
                .await;
        }
        Err(e) => return Err(call.refuse(e, "store").await),
    };
    call.audit.patient_id = Some(patient_id.clone());
    call.intent(state.source_ids()).await?;
    let wanted = resource_type.clone();
    let keep = move |r: &NormalisedResource| r.resource_type == wanted;
    let self_link = format!(
        "{}/{}{}",
        state.base_url,
        resource_type,
        echo_query(&params, &["patient", "subject", "_count"])
    );
    record_answer(call, &nhs, &patient_id, &keep, &params, count, self_link).await
}

/// `GET /_page?id=…&offset=…`: a later page of a search, only for the principal that made it.
pub async fn page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let call = Call::begin(state.clone(), &req, "page").await?;
    if let Err(e) = negotiate(&req) {
        return Err(call.refuse(e, "not-acceptable").await);
    }
    let params = match Params::parse(&req, &["id", "offset"]) {
        Ok(p) => p,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let (token, offset) = match (params.one("id"), params.one("offset")) {
        (Ok(Some(t)), Ok(Some(o))) => match o.parse::<usize>() {
            Ok(o) => (t.to_owned(), o),
            Err(_) => {
                return Err(call
                    .refuse(ApiError::invalid("offset must be a whole number"), "bad-request")
                    .await);
            }
        },
        _ => {
            return Err(call
                .refuse(ApiError::invalid("a page link needs id and offset"), "bad-request")
                .await);
        }
    };
    let found = match state.pages.get(&token).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "page snapshot could not be read");
            let err = ApiError::unavailable("paging is unavailable; try again later");
            return Err(call.refuse(err, "page-store").await);
        }
    };
    let Some(snapshot) = found else {
        let e = ApiError::new(
            StatusCode::GONE,
            tideway_profiles::IssueType::NotFound,
            "this page link is unknown or has expired; repeat the search",
        );
        return Err(call.refuse(e, "page-expired").await);
    };
    if snapshot.owner != principal_key(&call.principal) {
        return Err(call
            .refuse(ApiError::forbidden("this page link belongs to another user"), "page-owner")
            .await);
    }
    let mut call = call;
    call.audit.patient_id = snapshot.patient_id.clone();
    // The snapshot was made for this principal's scopes; check them again (a same-user token with
    // narrower scopes must not read more through a page link).
    if let Some(t) = snapshot.resources.iter().find(|r| !call.principal.may_read(&r.resource_type)) {
        let e = ApiError::forbidden(format!("the granted scopes do not allow reading {}", t.resource_type));
        return Err(call.refuse(e, "scope").await);
    }
    let entries = snapshot.resources.len();
    let total = snapshot.resources.iter().filter(|r| !bundle::is_included(r)).count();
    let start = offset.min(entries);
    let end = (start + snapshot.page_size).min(entries);
    let next_link = (end < entries).then(|| state.pages.link(&state.base_url, &token, end));
    let self_link = state.pages.link(&state.base_url, &token, start);
    let body = bundle::searchset(&Searchset {
        base_url: &state.base_url,
        self_link: &self_link,
        next_link: next_link.as_deref(),
        total,
        entries: &snapshot.resources[start..end],
        outcome: snapshot.outcome.as_ref(),
    });
    call.respond(StatusCode::OK, body, end - start, AuditOutcome::Success, json!({"page_offset": start}))
        .await
}

/// Any other interaction on `/{type}/{id}`: reads of non-Patient types are not offered (501);
/// writes are refused (405).
pub async fn instance_other(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let e = if req.method() == actix_web::http::Method::GET {
        ApiError::not_implemented("only Patient can be read by id; search by patient instead")
    } else {
        ApiError::method_not_allowed()
    };
    Err(refuse_unsupported(state, &req, e).await)
}

/// Refuses a request the FHIR API does not offer (unknown path, method or operation), after
/// authenticating it (401 first, so nothing is revealed to the unauthenticated), and audits it.
pub async fn refuse_unsupported(state: web::Data<AppState>, req: &HttpRequest, e: ApiError) -> ApiError {
    match Call::begin(state, req, "unsupported").await {
        Ok(call) => call.refuse(e, "unsupported").await,
        Err(unauthenticated) => unauthenticated,
    }
}
