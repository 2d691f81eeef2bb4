//! Keyed rate limits: how often one key (a client id at `/token`, a peer address at the
//! gateway's edge) may do something, as a sustained rate per minute with a burst on top.
//!
//! A thin layer over `governor`'s keyed GCRA limiter that answers with the wait to tell the
//! caller (`Retry-After`) and keeps the per-key state bounded.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use serde::Deserialize;

/// Beyond this many keys, keys whose limit has fully recovered are forgotten.
const FORGET_RECOVERED_ABOVE: usize = 10_000;

/// A rate limit: `per_minute` sustained, with up to `burst` at once after a quiet spell.
///
/// ```toml
/// token_rate_limit = { per_minute = 600, burst = 120 }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per minute, sustained (at least 1).
    pub per_minute: NonZeroU32,
    /// Requests allowed at once after a quiet spell (at least 1).
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// `per_minute` sustained with `burst` at once; `None` if either is zero.
    pub fn new(per_minute: u32, burst: u32) -> Option<Self> {
        Some(Self { per_minute: NonZeroU32::new(per_minute)?, burst: NonZeroU32::new(burst)? })
    }

    /// For constants: a zero rate fails the build, as the constant is evaluated then.
    pub const fn constant(per_minute: u32, burst: u32) -> Self {
        match (NonZeroU32::new(per_minute), NonZeroU32::new(burst)) {
            (Some(per_minute), Some(burst)) => Self { per_minute, burst },
            _ => panic!("a rate limit needs non-zero rates"),
        }
    }

    fn quota(self) -> Quota {
        Quota::per_minute(self.per_minute).allow_burst(self.burst)
    }
}

/// How long to wait before asking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for a `Retry-After` header: rounded up, and at least 1.
    pub fn secs(self) -> u64 {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// A [`RateLimit`] applied to each key separately.
pub struct KeyedLimiter<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    limiter: RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<C::Instant>>,
}

impl<K: Hash + Eq + Clone, C: Clock> std::fmt::Debug for KeyedLimiter<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimiter").field("keys", &self.limiter.len()).finish()
    }
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter on the system's monotonic clock.
    pub fn new(limit: RateLimit) -> Self {
        Self::with_clock(limit, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedLimiter<K, C> {
    /// A limiter on `clock` (tests pass a clock they move by hand).
    pub fn with_clock(limit: RateLimit, clock: C) -> Self {
        Self { limiter: RateLimiter::new(limit.quota(), DashMapStateStore::default(), clock) }
    }

    /// Counts one request for `key`: `Ok` if it is within the limit, otherwise how long until
    /// the next one would be.
    pub fn check(&self, key: &K) -> Result<(), RetryAfter> {
        let result = self.limiter.check_key(key).map_err(|not_until| {
            let now = self.limiter.clock().now();
            RetryAfter(not_until.earliest_possible().duration_since(now).into())
        });
        if self.limiter.len() > FORGET_RECOVERED_ABOVE {
            self.limiter.retain_recent();
        }
        result
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic is a test failure")]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limiter(
        per_minute: u32,
        burst: u32,
    ) -> (KeyedLimiter<&'static str, FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (KeyedLimiter::with_clock(RateLimit::new(per_minute, burst).unwrap(), clock.clone()), clock)
    }

    #[test]
    fn a_burst_is_allowed_then_the_sustained_rate_with_the_wait_to_tell() {
        let (l, clock) = limiter(6, 3);
        for _ in 0..3 {
            assert_eq!(l.check(&"a"), Ok(()));
        }
        // Six a minute: one every ten seconds.
        let wait = l.check(&"a").unwrap_err();
        assert_eq!(wait.secs(), 10);
        clock.advance(Duration::from_secs(4));
        assert_eq!(l.check(&"a").unwrap_err().secs(), 6);
        clock.advance(Duration::from_secs(6));
        assert_eq!(l.check(&"a"), Ok(()));
        assert!(l.check(&"a").is_err());
    }

    #[test]
    fn each_key_has_its_own_allowance() {
        let (l, _) = limiter(1, 1);
        assert_eq!(l.check(&"a"), Ok(()));
        assert!(l.check(&"a").is_err());
        assert_eq!(l.check(&"b"), Ok(()));
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        assert_eq!(RetryAfter(Duration::from_millis(1)).secs(), 1);
        assert_eq!(RetryAfter(Duration::ZERO).secs(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(2001)).secs(), 3);
        assert_eq!(RetryAfter(Duration::from_secs(2)).secs(), 2);
    }

    #[test]
    fn zero_rates_do_not_make_a_limit() {
        assert_eq!(RateLimit::new(0, 1), None);
        assert_eq!(RateLimit::new(1, 0), None);
        let parsed: Result<RateLimit, _> = serde_json::from_str(r#"{"per_minute": 0, "burst": 1}"#);
        assert!(parsed.is_err());
    }
}
