//! Simulated source systems: what the demo, `tideway simulate` and the tests talk to instead of
//! real borough exchanges.
//!
//! Owns the neutral synthetic [`population`] (plain clinical facts, generated from a seed), one
//! module per simulated system that renders those facts in the system's own dialect and serves
//! them over real HTTP with injectable faults ([`fhir_r4`], [`gp_connect`], [`systmone`], and
//! [`social_care`] on the FHIR R4 server), and the [`conformance`] suite every adapter must pass
//! against its simulator. Depends on `tideway-profiles` and `tideway-adapters` (whose registry
//! the suite builds adapters through); the production adapter crate must never depend on this
//! one, and nothing here knows about the gateway.

pub mod conformance;
pub mod emis;
pub mod faults;
pub mod fhir_r4;
pub mod gp_codes;
pub mod gp_connect;
pub mod gp_system;
pub mod kinds;
pub mod population;
pub mod server;
pub mod social_care;
pub mod systmone;
pub mod vision;

/// Request counts of a running simulator since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimulatorHits {
    /// Every request.
    pub total: u64,
    /// Patient searches (by NHS number).
    pub patient_searches: u64,
    /// Record fetches (every page counts).
    pub record_fetches: u64,
}
