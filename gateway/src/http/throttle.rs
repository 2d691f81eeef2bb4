//! The edge's guard against floods of requests without a valid access token: each peer may
//! send only so many (`server.unauthenticated_rate_limit`) before they are refused with 429,
//! before anything is audited, so such a flood can neither grow the audit trail without bound
//! nor push the audit store into the 503 that would stop everyone. Requests with a valid token
//! never pass through here.

use actix_web::HttpRequest;

use super::error::ApiError;
use crate::state::AppState;

/// Counts one request without a valid token against its peer, refused for `reason`, in the
/// peer's limit and in the audit's tally of such refusals: `Err` (429 `throttled`, with
/// `Retry-After`, tallied as `throttled`) once the peer is over its limit.
pub(super) fn count_refusal(
    state: &AppState,
    req: &HttpRequest,
    reason: &'static str,
) -> Result<(), ApiError> {
    count(state, req, reason).map_err(|wait| ApiError::throttled(wait.secs()))
}

/// [`count_refusal`], answering how long to wait when the peer is over its limit.
pub(super) fn count(
    state: &AppState,
    req: &HttpRequest,
    reason: &'static str,
) -> Result<(), tideway_auth::RetryAfter> {
    let peer = super::peers::peer_key(req.peer_addr());
    let rid = super::middleware::request_id(req);
    match state.unauthenticated.check(&peer) {
        Ok(()) => {
            state.refusals.count(peer, reason, &rid);
            Ok(())
        }
        Err(wait) => {
            state.refusals.count(peer, "throttled", &rid);
            Err(wait)
        }
    }
}
