//! The source registry: which borough exchanges the gateway asks, kept in the store and
//! followed at run time.
//!
//! Registrations persist in the store (`registered_source`) and are loaded at start. The
//! `[[sources]]` of the config are a bootstrap that **wins** for the sources it lists: at every
//! start each listed source is written from the config (name, kind, ODS code, URL, limits,
//! attestation), keeping only its run-time state (suspended stays suspended); a source the
//! config used to list and no longer does is deregistered; the admin API may suspend and resume
//! a config source but not change or deregister it (409: change the config). Sources
//! registered through the API are the API's alone.
//!
//! Every change is written to the store first, then the federation's sources are swapped whole
//! ([`crate::sources::Federation::replace`]): the next request asks the new set, one in flight
//! keeps the set it started with. A source is asked only while it is active and its
//! information-governance attestation is current ([`attestation`]); the others are reported in
//! every answer as not asked, saying why. The registry is reloaded from the store every
//! `registry.refresh_secs` (other replicas' changes, attestations that expired meanwhile).
//! Consuming organisations' attestations are kept here too.

pub mod attestation;
mod changes;
pub mod health;
pub mod input;
mod rebuild;
mod registration;
pub mod secrets;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use tideway_adapters::{Attestation, SourceAdapter, SourceConfig};
use tideway_auth::{Principal, PurposeOfUse};
use tideway_profiles::OdsCode;
use time::{Date, OffsetDateTime};

use crate::config::RegistrySettings;
use crate::record::ReplicaMemo;
use crate::sources::Federation;
use crate::store::{SourceRegistryStore, StoreError};
use attestation::Standing;
pub use input::FieldError;
pub use registration::{Origin, Registration, RegistryError, SourceState, SourceView};

/// Positions of sources registered through the API start here, after any config list.
const API_POSITIONS: i64 = 1 << 32;

struct Inner {
    entries: Vec<Registration>,
    /// Adapters built, by source id, with the registration JSON they were built from: an
    /// unchanged source keeps its adapter (and its connections) across a rebuild.
    built: HashMap<String, (String, Arc<dyn SourceAdapter>)>,
    /// The day each source's expiry warning was last logged.
    warned: HashMap<String, Date>,
}

/// The live registry.
pub struct Registry {
    store: Arc<dyn SourceRegistryStore>,
    federation: Federation,
    memo: ReplicaMemo,
    settings: RegistrySettings,
    admins: Vec<OdsCode>,
    /// Health of the active sources.
    pub health: health::Health,
    inner: tokio::sync::Mutex<Inner>,
    organisations: RwLock<HashMap<String, Attestation>>,
    /// `(source id, controller ODS code)` of every source not deregistered, as of the last
    /// rebuild: what the sharing agreements decide data controllers by.
    controllers: RwLock<Vec<(String, OdsCode)>>,
    /// Seals client keys handed over through the API and opens them to build adapters.
    secrets: secrets::SourceSecrets,
}

fn now_us() -> i64 {
    crate::epoch_us::now()
}

fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

impl Registry {
    /// Loads the registry, registers the config's sources (the config wins for those it lists)
    /// and gives the federation its sources.
    pub async fn start(
        store: Arc<dyn SourceRegistryStore>,
        federation: Federation,
        memo: ReplicaMemo,
        settings: RegistrySettings,
        admins: Vec<OdsCode>,
        listed: &[SourceConfig],
        secrets: secrets::SourceSecrets,
    ) -> Result<Self, StoreError> {
        let rows = store.registered_sources().await?;
        let stored: Vec<Registration> = rows.iter().filter_map(Registration::from_stored).collect();
        for (position, config) in listed.iter().enumerate() {
            let before = stored.iter().find(|r| r.config.id == config.id);
            let state = before
                .map(|r| r.state)
                .filter(|s| *s != SourceState::Deregistered)
                .unwrap_or(SourceState::Active);
            let wanted = Registration {
                config: config.clone(),
                state,
                origin: Origin::Config,
                position: i64::try_from(position).unwrap_or(i64::MAX),
                updated_at_us: now_us(),
            };
            let unchanged = before.is_some_and(|r| {
                let (mut a, mut b) = (r.stored(), wanted.stored());
                a.updated_at_us = 0;
                b.updated_at_us = 0;
                a == b
            });
            if !unchanged {
                if before.is_some() {
                    tracing::info!(source = %config.id, "source registration updated from the config");
                    store.forget_source_links(config.id.as_str()).await?;
                }
                store.put_source(&wanted.stored()).await?;
            }
            if config.attestation.is_none() {
                tracing::warn!(
                    source = %config.id,
                    "source listed in the config without an attestation: treated as attested"
                );
            }
        }
        for r in stored.iter().filter(|r| r.origin == Origin::Config && r.state != SourceState::Deregistered)
        {
            if !listed.iter().any(|c| c.id == r.config.id) {
                tracing::info!(source = %r.config.id, "source no longer listed in the config: deregistered");
                let gone =
                    Registration { state: SourceState::Deregistered, updated_at_us: now_us(), ..r.clone() };
                store.put_source(&gone.stored()).await?;
                store.forget_source_links(r.config.id.as_str()).await?;
            }
        }
        let registry = Self {
            store,
            federation,
            memo,
            settings,
            admins,
            health: health::Health::default(),
            inner: tokio::sync::Mutex::new(Inner {
                entries: Vec::new(),
                built: HashMap::new(),
                warned: HashMap::new(),
            }),
            organisations: RwLock::new(HashMap::new()),
            controllers: RwLock::new(Vec::new()),
            secrets,
        };
        registry.reload().await?;
        Ok(registry)
    }

    /// Reads the registry and the organisations' attestations from the store and rebuilds the
    /// federation's sources (unchanged sources keep their adapters).
    pub async fn reload(&self) -> Result<(), StoreError> {
        // Read under the lock, so a change made here meanwhile is not undone by older rows.
        let mut inner = self.inner.lock().await;
        let rows = self.store.registered_sources().await?;
        let orgs = self.store.organisation_attestations().await?;
        let organisations: HashMap<String, Attestation> = orgs
            .into_iter()
            .filter_map(|(ods, json)| match serde_json::from_str(&json) {
                Ok(a) => Some((ods, a)),
                Err(_) => {
                    tracing::error!("a stored organisation attestation does not read: treated as missing");
                    None
                }
            })
            .collect();
        let today = today();
        for (ods, a) in &organisations {
            let standing = attestation::judge(Some(a), false, today, self.settings.attestation_warning_days);
            let key = format!("organisation:{ods}");
            if (matches!(standing, Standing::Expiring(_)) || !standing.is_current())
                && inner.warned.get(&key) != Some(&today)
            {
                tracing::warn!(organisation = %ods, standing = standing.code(), "consuming organisation's information-governance attestation expires soon or is not current");
                inner.warned.insert(key, today);
            }
        }
        for (ods, a) in &organisations {
            crate::telemetry::metrics::organisation_attestation_days_left(
                ods,
                (a.expires - today).whole_days(),
            );
        }
        *self.organisations.write().unwrap_or_else(PoisonError::into_inner) = organisations;
        inner.entries = rows
            .iter()
            .filter_map(|row| {
                let r = Registration::from_stored(row);
                if r.is_none() {
                    tracing::error!(source = %row.source_id, "a stored source registration does not read: not asked");
                }
                r
            })
            .collect();
        self.rebuild(&mut inner);
        Ok(())
    }

    /// `(source id, controller ODS code)` of every source not deregistered (suspended ones
    /// included: their controllers stay parties), in registry order.
    pub fn controllers(&self) -> Vec<(String, OdsCode)> {
        self.controllers.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Reloads every `refresh_secs` and probes every active source every
    /// `health_interval_secs`, for as long as the runtime runs. Both first run one period after
    /// start: the registry was just loaded, and no source is asked anything the moment the
    /// gateway starts (health reads `null` until the first probe).
    pub fn spawn(self: &Arc<Self>) {
        let registry = self.clone();
        crate::periodic::every(self.settings.refresh_secs, move || {
            let registry = registry.clone();
            async move {
                if let Err(e) = registry.reload().await {
                    tracing::error!(error = %e, "source registry could not be reloaded: keeping the sources in force");
                }
            }
        });
        let registry = self.clone();
        crate::periodic::every(self.settings.health_interval_secs, move || {
            let registry = registry.clone();
            async move { registry.probe().await }
        });
    }

    /// Probes every active source once.
    pub async fn probe(&self) {
        let active: Vec<SourceConfig> = {
            let inner = self.inner.lock().await;
            inner
                .entries
                .iter()
                .filter(|r| r.state == SourceState::Active)
                .map(|r| r.config.clone())
                .collect()
        };
        self.health.probe_all(&active).await;
    }

    /// Whether `principal` administers the registry: a user of an administering organisation
    /// acting for operations (`HOPERAT`).
    pub fn is_admin(&self, principal: &Principal) -> bool {
        principal.purpose == PurposeOfUse::Operations && self.admins.contains(&principal.organisation)
    }

    /// Why `principal`'s organisation may not be served, when consumer attestations are
    /// required and it holds no current one (administrators are always served, so they can
    /// record one).
    pub fn refuses_consumer(&self, principal: &Principal) -> Option<&'static str> {
        if !self.settings.require_consumer_attestation || self.is_admin(principal) {
            return None;
        }
        let orgs = self.organisations.read().unwrap_or_else(PoisonError::into_inner);
        let standing = attestation::judge(
            orgs.get(principal.organisation.as_str()),
            false,
            today(),
            self.settings.attestation_warning_days,
        );
        (!standing.is_current()).then(|| standing.why_not_current())
    }

    /// The registrations of every source not deregistered, in registry order.
    pub async fn configs(&self) -> Vec<SourceConfig> {
        let inner = self.inner.lock().await;
        inner
            .entries
            .iter()
            .filter(|r| r.state != SourceState::Deregistered)
            .map(|r| r.config.clone())
            .collect()
    }

    /// Every registered source (deregistered ones left out), in registry order.
    pub async fn list(&self) -> Vec<SourceView> {
        let today = today();
        let asked = self.federation.latest();
        let inner = self.inner.lock().await;
        inner
            .entries
            .iter()
            .filter(|r| r.state != SourceState::Deregistered)
            .map(|r| SourceView {
                registration: r.clone(),
                standing: self.standing(r, today),
                asked: asked.adapter(r.config.id.as_str()).is_some(),
                health: self.health.get(r.config.id.as_str()),
            })
            .collect()
    }

    /// Every organisation's attestation, by ODS code, with its standing today.
    pub fn organisations(&self) -> Vec<(String, Attestation, Standing)> {
        let today = today();
        let orgs = self.organisations.read().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = orgs
            .iter()
            .map(|(ods, a)| {
                let s = attestation::judge(Some(a), false, today, self.settings.attestation_warning_days);
                (ods.clone(), a.clone(), s)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Records an organisation's attestation (over any recorded before).
    pub async fn put_organisation(
        &self,
        ods: &str,
        attestation: Attestation,
    ) -> Result<Standing, RegistryError> {
        let ods = OdsCode::parse(ods).map_err(|_| RegistryError::BadOrganisation)?;
        let _serialised = self.inner.lock().await;
        let json = serde_json::to_string(&attestation).unwrap_or_default();
        self.store.put_organisation_attestation(ods.as_str(), &json, now_us()).await?;
        let standing =
            attestation::judge(Some(&attestation), false, today(), self.settings.attestation_warning_days);
        crate::telemetry::metrics::organisation_attestation_days_left(
            ods.as_str(),
            (attestation.expires - today()).whole_days(),
        );
        self.organisations
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ods.as_str().to_owned(), attestation);
        Ok(standing)
    }
}
