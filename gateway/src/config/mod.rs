//! Gateway configuration: a commented TOML file, then `TIDEWAY__SECTION__KEY` environment
//! overrides, parsed into typed structs that reject unknown keys and are validated at load.
//!
//! The doc comments on these structs are the user documentation; `deploy/tideway.example.toml`
//! shows every key and is tested to parse.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use secrecy::ExposeSecret;
use serde::Deserialize;
use tideway_adapters::SourceConfig;
use tideway_auth::config::AuthConfig;

mod federation;
mod server;
mod telemetry;

pub use federation::{
    CacheSettings, FederationSettings, IdentitySettings, PageSettings, PolicySettings, RegistrySettings,
};
pub use server::{
    AuditSettings, DEFAULT_UNAUTHENTICATED_RATE_LIMIT, ServerSettings, ServerTls, StoreSettings,
};
pub use telemetry::{AlertSettings, LogFormat, TelemetrySettings};

/// Prefix of environment overrides: `TIDEWAY__SERVER__BIND=0.0.0.0:8080`.
pub const ENV_PREFIX: &str = "TIDEWAY__";

/// Everything the gateway reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The HTTP listener.
    pub server: ServerSettings,
    /// Where state (audit trail, patient index, used assertion ids) is kept.
    pub store: StoreSettings,
    /// The audit trail's signed checkpoints.
    #[serde(default)]
    pub audit: AuditSettings,
    /// Patient identity: how opaque patient ids are derived.
    pub identity: IdentitySettings,
    /// SMART Backend Services: token signing and registered clients.
    pub auth: AuthConfig,
    /// Fan-out limits.
    #[serde(default)]
    pub federation: FederationSettings,
    /// The per-source cache.
    #[serde(default)]
    pub cache: CacheSettings,
    /// Paging snapshots.
    #[serde(default)]
    pub pages: PageSettings,
    /// Sharing agreements.
    #[serde(default)]
    pub policy: PolicySettings,
    /// Logs and traces.
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    /// Registered sources (borough exchanges): registered at start-up when the registry has
    /// no entry of that id yet (see [`RegistrySettings`]).
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// First-access notifications to registered practices, their webhook, and misuse
    /// monitoring.
    #[serde(default)]
    pub alerts: AlertSettings,
    /// The source registry: its administrators, health checks and attestations.
    #[serde(default)]
    pub registry: RegistrySettings,
    /// Secondary use: bulk export, opt-outs, de-identification, aggregates.
    #[serde(default)]
    pub secondary: crate::secondary::SecondarySettings,
}

/// Why the configuration could not be loaded. Messages name keys, never secret values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, a missing key or a wrong type.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// Values that parse but do not make sense together.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Loads `path`, applies environment overrides from the process environment, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::from_toml_with_env(&text, std::env::vars())
    }

    /// Parses TOML text, applies `TIDEWAY__…` overrides from `env`, and validates.
    pub fn from_toml_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        let mut overrides: Vec<(String, String)> =
            env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        overrides.sort();
        for (key, value) in overrides {
            apply_override(&mut table, &key[ENV_PREFIX.len()..], &value)?;
        }
        let settings: Settings = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.identity.pseudonym_key.expose_secret().len() < 32 {
            return Err(ConfigError::Invalid("identity.pseudonym_key must be at least 32 bytes".into()));
        }
        if !(1..=86_400).contains(&self.identity.registrations_reload_secs) {
            return Err(ConfigError::Invalid(
                "identity.registrations_reload_secs must be between 1 and 86400".into(),
            ));
        }
        let url = self.store.url.expose_secret();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid("store.url must start with sqlite: or postgres://".into()));
        }
        self.auth.validate().map_err(|e| ConfigError::Invalid(format!("auth: {e}")))?;
        let mut seen = HashSet::new();
        for s in &self.sources {
            if !seen.insert(s.id.clone()) {
                return Err(ConfigError::Invalid(format!("sources: id '{}' is listed twice", s.id)));
            }
            if !tideway_adapters::registry::is_supported(s.kind) {
                return Err(ConfigError::Invalid(format!(
                    "sources: '{}' has kind '{}', for which no adapter is built yet (only {})",
                    s.id,
                    s.kind.as_str(),
                    tideway_adapters::registry::supported_list()
                )));
            }
            if s.timeout_ms == 0 {
                return Err(ConfigError::Invalid(format!("sources: '{}' timeout_ms must be positive", s.id)));
            }
            if self.registry.require_source_attestation && s.attestation.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "sources: '{}' has no attestation, which registry.require_source_attestation asks for",
                    s.id
                )));
            }
        }
        let f = &self.federation;
        if f.request_deadline_ms == 0 || f.default_page_size == 0 || f.default_page_size > f.max_page_size {
            return Err(ConfigError::Invalid(
                "federation: request_deadline_ms and default_page_size must be positive, default_page_size <= max_page_size"
                    .into(),
            ));
        }
        if !(100..=300_000).contains(&self.server.request_timeout_ms) {
            return Err(ConfigError::Invalid(
                "server.request_timeout_ms must be between 100 and 300000".into(),
            ));
        }
        if self.policy.break_glass_minutes > 240 {
            return Err(ConfigError::Invalid(
                "policy.break_glass_minutes must be at most 240 (0 ends every session at once)".into(),
            ));
        }
        self.policy.privacy_office_codes().map_err(ConfigError::Invalid)?;
        if !(1..=3600).contains(&self.policy.refresh_secs) {
            return Err(ConfigError::Invalid("policy.refresh_secs must be between 1 and 3600".into()));
        }
        if self.audit.checkpoint_key.is_some() != self.audit.checkpoint_file.is_some() {
            return Err(ConfigError::Invalid(
                "audit: checkpoint_key and checkpoint_file are set together or not at all".into(),
            ));
        }
        if let Some(days) = self.audit.retention_days {
            if !(1..=36_500).contains(&days) {
                return Err(ConfigError::Invalid(
                    "audit.retention_days must be between 1 and 36500 (leave it unset to keep everything)"
                        .into(),
                ));
            }
            if self.audit.checkpoint_key.is_none() {
                return Err(ConfigError::Invalid(
                    "audit.retention_days needs checkpoint_key and checkpoint_file: removed records are \
                     accounted for by a signed retention anchor"
                        .into(),
                ));
            }
        }
        if !(1..=3_600).contains(&self.audit.refusal_interval_secs) {
            return Err(ConfigError::Invalid(
                "audit.refusal_interval_secs must be between 1 and 3600".into(),
            ));
        }
        if !(1..=86_400).contains(&self.audit.checkpoint_interval_secs) {
            return Err(ConfigError::Invalid(
                "audit.checkpoint_interval_secs must be between 1 and 86400".into(),
            ));
        }
        self.alerts.validate()?;
        self.secondary.validate().map_err(ConfigError::Invalid)?;
        self.registry.admin_codes().map_err(ConfigError::Invalid)?;
        if !(1..=86_400).contains(&self.registry.health_interval_secs)
            || !(1..=3_600).contains(&self.registry.refresh_secs)
        {
            return Err(ConfigError::Invalid(
                "registry: health_interval_secs must be 1 to 86400 and refresh_secs 1 to 3600".into(),
            ));
        }
        if self.server.max_request_bytes < 1024 {
            return Err(ConfigError::Invalid("server.max_request_bytes must be at least 1024".into()));
        }
        Ok(())
    }

    /// How long a request's head, then its body, may take to arrive.
    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.server.request_timeout_ms)
    }

    /// The public base URL without a trailing slash.
    pub fn base_url(&self, bound: SocketAddr) -> String {
        match &self.server.public_base_url {
            Some(u) => u.as_str().trim_end_matches('/').to_owned(),
            None if self.server.tls.is_some() => format!("https://{bound}"),
            None => format!("http://{bound}"),
        }
    }
}

/// Sets `SECTION__KEY` (case-insensitive, `__` between levels) in `table`. The value is read as
/// a TOML value when it is one (`8080`, `true`, `["a"]`), else as a string.
fn apply_override(table: &mut toml::Table, path: &str, raw: &str) -> Result<(), ConfigError> {
    let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
    if keys.iter().any(String::is_empty) {
        return Err(ConfigError::Parse(format!("environment override {ENV_PREFIX}{path} has an empty key")));
    }
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let (last, parents) = keys.split_last().ok_or_else(|| ConfigError::Parse("empty override".into()))?;
    let mut cur = table;
    for k in parents {
        let entry = cur.entry(k.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| {
            ConfigError::Parse(format!("environment override {ENV_PREFIX}{path}: '{k}' is not a section"))
        })?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}
