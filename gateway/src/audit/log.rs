//! Where audit records are kept: the trait the trail writes through. The store implements it
//! (SQLite, PostgreSQL) and so does the in-memory fake; the audit module knows nothing of either.

use std::sync::Arc;

use async_trait::async_trait;

use super::{AuditError, AuditRecord, ChainedAudit, PatientWindow, StoredAudit};

/// Appends audit records durably and reads a request's records back.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends one record durably and returns its sequence number.
    async fn append_audit(&self, record: &AuditRecord) -> Result<i64, AuditError>;

    /// Appends a record handed over whole, for a log that keeps it past the call (a queue to a
    /// writer thread) and so would otherwise copy it; the log lets go of it before answering.
    /// By default, [`Self::append_audit`].
    async fn append_shared(&self, record: Arc<AuditRecord>) -> Result<i64, AuditError> {
        self.append_audit(&record).await
    }

    /// The chain's head: the last record's sequence number and stored hash, if any record
    /// (what a checkpoint signs).
    async fn chain_head(&self) -> Result<Option<(i64, Option<String>)>, AuditError>;

    /// The records of one request, oldest first (for tests and the privacy officer's tools).
    async fn audit_for_request(&self, request_id: &str) -> Result<Vec<StoredAudit>, AuditError>;

    /// One patient's outcome records in `window` (the privacy officer's access history).
    async fn audit_for_patient(&self, window: &PatientWindow) -> Result<Vec<ChainedAudit>, AuditError>;

    /// The record with sequence number `seq`, if any.
    async fn audit_record(&self, seq: i64) -> Result<Option<ChainedAudit>, AuditError>;

    /// The records with sequence numbers in `first..=last`, in sequence order.
    async fn audit_range(&self, first: i64, last: i64) -> Result<Vec<ChainedAudit>, AuditError>;

    /// The first record's and the head's sequence numbers, if any record (by the primary key:
    /// what retention reads from, without an index on time that every append would pay for).
    async fn audit_span(&self) -> Result<Option<(i64, i64)>, AuditError>;

    /// Removes every record up to `through_seq` (which a signed retention anchor covers) and
    /// notes the removal; how many records went.
    async fn remove_through(&self, through_seq: i64, before_us: i64) -> Result<u64, AuditError>;
}
