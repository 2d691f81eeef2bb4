//! The authenticated FHIR request: an actix extractor that authenticates the bearer token,
//! negotiates the content type and starts the request's audit, auditing a refusal of either
//! (unless the peer has sent too many requests without a valid token: see [`super::throttle`]).
//!
//! Handlers take a [`FhirCall`], hand it to the record service, and finish with
//! [`FhirCall::respond`] (outcome audited before the body leaves) or [`FhirCall::refuse`].

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use tideway_auth::Interaction;
use tideway_auth::service::TokenError;

use super::FHIR_JSON;
use super::error::ApiError;
use super::middleware::request_id;
use super::params::{Params, negotiate};
use super::throttle;
use crate::Principal;
use crate::audit::{AuditOutcome, AuditedCall};
use crate::record::RecordError;
use crate::state::AppState;

/// The audit action of a route, set as resource data when routes are registered.
#[derive(Debug, Clone, Copy)]
pub struct Action(pub &'static str);

/// An authenticated, negotiated FHIR request and its audit.
pub struct FhirCall {
    /// Shared state.
    pub state: web::Data<AppState>,
    /// Who asks.
    pub principal: Principal,
    /// The request's audit.
    pub audit: AuditedCall,
}

impl FromRequest for FhirCall {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req.app_data::<web::Data<AppState>>().cloned().ok_or_else(ApiError::internal)?;
            let action = req.app_data::<Action>().map_or("unsupported", |a| a.0);
            let call = Self::authenticate(state, &req, action).await?;
            match negotiate(&req) {
                Ok(()) => Ok(call),
                Err(e) => Err(call.refuse(e, "not-acceptable").await),
            }
        })
    }
}

impl FhirCall {
    /// Authenticates the request. A refusal names no one and releases nothing: it is counted
    /// per peer in the audit's tally of unauthenticated refusals (written per interval), not
    /// written on its own.
    pub async fn authenticate(
        state: web::Data<AppState>,
        req: &HttpRequest,
        action: &'static str,
    ) -> Result<Self, ApiError> {
        let rid = request_id(req);
        let mut headers = req.headers().get_all("authorization");
        let header = headers.next().map(|v| v.to_str().unwrap_or_default());
        if headers.next().is_some() {
            // Two credentials: which one would a proxy in front have checked? Refuse both.
            throttle::count_refusal(&state, req, "duplicate-authorization")?;
            return Err(ApiError::invalid("give one Authorization header, not several"));
        }
        match state.tokens.authenticate_over(header, super::tls::certificate_of(req).as_deref()) {
            Ok(principal) => {
                let audit = state.audit.begin(&rid, action, Some(&principal));
                let call = Self { state, principal, audit };
                // With `registry.require_consumer_attestation`, an organisation without a
                // current information-governance attestation is served nothing.
                if let Some(why) = call.state.registry.refuses_consumer(&call.principal) {
                    let e = ApiError::forbidden(format!(
                        "requests from organisation {} are refused: {why}",
                        call.principal.organisation.as_str()
                    ));
                    return Err(call.refuse(e, "attestation").await);
                }
                Ok(call)
            }
            Err(e) => {
                throttle::count_refusal(
                    &state,
                    req,
                    if header.is_some() { "invalid-token" } else { "no-token" },
                )?;
                // Credentials of another scheme (Basic, say) are no bearer token at all: RFC 6750
                // 3.1 asks for a challenge without an error code then, as for none.
                let bearer = header.is_some_and(|h| {
                    h.trim().split_once(' ').is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                });
                let err = match e {
                    TokenError::Missing => ApiError::missing_token(),
                    _ if !bearer => ApiError::missing_token(),
                    TokenError::Expired => ApiError::expired_token(),
                    _ => ApiError::invalid_token("the access token is not valid"),
                };
                Err(err)
            }
        }
    }

    /// Refuses with `err` and audits the refusal under `reason`.
    pub async fn refuse(self, err: ApiError, reason: &str) -> ApiError {
        // 501 is a refusal of what is not offered; other 5xx are failures on our side.
        let failed = err.status.is_server_error() && err.status != StatusCode::NOT_IMPLEMENTED;
        self.audit.refused(err.status.as_u16(), failed, reason).await;
        err
    }

    /// Refuses because the record service could not answer.
    pub async fn fail(self, e: RecordError) -> ApiError {
        if matches!(e, RecordError::Refused(_) | RecordError::RelationshipRequired) {
            crate::telemetry::metrics::policy_denial(crate::telemetry::metrics::Denial::Agreement);
        }
        let reason = e.reason();
        self.refuse(ApiError::from(e), reason).await
    }

    /// 403 (audited) unless the granted scopes permit `interaction` (a read or a search) on
    /// `resource_type`.
    pub async fn require(self, interaction: Interaction, resource_type: &str) -> Result<Self, ApiError> {
        if self.principal.may(interaction, resource_type) {
            return Ok(self);
        }
        let verb = if interaction == Interaction::Search { "searching" } else { "reading" };
        let e =
            ApiError::insufficient_scope(format!("the granted scopes do not allow {verb} {resource_type}"));
        Err(self.refuse(e, "scope").await)
    }

    /// The query parameters, accepting only `known` (a refusal is audited).
    pub async fn params(self, req: &HttpRequest, known: &[&str]) -> Result<(Self, Params), ApiError> {
        match Params::parse(req, known) {
            Ok(p) => Ok((self, p)),
            Err(e) => Err(self.refuse(e, "bad-request").await),
        }
    }

    /// The request body, read within `server.max_request_bytes` and the request timeout (a
    /// refusal is audited).
    pub async fn body(
        self,
        req: &HttpRequest,
        payload: web::Payload,
    ) -> Result<(Self, web::Bytes), ApiError> {
        let limit = self.state.settings.server.max_request_bytes;
        match super::token::read_capped(req, payload, limit, self.state.settings.request_timeout()).await {
            Ok(b) => Ok((self, b)),
            Err(e) => Err(self.refuse(e, "bad-request").await),
        }
    }

    /// Writes the outcome record and, only if that succeeded, the response.
    pub async fn respond(
        self,
        body: Vec<u8>,
        released: usize,
        outcome: AuditOutcome,
        detail: String,
    ) -> Result<HttpResponse, ApiError> {
        self.audit.outcome(200, released, outcome, detail).await?;
        Ok(HttpResponse::Ok().content_type(FHIR_JSON).body(body))
    }

    /// [`Self::respond`] for one resource whose `meta` speaks for exactly these bytes (one the
    /// gateway keeps versions of, or a source's resource as the source versioned it): its
    /// `versionId` becomes a weak `ETag` and its `lastUpdated` the `Last-Modified`.
    pub async fn respond_versioned(
        self,
        body: Vec<u8>,
        outcome: AuditOutcome,
        detail: String,
    ) -> Result<HttpResponse, ApiError> {
        let validators = super::render::validators(&body);
        self.audit.outcome(200, 1, outcome, detail).await?;
        let mut res = HttpResponse::Ok();
        res.content_type(FHIR_JSON);
        for h in validators {
            res.insert_header(h);
        }
        Ok(res.body(body))
    }
}

/// Refuses a request the FHIR API does not offer (unknown path, method or operation), after
/// authenticating it (401 first, so nothing is revealed to the unauthenticated), and audits it.
pub async fn refuse_unsupported(state: web::Data<AppState>, req: &HttpRequest, e: ApiError) -> ApiError {
    match FhirCall::authenticate(state, req, "unsupported").await {
        Ok(call) => call.refuse(e, "unsupported").await,
        Err(unauthenticated) => unauthenticated,
    }
}
