//! Gateway configuration: a commented TOML file, then `TIDEWAY__SECTION__KEY` environment
//! overrides, parsed into typed structs that reject unknown keys and are validated at load.
//!
//! The doc comments on these structs are the user documentation; `deploy/tideway.example.toml`
//! shows every key and is tested to parse.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tideway_adapters::SourceConfig;
use tideway_auth::RateLimit;
use tideway_auth::config::AuthConfig;

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

/// `[registry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// ODS codes of the organisations whose users, with purpose of use `HOPERAT`, administer
    /// the source registry (`/admin/sources`, `/admin/organisations`). Default none: the
    /// registry can then be changed only through `[[sources]]` and a restart.
    #[serde(default)]
    pub admin_organisations: Vec<String>,
    /// Seconds between health probes of each active source (default 30).
    #[serde(default = "default_health_interval_secs")]
    pub health_interval_secs: u64,
    /// Seconds between reloads of the registry from the store, so one replica follows another's
    /// changes (default 10).
    #[serde(default = "default_registry_refresh_secs")]
    pub refresh_secs: u64,
    /// An attestation expiring within this many days is flagged in `GET /admin/sources` and
    /// logged as a warning (default 30).
    #[serde(default = "default_attestation_warning_days")]
    pub attestation_warning_days: u32,
    /// Whether a `[[sources]]` entry without an `attestation` is refused (default false: it is
    /// treated as attested, with a warning at start-up naming it).
    #[serde(default)]
    pub require_source_attestation: bool,
    /// Whether requests from a consuming organisation without a current attestation (kept
    /// with `PUT /admin/organisations/{ods}`) are refused with 403 (default false).
    #[serde(default)]
    pub require_consumer_attestation: bool,
    /// The key source secrets are sealed with at rest (32 random bytes, base64, one line; keep
    /// it off the database's host). Needed to take a source's client key through the API
    /// (`tls.client_key_pem`); default none: keys are then only file paths.
    #[serde(default)]
    pub secrets_key_file: Option<std::path::PathBuf>,
}

fn default_health_interval_secs() -> u64 {
    30
}

fn default_registry_refresh_secs() -> u64 {
    10
}

fn default_attestation_warning_days() -> u32 {
    30
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            admin_organisations: Vec::new(),
            health_interval_secs: default_health_interval_secs(),
            refresh_secs: default_registry_refresh_secs(),
            attestation_warning_days: default_attestation_warning_days(),
            require_source_attestation: false,
            require_consumer_attestation: false,
            secrets_key_file: None,
        }
    }
}

impl RegistrySettings {
    /// `admin_organisations` as ODS codes; a code that is not one stops the start.
    pub fn admin_codes(&self) -> Result<Vec<tideway_profiles::OdsCode>, String> {
        self.admin_organisations
            .iter()
            .map(|c| {
                tideway_profiles::OdsCode::parse(c)
                    .map_err(|_| "registry.admin_organisations: not an ODS code".to_owned())
            })
            .collect()
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on, e.g. `127.0.0.1:8080`; port 0 picks a free port.
    pub bind: SocketAddr,
    /// The base URL clients use to reach the gateway (behind a load balancer, its public
    /// address). Used in `fullUrl`s, paging links and as the `/token` audience. Defaults to
    /// `http://{bind}`.
    #[serde(default)]
    pub public_base_url: Option<url::Url>,
    /// Largest request body accepted, in bytes (default 64 KiB); larger requests get 413.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Longest wait, in milliseconds, for a request's head and then for its whole body
    /// (default 10 000); a request that arrives slower is answered 408 and its connection closed.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Connections one peer address (an IPv6 peer by its /64) may hold open on the main
    /// listener at once (default 64; 0: no cap). A request on a connection beyond it is answered
    /// 429 and the connection closed. Behind a load balancer every client shares its address:
    /// set 0 there and let the balancer limit connections.
    #[serde(default = "default_max_connections_per_peer")]
    pub max_connections_per_peer: usize,
    /// HTTP worker threads (default: number of cores).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Address of the operator listener serving `/metrics`, `/healthz` and `/readyz` without
    /// a token (keep it off the public network). When unset, `/metrics` is served on the main
    /// listener and needs an access token.
    #[serde(default)]
    pub admin_bind: Option<SocketAddr>,
    /// Serve the main listener over TLS (HTTPS), optionally asking clients for certificates.
    #[serde(default)]
    pub tls: Option<ServerTls>,
    /// A TLS certificate the gateway presents (`[server.tls]`, `[sources.tls]`) within this
    /// many days of its end is logged as a warning; each one's remaining life is the gauge
    /// `tideway_tls_certificate_expiry_seconds` (default 30).
    #[serde(default = "default_certificate_warning_days")]
    pub certificate_warning_days: u32,
    /// How many requests without a valid access token (none, malformed, expired, revoked) one
    /// peer address (an IPv6 peer by its /64) may send to the FHIR API: beyond it they are
    /// answered 429 with `Retry-After` before the token is looked at further and before
    /// anything is audited, so a flood cannot grow the audit trail. Requests with a valid token
    /// are never counted nor held back. Behind a load balancer every client shares its
    /// address. Default 600 a minute with a burst of 300.
    #[serde(default = "default_unauthenticated_rate_limit")]
    pub unauthenticated_rate_limit: RateLimit,
}

/// The default [`ServerSettings::unauthenticated_rate_limit`].
pub const DEFAULT_UNAUTHENTICATED_RATE_LIMIT: RateLimit = RateLimit::constant(600, 300);

fn default_unauthenticated_rate_limit() -> RateLimit {
    DEFAULT_UNAUTHENTICATED_RATE_LIMIT
}

fn default_max_request_bytes() -> usize {
    64 * 1024
}

fn default_request_timeout_ms() -> u64 {
    10_000
}

fn default_certificate_warning_days() -> u32 {
    30
}

/// `[server.tls]`: the gateway's own certificate, and the authority client certificates are
/// checked against. With `client_ca`, a client may present a certificate (none is demanded of
/// all); a client registered with `tls_client_certificate_sha256` must, and its tokens are
/// bound to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// PEM file of the gateway's certificate and its chain.
    pub certificate: std::path::PathBuf,
    /// PEM file of its private key.
    pub key: std::path::PathBuf,
    /// PEM file of the authority (or authorities) client certificates must chain to.
    #[serde(default)]
    pub client_ca: Option<std::path::PathBuf>,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `sqlite://path/to/tideway.db` (created if missing) or `postgres://user@host/db`.
    pub url: SecretString,
    /// Largest number of pooled connections (default 8).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before it is answered 503, in
    /// milliseconds (default 5000).
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
}

/// `[audit]`: signed checkpoints of the audit trail's hash chain. Without them the chain still
/// shows edits, deletions and reordering, but not a cut-off tail or a chain rewritten whole.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// The Ed25519 key checkpoints are signed with (`tideway audit keygen --out FILE` makes
    /// one). Keep it off the database's host, readable by the gateway only.
    #[serde(default)]
    pub checkpoint_key: Option<std::path::PathBuf>,
    /// The file signed checkpoints are appended to, apart from the store (another disk or
    /// host), one JSON line each.
    #[serde(default)]
    pub checkpoint_file: Option<std::path::PathBuf>,
    /// Seconds between checkpoints (default 60; one is also signed at shutdown). A checkpoint
    /// is signed only when records were added since the last.
    #[serde(default = "default_checkpoint_interval_secs")]
    pub checkpoint_interval_secs: u64,
    /// Seconds over which refusals of requests that never authenticated are counted per peer
    /// before one record of the count is written (default 60; also written at shutdown).
    #[serde(default = "default_refusal_interval_secs")]
    pub refusal_interval_secs: u64,
    /// Days audit records are kept (unset: kept for ever). Older records are removed hourly,
    /// each batch only after it verifies and a signed retention anchor for it is in the
    /// checkpoint file, so the checkpoint settings are required with it.
    #[serde(default)]
    pub retention_days: Option<u64>,
}

fn default_refusal_interval_secs() -> u64 {
    60
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            checkpoint_key: None,
            checkpoint_file: None,
            checkpoint_interval_secs: default_checkpoint_interval_secs(),
            refusal_interval_secs: default_refusal_interval_secs(),
            retention_days: None,
        }
    }
}

fn default_checkpoint_interval_secs() -> u64 {
    60
}

fn default_acquire_timeout_ms() -> u64 {
    5_000
}

fn default_max_connections_per_peer() -> usize {
    64
}

fn default_max_connections() -> u32 {
    8
}

/// `[identity]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySettings {
    /// Secret key (at least 32 bytes) from which opaque patient ids are derived with HMAC, so
    /// every replica publishes the same id for a patient and ids reveal nothing. Changing it
    /// changes every patient id.
    pub pseudonym_key: SecretString,
    /// A feed of superseded NHS numbers, read at start-up: one `old,current` pair a line
    /// (blank lines and `#` comments skipped), both numbers Mod 11 checked; a bad line stops
    /// the start, naming its line number. Searching an old number then finds the patient under
    /// the current one. None by default (supersessions are still learned from sources).
    #[serde(default)]
    pub superseded_nhs_numbers_file: Option<std::path::PathBuf>,
    /// The registered population feed, read at start-up: one `source_id,nhs_number,local_id`
    /// a line (blank lines and `#` comments skipped, NHS numbers Mod 11 checked): each patient
    /// joins the patient index, linked to the source that registers them. Bulk export and the
    /// dashboards' aggregates walk this population; clinical reads still ask every source the
    /// locator has no fresh answer from. None by default.
    #[serde(default)]
    pub registrations_file: Option<std::path::PathBuf>,
}

/// `[federation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSettings {
    /// Overall deadline for one client request across all sources, in milliseconds
    /// (default 8000). Each source also has its own `timeout_ms`.
    #[serde(default = "default_request_deadline_ms")]
    pub request_deadline_ms: u64,
    /// Default page size for searches and `$everything` (default 100).
    #[serde(default = "default_page_size")]
    pub default_page_size: usize,
    /// Largest page size a client may ask for with `_count` (default 1000).
    #[serde(default = "default_max_page_size")]
    pub max_page_size: usize,
    /// How long the record locator trusts a source's answer about whether it holds a patient,
    /// in seconds (default 3600); older answers are asked again.
    #[serde(default = "default_locator_max_age_secs")]
    pub locator_max_age_secs: u64,
}

fn default_locator_max_age_secs() -> u64 {
    3_600
}

impl Default for FederationSettings {
    fn default() -> Self {
        Self {
            request_deadline_ms: default_request_deadline_ms(),
            default_page_size: default_page_size(),
            max_page_size: default_max_page_size(),
            locator_max_age_secs: default_locator_max_age_secs(),
        }
    }
}

fn default_request_deadline_ms() -> u64 {
    8_000
}
fn default_page_size() -> usize {
    100
}
fn default_max_page_size() -> usize {
    1_000
}

/// `[cache]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// Whether sources' answers are cached at all (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long a source's answer for a patient is reused, in seconds (default 60).
    #[serde(default = "default_cache_ttl_secs")]
    pub ttl_secs: u64,
    /// Upper bound on the memory cached records take, their JSON and facts counted as held
    /// (default 256 MiB; the per-source patient answers get an eighth of it more).
    #[serde(default = "default_cache_max_bytes")]
    pub max_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self { enabled: true, ttl_secs: default_cache_ttl_secs(), max_bytes: default_cache_max_bytes() }
    }
}

fn default_true() -> bool {
    true
}
fn default_cache_ttl_secs() -> u64 {
    60
}
fn default_cache_max_bytes() -> u64 {
    256 * 1024 * 1024
}

/// `[policy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// A directory of sharing-agreement files (`*.toml`, format in `docs/agreements.md`). Unset
    /// (the default): the region's example agreements shipped with the gateway.
    #[serde(default)]
    pub agreements_dir: Option<std::path::PathBuf>,
    /// How often, in seconds, this replica reads the store for agreement versions approved on
    /// another replica (default 5). The replica that records the last approval applies it at
    /// once; the others within this long.
    #[serde(default = "default_policy_refresh_secs")]
    pub refresh_secs: u64,
    /// How long one break-glass session lasts, in minutes (default 30): the token is bound to
    /// the first patient it opens and refused for that patient after this.
    #[serde(default = "default_break_glass_minutes")]
    pub break_glass_minutes: u64,
    /// ODS codes of the organisations whose privacy officers (purpose of use `HOPERAT`) read the
    /// alerts (`GET /alerts`) and run the policy simulator. Empty (the default): no one.
    #[serde(default)]
    pub privacy_officers: Vec<String>,
}

impl PolicySettings {
    /// `privacy_officers` as ODS codes; a code that is not one stops the start.
    pub fn privacy_office_codes(&self) -> Result<Vec<tideway_profiles::OdsCode>, String> {
        self.privacy_officers
            .iter()
            .map(|c| {
                tideway_profiles::OdsCode::parse(c)
                    .map_err(|_| "policy.privacy_officers: not an ODS code".to_owned())
            })
            .collect()
    }
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            agreements_dir: None,
            refresh_secs: default_policy_refresh_secs(),
            break_glass_minutes: default_break_glass_minutes(),
            privacy_officers: Vec::new(),
        }
    }
}

fn default_policy_refresh_secs() -> u64 {
    5
}

fn default_break_glass_minutes() -> u64 {
    30
}

/// `[pages]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageSettings {
    /// How long a `next` link stays valid, in seconds (default 600).
    #[serde(default = "default_page_ttl_secs")]
    pub ttl_secs: u64,
    /// Most resources held in memory across all snapshots (default 2,000,000; memory store only).
    #[serde(default = "default_page_capacity")]
    pub max_resources: u64,
    /// `redis://host:6379/0`: keep snapshots in Redis so any replica can serve any page. Unset
    /// (the default): this replica's memory, which needs session affinity behind a load balancer.
    #[serde(default)]
    pub redis_url: Option<SecretString>,
    /// Live page snapshots one principal may hold (default 20); a new search beyond that drops
    /// that principal's oldest page link, never another user's.
    #[serde(default = "default_pages_per_principal")]
    pub max_per_principal: usize,
}

impl Default for PageSettings {
    fn default() -> Self {
        Self {
            ttl_secs: default_page_ttl_secs(),
            max_resources: default_page_capacity(),
            redis_url: None,
            max_per_principal: default_pages_per_principal(),
        }
    }
}

fn default_pages_per_principal() -> usize {
    20
}

fn default_page_ttl_secs() -> u64 {
    600
}
fn default_page_capacity() -> u64 {
    2_000_000
}

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
    fn validate(&self) -> Result<(), ConfigError> {
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
