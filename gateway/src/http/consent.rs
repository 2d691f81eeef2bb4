//! `Consent`: `POST /Consent`, `PUT /Consent/{id}` (the next version; withdrawal is a version
//! with `status = inactive`), `GET /Consent/{id}`, `GET /Consent/{id}/_history` and
//! `GET /Consent?patient=`. The record service decides who may; every call is audited.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::FHIR_JSON;
use super::call::FhirCall;
use super::error::ApiError;
use crate::audit::AuditOutcome;

/// `POST /Consent`
pub async fn create(
    call: FhirCall,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    write(call, req, payload, None).await
}

/// `PUT /Consent/{id}`
pub async fn update(
    call: FhirCall,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    write(call, req, payload, Some(path.into_inner())).await
}

async fn write(
    call: FhirCall,
    req: HttpRequest,
    payload: web::Payload,
    id: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let (mut call, body) = call.body(&req, payload).await?;
    let json_body = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/fhir+json") || t.starts_with("application/json"));
    if !json_body {
        let e = ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tideway_profiles::IssueType::NotSupported,
            "send the Consent as application/fhir+json",
        );
        return Err(call.refuse(e, "bad-request").await);
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return Err(call.refuse(ApiError::invalid("the body is not JSON"), "bad-request").await),
    };
    let state = call.state.clone();
    let stored =
        match state.records.record_consent(&mut call.audit, &call.principal, value, id.as_deref()).await {
            Ok(s) => s,
            Err(e) => return Err(call.fail(e).await),
        };
    let consent_id = stored["id"].as_str().unwrap_or_default().to_owned();
    let version = stored["meta"]["versionId"].as_str().unwrap_or("1").to_owned();
    call.audit
        .outcome(
            if version == "1" { 201 } else { 200 },
            1,
            AuditOutcome::Success,
            json!({"consent": consent_id, "version": version}).to_string(),
        )
        .await?;
    let location = format!("{}/Consent/{consent_id}/_history/{version}", state.base_url);
    let mut res = if version == "1" { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(res
        .content_type(FHIR_JSON)
        .insert_header((header::LOCATION, location))
        .insert_header((header::ETAG, format!("W/\"{version}\"")))
        .body(stored.to_string()))
}

/// `GET /Consent/{id}`
pub async fn read(call: FhirCall, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    versions(call, &path.into_inner(), false).await
}

/// `GET /Consent/{id}/_history`
pub async fn history(call: FhirCall, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    versions(call, &path.into_inner(), true).await
}

async fn versions(mut call: FhirCall, id: &str, history: bool) -> Result<HttpResponse, ApiError> {
    let state = call.state.clone();
    let found = match state.records.consent_versions(&mut call.audit, &call.principal, id, history).await {
        Ok(v) => v,
        Err(e) => return Err(call.fail(e).await),
    };
    let detail = json!({"consent": id, "versions": found.len()}).to_string();
    if history {
        let body = bundle(&state.base_url, "history", &found);
        return call.respond(body.to_string().into_bytes(), found.len(), AuditOutcome::Success, detail).await;
    }
    let current = found.into_iter().next_back().unwrap_or(Value::Null);
    call.respond_versioned(current.to_string().into_bytes(), AuditOutcome::Success, detail).await
}

/// `GET /Consent?patient=`
pub async fn search(call: FhirCall, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (mut call, params) = call.params(&req, &["patient"]).await?;
    let state = call.state.clone();
    let patient = match params.all("patient").as_slice() {
        [one] if !one.contains(',') => super::type_search::patient_reference(one, &state.base_url, "patient"),
        _ => Err(ApiError::invalid("give exactly one patient: Consent?patient={id}").at("patient")),
    };
    let patient = match patient {
        Ok(p) => p,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let found = match state.records.consents_of(&mut call.audit, &call.principal, &patient).await {
        Ok(v) => v,
        Err(e) => return Err(call.fail(e).await),
    };
    let detail = json!({"consents": found.len()}).to_string();
    let body = bundle(&state.base_url, "searchset", &found);
    call.respond(body.to_string().into_bytes(), found.len(), AuditOutcome::Success, detail).await
}

fn bundle(base_url: &str, kind: &str, consents: &[Value]) -> Value {
    let entry: Vec<Value> = consents
        .iter()
        .map(|c| {
            let id = c["id"].as_str().unwrap_or_default();
            let mut e = json!({"fullUrl": format!("{base_url}/Consent/{id}"), "resource": c});
            if kind == "searchset" {
                e["search"] = json!({"mode": "match"});
            } else {
                e["request"] = json!({"method": if c["meta"]["versionId"] == "1" { "POST" } else { "PUT" }, "url": format!("Consent/{id}")});
            }
            e
        })
        .collect();
    json!({"resourceType": "Bundle", "type": kind, "total": consents.len(), "entry": entry})
}
