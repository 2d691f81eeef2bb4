//! One telemetry set-up at start-up: a `tracing` subscriber with an env filter and text or JSON
//! output. Errors are returned, not swallowed.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetrySettings};

/// Telemetry could not be initialised.
#[derive(Debug, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct TelemetryError(String);

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured filter.
pub fn init(settings: &TelemetrySettings) -> Result<(), TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v),
        _ => EnvFilter::try_new(&settings.log_filter),
    }
    .map_err(|e| TelemetryError(format!("invalid log filter: {e}")))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| TelemetryError(e.to_string()))
}

pub mod metrics;
