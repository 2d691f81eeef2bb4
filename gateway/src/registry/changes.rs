//! Changing the registry: a source registered, updated, suspended, resumed or deregistered,
//! each change stored first and then applied to the sources every request works with.

use tideway_adapters::{SourceConfig, SourceId};

use super::registration::{Origin, Registration, RegistryError, SourceState};
use super::{API_POSITIONS, Inner, Registry, input, now_us};

impl Registry {
    /// Registers a new source (or one deregistered before, under its id again).
    pub async fn register(&self, config: SourceConfig) -> Result<Registration, RegistryError> {
        let config = self.sealed(config)?;
        let mut inner = self.inner.lock().await;
        if inner.entries.iter().any(|r| r.config.id == config.id && r.state != SourceState::Deregistered) {
            return Err(RegistryError::Exists(config.id));
        }
        let position = inner.entries.iter().map(|r| r.position).max().unwrap_or(0).max(API_POSITIONS - 1) + 1;
        let r = Registration {
            config,
            state: SourceState::Active,
            origin: Origin::Api,
            position,
            updated_at_us: now_us(),
        };
        self.write(&mut inner, r, true).await
    }

    /// Replaces a source's registration (not its id, state or place).
    pub async fn update(&self, config: SourceConfig) -> Result<Registration, RegistryError> {
        let config = self.sealed(config)?;
        let mut inner = self.inner.lock().await;
        let before = Self::find(&inner, &config.id)?;
        if before.origin == Origin::Config {
            return Err(RegistryError::ConfigOwned(config.id));
        }
        let r = Registration { config, updated_at_us: now_us(), ..before };
        self.write(&mut inner, r, true).await
    }

    /// `config` with a client key handed over as PEM sealed, as it is stored.
    pub(super) fn sealed(&self, config: SourceConfig) -> Result<SourceConfig, RegistryError> {
        self.secrets.sealed(config).map_err(|e| RegistryError::Invalid(input::unsealable(&e)))
    }

    /// Suspends or resumes a source.
    pub async fn set_state(&self, id: &SourceId, active: bool) -> Result<Registration, RegistryError> {
        let mut inner = self.inner.lock().await;
        let before = Self::find(&inner, id)?;
        let state = if active { SourceState::Active } else { SourceState::Suspended };
        let r = Registration { state, updated_at_us: now_us(), ..before };
        self.write(&mut inner, r, false).await
    }

    /// Deregisters a source: it is no longer asked, and what it answered before is forgotten.
    pub async fn deregister(&self, id: &SourceId) -> Result<Registration, RegistryError> {
        let mut inner = self.inner.lock().await;
        let before = Self::find(&inner, id)?;
        if before.origin == Origin::Config {
            return Err(RegistryError::ConfigOwned(id.clone()));
        }
        let r = Registration { state: SourceState::Deregistered, updated_at_us: now_us(), ..before };
        self.write(&mut inner, r, true).await
    }

    pub(super) fn find(inner: &Inner, id: &SourceId) -> Result<Registration, RegistryError> {
        inner
            .entries
            .iter()
            .find(|r| r.config.id == *id && r.state != SourceState::Deregistered)
            .cloned()
            .ok_or(RegistryError::NotFound)
    }

    /// Stores `r`, then (with `forget`) drops what the locator, the cache and the health
    /// probes knew of the source, and swaps the federation's sources.
    pub(super) async fn write(
        &self,
        inner: &mut Inner,
        r: Registration,
        forget: bool,
    ) -> Result<Registration, RegistryError> {
        self.store.put_source(&r.stored()).await?;
        if forget {
            // Its local ids may mean nothing under the new registration; a failure here would
            // leave links to follow, so the change is reported failed (it is stored, and the
            // reload makes it hold) rather than half done silently.
            self.store.forget_source_links(r.config.id.as_str()).await?;
            self.memo.forget_all_links();
            self.federation.cache().invalidate_source(&r.config.id);
            self.health.forget(r.config.id.as_str());
        }
        match inner.entries.iter_mut().find(|e| e.config.id == r.config.id) {
            Some(e) => *e = r.clone(),
            None => inner.entries.push(r.clone()),
        }
        inner
            .entries
            .sort_by(|a, b| (a.position, a.config.id.as_str()).cmp(&(b.position, b.config.id.as_str())));
        self.rebuild(inner);
        let registered = (r.state != SourceState::Deregistered).then_some(&r.config);
        crate::certificates::record_source(r.config.id.as_str(), registered);
        Ok(r)
    }
}
