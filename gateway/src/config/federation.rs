//! `[registry]`, `[identity]`, `[federation]`, `[cache]`, `[policy]` and `[pages]`: where
//! records come from, how patients are known, and how long what is read is kept.

use secrecy::SecretString;
use serde::Deserialize;

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
    /// The registered population feed, read at start-up (a bad line stops the start, naming
    /// its line number): one `source_id,nhs_number,local_id` a line (blank lines and `#`
    /// comments skipped, NHS numbers Mod 11 checked): each patient joins the patient index,
    /// linked to the source that registers them. Bulk export and the dashboards' aggregates walk
    /// this population; clinical reads still ask every source the locator has no fresh answer
    /// from. None by default.
    #[serde(default)]
    pub registrations_file: Option<std::path::PathBuf>,
    /// How often the registrations file is looked at again (seconds, 1 to 86400, default 300):
    /// when its text has changed it is loaded again, new registrations joining the index and
    /// the locator; registrations no longer listed are kept (a source's own answer unlinks a
    /// patient who left).
    #[serde(default = "default_registrations_reload_secs")]
    pub registrations_reload_secs: u64,
}

fn default_registrations_reload_secs() -> u64 {
    300
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
