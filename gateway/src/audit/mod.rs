//! The audit trail: who asked for what about whom, and what was released.
//!
//! A request that may touch patient data writes an `intent` record before any source is asked
//! and an `outcome` record before the response leaves; if either cannot be written durably the
//! request is answered 503 and nothing is released (fail closed). Refused requests are audited
//! too; those that never authenticated are counted per peer instead ([`tally`]). Records hold
//! identifiers and counts, never clinical content.
//!
//! [`trail::AuditTrail`] is the one writer: every path appends through it, with the
//! intent/outcome protocol, the timeout and the fail-closed rule in one place. The store's
//! writers link each record into a hash chain as they insert it ([`chain`]); [`checkpoint`]
//! signs the chain's head apart from the store, [`verify`] checks both, and [`balp`] renders
//! records as `AuditEvent`s.

pub mod balp;
pub mod chain;
pub mod checkpoint;
pub mod log;
pub mod retention;
pub mod since_checkpoint;
pub mod tally;
pub mod trail;
pub mod verify;

pub use log::AuditLog;
pub use trail::{AuditError, AuditTrail, AuditedCall};

use std::sync::Arc;
use time::OffsetDateTime;

use crate::Principal;

/// Which half of a request's audit a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditPhase {
    /// Written before any source is asked.
    Intent,
    /// Written before the response leaves.
    Outcome,
    /// One patient of several a request's answer released (a `$match` naming more than one
    /// candidate): written just before the request's outcome record, with the same request
    /// id, so that each patient's access history shows the request. An outcome that then
    /// fails to be written leaves disclosures of an answer that never left, never the other
    /// way round; the request's outcome record (or its absence) tells which.
    Disclosure,
}

impl AuditPhase {
    /// Stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Intent => "intent",
            Self::Outcome => "outcome",
            Self::Disclosure => "disclosure",
        }
    }

    /// The phase a stored code names.
    pub fn parse(code: &str) -> Option<Self> {
        [Self::Intent, Self::Outcome, Self::Disclosure].into_iter().find(|p| p.as_str() == code)
    }
}

impl PartialEq<&str> for AuditPhase {
    fn eq(&self, code: &&str) -> bool {
        self.as_str() == *code
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// Intent recorded, result not yet known.
    Pending,
    /// Answered in full.
    Success,
    /// Answered with some sources missing.
    Partial,
    /// Refused (authentication, authorisation, bad request).
    Denied,
    /// Failed (upstreams or internal).
    Error,
}

impl PartialEq<&str> for AuditOutcome {
    fn eq(&self, code: &&str) -> bool {
        self.as_str() == *code
    }
}

impl AuditOutcome {
    /// The outcome a stored code names.
    pub fn parse(code: &str) -> Option<Self> {
        [Self::Pending, Self::Success, Self::Partial, Self::Denied, Self::Error]
            .into_iter()
            .find(|o| o.as_str() == code)
    }

    /// Stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Success => "success",
            Self::Partial => "partial",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }
}

/// Every action a request is audited as.
pub const ACTIONS: [&str; 34] = [
    "patient-search",
    "patient-read",
    "patient-everything",
    "search",
    "page",
    "read",
    "token",
    "consent",
    "agreement-publish",
    "agreement-approve",
    "agreement-read",
    "alerts",
    "policy-simulate",
    "audit-read",
    "notifications",
    "unauthenticated",
    "unsupported",
    "source-read",
    "source-register",
    "source-change",
    "source-deregister",
    "organisation-read",
    "organisation-change",
    "client-read",
    "client-change",
    "patient-match",
    "bulk-export",
    "bulk-export-status",
    "bulk-export-download",
    "group-read",
    "measure-report",
    "population-figures",
    "opt-out",
    "population-figures-refresh",
];

/// The action a stored code names.
pub fn action_named(code: &str) -> Option<&'static str> {
    ACTIONS.iter().copied().find(|a| *a == code)
}

/// An audit record as stored: its sequence number and the record itself.
#[derive(Debug, Clone)]
pub struct StoredAudit {
    /// Sequence number (ascending, gap-free per store).
    pub seq: i64,
    /// The record.
    pub record: AuditRecord,
}

impl std::ops::Deref for StoredAudit {
    type Target = AuditRecord;

    fn deref(&self) -> &AuditRecord {
        &self.record
    }
}

/// A stored record with its place in the hash chain, as stored (not checked).
#[derive(Debug, Clone)]
pub struct ChainedAudit {
    /// The record and its sequence number.
    pub stored: StoredAudit,
    /// `prev_hash` as stored.
    pub prev_hash: Option<String>,
    /// `hash` as stored.
    pub hash: Option<String>,
}

/// Which of one patient's audit records are asked for: outcome and disclosure records made in
/// `[from_us, to_us)` (microseconds since the epoch), newest first, at most `limit`.
#[derive(Debug, Clone)]
pub struct PatientWindow {
    /// The gateway's patient id.
    pub patient_id: String,
    /// Made at or after.
    pub from_us: i64,
    /// Made before.
    pub to_us: i64,
    /// At most so many.
    pub limit: i64,
}

/// One audit record.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// When it was made.
    pub recorded_at: OffsetDateTime,
    /// The request id (also answered as `X-Request-ID`).
    pub request_id: String,
    /// Intent or outcome.
    pub phase: AuditPhase,
    /// What was asked: `patient-search`, `patient-read`, `patient-everything`, `search`,
    /// `token`, or `unauthenticated`.
    pub action: &'static str,
    /// Registered client.
    pub client_id: Option<String>,
    /// End user.
    pub user_id: Option<String>,
    /// National RBAC role.
    pub role: Option<String>,
    /// ODS code of the user's organisation.
    pub organisation: Option<String>,
    /// PurposeOfUse code.
    pub purpose: Option<String>,
    /// The gateway's opaque patient id (never the NHS number).
    pub patient_id: Option<String>,
    /// Source ids asked, as a JSON array (made once: the registry is fixed at start-up).
    pub sources: Arc<str>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// HTTP status answered (0 for intent).
    pub http_status: u16,
    /// Resources released.
    pub released: u64,
    /// Structured detail as JSON text: per-source counts and failures, refusal reason codes.
    /// No clinical content, no NHS numbers.
    pub detail: String,
}

impl AuditRecord {
    /// A record for `action` on behalf of `principal` (if authenticated).
    pub fn new(request_id: &str, action: &'static str, principal: Option<&Principal>) -> Self {
        Self {
            recorded_at: OffsetDateTime::now_utc(),
            request_id: request_id.to_owned(),
            phase: AuditPhase::Outcome,
            action,
            client_id: principal.map(|p| p.client_id.clone()),
            user_id: principal.map(|p| p.user_id.clone()),
            role: principal.map(|p| p.role.as_str().to_owned()),
            organisation: principal.map(|p| p.organisation.as_str().to_owned()),
            purpose: principal.map(|p| p.purpose.code().to_owned()),
            patient_id: None,
            sources: Arc::from("[]"),
            outcome: AuditOutcome::Pending,
            http_status: 0,
            released: 0,
            detail: String::from("null"),
        }
    }
}
