//! The sources: fan-out, the per-source cache and the calls that leave the gateway.
//!
//! Fan-out: ask every relevant source at once, each within its own deadline and all within the
//! request's, and report per source what happened.
//!
//! A slow or failing source never fails the others: its slot in the answer says why it is
//! missing, and the caller turns that into an `incomplete` OperationOutcome entry.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tideway_adapters::{
    AdapterError, CallContext, NormalisedResource, PatientLink, SourceAdapter, SourceId, SourcePatient,
    SourceRecord,
};
use tideway_profiles::NhsNumber;
use tokio::time::{Instant, timeout_at};
use tracing::Instrument;

pub mod cache;
pub mod call;

pub use cache::SourceCache;

/// The registered sources, their cache and the overall deadline.
#[derive(Clone)]
pub struct Federation {
    adapters: Vec<Arc<dyn SourceAdapter>>,
    request_deadline: Duration,
    cache: SourceCache,
    source_ids: Arc<str>,
}

/// What one source answered.
#[derive(Debug)]
pub struct SourceAnswer<T> {
    /// Which source.
    pub source: SourceId,
    /// Its answer, or why there is none.
    pub result: Result<T, AdapterError>,
    /// How long it took.
    pub elapsed: Duration,
}

impl Federation {
    /// Sources in registry order (the order also decides which Patient represents the patient).
    pub fn new(
        adapters: Vec<Arc<dyn SourceAdapter>>,
        request_deadline: Duration,
        cache: SourceCache,
    ) -> Self {
        let ids: Vec<&str> = adapters.iter().map(|a| a.id().as_str()).collect();
        let source_ids = Arc::from(serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()));
        Self { adapters, request_deadline, cache, source_ids }
    }

    /// The per-source cache (consent changes invalidate through it).
    pub fn cache(&self) -> &SourceCache {
        &self.cache
    }

    /// The registered sources.
    pub fn adapters(&self) -> &[Arc<dyn SourceAdapter>] {
        &self.adapters
    }

    /// The source registered as `id`.
    pub fn adapter(&self, id: &str) -> Option<&Arc<dyn SourceAdapter>> {
        self.adapters.iter().find(|a| a.id().as_str() == id)
    }

    /// Reads one shared resource from one source, within that source's timeout and the
    /// request deadline. Never cached: shared resources are read rarely and one at a time.
    pub async fn read_shared(
        &self,
        adapter: &Arc<dyn SourceAdapter>,
        resource_type: &str,
        local_id: &str,
        request_id: &str,
    ) -> SourceAnswer<Option<NormalisedResource>> {
        let ctx = self.context(adapter.as_ref(), self.deadline(), request_id);
        let started = Instant::now();
        let result = call::read_shared(adapter, resource_type, local_id, &ctx)
            .instrument(tracing::info_span!("source.read", source = %adapter.id()))
            .await;
        SourceAnswer { source: adapter.id().clone(), result, elapsed: started.elapsed() }
    }

    /// Every source id as a JSON array, for the audit trail.
    pub fn source_ids_json(&self) -> Arc<str> {
        self.source_ids.clone()
    }

    fn context(&self, adapter: &dyn SourceAdapter, overall: Instant, request_id: &str) -> CallContext {
        let own = Instant::now() + adapter.config().timeout();
        CallContext {
            deadline: own.min(overall),
            max_body_bytes: adapter.config().max_body_bytes,
            request_id: request_id.to_owned(),
        }
    }

    /// The overall deadline for a request starting now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.request_deadline
    }

    /// Asks every source whether it holds the patient.
    pub async fn find_patient(
        &self,
        nhs: &NhsNumber,
        gateway_id: &str,
        request_id: &str,
        overall: Instant,
    ) -> Vec<SourceAnswer<Option<SourcePatient>>> {
        self.find_patient_in(&self.adapters, nhs, gateway_id, request_id, overall).await
    }

    /// Asks the given sources whether they hold the patient, in parallel.
    pub async fn find_patient_in(
        &self,
        adapters: &[Arc<dyn SourceAdapter>],
        nhs: &NhsNumber,
        gateway_id: &str,
        request_id: &str,
        overall: Instant,
    ) -> Vec<SourceAnswer<Option<SourcePatient>>> {
        let calls = adapters.iter().map(|a| {
            let ctx = self.context(a.as_ref(), overall, request_id);
            let span = tracing::info_span!("source.find_patient", source = %a.id());
            async move {
                let started = Instant::now();
                let call = self.cache.patient(a, nhs, gateway_id, &ctx);
                // A coalesced wait can outlast this request's deadline; the source call itself
                // is bounded (and measured) in `call`.
                let result = match timeout_at(ctx.deadline, call).await {
                    Ok(r) => r.map(|p| (*p).clone()),
                    Err(_) => Err(AdapterError::Timeout),
                };
                let elapsed = started.elapsed();
                SourceAnswer { source: a.id().clone(), result, elapsed }
            }
            .instrument(span)
        });
        join_all(calls).await
    }

    /// Fetches the linked records, one call per source, in parallel.
    pub async fn fetch_records(
        &self,
        links: &[(Arc<dyn SourceAdapter>, PatientLink)],
        request_id: &str,
        overall: Instant,
    ) -> Vec<SourceAnswer<Arc<SourceRecord>>> {
        let calls = links.iter().map(|(a, link)| {
            let ctx = self.context(a.as_ref(), overall, request_id);
            let span = tracing::info_span!("source.fetch_record", source = %a.id());
            async move {
                let started = Instant::now();
                let result = match timeout_at(ctx.deadline, self.cache.record(a, link, &ctx)).await {
                    Ok(r) => r,
                    Err(_) => Err(AdapterError::Timeout),
                };
                let elapsed = started.elapsed();
                SourceAnswer { source: a.id().clone(), result, elapsed }
            }
            .instrument(span)
        });
        join_all(calls).await
    }
}
