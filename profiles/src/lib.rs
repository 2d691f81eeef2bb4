//! The regional FHIR R4 implementation guide as code.
//!
//! This crate owns the identifiers and value types every other crate builds on (NHS number,
//! ODS code, coding systems), the one OperationOutcome builder, and R4 validation: [`schema`]
//! walks a `serde_json::Value` against the structure derived from HL7's R4 JSON schema (no typed
//! FHIR model is built), and [`validate`] is the entry point other crates call. It does no I/O
//! and knows nothing of HTTP.

pub mod elements;
pub mod facts;
pub mod maps;
pub mod nhs;
pub mod ods;
pub mod outcome;
pub mod schema;
pub mod systems;
pub mod uk_core;
pub mod validate;

/// Resource types of the patient compartment that the region's exchanges serve and the gateway
/// searches by `patient`.
pub const PATIENT_SEARCH_TYPES: [&str; 9] = [
    "Condition",
    "MedicationStatement",
    "MedicationRequest",
    "AllergyIntolerance",
    "Observation",
    "DiagnosticReport",
    "Encounter",
    "Immunization",
    "Procedure",
];

pub use facts::{Coding, ResourceFacts, Section};
pub use nhs::NhsNumber;
pub use ods::OdsCode;
pub use outcome::{IssueSeverity, IssueType, OperationOutcome};
