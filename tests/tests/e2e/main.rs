//! End-to-end: the real gateway and simulated boroughs over HTTP. One test binary so the
//! application code is linked once; each test starts its own app on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "tests")]

mod access_history;
mod agreements;
mod api;
mod audit;
mod auth;
mod cache;
mod client_tls;
mod config;
mod consent;
mod dashboard;
mod dialects;
mod export;
mod federation;
mod governance;
mod headers;
mod identity;
mod key_rotation;
mod matching;
mod metrics;
mod mtls;
mod oversight;
mod pipeline;
mod postgres;
mod registry;
mod relationship;
mod replicas;
mod schema;
mod scopes;
mod search;
mod simulator;
mod snapshots;
mod social_care;
mod supersession;
mod surface;
mod synthea;
