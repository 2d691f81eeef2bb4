//! Oversight of who reads what: first-access notifications to registered practices (stored,
//! read through `GET /notifications`, delivered to a webhook from an outbox) and misuse
//! monitoring (a user sweeping many patients, trawling with `$match`, or breaking the glass
//! more often than is plausible raises a privacy-officer alert and may be rate-limited).
//!
//! The record service decides when these apply (it knows when a read releases a record);
//! this module keeps the settings, what this replica remembers to spare the store, the
//! webhook deliverer and the housekeeping that prunes old counts and applies retention. Counts
//! and flags live in the store, so on PostgreSQL every replica sees every other's.

mod housekeeping;
mod monitor;
mod render;
mod webhook;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tideway_auth::Principal;

use crate::config::AlertSettings;
use crate::store::{AccessStore, MisuseStore};

pub use housekeeping::spawn_housekeeping;
pub use monitor::MisuseKind;
pub use render::{NOTIFICATION_KIND_SYSTEM, notification_communication};
pub use webhook::Deliverer;

/// Entries this replica remembers before it forgets them all and asks the store again.
const MEMORY_CAP: usize = 100_000;

/// First-access notifications and misuse monitoring, as one replica runs them.
pub struct Oversight {
    /// Organisations' first accesses, notifications and the outbox.
    pub access: Arc<dyn AccessStore>,
    /// Misuse counts and flags.
    pub misuse: Arc<dyn MisuseStore>,
    /// `[alerts]`.
    pub settings: AlertSettings,
    /// `(patient, organisation)` pairs known to have accessed: a row is never removed, so
    /// remembering it is always right.
    known: Mutex<HashSet<(String, String)>>,
    /// When this replica last wrote each `(user, patient)` touch.
    touched: Mutex<HashMap<(String, String), i64>>,
    /// Woken when a notification is stored, so this replica's deliverer sends it at once.
    wake: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Oversight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Oversight(..)")
    }
}

impl Oversight {
    /// Oversight kept in these stores under `settings`.
    pub fn new(access: Arc<dyn AccessStore>, misuse: Arc<dyn MisuseStore>, settings: AlertSettings) -> Self {
        Self {
            access,
            misuse,
            settings,
            known: Mutex::default(),
            touched: Mutex::default(),
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Whether this replica knows `organisation` has accessed `patient_id`.
    pub fn knows_accessed(&self, patient_id: &str, organisation: &str) -> bool {
        self.known.lock().is_ok_and(|k| k.contains(&(patient_id.to_owned(), organisation.to_owned())))
    }

    /// Remembers that `organisation` has accessed `patient_id`.
    pub fn remember_accessed(&self, patient_id: &str, organisation: &str) {
        if let Ok(mut k) = self.known.lock() {
            if k.len() >= MEMORY_CAP {
                k.clear();
            }
            k.insert((patient_id.to_owned(), organisation.to_owned()));
        }
    }

    /// Tells this replica's deliverer a notification is waiting.
    pub fn notification_stored(&self) {
        self.wake.notify_one();
    }

    /// The waker the deliverer waits on.
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }
}

/// Who did something, as alerts and notifications name them (never the patient).
#[derive(Debug, Clone)]
pub struct Actor {
    /// `client/user`.
    pub user: String,
    /// ODS code of their organisation.
    pub organisation: String,
    /// National RBAC role.
    pub role: String,
    /// The request (`X-Request-ID`).
    pub request_id: String,
}

impl Actor {
    /// `principal`, in request `request_id`.
    pub fn of(principal: &Principal, request_id: &str) -> Self {
        Self {
            user: format!("{}/{}", principal.client_id, principal.user_id),
            organisation: principal.organisation.as_str().to_owned(),
            role: principal.role.as_str().to_owned(),
            request_id: request_id.to_owned(),
        }
    }
}
