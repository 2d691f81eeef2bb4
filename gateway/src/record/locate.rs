//! Identity and the record locator: which patient an id names, and which sources hold them.
//!
//! The locator learns from answers ("holds under local id X", or "checked, does not hold").
//! Sources it has no fresh answer from are asked before the record is fetched, so a new
//! borough's data is never missed and known ones are not asked again.

use std::sync::Arc;

use tideway_adapters::{AdapterError, PatientLink, SourceAdapter, SourcePatient};
use tideway_profiles::NhsNumber;

use super::RecordService;
use super::error::RecordError;
use crate::identity::PatientIds;
use crate::sources::{Asking, SourceAnswer};
use crate::store::SourceLink;

/// Where the patient's record is to be fetched from, and what went wrong on the way.
pub(super) struct Located {
    /// One link per source that holds the patient, in registry order.
    pub targets: Vec<(Arc<dyn SourceAdapter>, PatientLink)>,
    /// Sources that failed when asked whether they hold the patient.
    pub failed: Vec<SourceAnswer<()>>,
}

impl RecordService {
    /// The NHS number behind a published patient id.
    pub async fn resolve(&self, id: &str) -> Result<NhsNumber, RecordError> {
        if !PatientIds::is_well_formed(id) {
            return Err(RecordError::UnknownPatient);
        }
        if let Some(nhs) = self.memo.nhs_number(id).await {
            return Ok(nhs);
        }
        let nhs = match self.store.nhs_number_of(id).await {
            Ok(Some(n)) => NhsNumber::parse(&n).map_err(|_| RecordError::UnknownPatient)?,
            Ok(None) => return Err(RecordError::UnknownPatient),
            Err(cause) => return Err(RecordError::PatientIndex { what: "read", cause }),
        };
        self.memo.remember_id(id, &nhs).await;
        Ok(nhs)
    }

    /// Records the published id and what each source that answered said.
    pub(super) async fn remember(
        &self,
        nhs: &NhsNumber,
        gateway_id: &str,
        answers: &[SourceAnswer<Option<SourcePatient>>],
    ) -> Result<(), RecordError> {
        let written = |cause| RecordError::PatientIndex { what: "written", cause };
        self.store.remember_patient(gateway_id, nhs.as_str()).await.map_err(written)?;
        self.memo.remember_id(gateway_id, nhs).await;
        // Sources that failed to answer keep whatever the locator knew about them before.
        let links: Vec<SourceLink> = answers
            .iter()
            .filter_map(|a| match &a.result {
                Ok(p) => Some(SourceLink {
                    source_id: a.source.to_string(),
                    local_id: p.as_ref().map(|p| p.local_id.clone()),
                }),
                Err(_) => None,
            })
            .collect();
        // Written first, then forgotten (which moves the memo's epoch on): a read that raced with
        // this write does not keep the rows it read before it.
        let written = self.store.upsert_links(gateway_id, &links).await.map_err(written);
        self.memo.forget_links(gateway_id).await;
        // The demographic index only widens what `$match` can find: a failure to write it is
        // logged, never a reason to refuse this answer.
        let patients: Vec<&tideway_adapters::NormalisedResource> = answers
            .iter()
            .filter_map(|a| a.result.as_ref().ok().and_then(|p| p.as_ref()))
            .map(|p| &p.resource)
            .collect();
        if let Err(e) = self.remember_demographics(gateway_id, &patients).await {
            tracing::error!(error = %e, "demographic index could not be written");
        }
        if let Err(e) = self.learn_supersessions(nhs, answers).await {
            tracing::error!(error = %e, "superseded NHS numbers could not be recorded");
        }
        written
    }

    /// The sources holding the patient: the locator's fresh answers, plus whatever the sources
    /// it has no answer from say now.
    pub(super) async fn locate(
        &self,
        nhs: &NhsNumber,
        gateway_id: &str,
        asking: &Asking,
        overall: tokio::time::Instant,
    ) -> Result<Located, RecordError> {
        let known = match self.memo.links(gateway_id).await {
            Some(known) => known,
            None => {
                let epoch = self.memo.links_epoch();
                let rows = self
                    .store
                    .links(gateway_id, self.locator_max_age_secs)
                    .await
                    .map_err(|cause| RecordError::PatientIndex { what: "read", cause })?;
                self.memo.remember_links(gateway_id, rows, epoch).await
            }
        };
        // Only sources asked now: links learnt from a source since suspended, deregistered or
        // no longer attested are not followed, and that source is reported as not asked.
        let sources = self.federation.sources();
        let adapters = sources.adapters();
        let unknown: Vec<Arc<dyn SourceAdapter>> = adapters
            .iter()
            .filter(|a| !known.iter().any(|l| l.source_id == a.id().as_str()))
            .cloned()
            .collect();
        let mut held: Vec<(String, String)> = known
            .iter()
            .filter_map(|l| l.local_id.clone().map(|local| (l.source_id.clone(), local)))
            .collect();
        let mut failed: Vec<SourceAnswer<()>> = sources.not_asked().collect();
        if !unknown.is_empty() {
            let answers = self.federation.find_patient_in(&unknown, nhs, gateway_id, asking, overall).await;
            // The record can still be answered from the sources already known; a locator
            // that cannot learn now learns next time.
            if let Err(e) = self.remember(nhs, gateway_id, &answers).await {
                tracing::error!(error = %e, "record locator could not be written");
            }
            for a in answers {
                match a.result {
                    Ok(Some(p)) => held.push((a.source.to_string(), p.local_id)),
                    Ok(None) => {}
                    Err(e) => {
                        failed.push(SourceAnswer { source: a.source, result: Err(e), elapsed: a.elapsed })
                    }
                }
            }
        }
        let targets = targets(adapters, &held, gateway_id, nhs);
        Ok(Located { targets, failed })
    }
}

/// One link per source in `adapters` (registry order) that holds the patient, by `held`'s
/// `(source id, local id)` pairs.
pub(super) fn targets(
    adapters: &[Arc<dyn SourceAdapter>],
    held: &[(String, String)],
    gateway_id: &str,
    nhs: &NhsNumber,
) -> Vec<(Arc<dyn SourceAdapter>, PatientLink)> {
    adapters
        .iter()
        .filter_map(|a| {
            held.iter().find(|(s, _)| s == a.id().as_str()).map(|(_, local)| {
                (
                    a.clone(),
                    PatientLink {
                        gateway_id: gateway_id.to_owned(),
                        local_id: local.clone(),
                        nhs_number: nhs.clone(),
                    },
                )
            })
        })
        .collect()
}

/// The error for a request none of whose sources answered: 504 if every failure was a timeout,
/// 502 otherwise; `None` while some source answered (or none was asked).
pub(super) fn all_failed(errors: &[&AdapterError], answered: usize) -> Option<RecordError> {
    if answered > 0 || errors.is_empty() {
        return None;
    }
    Some(if errors.iter().all(|e| matches!(e, AdapterError::Timeout)) {
        RecordError::NoSourceInTime
    } else {
        RecordError::AllSourcesFailed
    })
}
