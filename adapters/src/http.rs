//! The bounded HTTP every adapter talks through: one reqwest client set-up, one way to read a
//! body within the call's cap, one map from transport failures to [`AdapterError`].
//!
//! Redirects are never followed (a compromised or misconfigured source must not be able to
//! point the gateway at another host), no proxy is used, the body is refused when it announces
//! more than the cap and cut off as soon as it passes it, and the source's body never reaches an
//! error message.

use futures::StreamExt;
use reqwest::header::{ACCEPT, HeaderValue};
use serde_json::Value;

use crate::adapter::{AdapterError, CallContext};
use crate::source::{ClientKey, SourceTls};

/// The FHIR JSON media type.
pub const FHIR_JSON: &str = "application/fhir+json";

/// The reqwest client could not be built: TLS set-up, or a certificate or key file that cannot
/// be read or is not PEM (the message names the file, never its content).
#[derive(Debug, thiserror::Error)]
#[error("the HTTP client could not be built{0}")]
pub struct ClientBuildError(String);

/// A client that follows no redirect and uses no proxy, presenting `tls`'s client certificate
/// and trusting its authority when given.
pub fn client(tls: Option<&SourceTls>) -> Result<reqwest::Client, ClientBuildError> {
    // reqwest is built without a bundled crypto provider; binaries install ring at start,
    // but tests and tools that only build an adapter must work too.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: a provider is then installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy();
    if let Some(tls) = tls {
        let read = |path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|e| ClientBuildError(format!(": cannot read {}: {e}", path.display())))
        };
        let mut identity = read(&tls.client_certificate)?;
        identity.push(b'\n');
        match &tls.client_key {
            ClientKey::File(path) => identity.extend(read(path)?),
            ClientKey::Open(pem) => identity.extend_from_slice(secrecy::ExposeSecret::expose_secret(pem)),
            ClientKey::Sealed { .. } => {
                return Err(ClientBuildError(": the client key is sealed and was not opened".to_owned()));
            }
        }
        let identity = reqwest::Identity::from_pem(&identity).map_err(|_| {
            ClientBuildError(format!(
                ": {} and {} are not a PEM certificate and its private key",
                tls.client_certificate.display(),
                tls.client_key.describe()
            ))
        })?;
        builder = builder.identity(identity);
        if let Some(ca) = &tls.ca_certificate {
            let authority = reqwest::Certificate::from_pem(&read(ca)?)
                .map_err(|_| ClientBuildError(format!(": {} is not a PEM certificate", ca.display())))?;
            builder = builder.add_root_certificate(authority);
        }
    }
    builder.build().map_err(|_| ClientBuildError(String::new()))
}

/// `base` with a `/` at the end of its path, so relative steps land under it.
pub fn with_trailing_slash(mut base: url::Url) -> url::Url {
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base
}

/// `base` with `segments` appended as path steps (each percent-encoded as one step). An id made
/// only of dots is refused: the url crate would treat it as a step up, quietly sending a
/// different request.
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

/// An id made only of dots: FHIR allows it, but in a URL path `.` and `..` are steps, not names
/// (and the longer ones are refused with them rather than told apart).
pub fn is_dot_segment(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == b'.')
}

/// Sends `request` (asking for `accept`, with the gateway's request id) and reads the whole body
/// within `ctx.max_body_bytes`. Redirects, error statuses and oversized bodies are errors.
pub async fn body(
    request: reqwest::RequestBuilder,
    accept: &'static str,
    ctx: &CallContext,
) -> Result<Vec<u8>, AdapterError> {
    let request = request.header(ACCEPT, accept).header(
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

/// [`body`] asking for FHIR JSON, parsed as JSON.
pub async fn send_json(request: reqwest::RequestBuilder, ctx: &CallContext) -> Result<Value, AdapterError> {
    let body = body(request, FHIR_JSON, ctx).await?;
    serde_json::from_slice(&body).map_err(|_| AdapterError::Malformed("response body is not JSON".into()))
}

/// What a transport failure means to the gateway.
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

/// Runs `call` until the context's deadline; past it, [`AdapterError::Timeout`].
pub async fn within<T>(
    ctx: &CallContext,
    call: impl std::future::Future<Output = Result<T, AdapterError>>,
) -> Result<T, AdapterError> {
    tokio::time::timeout_at(ctx.deadline, call).await.map_err(|_| AdapterError::Timeout)?
}
