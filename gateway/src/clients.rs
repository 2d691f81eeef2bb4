//! Backend clients administered while the gateway runs: an administrator suspends, reinstates
//! or removes a client (`/admin/clients`), and from the next request on its live tokens are
//! refused and `/token` grants it none (the token service checks every token against the live
//! client registry).
//!
//! Each decision is written to the store first (`client_state`), then applied to this
//! replica's client registry; every replica applies the stored states at start (so a restart
//! keeps them, whatever the config says) and every `registry.refresh_secs` (so another
//! replica's decision holds there within that bound). A removed client stays removed: the
//! config listing it again does not bring it back (a warning says so at start); it is
//! registered again only under a new id.

use std::sync::Arc;

use tideway_auth::ClientConfig;
use tideway_auth::registry::ClientRegistry;

use crate::store::{ClientStateStore, StoreError};

/// What an administrator decided about a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Gets tokens, and its tokens are accepted.
    Active,
    /// Gets no token, and its live tokens are refused, until reinstated.
    Suspended,
    /// No longer registered: its tokens are refused, for good.
    Removed,
}

impl ClientState {
    /// The stored and shown code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Removed => "removed",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        [Self::Active, Self::Suspended, Self::Removed].into_iter().find(|s| s.as_str() == code)
    }
}

/// Why a change to a client was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClientAdminError {
    /// No client of that id is listed.
    #[error("no client of that id is registered")]
    NotFound,
    /// The client was removed: it cannot be reinstated.
    #[error("client '{0}' was removed: it is not reinstated (register it again under a new id)")]
    Removed(String),
    /// The store could not be written: nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A client as `GET /admin/clients` shows it.
#[derive(Debug, Clone)]
pub struct ClientView {
    /// The client as configured.
    pub config: ClientConfig,
    /// Its state now, on this replica.
    pub state: ClientState,
}

/// The run-time administration of the configured clients.
pub struct ClientAdmin {
    store: Arc<dyn ClientStateStore>,
    listed: Vec<ClientConfig>,
}

impl ClientAdmin {
    /// Administers `listed` (the config's clients), keeping decisions in `store`.
    pub fn new(store: Arc<dyn ClientStateStore>, listed: Vec<ClientConfig>) -> Self {
        Self { store, listed }
    }

    /// Applies every stored decision to `registry`.
    pub async fn apply_stored(&self, registry: &ClientRegistry) -> Result<(), StoreError> {
        for (id, code) in self.store.client_states().await? {
            let Some(state) = ClientState::parse(&code) else {
                tracing::error!(client = %id, "a stored client state does not read: left as configured");
                continue;
            };
            apply(registry, &id, state);
        }
        Ok(())
    }

    /// [`Self::apply_stored`] at start: also warns of each client the config lists that an
    /// administrator removed (it stays removed).
    pub async fn start(&self, registry: &ClientRegistry) -> Result<(), StoreError> {
        self.apply_stored(registry).await?;
        for c in &self.listed {
            if state_on(registry, &c.client_id) == ClientState::Removed {
                tracing::warn!(client = %c.client_id, "client listed in the config was removed by an administrator: it stays removed");
            }
        }
        Ok(())
    }

    /// Whether a client of this id is configured (removed or not).
    pub fn knows(&self, id: &str) -> bool {
        self.listed.iter().any(|c| c.client_id == id)
    }

    /// Every configured client with its state on `registry`.
    pub fn list(&self, registry: &ClientRegistry) -> Vec<ClientView> {
        self.listed
            .iter()
            .map(|c| ClientView { config: c.clone(), state: state_on(registry, &c.client_id) })
            .collect()
    }

    /// Decides `to` for client `id`: stored first, then applied to `registry`.
    pub async fn change(
        &self,
        registry: &ClientRegistry,
        id: &str,
        to: ClientState,
    ) -> Result<ClientView, ClientAdminError> {
        let config = self.listed.iter().find(|c| c.client_id == id).ok_or(ClientAdminError::NotFound)?;
        if state_on(registry, id) == ClientState::Removed {
            return Err(ClientAdminError::Removed(id.to_owned()));
        }
        self.store.put_client_state(id, to.as_str(), crate::epoch_us::now()).await?;
        apply(registry, id, to);
        Ok(ClientView { config: config.clone(), state: to })
    }
}

/// Applies the stored decisions to the token service's clients every `secs` seconds, until the
/// runtime stops (another replica's decisions; this replica's are applied at once).
pub fn spawn_refresh(state: actix_web::web::Data<crate::state::AppState>, secs: u64) {
    crate::periodic::every(secs, move || {
        let state = state.clone();
        async move {
            if let Err(e) = state.clients.apply_stored(state.tokens.clients()).await {
                tracing::warn!(error = %e, "client states could not be read: the last known stay in force");
            }
        }
    });
}

fn state_on(registry: &ClientRegistry, id: &str) -> ClientState {
    match registry.is_suspended(id) {
        None => ClientState::Removed,
        Some(true) => ClientState::Suspended,
        Some(false) => ClientState::Active,
    }
}

fn apply(registry: &ClientRegistry, id: &str, state: ClientState) {
    let _known = match state {
        ClientState::Active => registry.set_suspended(id, false),
        ClientState::Suspended => registry.set_suspended(id, true),
        ClientState::Removed => registry.remove(id),
    };
}
