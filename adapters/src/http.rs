//! What every HTTP adapter does the same way once a request is built: send it, refuse redirects
//! and error statuses, read the body within the call's cap (never buffering more than the cap,
//! and not at all when `Content-Length` is already over it), and turn transport failures into
//! [`AdapterError`]s. One copy, so every dialect is bounded alike.

use futures::StreamExt;
use reqwest::header::{ACCEPT, HeaderValue};
use serde_json::Value;

use crate::adapter::{AdapterError, CallContext};

/// The FHIR JSON media type (R4 and STU3 alike).
pub const FHIR_JSON: &str = "application/fhir+json";

/// The reqwest client could not be built (TLS set-up).
#[derive(Debug, thiserror::Error)]
#[error("the HTTP client could not be built")]
pub struct ClientBuildError;

/// A client that never follows redirects and ignores proxy settings, with a crypto provider
/// installed if the process has none yet (binaries install ring at start; tests and tools that
/// only build an adapter must work too).
pub fn client() -> Result<reqwest::Client, ClientBuildError> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: a provider is then installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|_| ClientBuildError)
}

/// `base` with a trailing `/`, so joining a relative path keeps its last segment.
pub fn with_trailing_slash(mut base: url::Url) -> url::Url {
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base
}

/// Sends `request` with `Accept: application/fhir+json` and the context's `X-Request-ID`, and
/// reads its body as JSON within the body cap; redirects and error statuses are errors.
pub async fn send_json(request: reqwest::RequestBuilder, ctx: &CallContext) -> Result<Value, AdapterError> {
    let body = send(request, ctx).await?;
    serde_json::from_slice(&body).map_err(|_| AdapterError::Malformed("response body is not JSON".into()))
}

/// [`send_json`] without the JSON parse: the body's bytes, within the cap.
pub async fn send(request: reqwest::RequestBuilder, ctx: &CallContext) -> Result<Vec<u8>, AdapterError> {
    let request = request.header(ACCEPT, FHIR_JSON).header(
        "X-Request-ID",
        HeaderValue::from_str(&ctx.request_id).unwrap_or_else(|_| HeaderValue::from_static("invalid")),
    );
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    if status.is_redirection() {
        return Err(AdapterError::ForeignLink);
    }
    if !status.is_success() {
        return Err(AdapterError::Status(status.as_u16()));
    }
    let cap = ctx.max_body_bytes;
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(AdapterError::TooLarge(cap));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(transport_error)?;
        if body.len() + chunk.len() > cap {
            return Err(AdapterError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Runs one adapter call to the context's deadline: past it, [`AdapterError::Timeout`].
pub async fn within<T>(
    ctx: &CallContext,
    call: impl Future<Output = Result<T, AdapterError>>,
) -> Result<T, AdapterError> {
    tokio::time::timeout_at(ctx.deadline, call).await.map_err(|_| AdapterError::Timeout)?
}

/// A reqwest failure in kind: a timeout, a redirect (never followed), an undecodable body, or
/// a source that could not be reached.
pub fn transport_error(e: reqwest::Error) -> AdapterError {
    if e.is_timeout() {
        AdapterError::Timeout
    } else if e.is_redirect() {
        AdapterError::ForeignLink
    } else if e.is_decode() {
        AdapterError::Malformed("response body could not be decoded".into())
    } else {
        AdapterError::Unreachable
    }
}

/// An id made only of dots: FHIR allows it, but in a URL path `.` and `..` are steps, not names
/// (and the longer ones are refused with them rather than told apart).
pub fn is_dot_segment(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == b'.')
}

/// `base` with `segments` appended as path segments (each percent-encoded as needed). Refuses
/// a dot segment, which the url crate would silently resolve into another request.
pub fn url_with(base: &url::Url, segments: &[&str]) -> Result<url::Url, AdapterError> {
    if segments.iter().any(|s| is_dot_segment(s)) {
        return Err(AdapterError::Malformed("an id is a path step (. or ..)".into()));
    }
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|_| AdapterError::Malformed("source base URL cannot take a path".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}
