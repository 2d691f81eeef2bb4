//! In-memory fakes of the store's traits, for unit tests of the record service and the audit
//! trail without a database. Not durable: never used outside tests and benches.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use super::{AuditLog, AuditRow, PatientIndex, SourceLink, StoreError};
use crate::audit::AuditRecord;

/// A patient index, locator and audit log held in memory. `fail_audit` makes every append
/// fail, to test the fail-closed paths.
#[derive(Debug, Default)]
pub struct MemoryStore {
    patients: Mutex<HashMap<String, String>>,
    links: Mutex<HashMap<String, Vec<SourceLink>>>,
    audit: Mutex<Vec<(String, AuditRow)>>,
    /// When set, audit appends fail.
    pub fail_audit: AtomicBool,
}

fn poisoned(op: &'static str) -> StoreError {
    StoreError::other(op, "lock poisoned")
}

impl MemoryStore {
    /// Every audit record appended, oldest first.
    pub fn audit_rows(&self) -> Vec<AuditRow> {
        self.audit.lock().map(|a| a.iter().map(|(_, r)| r.clone()).collect()).unwrap_or_default()
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
    async fn append_audit(&self, r: &AuditRecord) -> Result<i64, StoreError> {
        if self.fail_audit.load(Ordering::SeqCst) {
            return Err(StoreError::other("append audit", "failing on purpose"));
        }
        let mut rows = self.audit.lock().map_err(|_| poisoned("append audit"))?;
        let seq = i64::try_from(rows.len()).unwrap_or(i64::MAX) + 1;
        rows.push((
            r.request_id.clone(),
            AuditRow {
                seq,
                phase: r.phase.as_str().to_owned(),
                action: r.action.to_owned(),
                client_id: r.client_id.clone(),
                user_id: r.user_id.clone(),
                organisation: r.organisation.clone(),
                purpose: r.purpose.clone(),
                patient_id: r.patient_id.clone(),
                sources: r.sources.to_string(),
                outcome: r.outcome.as_str().to_owned(),
                http_status: i32::from(r.http_status),
                released: i64::try_from(r.released).unwrap_or(i64::MAX),
                detail: r.detail.clone(),
            },
        ));
        Ok(seq)
    }

    async fn audit_for_request(&self, request_id: &str) -> Result<Vec<AuditRow>, StoreError> {
        let rows = self.audit.lock().map_err(|_| poisoned("read audit"))?;
        Ok(rows.iter().filter(|(id, _)| id == request_id).map(|(_, r)| r.clone()).collect())
    }
}
