//! A registration and what is said of it: its state, where it came from, how it is stored,
//! how it is shown, and why a change to it was refused.

use tideway_adapters::{SourceConfig, SourceId};

use super::attestation::Standing;
use super::{FieldError, health};
use crate::store::{StoreError, StoredSource};

/// Whether a registered source is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// Asked (while its attestation is current).
    Active,
    /// Registered but not asked, until resumed.
    Suspended,
    /// No longer registered (the row stays so the config cannot bring it back unseen).
    Deregistered,
}

impl SourceState {
    /// The stored and shown code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deregistered => "deregistered",
        }
    }

    pub(super) fn parse(code: &str) -> Option<Self> {
        [Self::Active, Self::Suspended, Self::Deregistered].into_iter().find(|s| s.as_str() == code)
    }
}

/// Where a registration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A `[[sources]]` entry: the config owns it.
    Config,
    /// `POST /admin/sources`.
    Api,
}

impl Origin {
    /// The stored and shown code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Api => "api",
        }
    }
}

/// One registered source.
#[derive(Debug, Clone)]
pub struct Registration {
    /// What the source is and how to reach it, with its attestation.
    pub config: SourceConfig,
    /// Whether it is asked.
    pub state: SourceState,
    /// Where it came from.
    pub origin: Origin,
    /// Its place in registry order.
    pub position: i64,
    /// When it last changed (microseconds since the epoch).
    pub updated_at_us: i64,
}

impl Registration {
    pub(super) fn stored(&self) -> StoredSource {
        StoredSource {
            source_id: self.config.id.to_string(),
            position: self.position,
            state: self.state.as_str().to_owned(),
            origin: self.origin.as_str().to_owned(),
            config: serde_json::to_string(&self.config).unwrap_or_default(),
            updated_at_us: self.updated_at_us,
        }
    }

    pub(super) fn from_stored(row: &StoredSource) -> Option<Self> {
        let config = serde_json::from_str(&row.config).ok()?;
        let origin = match row.origin.as_str() {
            "config" => Origin::Config,
            "api" => Origin::Api,
            _ => return None,
        };
        Some(Self {
            config,
            state: SourceState::parse(&row.state)?,
            origin,
            position: row.position,
            updated_at_us: row.updated_at_us,
        })
    }
}

/// Why a registry change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The input is wrong in the field named.
    #[error("{}", .0.message)]
    Invalid(FieldError),
    /// A source of that id is registered already.
    #[error("a source '{0}' is registered already (change it with PUT, or deregister it first)")]
    Exists(SourceId),
    /// No source of that id is registered.
    #[error("no source of that id is registered")]
    NotFound,
    /// The config lists the source: only the config changes or removes it.
    #[error(
        "source '{0}' is listed in the config's [[sources]]: change it there (it may be suspended or resumed here)"
    )]
    ConfigOwned(SourceId),
    /// The organisation code is not one.
    #[error("an ODS code is 3 to 10 upper-case letters or digits")]
    BadOrganisation,
    /// The store could not be read or written: nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit trail could not be written: nothing changed.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

impl RegistryError {
    /// The audit reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) | Self::BadOrganisation => "bad-request",
            Self::Exists(_) | Self::ConfigOwned(_) => "conflict",
            Self::NotFound => "not-found",
            Self::Store(_) | Self::Audit(_) => "store",
        }
    }
}

/// A source as `GET /admin/sources` shows it.
#[derive(Debug, Clone)]
pub struct SourceView {
    /// The registration.
    pub registration: Registration,
    /// Its attestation today.
    pub standing: Standing,
    /// Whether it is asked now.
    pub asked: bool,
    /// Its last health probe.
    pub health: Option<health::Probe>,
}
