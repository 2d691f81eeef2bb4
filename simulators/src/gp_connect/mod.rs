//! A simulated GP Connect provider ([`simulator`]) serving the seeded population as GP Connect
//! Access Record Structured (FHIR STU3) structured records ([`render`]).

pub mod render;
pub mod simulator;

#[cfg(test)]
mod tests;
