//! In-memory fakes of the store's traits, for unit tests of the record service and the audit
//! trail without a database. Not durable: never used outside tests and benches.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use super::{AuditLog, PatientIndex, SourceLink, StoreError};
use crate::audit::{AuditError, AuditRecord, StoredAudit};

/// A patient index, locator and audit log held in memory. `fail_audit` makes every append
/// fail, to test the fail-closed paths.
#[derive(Debug, Default)]
pub struct MemoryStore {
    patients: Mutex<HashMap<String, String>>,
    links: Mutex<HashMap<String, Vec<SourceLink>>>,
    audit: Mutex<Vec<StoredAudit>>,
    /// When set, audit appends fail.
    pub fail_audit: AtomicBool,
}

fn poisoned(op: &'static str) -> StoreError {
    StoreError::other(op, "lock poisoned")
}

impl MemoryStore {
    /// Every audit record appended, oldest first.
    pub fn audit_rows(&self) -> Vec<StoredAudit> {
        self.audit.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl PatientIndex for MemoryStore {
    async fn remember_patient(&self, patient_id: &str, nhs_number: &str) -> Result<(), StoreError> {
        let mut map = self.patients.lock().map_err(|_| poisoned("remember patient"))?;
        map.retain(|_, n| n != nhs_number);
        map.insert(patient_id.to_owned(), nhs_number.to_owned());
        Ok(())
    }

    async fn nhs_number_of(&self, patient_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.patients.lock().map_err(|_| poisoned("look up patient"))?.get(patient_id).cloned())
    }

    async fn upsert_links(&self, patient_id: &str, links: &[SourceLink]) -> Result<(), StoreError> {
        let mut map = self.links.lock().map_err(|_| poisoned("upsert link"))?;
        let known = map.entry(patient_id.to_owned()).or_default();
        for l in links {
            known.retain(|k| k.source_id != l.source_id);
            known.push(l.clone());
        }
        known.sort_by(|a, b| a.source_id.cmp(&b.source_id));
        Ok(())
    }

    async fn links(&self, patient_id: &str, _max_age_secs: u64) -> Result<Vec<SourceLink>, StoreError> {
        Ok(self
            .links
            .lock()
            .map_err(|_| poisoned("read links"))?
            .get(patient_id)
            .cloned()
            .unwrap_or_default())
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn append_audit(&self, r: &AuditRecord) -> Result<i64, AuditError> {
        if self.fail_audit.load(Ordering::SeqCst) {
            return Err(AuditError::new("failing on purpose"));
        }
        let mut rows = self.audit.lock().map_err(|_| poisoned("append audit"))?;
        let seq = i64::try_from(rows.len()).unwrap_or(i64::MAX) + 1;
        rows.push(StoredAudit { seq, record: r.clone() });
        Ok(seq)
    }

    async fn audit_for_request(&self, request_id: &str) -> Result<Vec<StoredAudit>, AuditError> {
        let rows = self.audit.lock().map_err(|_| poisoned("read audit"))?;
        Ok(rows.iter().filter(|r| r.request_id == request_id).cloned().collect())
    }
}
