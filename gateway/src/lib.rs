//! The Tideway gateway.
//!
//! Owns the FHIR REST API (actix-web), authentication (SMART Backend Services), the audit trail,
//! the state store (SQLite by default, PostgreSQL to scale out), patient identity, federation
//! across sources, and the `tideway` command line. Policy decisions and merging are kept as pure
//! functions so they can be tested without the network. It depends on `tideway-adapters` for
//! everything source-specific (every adapter is built through its registry) and must not speak
//! any source dialect itself; `tideway-simulators` is used by the command line (`demo`,
//! `simulate`) only, never by the read pipeline.

pub mod agreements;
pub mod app;
pub mod audit;
pub mod bundle;
pub mod capability;
pub mod certificates;
pub mod cli;
pub mod client_keys;
pub mod clients;
pub mod config;
pub mod dashboard;
pub mod epoch_us;
pub mod feed;
pub mod governance;
pub mod http;
pub mod identity;
pub mod merge;
pub mod oversight;
pub mod pages;
pub mod periodic;
pub mod record;
pub mod registry;
pub mod search;
pub mod secondary;
pub mod signals;
pub mod sources;
pub mod state;
pub mod store;
pub mod telemetry;

pub use app::Application;
pub use config::Settings;
pub use tideway_auth::Principal;
