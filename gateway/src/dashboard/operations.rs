//! The operations figures: each source's health, calls, latency and failure rates, the
//! cache's hit rate, policy denials, break-glass sessions and export jobs.
//!
//! Every figure but health and the export jobs is read from the gateway's own metrics
//! ([`crate::telemetry::metrics`]), counted since this process started:
//!
//! - `calls`: calls that left the gateway for the source (`tideway_source_requests_total`,
//!   every operation); `error_rate` is the share whose outcome was not `ok` (timeouts
//!   included), `timeout_rate` the share that timed out; both `null` before the first call.
//! - `p50_ms`, `p99_ms`: estimated from `tideway_source_request_duration_seconds` as
//!   Prometheus' `histogram_quantile` does: the bucket holding the rank, linearly interpolated
//!   between its bounds (the first bucket's lower bound is 0; a rank in the open top bucket
//!   answers the highest finite bound, 10 s). So an estimate is only as fine as the buckets
//!   (5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5, 10 s).
//! - `health`: the registry's view: `suspended`, `not-asked` (its attestation is not
//!   current), else the last health probe's `up` or `down`, or `unknown` before the first.
//! - `cache`: lookups of this gateway's sources' cache entries (`tideway_cache_lookups_total`).
//! - `decisions`: `tideway_policy_denials_total` by kind; `break_glass`:
//!   `tideway_break_glass_sessions_total`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::exports::ExportSummary;
use super::exposition::{self, Sample};
use crate::registry::{SourceState, SourceView};
use crate::state::AppState;

/// `GET /dashboard/api/operations`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationsView {
    /// When the figures were read (RFC 3339).
    pub generated: String,
    /// Every registered source, in registry order.
    pub sources: Vec<SourceFigures>,
    /// The per-source cache.
    pub cache: CacheFigures,
    /// Policy denials.
    pub decisions: DecisionFigures,
    /// Break-glass sessions opened.
    pub break_glass: u64,
    /// Bulk export jobs.
    pub exports: Vec<ExportSummary>,
}

/// One source's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceFigures {
    /// Registry id.
    pub id: String,
    /// System kind, as config spells it.
    pub kind: String,
    /// ODS code.
    pub ods_code: String,
    /// `up`, `down`, `unknown`, `suspended` or `not-asked`.
    pub health: &'static str,
    /// Calls made.
    pub calls: u64,
    /// Median call time, estimated (milliseconds).
    pub p50_ms: Option<f64>,
    /// 99th percentile call time, estimated (milliseconds).
    pub p99_ms: Option<f64>,
    /// Share of calls that failed (any outcome but `ok`).
    pub error_rate: Option<f64>,
    /// Share of calls that timed out.
    pub timeout_rate: Option<f64>,
}

/// Cache lookups.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheFigures {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to ask the source.
    pub misses: u64,
    /// `hits / (hits + misses)`, `null` before the first lookup.
    pub hit_rate: Option<f64>,
}

/// Policy denials.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionFigures {
    /// Answers from which the patient's consent withheld entries.
    pub consent_denials: u64,
    /// Requests refused under the sharing agreements (no agreement grants the requester, or a
    /// required relationship was not shown).
    pub agreement_denials: u64,
}

impl OperationsView {
    /// The figures now.
    pub async fn now(state: &AppState) -> Self {
        let sources = state.registry.list().await;
        let samples = exposition::parse(&crate::telemetry::metrics::encode());
        let generated = crate::epoch_us::rfc3339_seconds(crate::epoch_us::now());
        Self::of(&sources, &samples, state.dashboard.export_jobs(), generated)
    }

    /// The figures of `sources` from `samples`.
    pub fn of(
        sources: &[SourceView],
        samples: &[Sample],
        exports: Vec<ExportSummary>,
        generated: String,
    ) -> Self {
        let ids: Vec<&str> = sources.iter().map(|v| v.registration.config.id.as_str()).collect();
        let ours = |s: &&Sample| s.label("source").is_some_and(|id| ids.contains(&id));
        let (mut hits, mut misses) = (0, 0);
        for s in samples.iter().filter(|s| s.name == "tideway_cache_lookups_total").filter(ours) {
            match s.label("result") {
                Some("hit") => hits += count(s.value),
                Some("miss") => misses += count(s.value),
                _ => {}
            }
        }
        let denials = |kind: &str| -> u64 {
            samples
                .iter()
                .filter(|s| s.name == "tideway_policy_denials_total" && s.label("kind") == Some(kind))
                .map(|s| count(s.value))
                .sum()
        };
        Self {
            generated,
            sources: sources.iter().map(|v| source_figures(v, samples)).collect(),
            cache: CacheFigures { hits, misses, hit_rate: share(hits, hits + misses) },
            decisions: DecisionFigures {
                consent_denials: denials("consent"),
                agreement_denials: denials("agreement"),
            },
            break_glass: samples
                .iter()
                .filter(|s| s.name == "tideway_break_glass_sessions_total")
                .map(|s| count(s.value))
                .sum(),
            exports,
        }
    }
}

fn source_figures(view: &SourceView, samples: &[Sample]) -> SourceFigures {
    let config = &view.registration.config;
    let id = config.id.as_str();
    let of_source =
        |name: &'static str| samples.iter().filter(move |s| s.name == name && s.label("source") == Some(id));
    let (mut calls, mut failed, mut timed_out) = (0, 0, 0);
    for s in of_source("tideway_source_requests_total") {
        let n = count(s.value);
        calls += n;
        match s.label("outcome") {
            Some("ok") => {}
            Some("timeout") => {
                failed += n;
                timed_out += n;
            }
            _ => failed += n,
        }
    }
    // Cumulative counts per upper bound, summed over the source's operations (the same buckets).
    let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for s in of_source("tideway_source_request_duration_seconds_bucket") {
        let Some(le) = s.label("le").and_then(bound) else { continue };
        buckets.entry(le.to_bits()).or_insert((le, 0.0)).1 += s.value;
    }
    let mut buckets: Vec<(f64, f64)> = buckets.into_values().collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ms = |q| quantile(q, &buckets).map(|s| round(s * 1000.0, 1));
    SourceFigures {
        id: id.to_owned(),
        kind: config.kind.as_str().to_owned(),
        ods_code: config.ods_code.as_str().to_owned(),
        health: health(view),
        calls,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        error_rate: share(failed, calls),
        timeout_rate: share(timed_out, calls),
    }
}

fn health(view: &SourceView) -> &'static str {
    if view.registration.state == SourceState::Suspended {
        return "suspended";
    }
    if !view.asked {
        return "not-asked";
    }
    match view.health {
        None => "unknown",
        Some(p) if p.up => "up",
        Some(_) => "down",
    }
}

fn bound(le: &str) -> Option<f64> {
    if le == "+Inf" { Some(f64::INFINITY) } else { le.parse().ok() }
}

/// A counter's value as a whole number.
fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 { v.round() as u64 } else { 0 }
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| round(part as f64 / whole as f64, 4))
}

fn round(v: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (v * scale).round() / scale
}

/// The `q` quantile (0 to 1) of a histogram given as cumulative counts per upper bound,
/// ascending, the last `+Inf`: `None` when nothing was observed.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last().map(|b| b.1)?;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, cumulative) in buckets {
        if cumulative >= rank && cumulative > lower.1 {
            if le.is_infinite() {
                return Some(lower.0);
            }
            return Some(lower.0 + (le - lower.0) * (rank - lower.1) / (cumulative - lower.1));
        }
        lower = (le, cumulative);
    }
    Some(lower.0)
}
