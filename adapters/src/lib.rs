//! Source adapters: how Tideway talks to each borough exchange.
//!
//! Owns the [`SourceAdapter`] trait, the source registry types, the [`registry`] that builds an
//! adapter from a source's kind, and one module per source system (each with `client`,
//! `mapping` and tests). Depends on `tideway-profiles` only; it must not know about the gateway's
//! policy, audit or HTTP API, and holds no simulator or synthetic data: those live in
//! `tideway-simulators`, which also runs the conformance suite every adapter must pass.

pub mod adapter;
pub mod emis;
pub mod fhir_r4;
pub mod gp_connect;
pub mod gp_record;
pub mod http;
pub mod registry;
pub mod social_care;
pub mod source;
pub mod systmone;
pub mod vision;
pub mod xml;

pub use adapter::{
    AdapterError, CallContext, DemographicQuery, ListWarning, ListWarningCode, NormalisedResource,
    PatientLink, RejectedResource, RejectionKind, Requester, SourceAdapter, SourcePatient, SourceRecord,
};
pub use registry::AdapterBuildError;
pub use source::{Attestation, AttestationStatus, ClientKey, SourceConfig, SourceId, SourceTls, SystemKind};
