//! Refusals of requests that never authenticated, counted rather than written one by one.
//!
//! One durable record per authenticated request is the trail's promise; a request without a
//! valid token (none, a bad one, two `Authorization` headers, a `/token` assertion that does
//! not verify, or one throttled for sending those) names no one, and writing a record for each
//! would let anyone grow the store without bound or push the audit store into the 503 that
//! stops everyone. So they are counted in memory per peer (an IPv4 address or an IPv6 /64) and
//! written as one `unauthenticated` record per peer per interval: how many, for which reasons,
//! between when, and the first request ids of the interval (so a client told its
//! `X-Request-ID` can still be found). The map holds at most [`MAX_PEERS`] peers; beyond, the
//! rest are counted together under the unspecified address.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use serde_json::json;

use super::{AuditOutcome, AuditPhase, AuditRecord, AuditTrail};

/// Most peers counted apart in one interval.
pub const MAX_PEERS: usize = 10_000;

/// Most request ids kept per peer per interval.
pub const KEPT_REQUEST_IDS: usize = 16;

#[derive(Debug, Default)]
struct Count {
    refusals: u64,
    reasons: BTreeMap<&'static str, u64>,
    request_ids: Vec<String>,
    first_us: i64,
    last_us: i64,
}

/// The counts of the current interval.
#[derive(Debug, Default)]
pub struct RefusalTally {
    peers: Mutex<HashMap<IpAddr, Count>>,
}

impl RefusalTally {
    /// Counts one refusal of `peer`'s request `request_id` for `reason`.
    pub fn count(&self, peer: IpAddr, reason: &'static str, request_id: &str) {
        let now = crate::epoch_us::now();
        let Ok(mut peers) = self.peers.lock() else { return };
        let key = if peers.len() >= MAX_PEERS && !peers.contains_key(&peer) {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            peer
        };
        let count = peers.entry(key).or_insert_with(|| Count { first_us: now, ..Count::default() });
        count.refusals += 1;
        *count.reasons.entry(reason).or_default() += 1;
        if count.request_ids.len() < KEPT_REQUEST_IDS {
            count.request_ids.push(request_id.to_owned());
        }
        count.last_us = now;
    }

    /// Takes the interval's counts as one record per peer (and starts a new interval).
    pub fn take(&self) -> Vec<AuditRecord> {
        let taken = match self.peers.lock() {
            Ok(mut peers) => std::mem::take(&mut *peers),
            Err(_) => return Vec::new(),
        };
        let mut records: Vec<AuditRecord> = taken
            .into_iter()
            .map(|(peer, c)| {
                let mut r = AuditRecord::new(
                    &format!("refusals-{}", uuid::Uuid::new_v4().simple()),
                    "unauthenticated",
                    None,
                );
                r.phase = AuditPhase::Outcome;
                r.outcome = AuditOutcome::Denied;
                r.http_status = 401;
                r.detail = json!({
                    "peer": peer.to_string(),
                    "refusals": c.refusals,
                    "reasons": c.reasons,
                    "first": crate::epoch_us::rfc3339_seconds(c.first_us),
                    "last": crate::epoch_us::rfc3339_seconds(c.last_us),
                    "request_ids": c.request_ids,
                })
                .to_string();
                r
            })
            .collect();
        records.sort_by(|a, b| a.detail.cmp(&b.detail));
        records
    }

    /// Writes the interval's counts to `trail`. A record that cannot be written is logged and
    /// lost with its counts (they name no one and released nothing).
    pub async fn flush(&self, trail: &AuditTrail) {
        for record in self.take() {
            if let Err(e) = trail.append(&record).await {
                tracing::error!(error = %e, "the count of unauthenticated refusals could not be written");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_per_peer_with_their_reasons_and_first_request_ids() {
        let tally = RefusalTally::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::".parse().unwrap();
        for n in 0..20 {
            tally.count(a, if n % 2 == 0 { "invalid-token" } else { "throttled" }, &format!("rid-{n}"));
        }
        tally.count(b, "duplicate-authorization", "rid-b");
        let records = tally.take();
        assert_eq!(records.len(), 2);
        let details: Vec<serde_json::Value> =
            records.iter().map(|r| serde_json::from_str(&r.detail).unwrap()).collect();
        let of_a = details.iter().find(|d| d["peer"] == "192.0.2.1").unwrap();
        assert_eq!(of_a["refusals"], 20);
        assert_eq!(of_a["reasons"], json!({"invalid-token": 10, "throttled": 10}));
        assert_eq!(of_a["request_ids"].as_array().unwrap().len(), KEPT_REQUEST_IDS);
        assert_eq!(of_a["request_ids"][0], "rid-0");
        assert!(records.iter().all(|r| r.action == "unauthenticated" && r.outcome == AuditOutcome::Denied));
        assert!(tally.take().is_empty(), "taking starts a new interval");
    }

    #[test]
    fn beyond_the_peer_bound_the_rest_are_counted_together() {
        let tally = RefusalTally::default();
        for n in 0..(MAX_PEERS as u32 + 5) {
            tally.count(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)), "invalid-token", "rid");
        }
        let records = tally.take();
        assert_eq!(records.len(), MAX_PEERS + 1);
        let rest = records.iter().find(|r| r.detail.contains("\"peer\":\"0.0.0.0\"")).unwrap();
        assert!(rest.detail.contains("\"refusals\":5"), "{}", rest.detail);
    }
}
