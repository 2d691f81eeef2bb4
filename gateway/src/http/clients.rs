//! `/admin/clients`: the configured backend clients and what administrators decided about them
//! at run time. A registry administrator (the same as for `/admin/sources`) lists them,
//! suspends, reinstates or removes one; each change is audited (intent before, outcome after)
//! and holds from the next request on: the client's live tokens are refused and `/token`
//! grants it none.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::call::FhirCall;
use super::error::ApiError;
use super::{fhir, readable};
use crate::audit::AuditOutcome;
use crate::clients::{ClientAdminError, ClientState, ClientView};
use crate::state::AppState;

const JSON: &str = "application/json";

/// Registers the routes (before the FHIR type routes, which would match them).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(readable(fhir("/admin/clients", "client-read", "GET, HEAD"), list))
        .service(fhir("/admin/clients/{id}/suspend", "client-change", "POST").route(web::post().to(suspend)))
        .service(fhir("/admin/clients/{id}/resume", "client-change", "POST").route(web::post().to(resume)))
        .service(
            readable(fhir("/admin/clients/{id}", "client-read", "GET, HEAD, DELETE"), read)
                .route(web::delete().to(remove)),
        );
}

async fn admin(
    state: web::Data<AppState>,
    req: &HttpRequest,
    action: &'static str,
) -> Result<FhirCall, ApiError> {
    super::sources::administrator(state, req, action, "the client registry").await
}

fn view(v: &ClientView) -> Value {
    json!({
        "client_id": v.config.client_id,
        "name": v.config.name,
        "state": v.state.as_str(),
        "allowed_scopes": v.config.allowed_scopes,
        "token_lifetime_secs": v.config.token_lifetime_secs,
        "patient_app": v.config.patient_app,
    })
}

async fn refuse(call: FhirCall, e: ClientAdminError) -> ApiError {
    let reason = match e {
        ClientAdminError::NotFound => "not-found",
        ClientAdminError::Removed(_) => "conflict",
        ClientAdminError::Store(_) => "store",
    };
    call.refuse(ApiError::from(e), reason).await
}

/// `GET /admin/clients`
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "client-read").await?;
    let views = call.state.clients.list(call.state.tokens.clients());
    let body = json!({ "clients": views.iter().map(view).collect::<Vec<_>>() });
    call.audit.outcome(200, 0, AuditOutcome::Success, json!({ "clients": views.len() }).to_string()).await?;
    Ok(HttpResponse::Ok().content_type(JSON).body(body.to_string()))
}

/// `GET /admin/clients/{id}`
pub async fn read(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "client-read").await?;
    let id = path.into_inner();
    let found =
        call.state.clients.list(call.state.tokens.clients()).into_iter().find(|v| v.config.client_id == id);
    let Some(found) = found else { return Err(refuse(call, ClientAdminError::NotFound).await) };
    call.audit.outcome(200, 0, AuditOutcome::Success, json!({ "client": id }).to_string()).await?;
    Ok(HttpResponse::Ok().content_type(JSON).body(view(&found).to_string()))
}

/// `POST /admin/clients/{id}/suspend`
pub async fn suspend(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    change(state, req, path.into_inner(), ClientState::Suspended).await
}

/// `POST /admin/clients/{id}/resume`
pub async fn resume(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    change(state, req, path.into_inner(), ClientState::Active).await
}

/// `DELETE /admin/clients/{id}`
pub async fn remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    change(state, req, path.into_inner(), ClientState::Removed).await
}

/// Audits the intent, makes the change, audits its outcome and answers with the client as it
/// now stands.
async fn change(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: String,
    to: ClientState,
) -> Result<HttpResponse, ApiError> {
    let mut call = admin(state, &req, "client-change").await?;
    // An id the gateway never configured writes no intent.
    if !call.state.clients.knows(&id) {
        return Err(refuse(call, ClientAdminError::NotFound).await);
    }
    call.audit.describe(json!({ "client": id, "change": to.as_str() }).to_string());
    if let Err(e) = call.audit.intent(std::sync::Arc::from("[]")).await {
        return Err(call.refuse(e.into(), "store").await);
    }
    let changed = call.state.clients.change(call.state.tokens.clients(), &id, to).await;
    let changed = match changed {
        Ok(v) => v,
        Err(e) => return Err(refuse(call, e).await),
    };
    let outcome = json!({ "client": id, "change": to.as_str() });
    call.audit.outcome(200, 0, AuditOutcome::Success, outcome.to_string()).await?;
    Ok(HttpResponse::Ok().content_type(JSON).body(view(&changed).to_string()))
}
