//! In-memory fakes of the store's traits, for unit tests of the record service and the audit
//! trail without a database. Not durable: never used outside tests and benches.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use super::{
    AccessNotification, AccessStore, AgreementStore, AlertStore, Approval, AuditLog, BreakGlass,
    ConsentStore, ConsentVersion, DueDelivery, FirstAccess, MisuseStore, PatientIndex, PrivacyAlert,
    PublishedVersion, SourceLink, StoreError,
};
use crate::audit::{AuditError, AuditPhase, AuditRecord, ChainedAudit, PatientWindow, StoredAudit};

/// A patient index, locator and audit log held in memory. `fail_audit` makes every append
/// fail, to test the fail-closed paths.
#[derive(Debug, Default)]
pub struct MemoryStore {
    patients: Mutex<HashMap<String, String>>,
    links: Mutex<HashMap<String, Vec<SourceLink>>>,
    match_keys: Mutex<Vec<(String, String)>>,
    supersessions: Mutex<HashMap<String, String>>,
    audit: Mutex<Vec<StoredAudit>>,
    consents: Mutex<Vec<ConsentVersion>>,
    agreements: Mutex<(Vec<PublishedVersion>, Vec<Approval>)>,
    break_glass: Mutex<Vec<BreakGlass>>,
    alerts: Mutex<Vec<PrivacyAlert>>,
    access: Mutex<Accesses>,
    touches: Mutex<HashMap<(String, String), i64>>,
    flags: Mutex<HashMap<(String, String), i64>>,
    /// When set, audit appends fail.
    pub fail_audit: AtomicBool,
}

/// `(patient, organisation)` pairs that have accessed, and the notifications raised.
type Accesses = (Vec<(String, String)>, Vec<AccessNotification>);

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

    async fn remember_match_keys(&self, patient_id: &str, keys: &[String]) -> Result<(), StoreError> {
        let mut known = self.match_keys.lock().map_err(|_| poisoned("remember match key"))?;
        for k in keys {
            known.retain(|(key, p)| !(key == k && p == patient_id));
            known.push((k.clone(), patient_id.to_owned()));
        }
        Ok(())
    }

    async fn match_candidates(&self, key: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        let known = self.match_keys.lock().map_err(|_| poisoned("read match keys"))?;
        let limit = usize::try_from(limit).unwrap_or(0);
        Ok(known.iter().rev().filter(|(k, _)| k == key).map(|(_, p)| p.clone()).take(limit).collect())
    }

    async fn record_supersessions(
        &self,
        pairs: &[(String, String)],
        _origin: &str,
    ) -> Result<(), StoreError> {
        let mut known = self.supersessions.lock().map_err(|_| poisoned("record supersession"))?;
        known.extend(pairs.iter().cloned());
        Ok(())
    }

    async fn superseded_by(&self, old: &str) -> Result<Option<String>, StoreError> {
        Ok(self.supersessions.lock().map_err(|_| poisoned("read supersession"))?.get(old).cloned())
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn append_audit(&self, r: &AuditRecord) -> Result<i64, AuditError> {
        if self.fail_audit.load(Ordering::SeqCst) {
            return Err(AuditError::new("failing on purpose"));
        }
        let mut rows = self.audit.lock().map_err(|_| poisoned("append audit"))?;
        let seq = rows.last().map_or(1, |r| r.seq + 1);
        rows.push(StoredAudit { seq, record: r.clone() });
        Ok(seq)
    }

    /// The fake keeps no chain: its head has no hash.
    async fn chain_head(&self) -> Result<Option<(i64, Option<String>)>, AuditError> {
        let rows = self.audit.lock().map_err(|_| poisoned("read audit"))?;
        Ok(rows.last().map(|r| (r.seq, None)))
    }

    async fn audit_for_request(&self, request_id: &str) -> Result<Vec<StoredAudit>, AuditError> {
        let rows = self.audit.lock().map_err(|_| poisoned("read audit"))?;
        Ok(rows.iter().filter(|r| r.request_id == request_id).cloned().collect())
    }

    async fn audit_for_patient(&self, w: &PatientWindow) -> Result<Vec<ChainedAudit>, AuditError> {
        let rows = self.audit.lock().map_err(|_| poisoned("read audit"))?;
        Ok(rows
            .iter()
            .rev()
            .filter(|r| {
                r.patient_id.as_deref() == Some(w.patient_id.as_str())
                    && matches!(r.phase, AuditPhase::Outcome | AuditPhase::Disclosure)
            })
            .filter(|r| (w.from_us..w.to_us).contains(&crate::epoch_us::of(r.recorded_at)))
            .take(usize::try_from(w.limit).unwrap_or(0))
            .map(|r| ChainedAudit { stored: r.clone(), prev_hash: None, hash: None })
            .collect())
    }

    async fn audit_record(&self, seq: i64) -> Result<Option<ChainedAudit>, AuditError> {
        let rows = self.audit.lock().map_err(|_| poisoned("read audit"))?;
        Ok(rows.iter().find(|r| r.seq == seq).map(|r| ChainedAudit {
            stored: r.clone(),
            prev_hash: None,
            hash: None,
        }))
    }

    async fn audit_range(&self, first: i64, last: i64) -> Result<Vec<ChainedAudit>, AuditError> {
        let rows = self.audit.lock().map_err(|_| poisoned("read audit"))?;
        Ok(rows
            .iter()
            .filter(|r| (first..=last).contains(&r.seq))
            .map(|r| ChainedAudit { stored: r.clone(), prev_hash: None, hash: None })
            .collect())
    }

    async fn audit_span(&self) -> Result<Option<(i64, i64)>, AuditError> {
        let rows = self.audit.lock().map_err(|_| poisoned("read audit"))?;
        Ok(rows.first().zip(rows.last()).map(|(first, head)| (first.seq, head.seq)))
    }

    async fn remove_through(&self, through_seq: i64, _before_us: i64) -> Result<u64, AuditError> {
        let mut rows = self.audit.lock().map_err(|_| poisoned("remove audit"))?;
        let before = rows.len();
        rows.retain(|r| r.seq > through_seq);
        Ok(u64::try_from(before - rows.len()).unwrap_or(u64::MAX))
    }
}

#[async_trait]
impl ConsentStore for MemoryStore {
    async fn add_consent_version(&self, v: &ConsentVersion) -> Result<(), StoreError> {
        let mut all = self.consents.lock().map_err(|_| poisoned("add consent version"))?;
        if all.iter().any(|c| c.consent_id == v.consent_id && c.version == v.version) {
            return Err(StoreError::other("add consent version", "that version exists"));
        }
        all.push(v.clone());
        Ok(())
    }

    async fn consent_versions(&self, consent_id: &str) -> Result<Vec<ConsentVersion>, StoreError> {
        let all = self.consents.lock().map_err(|_| poisoned("read consent versions"))?;
        let mut out: Vec<_> = all.iter().filter(|c| c.consent_id == consent_id).cloned().collect();
        out.sort_by_key(|c| c.version);
        Ok(out)
    }

    async fn current_consents(&self, patient_id: &str) -> Result<Vec<ConsentVersion>, StoreError> {
        let all = self.consents.lock().map_err(|_| poisoned("read consents"))?;
        let mut latest: HashMap<&str, &ConsentVersion> = HashMap::new();
        for c in all.iter().filter(|c| c.patient_id == patient_id) {
            let e = latest.entry(c.consent_id.as_str()).or_insert(c);
            if c.version > e.version {
                *e = c;
            }
        }
        let mut out: Vec<ConsentVersion> = latest.into_values().cloned().collect();
        out.sort_by(|a, b| a.consent_id.cmp(&b.consent_id));
        Ok(out)
    }
}

#[async_trait]
impl AgreementStore for MemoryStore {
    async fn publish_agreement(&self, v: &PublishedVersion) -> Result<bool, StoreError> {
        let mut all = self.agreements.lock().map_err(|_| poisoned("publish agreement"))?;
        if all.0.iter().any(|p| p.agreement_id == v.agreement_id && p.version >= v.version) {
            return Ok(false);
        }
        all.0.push(v.clone());
        all.0.sort_by(|a, b| (&a.agreement_id, a.version).cmp(&(&b.agreement_id, b.version)));
        Ok(true)
    }

    async fn approve_agreement(&self, a: &Approval) -> Result<bool, StoreError> {
        let mut all = self.agreements.lock().map_err(|_| poisoned("approve agreement"))?;
        let key = |x: &Approval| (x.agreement_id.clone(), x.version, x.ods_code.clone());
        if all.1.iter().any(|x| key(x) == key(a)) {
            return Ok(false);
        }
        all.1.push(a.clone());
        all.1.sort_by_key(key);
        Ok(true)
    }

    async fn published_agreements(&self) -> Result<Vec<PublishedVersion>, StoreError> {
        Ok(self.agreements.lock().map_err(|_| poisoned("read agreement versions"))?.0.clone())
    }

    async fn agreement_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        Ok(self.agreements.lock().map_err(|_| poisoned("read agreement approvals"))?.1.clone())
    }
}

#[async_trait]
impl AlertStore for MemoryStore {
    async fn open_break_glass(&self, session: &BreakGlass) -> Result<BreakGlass, StoreError> {
        let mut sessions = self.break_glass.lock().map_err(|_| poisoned("open break-glass"))?;
        if let Some(open) = sessions.iter().find(|s| s.token_id == session.token_id) {
            return Ok(open.clone());
        }
        self.alerts.lock().map_err(|_| poisoned("raise alert"))?.push(PrivacyAlert {
            alert_id: format!("a{}", sessions.len()),
            kind: "break-glass".into(),
            raised_at_us: session.opened_at_us,
            patient_id: session.patient_id.clone(),
            user: session.user.clone(),
            organisation: session.organisation.clone(),
            role: session.role.clone(),
            reason: session.reason.clone(),
            request_id: session.request_id.clone(),
        });
        sessions.push(session.clone());
        Ok(session.clone())
    }

    async fn alerts(
        &self,
        patient_id: Option<&str>,
        since_us: i64,
        limit: i64,
    ) -> Result<Vec<PrivacyAlert>, StoreError> {
        let all = self.alerts.lock().map_err(|_| poisoned("read alerts"))?;
        Ok(all
            .iter()
            .filter(|a| a.raised_at_us >= since_us && patient_id.is_none_or(|p| a.patient_id == p))
            .take(usize::try_from(limit).unwrap_or(0))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl AccessStore for MemoryStore {
    async fn has_accessed(&self, patient_id: &str, organisation: &str) -> Result<bool, StoreError> {
        let known = self.access.lock().map_err(|_| poisoned("read organisation access"))?;
        Ok(known.0.iter().any(|(p, o)| p == patient_id && o == organisation))
    }

    async fn record_first_access(&self, a: &FirstAccess) -> Result<bool, StoreError> {
        let mut known = self.access.lock().map_err(|_| poisoned("record organisation access"))?;
        if known.0.iter().any(|(p, o)| *p == a.patient_id && *o == a.organisation) {
            return Ok(false);
        }
        known.0.push((a.patient_id.clone(), a.organisation.clone()));
        for practice in &a.recipients {
            let notification_id = format!("n{}", known.1.len());
            known.1.push(AccessNotification {
                notification_id,
                patient_id: a.patient_id.clone(),
                organisation: a.organisation.clone(),
                practice: practice.clone(),
                user: a.user.clone(),
                role: a.role.clone(),
                standing: a.standing.clone(),
                raised_at_us: a.at_us,
                request_id: a.request_id.clone(),
            });
        }
        Ok(true)
    }

    async fn notifications(
        &self,
        practice: Option<&str>,
        patient_id: Option<&str>,
        since_us: i64,
        limit: i64,
    ) -> Result<Vec<AccessNotification>, StoreError> {
        let known = self.access.lock().map_err(|_| poisoned("read access notifications"))?;
        Ok(known
            .1
            .iter()
            .filter(|n| n.raised_at_us >= since_us)
            .filter(|n| practice.is_none_or(|p| n.practice.as_deref() == Some(p)))
            .filter(|n| patient_id.is_none_or(|p| n.patient_id == p))
            .take(usize::try_from(limit).unwrap_or(0))
            .cloned()
            .collect())
    }

    async fn due_deliveries(&self, _now_us: i64, _limit: i64) -> Result<Vec<DueDelivery>, StoreError> {
        Ok(Vec::new())
    }

    async fn claim_delivery(&self, _: &str, _: i64, _: i64) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn delivered(&self, _: &str, _: i64) -> Result<(), StoreError> {
        Ok(())
    }

    async fn delivery_failed(&self, _: &str, _: i64, _: i64, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl MisuseStore for MemoryStore {
    async fn touch_patient(
        &self,
        user: &str,
        patient_id: &str,
        at_us: i64,
        since_us: i64,
    ) -> Result<i64, StoreError> {
        let mut touches = self.touches.lock().map_err(|_| poisoned("note patient read"))?;
        touches.insert((user.to_owned(), patient_id.to_owned()), at_us);
        let n = touches.iter().filter(|((u, _), at)| u == user && **at >= since_us).count();
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }

    async fn break_glass_since(&self, user: &str, since_us: i64) -> Result<i64, StoreError> {
        let sessions = self.break_glass.lock().map_err(|_| poisoned("count break-glass sessions"))?;
        let n = sessions.iter().filter(|s| s.user == user && s.opened_at_us >= since_us).count();
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }

    async fn raise_flag(&self, alert: &PrivacyAlert, until_us: i64) -> Result<bool, StoreError> {
        let mut flags = self.flags.lock().map_err(|_| poisoned("raise misuse flag"))?;
        let key = (alert.user.clone(), alert.kind.clone());
        if flags.get(&key).is_some_and(|until| *until > alert.raised_at_us) {
            return Ok(false);
        }
        flags.insert(key, until_us);
        self.alerts.lock().map_err(|_| poisoned("raise alert"))?.push(alert.clone());
        Ok(true)
    }

    async fn flagged_until(&self, user: &str, now_us: i64) -> Result<Option<i64>, StoreError> {
        let flags = self.flags.lock().map_err(|_| poisoned("read misuse flags"))?;
        Ok(flags.iter().filter(|((u, _), until)| u == user && **until > now_us).map(|(_, u)| *u).max())
    }

    async fn prune_misuse(&self, before_us: i64) -> Result<(), StoreError> {
        self.touches.lock().map_err(|_| poisoned("prune"))?.retain(|_, at| *at >= before_us);
        self.flags.lock().map_err(|_| poisoned("prune"))?.retain(|_, until| *until >= before_us);
        Ok(())
    }
}
