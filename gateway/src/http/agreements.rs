//! Sharing-agreement governance: `POST /agreements` (publish a new version, the body its TOML
//! text), `POST /agreements/{id}/{version}/approve` (a data controller's approval),
//! `GET /agreements` and `GET /agreements/{id}` (every version with its state and approvals).
//! Authenticated and audited like every other call; the answers are JSON status documents, not
//! FHIR resources, and carry no patient data.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::call::FhirCall;
use super::error::ApiError;
use crate::agreements::LedgerEntry;
use crate::audit::AuditOutcome;
use crate::governance::GovernanceError;
use crate::state::AppState;

const JSON: &str = "application/json";

/// `POST /agreements`
pub async fn publish(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let call = FhirCall::authenticate(state, &req, "agreement-publish").await?;
    let (mut call, body) = call.body(&req, payload).await?;
    let state = call.state.clone();
    let entry = match state.agreements.publish(&mut call.audit, &call.principal, &body).await {
        Ok(e) => e,
        Err(e) => return Err(refuse(call, e).await),
    };
    let location =
        format!("{}/agreements/{}/{}", state.base_url, entry.agreement.id, entry.agreement.version);
    let doc = finish(call, 201, &entry).await?;
    Ok(HttpResponse::Created().content_type(JSON).insert_header((header::LOCATION, location)).body(doc))
}

/// `POST /agreements/{id}/{version}/approve`
pub async fn approve(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let mut call = FhirCall::authenticate(state, &req, "agreement-approve").await?;
    let (id, version) = path.into_inner();
    let Ok(version) = version.parse::<u32>() else {
        return Err(refuse(call, GovernanceError::NotFound).await);
    };
    let state = call.state.clone();
    match state.agreements.approve(&mut call.audit, &call.principal, &id, version).await {
        Ok(entry) => {
            let doc = finish(call, 200, &entry).await?;
            Ok(HttpResponse::Ok().content_type(JSON).body(doc))
        }
        Err(e) => Err(refuse(call, e).await),
    }
}

/// `GET /agreements`
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    versions(state, req, None).await
}

/// `GET /agreements/{id}`
pub async fn read(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    versions(state, req, Some(path.into_inner())).await
}

async fn versions(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let call = FhirCall::authenticate(state, &req, "agreement-read").await?;
    let state = call.state.clone();
    let ledger = match state.agreements.ledger().await {
        Ok(l) => l,
        Err(e) => return Err(refuse(call, e).await),
    };
    let found: Vec<Value> = ledger
        .iter()
        .filter(|e| id.as_ref().is_none_or(|id| &e.agreement.id == id))
        .map(status_document)
        .collect();
    let detail = json!({ "versions": found.len() }).to_string();
    let body = match id {
        Some(_) if found.is_empty() => return Err(refuse(call, GovernanceError::NotFound).await),
        Some(id) => json!({ "id": id, "versions": found }),
        None => json!({ "agreements": found }),
    };
    call.audit.outcome(200, 0, AuditOutcome::Success, detail).await?;
    Ok(HttpResponse::Ok().content_type(JSON).body(body.to_string()))
}

/// Audits the success and returns the status document.
async fn finish(call: FhirCall, status: u16, entry: &LedgerEntry) -> Result<String, ApiError> {
    let detail = json!({ "agreement": entry.agreement.label(), "state": entry.state.code() }).to_string();
    call.audit.outcome(status, 0, AuditOutcome::Success, detail).await?;
    Ok(status_document(entry).to_string())
}

async fn refuse(call: FhirCall, e: GovernanceError) -> ApiError {
    let reason = e.reason();
    call.refuse(ApiError::from(e), reason).await
}

/// `{"id", "version", "state", "controllers", "approved_by": [{"ods_code", "user", "at"}],
/// "awaiting"}`.
pub fn status_document(entry: &LedgerEntry) -> Value {
    let approved_by: Vec<Value> = entry
        .approvals
        .iter()
        .map(|a| {
            let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(a.approved_at_us) * 1_000)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok());
            json!({ "ods_code": a.ods_code, "user": a.user_id, "at": at })
        })
        .collect();
    json!({
        "id": entry.agreement.id,
        "version": entry.agreement.version,
        "state": entry.state.code(),
        "controllers": entry.controllers,
        "approved_by": approved_by,
        "awaiting": entry.awaiting(),
    })
}
