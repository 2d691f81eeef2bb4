//! Prometheus metrics. Labels are low-cardinality by construction: source ids from the
//! registry, route patterns (never paths), operation and outcome codes from fixed sets. No
//! label ever carries patient data.
//!
//! Each recording function also writes the matching log line where one is useful, so the log
//! and the metric cannot drift apart.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tideway_adapters::{AdapterError, RejectionKind, SourceId};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceOp {
    source: String,
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceOutcome {
    source: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    source: String,
    kind: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectedLabels {
    source: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabel {
    certificate: String,
}

struct Metrics {
    registry: Registry,
    source_latency: Family<SourceOp, Histogram>,
    source_calls: Family<SourceOutcome, Counter>,
    cache: Family<CacheLabels, Counter>,
    rejected: Family<RejectedLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_latency: Family<RouteLabel, Histogram>,
    certificate_expiry: Family<CertificateLabel, Gauge>,
    denials: Family<DenialLabel, Counter>,
    break_glass: Counter,
    source_up: Family<SourceLabel, Gauge>,
    audit_trail_damaged: Gauge,
    attestation_days_left: Family<SourceLabel, Gauge>,
    organisation_attestation_days_left: Family<OrganisationLabel, Gauge>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrganisationLabel {
    organisation: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

/// What a policy denial counted in `tideway_policy_denials_total` was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// An answer from which the patient's consent withheld entries (a dissent, or an
    /// agreement's explicit consent not given).
    Consent,
    /// A request refused because no sharing agreement in force grants the requester, or
    /// because the agreements require a relationship the requester did not show.
    Agreement,
}

impl Denial {
    /// The label value.
    pub fn code(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::Agreement => "agreement",
        }
    }
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0].into_iter()
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("tideway");
        let source_latency =
            Family::<SourceOp, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()));
        let source_calls = Family::<SourceOutcome, Counter>::default();
        let cache = Family::<CacheLabels, Counter>::default();
        let rejected = Family::<RejectedLabels, Counter>::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_latency = Family::<RouteLabel, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()));
        registry.register(
            "source_request_duration_seconds",
            "Time taken by calls to a source, by source and operation",
            source_latency.clone(),
        );
        registry.register(
            "source_requests",
            "Calls to sources by outcome (ok, timeout, unreachable, status, too-large, malformed, foreign-link)",
            source_calls.clone(),
        );
        registry.register("cache_lookups", "Per-source cache lookups by result (hit, miss)", cache.clone());
        registry.register(
            "source_entries_rejected",
            "Entries a source sent that were not passed on, by reason (invalid, other-patient)",
            rejected.clone(),
        );
        registry.register("http_requests", "HTTP requests by route pattern, method and status", http_requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request time by route pattern", http_latency.clone());
        let certificate_expiry = Family::<CertificateLabel, Gauge>::default();
        registry.register(
            "tls_certificate_expiry_seconds",
            "Seconds until a configured TLS certificate expires (negative once it has): server, or source:<id>",
            certificate_expiry.clone(),
        );
        let denials = Family::<DenialLabel, Counter>::default();
        registry.register(
            "policy_denials",
            "Policy denials by kind: consent (answers from which the patient's consent withheld entries) \
             and agreement (requests refused: no agreement grants the requester, or a required relationship was not shown)",
            denials.clone(),
        );
        // Both series exist from the start, so a dashboard shows 0 rather than no data.
        for kind in [Denial::Consent, Denial::Agreement] {
            drop(denials.get_or_create(&DenialLabel { kind: kind.code() }));
        }
        let break_glass = Counter::default();
        registry.register("break_glass_sessions", "Break-glass sessions opened", break_glass.clone());
        let source_up = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "source_up",
            "Whether the source's last health probe found it up (1) or down (0)",
            source_up.clone(),
        );
        let audit_trail_damaged = Gauge::default();
        registry.register(
            "audit_trail_damaged",
            "Whether the audit trail no longer holds what the last signed checkpoint covers (1: checkpoints stopped; run tideway audit verify)",
            audit_trail_damaged.clone(),
        );
        let attestation_days_left = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "source_attestation_days_left",
            "Days until a registered source's information-governance attestation expires (negative once it has)",
            attestation_days_left.clone(),
        );
        let organisation_attestation_days_left = Family::<OrganisationLabel, Gauge>::default();
        registry.register(
            "organisation_attestation_days_left",
            "Days until a consuming organisation's recorded information-governance attestation expires (negative once it has), by ODS code",
            organisation_attestation_days_left.clone(),
        );
        Metrics {
            registry,
            audit_trail_damaged,
            attestation_days_left,
            organisation_attestation_days_left,
            denials,
            break_glass,
            source_up,
            source_latency,
            source_calls,
            cache,
            rejected,
            http_requests,
            http_latency,
            certificate_expiry,
        }
    })
}

/// The outcome code of an adapter call.
pub fn outcome_code(e: Option<&AdapterError>) -> &'static str {
    match e {
        None => "ok",
        Some(AdapterError::Timeout) => "timeout",
        Some(AdapterError::Unreachable) => "unreachable",
        Some(AdapterError::Status(_)) => "status",
        Some(AdapterError::TooLarge(_)) => "too-large",
        Some(AdapterError::Malformed(_)) => "malformed",
        Some(AdapterError::ForeignLink) => "foreign-link",
        Some(AdapterError::OtherPatient) => "other-patient",
        Some(AdapterError::NotAsked(_)) => "not-asked",
    }
}

/// A call to a source finished: records latency and outcome, and logs failures.
pub fn source_call(
    source: &SourceId,
    operation: &'static str,
    error: Option<&AdapterError>,
    elapsed: Duration,
) {
    let m = metrics();
    let outcome = outcome_code(error);
    m.source_latency
        .get_or_create(&SourceOp { source: source.to_string(), operation })
        .observe(elapsed.as_secs_f64());
    m.source_calls.get_or_create(&SourceOutcome { source: source.to_string(), operation, outcome }).inc();
    if let Some(e) = error {
        tracing::warn!(source = %source, operation, outcome, elapsed_ms = elapsed.as_millis() as u64, error = %e, "source call failed");
    }
}

/// Whether the audit trail was last found damaged since its last checkpoint.
pub fn audit_trail_damaged(damaged: bool) {
    metrics().audit_trail_damaged.set(i64::from(damaged));
}

/// How long the configured certificate `certificate` (`server`, `source:<id>`) has left;
/// `None` ends its series (the source is gone, or presents no certificate now).
pub fn certificate_expiry(certificate: &str, seconds_left: Option<i64>) {
    let label = CertificateLabel { certificate: certificate.to_owned() };
    set_or_end(&metrics().certificate_expiry, &label, seconds_left);
}

/// Sets `label`'s series of `family` to `value`, or ends the series (`None`).
fn set_or_end<L>(family: &Family<L, Gauge>, label: &L, value: Option<i64>)
where
    L: Clone + std::hash::Hash + Eq,
{
    match value {
        Some(v) => {
            family.get_or_create(label).set(v);
        }
        None => {
            family.remove(label);
        }
    }
}

/// A source's answer carried `count` entries that were not passed on, for `kind`. Logged with
/// the source and the count only: never which patient.
pub fn rejected_entries(source: &SourceId, kind: RejectionKind, count: usize) {
    let reason = kind.as_str();
    metrics()
        .rejected
        .get_or_create(&RejectedLabels { source: source.to_string(), reason })
        .inc_by(count as u64);
    tracing::warn!(source = %source, reason, count, "source sent entries that were withheld");
}

/// A per-source cache lookup.
pub fn cache_lookup(source: &SourceId, kind: &'static str, hit: bool) {
    metrics()
        .cache
        .get_or_create(&CacheLabels {
            source: source.to_string(),
            kind,
            result: if hit { "hit" } else { "miss" },
        })
        .inc();
}

/// An HTTP request finished.
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let m = metrics();
    m.http_requests
        .get_or_create(&HttpLabels { route: route.to_owned(), method: method.to_owned(), status })
        .inc();
    m.http_latency.get_or_create(&RouteLabel { route: route.to_owned() }).observe(elapsed.as_secs_f64());
}

/// A policy denial of `kind` (counted once per answer or refused request).
pub fn policy_denial(kind: Denial) {
    metrics().denials.get_or_create(&DenialLabel { kind: kind.code() }).inc();
}

/// A break-glass session was opened (its first use, bound to its patient).
pub fn break_glass_opened() {
    metrics().break_glass.inc();
}

/// A health probe of `source` found it `up` (or not).
pub fn source_health(source: &str, up: bool) {
    metrics().source_up.get_or_create(&SourceLabel { source: source.to_owned() }).set(i64::from(up));
}

/// `source` is no longer probed: its health series ends.
pub fn source_health_forgotten(source: &str) {
    metrics().source_up.remove(&SourceLabel { source: source.to_owned() });
}

/// `source`'s attestation expires in `days` days (negative: it has); `None`: the source is
/// gone or has no dated attestation, and its series ends.
pub fn attestation_days_left(source: &str, days: Option<i64>) {
    set_or_end(&metrics().attestation_days_left, &SourceLabel { source: source.to_owned() }, days);
}

/// The consuming organisation `ods`'s recorded attestation expires in `days` days.
pub fn organisation_attestation_days_left(ods: &str, days: i64) {
    let label = OrganisationLabel { organisation: ods.to_owned() };
    metrics().organisation_attestation_days_left.get_or_create(&label).set(days);
}

/// The Prometheus text exposition of every metric.
pub fn encode() -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &metrics().registry).is_err() {
        out.clear();
    }
    out
}
