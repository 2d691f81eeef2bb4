//! Request ids and the access log.
//!
//! Every request gets a new id (a UUID made here, whatever the client sent), answered in
//! `X-Request-ID` and written to the audit trail. The access log names the route
//! pattern, never the path: paths carry patient ids.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest};
use tracing::Instrument;

/// The request's id, stored in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of `req` (set by [`request_id_and_log`]).
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default()
}

/// Assigns the request id and writes one access-log line per request.
pub async fn request_id_and_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // The request id pairs a request's audit records, so the server always makes it: a client
    // could otherwise give many requests one id. A client's own `X-Request-ID` is not logged
    // either: it is free text the client controls.
    let id = uuid::Uuid::new_v4().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();
    // Metric labels and log fields take the method from a fixed set: actix accepts any token
    // as a method, and every new label value would be a new series kept forever.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m.to_owned(),
        _ => "other".to_owned(),
    };
    // The span names the request id only; the route is known after routing and is logged below.
    let span = tracing::info_span!("http.request", request_id = %id, method = %method);
    // One policy snapshot and one set of sources for the whole request, whatever approval or
    // registration lands meanwhile.
    let pins = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .map(|s| (s.records.policy.clone(), s.records.federation.clone()));
    let call = next.call(req).instrument(span);
    let mut res = match pins {
        Some((policy, federation)) => federation.pinned(policy.pinned(call)).await?,
        None => call.await?,
    };
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    // Answers carry patient data (or say whether a patient exists): never cached by a browser
    // or proxy, never content-sniffed.
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let status = res.status().as_u16();
    crate::telemetry::metrics::http_request(&route, &method, status, started.elapsed());
    tracing::info!(
        request_id = %id,
        method = %method,
        route = %route,
        status,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    Ok(res)
}
