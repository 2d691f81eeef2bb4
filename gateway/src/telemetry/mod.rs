//! One telemetry set-up at start-up: a `tracing` subscriber with an env filter and text or JSON
//! output. Errors are returned, not swallowed.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetrySettings};

/// Telemetry could not be initialised.
#[derive(Debug, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct TelemetryError(String);

/// Keeps the trace exporter alive; [`TelemetryGuard::shutdown`] flushes it.
#[derive(Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flushes pending spans and stops the exporter. The OTLP HTTP client blocks, so this runs
    /// on a blocking thread.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if !matches!(result, Ok(Ok(()))) {
                eprintln!("tideway: traces could not be flushed at shutdown");
            }
        }
    }
}

/// Installs the global subscriber: an env filter, text or JSON log lines on stderr and, when
/// `otlp_endpoint` is set, OpenTelemetry spans exported over OTLP/HTTP (protobuf). `RUST_LOG`,
/// when set, overrides the configured filter.
pub fn init(settings: &TelemetrySettings) -> Result<TelemetryGuard, TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v),
        _ => EnvFilter::try_new(&settings.log_filter),
    }
    .map_err(|e| TelemetryError(format!("invalid log filter: {e}")))?;
    let provider = match &settings.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(endpoint.as_str())
                .with_timeout(std::time::Duration::from_secs(5))
                .with_headers(Default::default())
                .build()
                .map_err(|e| TelemetryError(format!("OTLP exporter: {e}")))?;
            let resource = Resource::builder().with_service_name(settings.service_name.clone()).build();
            Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
        }
        None => None,
    };
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("tideway")));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = match settings.log_format {
        LogFormat::Text => {
            registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).try_init()
        }
        LogFormat::Json => {
            registry.with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr)).try_init()
        }
    };
    result.map_err(|e| TelemetryError(e.to_string()))?;
    Ok(TelemetryGuard { provider })
}

pub mod metrics;
