//! Plain FHIR R4 REST sources: the adapter ([`client`]), its pure normalisation ([`mapping`]),
//! and a simulated borough exchange ([`simulator`]) that serves either the seeded synthetic
//! population or a directory of Synthea bundles ([`from_dir`]).

pub mod client;
pub mod from_dir;
pub mod mapping;
pub mod simulator;

#[cfg(test)]
mod tests;
pub use client::FhirR4Adapter;
