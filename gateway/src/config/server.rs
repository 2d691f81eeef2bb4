//! `[server]` (the listener, its limits and TLS), `[store]` and `[audit]`.

use std::net::SocketAddr;

use secrecy::SecretString;
use serde::Deserialize;
use tideway_auth::RateLimit;

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
