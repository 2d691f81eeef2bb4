//! Instants as the store keeps them: whole microseconds since the Unix epoch.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `t` in microseconds since the epoch (saturating far beyond any date the gateway sees).
pub fn of(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// Now, in microseconds since the epoch.
pub fn now() -> i64 {
    of(OffsetDateTime::now_utc())
}

/// An instant in microseconds since the epoch as RFC 3339, to the second (empty if it cannot
/// be written).
pub fn rfc3339_seconds(us: i64) -> String {
    OffsetDateTime::from_unix_timestamp(us / 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}
