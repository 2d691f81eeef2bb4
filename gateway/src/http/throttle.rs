//! The edge's guard against floods of requests without a valid access token: each peer may
//! send only so many (`server.unauthenticated_rate_limit`) before they are refused with 429,
//! before anything is audited, so such a flood can neither grow the audit trail without bound
//! nor push the audit store into the 503 that would stop everyone. Requests with a valid token
//! never pass through here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use actix_web::HttpRequest;

use super::error::ApiError;
use crate::state::AppState;

/// The key a peer is counted under: its IPv4 address, or the /64 network of an IPv6 one (a
/// single host commonly holds a whole /64, so counting addresses would count nothing). A
/// request whose peer is unknown is counted under the unspecified address.
fn peer_key(req: &HttpRequest) -> IpAddr {
    match req.peer_addr().map(|a| a.ip().to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let network = u128::from(v6) & !(u128::MAX >> 64);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        Some(v4) => v4,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

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
    let peer = peer_key(req);
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

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn key_of(peer: &str) -> IpAddr {
        peer_key(&TestRequest::default().peer_addr(peer.parse().unwrap()).to_http_request())
    }

    #[test]
    fn peers_are_counted_by_ipv4_address_and_ipv6_network() {
        assert_eq!(key_of("192.0.2.7:443"), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(key_of("[::ffff:192.0.2.7]:443"), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(key_of("[2001:db8:1:2:aaaa::1]:443"), key_of("[2001:db8:1:2:bbbb::9]:80"));
        assert_ne!(key_of("[2001:db8:1:2::1]:443"), key_of("[2001:db8:1:3::1]:443"));
        assert_eq!(peer_key(&TestRequest::default().to_http_request()), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
}
