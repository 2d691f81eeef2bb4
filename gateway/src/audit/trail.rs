//! The one audit writer and the intent/outcome protocol of a request.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;

use super::AuditLog;
use super::{AuditOutcome, AuditPhase, AuditRecord};
use crate::Principal;

/// Longest wait for an audit append before the request is answered 503.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The audit trail could not be written (or did not answer in time): nothing may be released.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit trail could not be written: {0}")]
pub struct AuditError(String);

impl AuditError {
    /// An error whose cause is described by `cause` (names operations and tables, never values).
    pub fn new(cause: impl Into<String>) -> Self {
        Self(cause.into())
    }
}

/// Appends audit records durably.
#[derive(Clone)]
pub struct AuditTrail {
    log: Arc<dyn AuditLog>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditTrail(..)")
    }
}

impl AuditTrail {
    /// A trail kept in `log`.
    pub fn new(log: Arc<dyn AuditLog>) -> Self {
        Self { log }
    }

    /// Appends one record durably and returns its sequence number, giving up (as a failure)
    /// if the store does not answer within the audit timeout.
    pub async fn append(&self, record: &AuditRecord) -> Result<i64, AuditError> {
        match tokio::time::timeout(AUDIT_TIMEOUT, self.log.append_audit(record)).await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(AuditError("timed out".into())),
        }
    }

    /// Starts the audit of one request for `action`, on behalf of `principal` when known.
    pub fn begin(
        &self,
        request_id: &str,
        action: &'static str,
        principal: Option<&Principal>,
    ) -> AuditedCall {
        AuditedCall { trail: self.clone(), record: AuditRecord::new(request_id, action, principal) }
    }
}

/// The audit of one request in flight: an intent before any source is asked, then exactly one
/// outcome or refusal.
#[derive(Debug)]
pub struct AuditedCall {
    trail: AuditTrail,
    record: AuditRecord,
}

impl AuditedCall {
    /// The request id the records carry.
    pub fn request_id(&self) -> &str {
        &self.record.request_id
    }

    /// The patient the request is about, when known.
    pub fn patient_id(&self) -> Option<&str> {
        self.record.patient_id.as_deref()
    }

    /// Names the patient the request is about (the gateway's opaque id, never an NHS number).
    pub fn about_patient(&mut self, patient_id: &str) {
        self.record.patient_id = Some(patient_id.to_owned());
    }

    /// Writes the intent record. Nothing may be asked of a source before this succeeds.
    pub async fn intent(&mut self, sources: Arc<str>) -> Result<(), AuditError> {
        self.record.phase = AuditPhase::Intent;
        self.record.outcome = AuditOutcome::Pending;
        self.record.sources = sources;
        self.record.recorded_at = OffsetDateTime::now_utc();
        self.trail.append(&self.record).await.map(drop).map_err(|e| {
            tracing::error!(request_id = %self.record.request_id, error = %e, "audit intent could not be written");
            e
        })
    }

    /// Writes the outcome record; the response may leave only if this succeeds.
    pub async fn outcome(
        mut self,
        status: u16,
        released: usize,
        outcome: AuditOutcome,
        detail: String,
    ) -> Result<(), AuditError> {
        self.finish(status, released, outcome, detail);
        self.trail.append(&self.record).await.map(drop).map_err(|e| {
            tracing::error!(request_id = %self.record.request_id, error = %e, "audit outcome could not be written; nothing released");
            e
        })
    }

    /// Records a refusal (`failed` when the fault was ours or upstream rather than the
    /// requester's). Best effort: the request is refused whether or not this is written, since
    /// nothing is released.
    pub async fn refused(mut self, status: u16, failed: bool, reason: &str) {
        let outcome = if failed { AuditOutcome::Error } else { AuditOutcome::Denied };
        self.finish(status, 0, outcome, json!({ "reason": reason }).to_string());
        if self.trail.append(&self.record).await.is_err() {
            tracing::error!(request_id = %self.record.request_id, "audit write failed while refusing a request");
        }
    }

    fn finish(&mut self, status: u16, released: usize, outcome: AuditOutcome, detail: String) {
        self.record.phase = AuditPhase::Outcome;
        self.record.outcome = outcome;
        self.record.http_status = status;
        self.record.released = released as u64;
        self.record.detail = detail;
        self.record.recorded_at = OffsetDateTime::now_utc();
    }
}
