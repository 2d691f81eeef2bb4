//! `[telemetry]` (logs, traces, metrics) and `[alerts]` (access alerts and misuse monitoring).

use serde::Deserialize;

use super::ConfigError;

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Log filter in `tracing` syntax (default `info`); `RUST_LOG` wins when set.
    #[serde(default = "default_log_filter")]
    pub log_filter: String,
    /// `text` (default) or `json` log lines.
    #[serde(default)]
    pub log_format: LogFormat,
    /// OTLP/HTTP traces endpoint, e.g. `http://otel-collector:4318/v1/traces`. Unset (the
    /// default): no traces are exported.
    #[serde(default)]
    pub otlp_endpoint: Option<url::Url>,
    /// `service.name` of exported traces (default `tideway`).
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_filter: default_log_filter(),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            service_name: default_service_name(),
        }
    }
}

fn default_service_name() -> String {
    "tideway".to_owned()
}

fn default_log_filter() -> String {
    "info".to_owned()
}

/// `[alerts]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// Where first-access notifications are POSTed (JSON, a FHIR `Communication` naming the
    /// patient by the gateway's opaque id only), each until it is accepted with a 2xx. Unset
    /// (the default): notifications are stored and read through `GET /notifications` only; the
    /// undelivered are kept, and sent once a webhook is configured.
    #[serde(default)]
    pub webhook_url: Option<url::Url>,
    /// How long one webhook call may take, in milliseconds (default 5000).
    #[serde(default = "default_webhook_timeout_ms")]
    pub webhook_timeout_ms: u64,
    /// How often, in milliseconds, the outbox is read for notifications due (default 2000;
    /// a notification stored by this replica is sent at once).
    #[serde(default = "default_webhook_poll_ms")]
    pub webhook_poll_ms: u64,
    /// The wait after a first failed delivery, in milliseconds (default 1000); it doubles with
    /// every failure up to `webhook_max_backoff_secs`. Deliveries are retried until accepted.
    #[serde(default = "default_webhook_backoff_ms")]
    pub webhook_backoff_ms: u64,
    /// The longest wait between two attempts, in seconds (default 600).
    #[serde(default = "default_webhook_max_backoff_secs")]
    pub webhook_max_backoff_secs: u64,
    /// A user (client and user id) who reads more than this many different patients within
    /// `sweep_window_secs` raises a `patient-sweep` alert for the privacy officer (default 50;
    /// 0 turns it off).
    #[serde(default = "default_sweep_patients")]
    pub sweep_patients: u64,
    /// The window of `sweep_patients` and `match_searches`, in seconds (default 3600).
    #[serde(default = "default_sweep_window_secs")]
    pub sweep_window_secs: u64,
    /// A user who opens more than this many break-glass sessions within 24 hours raises a
    /// `break-glass-pattern` alert (default 3; 0 turns it off).
    #[serde(default = "default_break_glass_per_day")]
    pub break_glass_per_day: u64,
    /// A user who makes more than this many patient-matching searches (`$match`) within
    /// `sweep_window_secs` raises a `match-trawl` alert (default 100; 0 turns it off).
    #[serde(default = "default_match_searches")]
    pub match_searches: u64,
    /// When on, a user who raised a misuse alert is refused every patient read (429
    /// `throttled`, audited) until that alert's window has passed (default off: alert only).
    #[serde(default)]
    pub rate_limit: bool,
    /// Days privacy alerts and first-access notifications (delivered ones) are kept; unset
    /// (the default): kept forever. The audit trail itself is not shortened by this.
    #[serde(default)]
    pub retention_days: Option<u64>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_timeout_ms: default_webhook_timeout_ms(),
            webhook_poll_ms: default_webhook_poll_ms(),
            webhook_backoff_ms: default_webhook_backoff_ms(),
            webhook_max_backoff_secs: default_webhook_max_backoff_secs(),
            sweep_patients: default_sweep_patients(),
            sweep_window_secs: default_sweep_window_secs(),
            break_glass_per_day: default_break_glass_per_day(),
            match_searches: default_match_searches(),
            rate_limit: false,
            retention_days: None,
        }
    }
}

impl AlertSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(format!("alerts.{m}")));
        if let Some(u) = &self.webhook_url
            && !matches!(u.scheme(), "http" | "https")
        {
            return bad("webhook_url must be an http or https URL");
        }
        if !(100..=60_000).contains(&self.webhook_timeout_ms) {
            return bad("webhook_timeout_ms must be between 100 and 60000");
        }
        if !(10..=3_600_000).contains(&self.webhook_poll_ms) {
            return bad("webhook_poll_ms must be between 10 and 3600000");
        }
        if !(1..=3_600_000).contains(&self.webhook_backoff_ms) {
            return bad("webhook_backoff_ms must be between 1 and 3600000");
        }
        if !(1..=86_400).contains(&self.webhook_max_backoff_secs) {
            return bad("webhook_max_backoff_secs must be between 1 and 86400");
        }
        if !(1..=7 * 86_400).contains(&self.sweep_window_secs) {
            return bad("sweep_window_secs must be between 1 and 604800");
        }
        if self.retention_days == Some(0) {
            return bad("retention_days must be at least 1 (leave it unset to keep everything)");
        }
        Ok(())
    }
}

fn default_webhook_timeout_ms() -> u64 {
    5_000
}

fn default_webhook_poll_ms() -> u64 {
    2_000
}

fn default_webhook_backoff_ms() -> u64 {
    1_000
}

fn default_webhook_max_backoff_secs() -> u64 {
    600
}

fn default_sweep_patients() -> u64 {
    50
}

fn default_sweep_window_secs() -> u64 {
    3_600
}

fn default_break_glass_per_day() -> u64 {
    3
}

fn default_match_searches() -> u64 {
    100
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
