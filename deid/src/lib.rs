//! De-identification for secondary use: the London-wide dashboards and bulk `$export` (issue 11).
//!
//! This crate owns the one de-identification profile of Tideway, documented element by element in
//! `docs/deidentification.md`: keyed pseudonyms per dashboard project ([`Pseudonymiser`]), the
//! allow-list that turns one FHIR R4 resource of a patient's record into its de-identified form
//! ([`deidentify`]), the coarsening of birth dates, postcodes and event dates ([`Profile`],
//! [`age_band`], [`postcode_district`]), and small-number suppression of aggregate tables
//! ([`suppress`]).
//!
//! It is pure: plain functions over `serde_json::Value` and plain types, no I/O, no clock (the
//! caller passes the day ages are computed at), no logging. It must not depend on the gateway, on
//! actix, sqlx or tokio, nor on the policy engine: who may receive what is decided before a
//! resource reaches this crate (consent, opt-outs, agreements), and this crate only decides what
//! of an already released resource may leave in de-identified form.
#![forbid(unsafe_code)]

mod age;
mod dates;
mod postcode;
mod profile;
mod pseudonym;
mod resource;
pub mod suppress;

pub use age::{AgeBand, age_band};
pub use postcode::postcode_district;
pub use profile::{BirthDetail, DatePrecision, PlaceDetail, Profile};
pub use pseudonym::{KeyError, MAX_KID_LEN, MIN_SECRET_LEN, ProjectKey, Pseudonymiser};
pub use resource::{AGE_BAND_EXTENSION, EXPORTED_TYPES, deidentify, in_patient_compartment};

#[cfg(test)]
mod tests;
