//! The live client registry: which backend clients are registered now, with their keys,
//! scopes and token lifetime, and whether each is suspended.
//!
//! It starts from the configuration and can change while the gateway runs (a client
//! replaced, suspended or removed, as a registration API will do). The token service consults
//! it on every `/token` call and on every bearer token, so a client removed or suspended here
//! loses its live tokens on the next request they are presented with.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::config::{AuthConfigError, ClientConfig, VerificationKey};

/// One client as the token service uses it.
#[derive(Clone)]
pub(crate) struct RegisteredClient {
    pub(crate) keys: Vec<VerificationKey>,
    pub(crate) allowed_scopes: Vec<String>,
    pub(crate) token_lifetime_secs: u64,
    pub(crate) suspended: bool,
    /// The SHA-256 (lower-case hex) of the TLS certificate the client must present, if any.
    pub(crate) certificate: Option<String>,
    /// Whether it is a patient-facing app (its users assert `PATRQT`, and only it).
    pub(crate) patient_app: bool,
}

impl RegisteredClient {
    fn load(config: &ClientConfig) -> Result<Self, AuthConfigError> {
        Ok(Self {
            keys: config.load_keys()?,
            allowed_scopes: config.allowed_scopes.clone(),
            token_lifetime_secs: config.token_lifetime_secs,
            suspended: config.suspended,
            certificate: config.certificate_sha256()?,
            patient_app: config.patient_app,
        })
    }
}

/// The registered clients, shared by every request. Reads take a read lock for a map look-up
/// and hand out an `Arc`, so a change never waits on a request for long, nor a request on a
/// change.
#[derive(Default)]
pub struct ClientRegistry {
    // The critical sections only look up, insert or remove a map entry, which cannot leave the
    // map half-changed, so a poisoned lock is still sound to use.
    clients: RwLock<HashMap<String, Arc<RegisteredClient>>>,
}

impl std::fmt::Debug for ClientRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRegistry").field("clients", &self.len()).finish()
    }
}

impl ClientRegistry {
    /// The registry of these clients (their keys loaded and checked); ids must be unique.
    pub(crate) fn of(clients: &[ClientConfig]) -> Result<Self, AuthConfigError> {
        let mut map = HashMap::with_capacity(clients.len());
        for client in clients {
            let loaded = Arc::new(RegisteredClient::load(client)?);
            if map.insert(client.client_id.clone(), loaded).is_some() {
                return Err(AuthConfigError::DuplicateClientId(client.client_id.clone()));
            }
        }
        Ok(Self { clients: RwLock::new(map) })
    }

    /// The client registered under `client_id` now, suspended or not.
    pub(crate) fn get(&self, client_id: &str) -> Option<Arc<RegisteredClient>> {
        self.clients.read().unwrap_or_else(PoisonError::into_inner).get(client_id).cloned()
    }

    /// Registers `client`, replacing any client with its id (new keys, scopes, lifetime and
    /// suspension take effect on the next request). Its keys are loaded and checked first: a
    /// client that would not be accepted at start-up is not accepted here either, and the one
    /// registered before stays as it was.
    pub fn register(&self, client: &ClientConfig) -> Result<(), AuthConfigError> {
        let loaded = Arc::new(RegisteredClient::load(client)?);
        self.clients.write().unwrap_or_else(PoisonError::into_inner).insert(client.client_id.clone(), loaded);
        Ok(())
    }

    /// Replaces a registered client's keys with those `client` now gives (its `jwks` or
    /// `jwks_file` read again), keeping everything else as registered (suspension included).
    /// `Ok(false)` if no client has its id; on an error the keys in force stay.
    pub fn reload_keys(&self, client: &ClientConfig) -> Result<bool, AuthConfigError> {
        let keys = client.load_keys()?;
        let mut clients = self.clients.write().unwrap_or_else(PoisonError::into_inner);
        let Some(current) = clients.get(&client.client_id) else {
            return Ok(false);
        };
        let changed = RegisteredClient { keys, ..(**current).clone() };
        clients.insert(client.client_id.clone(), Arc::new(changed));
        Ok(true)
    }

    /// Suspends or reinstates a client; `false` if no client has this id. A suspended client
    /// gets no token and its live tokens are refused.
    pub fn set_suspended(&self, client_id: &str, suspended: bool) -> bool {
        let mut clients = self.clients.write().unwrap_or_else(PoisonError::into_inner);
        let Some(current) = clients.get(client_id) else {
            return false;
        };
        let changed = RegisteredClient { suspended, ..(**current).clone() };
        clients.insert(client_id.to_owned(), Arc::new(changed));
        true
    }

    /// Removes a client; `false` if no client had this id. Its live tokens are refused.
    pub fn remove(&self, client_id: &str) -> bool {
        self.clients.write().unwrap_or_else(PoisonError::into_inner).remove(client_id).is_some()
    }

    /// Whether the client registered under `client_id` is suspended; `None` if none is.
    pub fn is_suspended(&self, client_id: &str) -> Option<bool> {
        self.get(client_id).map(|c| c.suspended)
    }

    /// How many clients are registered, suspended ones included.
    pub fn len(&self) -> usize {
        self.clients.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no client is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
