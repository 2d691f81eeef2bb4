//! Plain FHIR R4 REST sources: the adapter ([`client`]) and its pure normalisation
//! ([`mapping`]). Its simulator lives in `tideway_simulators::fhir_r4`, where the shared
//! conformance suite runs this adapter against it.

pub mod client;
pub mod mapping;

#[cfg(test)]
pub(crate) mod tests;
pub use client::FhirR4Adapter;
