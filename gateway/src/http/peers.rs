//! Open connections per peer (`server.max_connections_per_peer`): one address cannot keep many
//! connections in use while others wait. A connection beyond the cap still holds its socket
//! until its first request is answered or the request timeout cuts it off.
//!
//! Each accepted connection takes a slot for its peer (an IPv4 address, or the /64 network of an
//! IPv6 one, as the token-less rate limit counts them) when actix hands it over, and gives it
//! back when the connection closes: the slot lives in the connection's own data, so whatever
//! ends the connection (the client, a timeout, shutdown) ends it. A connection beyond the cap
//! is kept only long enough to say so: its request is answered 429 with an OperationOutcome
//! and `Retry-After`, and the connection is closed. A slow or silent one is still cut off by
//! the request timeout. Behind a load balancer every client shares its address: set the cap
//! to 0 (no cap) there and let the balancer limit connections.

use std::any::Any;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};

use super::error::ApiError;

/// The key a peer is counted under: its IPv4 address, or the /64 network of an IPv6 one (a
/// single host commonly holds a whole /64). An unknown peer is counted under the unspecified
/// address.
pub fn peer_key(addr: Option<SocketAddr>) -> IpAddr {
    match addr.map(|a| a.ip().to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let network = u128::from(v6) & !(u128::MAX >> 64);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        Some(v4) => v4,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// How many connections each peer has open now.
#[derive(Debug)]
pub struct PeerConnections {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's hold on one of its peer's slots, given back when the connection's data is
/// dropped (the connection closed).
#[derive(Debug)]
struct PeerSlot {
    peer: IpAddr,
    table: Arc<PeerConnections>,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        self.table.release(self.peer);
    }
}

/// Marks a connection opened beyond its peer's cap.
#[derive(Debug, Clone, Copy)]
struct OverCap;

impl PeerConnections {
    /// A table allowing `cap` open connections per peer (0: no cap).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self { cap, open: Mutex::new(HashMap::new()) })
    }

    /// Connections `peer` has open now.
    pub fn open_for(&self, peer: IpAddr) -> usize {
        self.open.lock().map_or(0, |m| m.get(&peer).copied().unwrap_or(0))
    }

    /// Takes a slot for `peer`: `None` when the peer already holds its cap.
    fn take(self: &Arc<Self>, peer: IpAddr) -> Option<PeerSlot> {
        // A poisoned lock (a panic elsewhere while holding it) keeps counting: the map itself
        // is never left half-written by the operations below.
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(peer).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(PeerSlot { peer, table: self.clone() })
    }

    fn release(&self, peer: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&peer);
            }
        }
    }

    /// actix-web's `on_connect` for a new connection (plain or TLS): takes a slot for its peer,
    /// or marks it over the cap.
    pub fn on_connect(self: &Arc<Self>, connection: &dyn Any, data: &mut Extensions) {
        if self.cap == 0 {
            return;
        }
        type Plain = actix_web::rt::net::TcpStream;
        type Tls = actix_tls::accept::rustls_0_23::TlsStream<Plain>;
        let addr = connection
            .downcast_ref::<Plain>()
            .or_else(|| connection.downcast_ref::<Tls>().map(|t| t.get_ref().0))
            .and_then(|s| s.peer_addr().ok());
        match self.take(peer_key(addr)) {
            Some(slot) => {
                data.insert(slot);
            }
            None => {
                data.insert(OverCap);
            }
        }
    }
}

/// Answers every request on a connection opened beyond its peer's cap with 429 and closes it.
pub async fn refuse_over_cap(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if req.conn_data::<OverCap>().is_none() {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    }
    let e = ApiError::throttled_because(
        "too many open connections from this address: reuse or close the others",
        1,
    );
    let mut res = e.error_response();
    res.head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
    Ok(req.into_response(res).map_into_right_body())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    fn key_of(peer: &str) -> IpAddr {
        peer_key(Some(peer.parse().unwrap()))
    }

    #[test]
    fn peers_are_counted_by_ipv4_address_and_ipv6_network() {
        assert_eq!(key_of("192.0.2.7:443"), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(key_of("[::ffff:192.0.2.7]:443"), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(key_of("[2001:db8:1:2:aaaa::1]:443"), key_of("[2001:db8:1:2:bbbb::9]:80"));
        assert_ne!(key_of("[2001:db8:1:2::1]:443"), key_of("[2001:db8:1:3::1]:443"));
        assert_eq!(peer_key(None), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn a_peer_holds_at_most_its_cap_and_a_closed_connection_gives_its_slot_back() {
        let table = PeerConnections::new(2);
        let (a, b) = (key_of("192.0.2.1:1"), key_of("192.0.2.2:1"));
        let first = table.take(a).unwrap();
        let second = table.take(a).unwrap();
        assert!(table.take(a).is_none(), "a third from the same peer");
        assert!(table.take(b).is_some(), "another peer is not held back");
        drop(first);
        assert_eq!(table.open_for(a), 1);
        let third = table.take(a).unwrap();
        drop((second, third));
        assert_eq!(table.open_for(a), 0);
        assert!(table.open.lock().unwrap().get(&a).is_none(), "a peer with none open is forgotten");
    }
}
