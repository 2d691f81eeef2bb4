use std::collections::BTreeSet;
use std::time::Duration;

use tideway_adapters::{AdapterError, SourceConfig, SourceId, SystemKind};

use super::exposition::{Sample, parse};
use super::operations::{OperationsView, quantile};
use super::population::{Cell, PopulationView};
use crate::registry::attestation::Standing;
use crate::registry::health::Probe;
use crate::registry::{Origin, Registration, SourceState, SourceView};
use crate::telemetry::metrics;

fn source(id: &str, state: SourceState, asked: bool, up: Option<bool>) -> SourceView {
    SourceView {
        registration: Registration {
            config: SourceConfig {
                id: SourceId::parse(id).unwrap(),
                name: id.into(),
                kind: SystemKind::Emis,
                ods_code: tideway_profiles::OdsCode::parse("LBX01").unwrap(),
                base_url: url::Url::parse("http://x.example/").unwrap(),
                timeout_ms: 1000,
                max_body_bytes: 1024,
                attestation: None,
                tls: None,
            },
            state,
            origin: Origin::Config,
            position: 0,
            updated_at_us: 0,
        },
        standing: Standing::Current,
        asked,
        health: up.map(|up| Probe { checked_at_us: 1, up, latency_ms: 3 }),
    }
}

#[test]
fn the_exposition_reads_back_names_labels_and_values() {
    let text = "# HELP x y\n# TYPE x counter\n\
                a_total{source=\"s\\\"1\",outcome=\"ok\"} 3\n\
                b_bucket{le=\"+Inf\",source=\"s\"} 7\n\
                c 1.5\n\
                not a sample\n";
    let samples = parse(text);
    assert_eq!(samples.len(), 3, "{samples:?}");
    assert_eq!(samples[0].name, "a_total");
    assert_eq!(samples[0].label("source"), Some("s\"1"));
    assert_eq!(samples[0].label("outcome"), Some("ok"));
    assert_eq!(samples[0].value, 3.0);
    assert_eq!(samples[1].label("le"), Some("+Inf"));
    assert_eq!(samples[2], Sample { name: "c".into(), labels: vec![], value: 1.5 });
}

#[test]
fn quantiles_interpolate_within_the_bucket_holding_the_rank() {
    // 10 observations: 4 at most 10 ms, 9 at most 100 ms, 10 in all.
    let buckets = [(0.01, 4.0), (0.1, 9.0), (f64::INFINITY, 10.0)];
    // Rank 5 is the first of the five in (0.01, 0.1]: 0.01 + 0.09 * 1/5.
    assert!((quantile(0.5, &buckets).unwrap() - 0.028).abs() < 1e-12);
    // Rank 9.9 is in the open top bucket: the highest finite bound.
    assert_eq!(quantile(0.99, &buckets), Some(0.1));
    // Rank 2 in the first bucket, from 0.
    assert!((quantile(0.2, &buckets).unwrap() - 0.005).abs() < 1e-12);
    assert_eq!(quantile(0.5, &[(0.01, 0.0), (f64::INFINITY, 0.0)]), None);
    assert_eq!(quantile(0.5, &[]), None);
}

#[test]
fn operations_figures_come_from_the_metrics_of_the_registered_sources_only() {
    let text = "\
tideway_source_requests_total{source=\"dash-a\",operation=\"find-patient\",outcome=\"ok\"} 6
tideway_source_requests_total{source=\"dash-a\",operation=\"fetch-record\",outcome=\"ok\"} 1
tideway_source_requests_total{source=\"dash-a\",operation=\"fetch-record\",outcome=\"timeout\"} 2
tideway_source_requests_total{source=\"dash-a\",operation=\"fetch-record\",outcome=\"status\"} 1
tideway_source_requests_total{source=\"elsewhere\",operation=\"fetch-record\",outcome=\"ok\"} 50
tideway_source_request_duration_seconds_bucket{le=\"0.01\",source=\"dash-a\",operation=\"find-patient\"} 6
tideway_source_request_duration_seconds_bucket{le=\"0.1\",source=\"dash-a\",operation=\"find-patient\"} 6
tideway_source_request_duration_seconds_bucket{le=\"+Inf\",source=\"dash-a\",operation=\"find-patient\"} 6
tideway_source_request_duration_seconds_bucket{le=\"0.01\",source=\"dash-a\",operation=\"fetch-record\"} 0
tideway_source_request_duration_seconds_bucket{le=\"0.1\",source=\"dash-a\",operation=\"fetch-record\"} 2
tideway_source_request_duration_seconds_bucket{le=\"+Inf\",source=\"dash-a\",operation=\"fetch-record\"} 4
tideway_cache_lookups_total{source=\"dash-a\",kind=\"record\",result=\"hit\"} 3
tideway_cache_lookups_total{source=\"dash-a\",kind=\"patient\",result=\"miss\"} 1
tideway_cache_lookups_total{source=\"elsewhere\",kind=\"record\",result=\"hit\"} 100
tideway_policy_denials_total{kind=\"consent\"} 2
tideway_policy_denials_total{kind=\"agreement\"} 5
tideway_break_glass_sessions_total 4
";
    let sources = [
        source("dash-a", SourceState::Active, true, Some(true)),
        source("dash-b", SourceState::Active, true, None),
        source("dash-c", SourceState::Suspended, false, Some(true)),
        source("dash-d", SourceState::Active, false, Some(false)),
        source("dash-e", SourceState::Active, true, Some(false)),
    ];
    let view = OperationsView::of(&sources, &parse(text), Vec::new(), "2026-12-01T00:00:00Z".into());
    let a = &view.sources[0];
    assert_eq!((a.calls, a.health, a.kind.as_str(), a.ods_code.as_str()), (10, "up", "emis", "LBX01"));
    assert_eq!(a.error_rate, Some(0.3));
    assert_eq!(a.timeout_rate, Some(0.2));
    // 10 observations summed over both operations: 6 by 10 ms, 8 by 100 ms, 10 in all. Rank
    // 5 in the first bucket (5/6 of 10 ms); rank 9.9 in the open top bucket (100 ms).
    assert_eq!(a.p50_ms, Some(8.3));
    assert_eq!(a.p99_ms, Some(100.0));
    let b = &view.sources[1];
    assert_eq!((b.calls, b.health, b.p50_ms, b.error_rate), (0, "unknown", None, None));
    let health: Vec<&str> = view.sources.iter().map(|s| s.health).collect();
    assert_eq!(health, ["up", "unknown", "suspended", "not-asked", "down"]);
    assert_eq!((view.cache.hits, view.cache.misses, view.cache.hit_rate), (3, 1, Some(0.75)));
    assert_eq!((view.decisions.consent_denials, view.decisions.agreement_denials), (2, 5));
    assert_eq!(view.break_glass, 4);
    let json = serde_json::to_value(&view).unwrap();
    let keys: Vec<&String> = json["sources"][0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["id", "kind", "ods_code", "health", "calls", "p50_ms", "p99_ms", "error_rate", "timeout_rate"]
    );
    assert!(json["sources"][1]["p50_ms"].is_null());
    assert_eq!(json["exports"], serde_json::json!([]));
}

#[test]
fn the_operations_figures_of_a_real_call_read_back_from_the_live_metrics() {
    let id = SourceId::parse("dash-live").unwrap();
    metrics::source_call(&id, "fetch-record", None, Duration::from_millis(30));
    metrics::source_call(&id, "fetch-record", Some(&AdapterError::Timeout), Duration::from_millis(300));
    let sources = [source("dash-live", SourceState::Active, true, None)];
    let view = OperationsView::of(&sources, &parse(&metrics::encode()), Vec::new(), String::new());
    let s = &view.sources[0];
    assert_eq!((s.calls, s.error_rate, s.timeout_rate), (2, Some(0.5), Some(0.5)));
    // Rank 1 of 2 is the one call in (25, 50] ms: the bucket's upper bound.
    assert_eq!(s.p50_ms, Some(50.0));
}

#[test]
fn a_suppressed_cell_never_carries_numbers_and_no_feed_is_an_empty_view() {
    let cell = |suppressed| Cell {
        measure: "diabetes".into(),
        borough: "borough-00".into(),
        numerator: Some(3),
        denominator: Some(200),
        prevalence_per_1000: Some(15.0),
        suppressed,
    };
    let view = PopulationView { cells: vec![cell(true), cell(false)], ..PopulationView::empty() }
        .without_suppressed_numbers();
    assert_eq!(view.cells[0].numerator, None);
    assert_eq!(view.cells[0].denominator, None);
    assert_eq!(view.cells[0].prevalence_per_1000, None);
    assert_eq!(view.cells[1], cell(false));
    let feeds = super::DashboardFeeds::default();
    let empty = serde_json::to_value(feeds.population_view()).unwrap();
    assert_eq!(
        empty,
        serde_json::json!({"generated": null, "threshold": 5, "measures": [], "boroughs": [], "cells": []})
    );
    assert!(feeds.export_jobs().is_empty());
}

#[test]
fn the_page_loads_nothing_from_elsewhere_and_runs_no_inline_code() {
    let index = include_str!("assets/index.html");
    for (name, content_type, bytes) in super::assets::FILES {
        assert!(!content_type.is_empty());
        let text = std::str::from_utf8(bytes).unwrap();
        for outside in ["http://", "https://", "//cdn", "@import", "url(http"] {
            // The SVG namespace names are identifiers, not fetches.
            let fetched = text.replace("http://www.w3.org/2000/svg", "");
            assert!(!fetched.contains(outside), "{name} refers to {outside}");
        }
    }
    assert!(
        !index.contains("http://") && !index.contains("https://"),
        "index.html loads only from the gateway"
    );
    // Every script has a src; no style element or attribute, no event handler attribute.
    assert_eq!(index.matches("<script").count(), index.matches("<script src=\"").count());
    assert!(!index.contains("<style") && !index.contains(" style="));
    assert!(!index.contains(" onload=") && !index.contains(" onclick=") && !index.contains("javascript:"));
    for referenced in ["dashboard.js", "dashboard.css", "favicon.svg"] {
        assert!(index.contains(referenced));
        assert!(super::assets::FILES.iter().any(|(n, _, _)| *n == referenced), "{referenced} is served");
    }
    assert!(super::assets::CONTENT_SECURITY_POLICY.starts_with("default-src 'self'"));
}

/// Every metric name the Grafana dashboard's queries use must be one the gateway exports.
/// The gateway's metric names (`tideway_…`) that `text` mentions.
fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("tideway_") {
        let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[i + name.len()..];
        names.insert(name);
    }
    names
}

#[test]
fn the_prometheus_alert_rules_use_only_metrics_the_gateway_exports() {
    metrics::audit_trail_damaged(false);
    metrics::certificate_expiry("server", Some(90 * 86_400));
    metrics::source_health("dash-alerts", true);
    metrics::attestation_days_left("dash-alerts", Some(200));
    metrics::organisation_attestation_days_left("YDASH", 200);
    let exported: BTreeSet<String> = parse(&metrics::encode()).into_iter().map(|s| s.name).collect();
    let rules = include_str!("../../../deploy/prometheus/tideway-alerts.yml");
    let exprs: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("expr:")).collect();
    assert_eq!(exprs.len(), rules.matches("- alert:").count(), "every rule has one expr line");
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names_in(e)).collect();
    assert!(used.contains("tideway_audit_trail_damaged"), "{used:?}");
    for name in &used {
        assert!(exported.contains(name), "an alert rule uses {name}, which /metrics does not export");
    }
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_the_gateway_exports() {
    let id = SourceId::parse("dash-grafana").unwrap();
    metrics::source_call(&id, "fetch-record", None, Duration::from_millis(5));
    metrics::cache_lookup(&id, "record", true);
    metrics::http_request("/dashboard/", "GET", 200, Duration::from_millis(1));
    metrics::policy_denial(metrics::Denial::Consent);
    metrics::break_glass_opened();
    metrics::source_health("dash-grafana", true);
    let exported: BTreeSet<String> = parse(&metrics::encode()).into_iter().map(|s| s.name).collect();

    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../../deploy/grafana/tideway-dashboard.json")).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut used = BTreeSet::new();
    let mut titles = Vec::new();
    for panel in panels {
        titles.push(panel["title"].as_str().unwrap_or_default().to_owned());
        for target in panel["targets"].as_array().into_iter().flatten() {
            used.extend(metric_names_in(target["expr"].as_str().unwrap()));
        }
    }
    assert!(used.len() >= 6, "the queries were read: {used:?}");
    for name in &used {
        assert!(
            exported.contains(name),
            "the Grafana dashboard queries {name}, which /metrics does not export"
        );
    }
    // The same panels as the page's operations figures.
    for figure in [
        "Sources up",
        "Source health",
        "p50",
        "p99",
        "Error rate",
        "Timeout rate",
        "Cache hit rate",
        "Consent denials",
        "Agreement denials",
        "Break-glass",
        "Export jobs",
    ] {
        assert!(titles.iter().any(|t| t.contains(figure)), "no panel for {figure}: {titles:?}");
    }
}
