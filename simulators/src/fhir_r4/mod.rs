//! A simulated plain FHIR R4 borough exchange ([`simulator`]) that serves either the seeded
//! population rendered as R4 ([`render`]) or a directory of Synthea bundles ([`from_dir`]).

pub mod from_dir;
pub mod render;
pub mod simulator;

#[cfg(test)]
mod tests;
