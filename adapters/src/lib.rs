//! Source adapters: how Tideway talks to each borough exchange.
//!
//! Owns the [`SourceAdapter`] trait, the source registry types, one module per source system
//! (each with `config`, `client`, `mapping`, `simulator` and tests) and the synthetic population
//! the simulators serve. Depends on `tideway-profiles` only; it must not know about the gateway's
//! policy, audit or HTTP API.

pub mod adapter;
pub mod fhir_r4;
pub mod population;
pub mod registry;
pub mod source;

pub use adapter::{
    AdapterError, CallContext, NormalisedResource, PatientLink, RejectedResource, RejectionKind,
    SourceAdapter, SourcePatient, SourceRecord,
};
pub use registry::AdapterBuildError;
pub use source::{SourceConfig, SourceId, SystemKind};
