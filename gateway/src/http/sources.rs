//! The source registry's admin resource (plain JSON, no patient data):
//!
//! - `GET /admin/sources`, `GET /admin/sources/{id}`: every registered source with its kind,
//!   ODS code, base URL, state, attestation (and how it stands today) and health;
//! - `POST /admin/sources` (register), `PUT /admin/sources/{id}` (change),
//!   `POST /admin/sources/{id}/suspend` and `/resume`, `DELETE /admin/sources/{id}`;
//! - `GET /admin/organisations`, `GET` and `PUT /admin/organisations/{ods}`: consuming
//!   organisations' attestations.
//!
//! Only registry administrators ([`crate::registry::Registry::is_admin`]) are served; anyone
//! else gets an audited 403. Every change writes its audit intent (naming the source) before
//! anything changes and its outcome before the answer leaves.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use tideway_adapters::SourceId;

use super::call::FhirCall;
use super::error::ApiError;
use super::{fhir, readable};
use crate::audit::AuditOutcome;
use crate::epoch_us::rfc3339_seconds;
use crate::registry::attestation::Standing;
use crate::registry::{Registration, RegistryError, SourceView, input};
use crate::state::AppState;

const JSON: &str = "application/json";

/// Registers the admin routes (before the FHIR type routes, which would match them).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        readable(fhir("/admin/sources", "source-read", "GET, HEAD, POST"), list)
            .route(web::post().to(register)),
    )
    .service(fhir("/admin/sources/{id}/suspend", "source-change", "POST").route(web::post().to(suspend)))
    .service(fhir("/admin/sources/{id}/resume", "source-change", "POST").route(web::post().to(resume)))
    .service(
        readable(fhir("/admin/sources/{id}", "source-read", "GET, HEAD, PUT, DELETE"), read)
            .route(web::put().to(update))
            .route(web::delete().to(deregister)),
    )
    .service(readable(fhir("/admin/organisations", "organisation-read", "GET, HEAD"), organisations))
    .service(
        readable(fhir("/admin/organisations/{ods}", "organisation-read", "GET, HEAD, PUT"), organisation)
            .route(web::put().to(put_organisation)),
    );
}

/// Authenticates the request and refuses (audited, 403) anyone but a registry administrator.
async fn admin(
    state: web::Data<AppState>,
    req: &HttpRequest,
    action: &'static str,
) -> Result<FhirCall, ApiError> {
    administrator(state, req, action, "the source registry").await
}

/// Authenticates the request and refuses (audited, 403) anyone but a registry administrator,
/// saying that `what` is administered only by them.
pub(super) async fn administrator(
    state: web::Data<AppState>,
    req: &HttpRequest,
    action: &'static str,
    what: &str,
) -> Result<FhirCall, ApiError> {
    let call = FhirCall::authenticate(state, req, action).await?;
    if call.state.registry.is_admin(&call.principal) {
        return Ok(call);
    }
    let e = ApiError::forbidden(format!(
        "{what} is administered only by users of an administering organisation \
         (registry.admin_organisations) acting for operations (purpose of use HOPERAT)"
    ));
    Err(call.refuse(e, "forbidden").await)
}

fn instant(us: i64) -> Value {
    let s = rfc3339_seconds(us);
    if s.is_empty() { Value::Null } else { Value::String(s) }
}

fn standing_fields(standing: Standing) -> (Value, Value) {
    let days = match standing {
        Standing::Expiring(d) => json!(d),
        _ => Value::Null,
    };
    (json!(standing.code()), days)
}

/// One source as the admin resource shows it.
/// The TLS settings as shown: paths as given; a key held by the gateway only said to be held.
fn tls_view(tls: &tideway_adapters::SourceTls) -> Value {
    let key = match &tls.client_key {
        tideway_adapters::ClientKey::File(path) => json!(path),
        _ => json!("held encrypted"),
    };
    json!({
        "client_certificate": tls.client_certificate,
        "client_key": key,
        "ca_certificate": tls.ca_certificate,
    })
}

fn view(v: &SourceView) -> Value {
    let r = &v.registration;
    let c = &r.config;
    let (standing, days_left) = standing_fields(v.standing);
    let health = v.health.map_or(
        Value::Null,
        |p| json!({ "checked_at": instant(p.checked_at_us), "up": p.up, "latency_ms": p.latency_ms }),
    );
    json!({
        "id": c.id.as_str(),
        "name": c.name,
        "kind": c.kind.as_str(),
        "ods_code": c.ods_code.as_str(),
        "base_url": c.base_url.as_str(),
        "timeout_ms": c.timeout_ms,
        "max_body_bytes": c.max_body_bytes,
        "tls": c.tls.as_ref().map(tls_view),
        "state": r.state.as_str(),
        "origin": r.origin.as_str(),
        "asked": v.asked,
        "attestation": c.attestation,
        "attestation_standing": standing,
        "attestation_expiring": matches!(v.standing, Standing::Expiring(_)),
        "attestation_days_left": days_left,
        "health": health,
        "updated_at": instant(r.updated_at_us),
    })
}

/// Audits the success (`detail` in identifiers and counts) and answers 200 with `body`.
async fn answer(call: FhirCall, body: &Value, detail: Value) -> Result<HttpResponse, ApiError> {
    call.audit.outcome(200, 0, AuditOutcome::Success, detail.to_string()).await?;
    Ok(HttpResponse::Ok().content_type(JSON).body(body.to_string()))
}

async fn refuse(call: FhirCall, e: RegistryError) -> ApiError {
    let reason = e.reason();
    call.refuse(ApiError::from(e), reason).await
}

/// `GET /admin/sources`
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "source-read").await?;
    let views = call.state.registry.list().await;
    let body = json!({ "sources": views.iter().map(view).collect::<Vec<_>>() });
    answer(call, &body, json!({ "sources": views.len() })).await
}

/// `GET /admin/sources/{id}`
pub async fn read(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "source-read").await?;
    let id = path.into_inner();
    let found =
        call.state.registry.list().await.into_iter().find(|v| v.registration.config.id.as_str() == id);
    let Some(found) = found else { return Err(refuse(call, RegistryError::NotFound).await) };
    answer(call, &view(&found), json!({ "source": id })).await
}

/// `POST /admin/sources`
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "source-register").await?;
    let (call, body) = call.body(&req, payload).await?;
    let config = match input::parse(&body, None) {
        Ok(c) => c,
        Err(e) => return Err(refuse(call, RegistryError::Invalid(e)).await),
    };
    let id = config.id.clone();
    change(call, &id, "register", 201, |registry| async move { registry.register(config).await }).await
}

/// `PUT /admin/sources/{id}`
pub async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "source-change").await?;
    let Ok(id) = SourceId::parse(&path.into_inner()) else {
        return Err(refuse(call, RegistryError::NotFound).await);
    };
    let (call, body) = call.body(&req, payload).await?;
    let config = match input::parse(&body, Some(&id)) {
        Ok(c) => c,
        Err(e) => return Err(refuse(call, RegistryError::Invalid(e)).await),
    };
    change(call, &id, "update", 200, |registry| async move { registry.update(config).await }).await
}

/// `POST /admin/sources/{id}/suspend`
pub async fn suspend(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_state(state, req, path.into_inner(), false).await
}

/// `POST /admin/sources/{id}/resume`
pub async fn resume(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_state(state, req, path.into_inner(), true).await
}

async fn set_state(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: String,
    active: bool,
) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "source-change").await?;
    let Ok(id) = SourceId::parse(&id) else { return Err(refuse(call, RegistryError::NotFound).await) };
    let what = if active { "resume" } else { "suspend" };
    let target = id.clone();
    change(call, &id, what, 200, |registry| async move { registry.set_state(&target, active).await }).await
}

/// `DELETE /admin/sources/{id}`
pub async fn deregister(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "source-deregister").await?;
    let Ok(id) = SourceId::parse(&path.into_inner()) else {
        return Err(refuse(call, RegistryError::NotFound).await);
    };
    let target = id.clone();
    change(call, &id, "deregister", 200, |registry| async move { registry.deregister(&target).await }).await
}

/// Audits the intent to change `id`, makes the change, audits its outcome and answers with
/// the source as it now stands.
async fn change<F, Fut>(
    mut call: FhirCall,
    id: &SourceId,
    what: &'static str,
    status: u16,
    make: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(Arc<crate::registry::Registry>) -> Fut,
    Fut: std::future::Future<Output = Result<Registration, RegistryError>>,
{
    let detail = json!({ "source": id.as_str(), "change": what });
    call.audit.describe(detail.to_string());
    let named: Arc<str> = Arc::from(json!([id.as_str()]).to_string());
    if let Err(e) = call.audit.intent(named).await {
        return Err(refuse(call, RegistryError::Audit(e)).await);
    }
    let registry = call.state.registry.clone();
    let changed = match make(registry.clone()).await {
        Ok(r) => r,
        Err(e) => return Err(refuse(call, e).await),
    };
    call.state.agreements.sources_changed().await;
    let shown = registry.list().await.into_iter().find(|v| v.registration.config.id == *id);
    let body = match shown {
        Some(v) => view(&v),
        // Deregistered: no longer listed.
        None => {
            json!({ "id": id.as_str(), "state": changed.state.as_str(), "updated_at": instant(changed.updated_at_us) })
        }
    };
    let outcome = json!({ "source": id.as_str(), "change": what, "state": changed.state.as_str() });
    call.audit.outcome(status, 0, AuditOutcome::Success, outcome.to_string()).await?;
    let mut res = if status == 201 { HttpResponse::Created() } else { HttpResponse::Ok() };
    if status == 201 {
        let base = &call.state.base_url;
        res.insert_header((header::LOCATION, format!("{base}/admin/sources/{}", id.as_str())));
    }
    Ok(res.content_type(JSON).body(body.to_string()))
}

fn organisation_view(ods: &str, attestation: &tideway_adapters::Attestation, standing: Standing) -> Value {
    let (code, days_left) = standing_fields(standing);
    json!({
        "ods_code": ods,
        "attestation": attestation,
        "attestation_standing": code,
        "attestation_expiring": matches!(standing, Standing::Expiring(_)),
        "attestation_days_left": days_left,
        "served": standing.is_current(),
    })
}

/// `GET /admin/organisations`
pub async fn organisations(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "organisation-read").await?;
    let all = call.state.registry.organisations();
    let body = json!({ "organisations": all.iter().map(|(o, a, s)| organisation_view(o, a, *s)).collect::<Vec<_>>() });
    answer(call, &body, json!({ "organisations": all.len() })).await
}

/// `GET /admin/organisations/{ods}`
pub async fn organisation(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "organisation-read").await?;
    let ods = path.into_inner();
    let found = call.state.registry.organisations().into_iter().find(|(o, _, _)| *o == ods);
    let Some((o, a, s)) = found else {
        let e = ApiError::not_found("no attestation is recorded for that organisation");
        return Err(call.refuse(e, "not-found").await);
    };
    answer(call, &organisation_view(&o, &a, s), json!({ "organisation": o })).await
}

/// `PUT /admin/organisations/{ods}`: `{"attestation": {"scheme", "status", "expires"}}`.
pub async fn put_organisation(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "organisation-change").await?;
    let (mut call, body) = call.body(&req, payload).await?;
    let ods = path.into_inner();
    let Ok(ods) = tideway_profiles::OdsCode::parse(&ods) else {
        return Err(refuse(call, RegistryError::BadOrganisation).await);
    };
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let attestation = match input::attestation(value.get("attestation")) {
        Ok(a) => a,
        Err(e) => return Err(refuse(call, RegistryError::Invalid(e)).await),
    };
    call.audit.describe(json!({ "organisation": ods.as_str(), "change": "attestation" }).to_string());
    if let Err(e) = call.audit.intent(Arc::from("[]")).await {
        return Err(refuse(call, RegistryError::Audit(e)).await);
    }
    let registry = call.state.registry.clone();
    let standing = match registry.put_organisation(ods.as_str(), attestation.clone()).await {
        Ok(s) => s,
        Err(e) => return Err(refuse(call, e).await),
    };
    let detail = json!({ "organisation": ods.as_str(), "standing": standing.code() });
    answer(call, &organisation_view(ods.as_str(), &attestation, standing), detail).await
}
