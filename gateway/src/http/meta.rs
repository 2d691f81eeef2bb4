//! Public endpoints: the CapabilityStatement, SMART configuration, liveness and readiness, and
//! metrics.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::params::negotiate;
use super::{ApiError, FHIR_JSON};
use crate::state::AppState;

/// `GET /metadata`
pub async fn metadata(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    negotiate(&req)?;
    Ok(HttpResponse::Ok().content_type(FHIR_JSON).body(state.capability.clone()))
}

/// `GET /.well-known/smart-configuration`
pub async fn smart_configuration(state: web::Data<AppState>) -> HttpResponse {
    let body = json!({
        "issuer": state.base_url,
        "token_endpoint": format!("{}/token", state.base_url),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": ["system/*.read", "system/*.rs"],
        "capabilities": ["client-confidential-asymmetric"]
    });
    HttpResponse::Ok().content_type("application/json").body(body.to_string())
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(r#"{"status":"ok"}"#)
}

/// `GET /readyz`: the store answers, so requests can be audited.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().content_type("application/json").body(r#"{"status":"ready"}"#),
        Err(_) => HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(r#"{"status":"not ready","reason":"store unavailable"}"#),
    }
}

/// `GET /metrics` on the operator listener.
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics::encode())
}

/// `GET /metrics` on the main listener: the same, for holders of a valid access token.
pub async fn metrics_with_token(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    bearer_principal(&state, &req)?;
    Ok(metrics().await)
}

/// Who the request's access token names, for the operational endpoints of the main listener
/// (metrics, the dashboard's figures), which carry no patient data and are not audited; 401
/// without a valid token.
pub(crate) fn bearer_principal(state: &AppState, req: &HttpRequest) -> Result<crate::Principal, ApiError> {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    match state.tokens.authenticate_over(header, super::tls::certificate_of(req).as_deref()) {
        Ok(principal) => Ok(principal),
        Err(tideway_auth::service::TokenError::Missing) => Err(ApiError::missing_token()),
        Err(_) => Err(ApiError::invalid_token("the access token is not valid")),
    }
}
