//! Bulk Data `$export` (asynchronous request pattern) and the population figures:
//!
//! - `GET /$export`, `GET /Patient/$export` (the Patient compartment's types only),
//!   `GET /Group/{id}/$export` with `Prefer: respond-async`: 202 with `Content-Location` naming
//!   the status URL; each also as POST with a `Parameters` body (`_type`, `_since`,
//!   `_outputFormat`; `patient` is refused, since a de-identified export names no one);
//! - `GET /export-status/{job}`: 202 with `X-Progress` and `Retry-After` while it runs, 200
//!   with the manifest when done, 500 with an OperationOutcome if it failed; `DELETE` cancels
//!   (or forgets a finished job) and removes its files;
//! - `GET /export-files/{job}/{Type}.ndjson`: one output file, streamed.
//!
//! The groups an export can be asked for and the population figures are `population.rs`'s.
//!
//! Only a secondary purpose of use admitted by an agreement is served; status, manifest and
//! files only to the principal that started the job (403 for anyone else, judged again at
//! every download). Every call is audited.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use tideway_auth::Interaction;

use super::call::FhirCall;
use super::error::ApiError;
use super::{GET_HEAD, fhir, readable};
use crate::audit::AuditOutcome;
use crate::secondary::export::{Job, JobOwner, JobParams, JobState};
use crate::state::AppState;

const NDJSON: &str = "application/fhir+ndjson";

/// Registers the routes (before the FHIR type routes, which would match some of them).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(kick_off_route("/$export", kick_off_system))
        .service(kick_off_route("/Patient/$export", kick_off_patients))
        .service(kick_off_route("/Group/{id}/$export", kick_off_group))
        .service(
            readable(fhir("/export-status/{job}", "bulk-export-status", "GET, HEAD, DELETE"), status)
                .route(web::delete().to(cancel)),
        )
        .service(readable(fhir("/export-files/{job}/{file}", "bulk-export-download", GET_HEAD), download));
}

/// Refuses (audited, 403) anyone not admitted to secondary use.
pub(super) async fn secondary(call: FhirCall) -> Result<FhirCall, ApiError> {
    match call.state.records.admit_secondary(&call.principal) {
        Ok(()) => Ok(call),
        Err(e) => Err(call.fail(e).await),
    }
}

/// A kick-off endpoint: GET (parameters in the query) and POST (a `Parameters` resource, or a
/// form, in the body, as Bulk Data v2 allows). Not HEAD: a kick-off starts a job, and a HEAD
/// (a link checker, a monitoring probe) must never start one; it is a 405 naming GET and POST.
fn kick_off_route<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    fhir(path, "bulk-export", "GET, POST")
        .route(web::get().to(handler.clone()))
        .route(web::post().to(handler))
}

async fn kick_off_system(
    call: FhirCall,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    kick_off(call, req, body, Level::System).await
}

async fn kick_off_patients(
    call: FhirCall,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    kick_off(call, req, body, Level::Patients).await
}

async fn kick_off_group(
    call: FhirCall,
    req: HttpRequest,
    body: web::Payload,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    kick_off(call, req, body, Level::Group(id.into_inner())).await
}

/// What an export is asked of: the Bulk Data IG's three kick-off levels.
enum Level {
    /// `/$export`: every exported type, the whole registered population.
    System,
    /// `/Patient/$export`: the whole registered population, the types of the Patient
    /// compartment only.
    Patients,
    /// `/Group/{id}/$export`: one group's patients.
    Group(String),
}

impl Level {
    /// Whether this level exports `resource_type` (one of the exported types).
    fn carries(&self, resource_type: &str) -> bool {
        match self {
            Self::Patients => tideway_deid::in_patient_compartment(resource_type),
            Self::System | Self::Group(_) => true,
        }
    }
}

/// Whether the client asked for the asynchronous pattern (`Prefer: respond-async`).
fn prefers_async(req: &HttpRequest) -> bool {
    super::params::prefer_tokens(req).any(|p| p.eq_ignore_ascii_case("respond-async"))
}

async fn kick_off(
    call: FhirCall,
    req: HttpRequest,
    body: web::Payload,
    level: Level,
) -> Result<HttpResponse, ApiError> {
    let call = secondary(call).await?;
    let call = if req.method() == actix_web::http::Method::POST {
        super::post::with_body(call, &req, body).await?
    } else {
        call
    };
    let (call, params) = call.params(&req, &["_type", "_since", "_outputFormat", "patient"]).await?;
    let state = call.state.clone();
    let parsed = (|| {
        if !prefers_async(&req) {
            return Err(ApiError::invalid("a bulk export runs asynchronously: send Prefer: respond-async"));
        }
        if !params.all("patient").is_empty() {
            return Err(ApiError::invalid(
                "patient: a de-identified export is never of named patients; export a Group (GET /Group lists them)",
            )
            .at("patient"));
        }
        if let Some(f) = params.one("_outputFormat")?
            && !matches!(
                f.trim(),
                "application/fhir+ndjson" | "application/fhir ndjson" | "application/ndjson" | "ndjson"
            )
        {
            return Err(
                ApiError::invalid("_outputFormat must be application/fhir+ndjson").at("_outputFormat")
            );
        }
        let mut types: Vec<String> = params
            .all("_type")
            .iter()
            .flat_map(|t| t.split(','))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        let exported: Vec<&str> =
            tideway_deid::EXPORTED_TYPES.into_iter().filter(|t| level.carries(t)).collect();
        if let Some(t) = types.iter().find(|t| !exported.contains(&t.as_str())) {
            let at_this_level =
                if matches!(level, Level::Patients) { " by a Patient-level export" } else { "" };
            return Err(ApiError::invalid(format!(
                "_type: {} is not exported{at_this_level} (exported: {})",
                super::error::echo(t),
                exported.join(", ")
            ))
            .at("_type"));
        }
        if types.is_empty() {
            types = exported.iter().map(|t| (*t).to_owned()).collect();
        }
        let since = match params.one("_since")? {
            None => None,
            Some(s) => {
                let at = crate::bundle::parse_instant(s).ok_or_else(|| {
                    ApiError::invalid("_since must be a FHIR instant, e.g. 2024-01-31T09:00:00Z").at("_since")
                })?;
                Some(
                    at.format(&time::format_description::well_known::Rfc3339)
                        .map_err(|_| ApiError::internal())?,
                )
            }
        };
        Ok((types, since))
    })();
    let (types, since) = match parsed {
        Ok(p) => p,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    // Only types the scopes allow reading are exported; asking for one they do not is refused.
    let explicit = !params.all("_type").is_empty();
    let (allowed, denied): (Vec<String>, Vec<String>) =
        types.into_iter().partition(|t| call.principal.may(Interaction::Read, t));
    if allowed.is_empty() || (explicit && !denied.is_empty()) {
        let e =
            ApiError::insufficient_scope("the granted scopes do not allow reading what this export asks for");
        return Err(call.refuse(e, "scope").await);
    }
    if state.secondary.projects.for_organisation(&call.principal.organisation).is_none() {
        let e = ApiError::forbidden(
            "no de-identification project (secondary.projects) names this organisation, so nothing can be exported for it",
        );
        return Err(call.refuse(e, "no-project").await);
    }
    let group = match level {
        Level::Group(id) => Some(id),
        Level::System | Level::Patients => None,
    };
    let cohort = match &group {
        None => crate::store::Cohort::Everyone,
        Some(id) => match crate::secondary::group_named(&state, id) {
            Some(g) => g.cohort(),
            None => {
                let e = ApiError::not_found(
                    "no such Group: GET /Group lists the groups an export can be asked for",
                );
                return Err(call.refuse(e, "not-found").await);
            }
        },
    };
    let total = match state.secondary.store.cohort_size(&cohort).await {
        Ok(n) => n,
        Err(e) => return Err(call.refuse(e.into(), "store").await),
    };
    let request = format!("{}{}", state.base_url, req.uri());
    let job_params = JobParams { group, types: allowed, since };
    let owner = JobOwner::of(&call.principal);
    let id = match state.secondary.exports.create(&owner, &request, &job_params, total).await {
        Ok(id) => id,
        Err(e) => return Err(call.refuse(e.into(), "store").await),
    };
    let detail =
        json!({"job": id, "group": job_params.group, "types": job_params.types, "since": job_params.since});
    call.audit.outcome(202, 0, AuditOutcome::Success, detail.to_string()).await?;
    crate::secondary::export::spawn(state.clone(), id.clone());
    Ok(HttpResponse::Accepted()
        .insert_header((header::CONTENT_LOCATION, format!("{}/export-status/{id}", state.base_url)))
        .finish())
}

/// The job, if it is `call`'s principal's; 404 for none, 403 for someone else's (audited).
async fn own_job(call: FhirCall, id: &str) -> Result<(FhirCall, Job), ApiError> {
    let call = secondary(call).await?;
    let job = match call.state.secondary.exports.job(id).await {
        Ok(Some(job)) if job.state != JobState::Cancelled => job,
        Ok(_) => return Err(call.refuse(ApiError::not_found("no such export job"), "not-found").await),
        Err(e) => return Err(call.refuse(e.into(), "store").await),
    };
    if !job.owner.is(&call.principal) {
        let e = ApiError::forbidden("this export job was started by someone else");
        return Err(call.refuse(e, "not-owner").await);
    }
    Ok((call, job))
}

async fn status(call: FhirCall, job: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (call, job) = own_job(call, &job).await?;
    let base = call.state.base_url.clone();
    let detail = json!({"job": job.id, "state": job.state.code()}).to_string();
    match job.state {
        JobState::Queued | JobState::Running => {
            call.audit.outcome(202, 0, AuditOutcome::Success, detail).await?;
            Ok(HttpResponse::Accepted()
                .insert_header(("X-Progress", job.progress_text()))
                .insert_header((header::RETRY_AFTER, "2"))
                .finish())
        }
        JobState::Completed => {
            call.audit.outcome(200, 0, AuditOutcome::Success, detail).await?;
            Ok(HttpResponse::Ok().content_type("application/json").body(job.manifest(&base).to_string()))
        }
        JobState::Failed | JobState::Cancelled => {
            let why = job.tally.failure.clone().unwrap_or_else(|| "the export job failed".into());
            let e = ApiError::new(
                actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                tideway_profiles::IssueType::Exception,
                format!("the export job failed: {why}"),
            );
            Err(call.refuse(e, "export-failed").await)
        }
    }
}

async fn cancel(call: FhirCall, job: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (call, job) = own_job(call, &job).await?;
    match call.state.secondary.exports.cancel(&job.id).await {
        Ok(true) => {
            let detail = json!({"job": job.id, "was": job.state.code()}).to_string();
            call.audit.outcome(202, 0, AuditOutcome::Success, detail).await?;
            Ok(HttpResponse::Accepted().finish())
        }
        Ok(false) => Err(call.refuse(ApiError::not_found("no such export job"), "not-found").await),
        Err(e) => Err(call.refuse(e.into(), "store").await),
    }
}

/// Whether `Accept` allows ndjson (or says nothing, or anything).
fn accepts_ndjson(req: &HttpRequest) -> bool {
    let accepts = super::params::accepted(req);
    accepts.is_empty()
        || accepts.iter().any(|m| {
            matches!(m.as_str(), "*/*" | "application/*" | "application/fhir+ndjson" | "application/ndjson")
        })
}

/// One output file, streamed from disk (never read whole into memory).
async fn download(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let call = FhirCall::authenticate(state, &req, "bulk-export-download").await?;
    if !accepts_ndjson(&req) {
        return Err(call.refuse(ApiError::not_acceptable(), "not-acceptable").await);
    }
    let (job, name) = path.into_inner();
    let (call, job) = own_job(call, &job).await?;
    let written =
        name.strip_suffix(".ndjson").and_then(|t| job.tally.outputs.get(t)).is_some_and(|s| s.count > 0);
    let file = call
        .state
        .secondary
        .exports
        .file(&job.id, &name)
        .filter(|_| written && job.state == JobState::Completed);
    let Some(file) = file else {
        return Err(call.refuse(ApiError::not_found("no such file in this export"), "not-found").await);
    };
    let opened = match tokio::fs::File::open(&file).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "an export file could not be opened");
            return Err(call
                .refuse(ApiError::not_found("this export's files are no longer kept"), "not-found")
                .await);
        }
    };
    let size = opened.metadata().await.map(|m| m.len()).unwrap_or(0);
    let detail = json!({"job": job.id, "file": name, "bytes": size}).to_string();
    let count = job.tally.outputs.get(name.trim_end_matches(".ndjson")).map_or(0, |s| s.count);
    call.audit
        .outcome(200, usize::try_from(count).unwrap_or(usize::MAX), AuditOutcome::Success, detail)
        .await?;
    let stream = futures::stream::unfold(opened, |mut f| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match tokio::io::AsyncReadExt::read(&mut f, &mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(web::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    Ok(HttpResponse::Ok().content_type(NDJSON).no_chunking(size).streaming(stream))
}
