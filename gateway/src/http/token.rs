//! `POST /token`: SMART Backend Services token exchange, answered in RFC 6749 form.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde_json::json;

use super::ApiError;
use super::middleware::request_id;
use crate::audit::AuditOutcome;
use crate::state::AppState;

/// Reads a request body, refusing (413) past `limit` without buffering more than that, and
/// (408) when the whole body has not arrived within `timeout`.
pub async fn read_capped(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<web::Bytes, ApiError> {
    tokio::time::timeout(timeout, read_all(req, payload, limit))
        .await
        .unwrap_or_else(|_| Err(ApiError::request_timeout()))
}

async fn read_all(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(limit));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::invalid("the request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn oauth_response(status: u16, body: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .body(body.to_owned())
}

/// The OAuth errors of a token request whose client was not verified: a malformed request, or
/// an assertion that names no registered client or does not verify.
const UNAUTHENTICATED: [&str; 3] = ["invalid_request", "invalid_client", "unsupported_grant_type"];

/// `POST /token`
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body =
        read_capped(&req, payload, state.settings.server.max_request_bytes, state.settings.request_timeout())
            .await?;
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    let rid = request_id(&req);
    let result = if form {
        state.tokens.exchange_over(&body, super::tls::certificate_of(&req).as_deref()).await
    } else {
        Err(tideway_auth::service::OAuthError::invalid_request(
            "the token request must be application/x-www-form-urlencoded",
        ))
    };
    match result {
        Ok(granted) => {
            // The grant is audited with the user the client asserted.
            let audit = state.audit.begin(&rid, "token", Some(&granted.principal));
            audit
                .outcome(200, 0, AuditOutcome::Success, json!({"scope": granted.response.scope}).to_string())
                .await?;
            let body = serde_json::to_string(&granted.response).map_err(|_| ApiError::internal())?;
            Ok(oauth_response(200, &body))
        }
        Err(e) => {
            let e = if e.verified_client.is_none() && UNAUTHENTICATED.contains(&e.error) {
                // No verified client: counted per peer (and throttled), not written one by one.
                match super::throttle::count(&state, &req, e.error) {
                    Ok(()) => e,
                    Err(wait) => tideway_auth::service::OAuthError::slow_down(wait),
                }
            } else {
                // Best effort: nothing is granted either way. A client whose signature verified
                // is named: a replayed assertion or a missing certificate is its to answer for.
                let mut audit = state.audit.begin(&rid, "token", None);
                if let Some(client) = &e.verified_client {
                    audit.on_behalf_of_client(client);
                }
                let _ = audit
                    .outcome(e.status, 0, AuditOutcome::Denied, json!({"error": e.error}).to_string())
                    .await;
                e
            };
            let mut res = oauth_response(e.status, &e.to_json());
            if let Some(secs) = e.retry_after_secs {
                res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            }
            Ok(res)
        }
    }
}
