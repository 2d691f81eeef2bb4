//! Calls that leave the gateway for a source: the only place a source's latency and outcome
//! are measured, so the source metrics count what the source really did. Cache hits, misses
//! and coalesced waits are the cache's own metrics and never reach here.

use std::future::Future;
use std::sync::Arc;

use tideway_adapters::{
    AdapterError, CallContext, DemographicQuery, NormalisedResource, PatientLink, RejectionKind,
    SourceAdapter, SourceId, SourcePatient, SourceRecord,
};
use tideway_profiles::NhsNumber;
use tokio::time::{Instant, timeout_at};

use crate::telemetry::metrics;

/// Asks the source whether it holds the patient.
pub async fn find_patient(
    adapter: &Arc<dyn SourceAdapter>,
    nhs: &NhsNumber,
    gateway_id: &str,
    ctx: &CallContext,
) -> Result<Option<SourcePatient>, AdapterError> {
    metered(adapter.id(), "find-patient", ctx, adapter.find_patient(nhs, gateway_id, ctx)).await
}

/// Searches the source's patients by demographics (`None`: it cannot).
pub async fn search_patients(
    adapter: &Arc<dyn SourceAdapter>,
    query: &DemographicQuery,
    ctx: &CallContext,
) -> Result<Option<Vec<NhsNumber>>, AdapterError> {
    metered(adapter.id(), "search-patients", ctx, adapter.search_patients(query, ctx)).await
}

/// Reads one shared resource (an Organization, Practitioner...) by the source's own id.
pub async fn read_shared(
    adapter: &Arc<dyn SourceAdapter>,
    resource_type: &str,
    local_id: &str,
    ctx: &CallContext,
) -> Result<Option<NormalisedResource>, AdapterError> {
    metered(adapter.id(), "read", ctx, adapter.read_shared(resource_type, local_id, ctx)).await
}

/// Fetches the source's record of the linked patient, counting what it sent that could not be
/// passed on.
pub async fn fetch_record(
    adapter: &Arc<dyn SourceAdapter>,
    link: &PatientLink,
    ctx: &CallContext,
) -> Result<SourceRecord, AdapterError> {
    let result = metered(adapter.id(), "fetch-record", ctx, adapter.fetch_record(link, ctx)).await;
    if result.as_ref().err() == Some(&AdapterError::OtherPatient) {
        // A whole record for someone else: counted and logged as another patient's entries are.
        metrics::rejected_entries(adapter.id(), RejectionKind::OtherPatient, 1);
    }
    if let Ok(record) = &result {
        for kind in RejectionKind::ALL {
            let n = record.rejected.iter().filter(|r| r.kind == kind).count();
            if n > 0 {
                metrics::rejected_entries(adapter.id(), kind, n);
            }
        }
    }
    result
}

async fn metered<T>(
    source: &SourceId,
    operation: &'static str,
    ctx: &CallContext,
    call: impl Future<Output = Result<T, AdapterError>>,
) -> Result<T, AdapterError> {
    let started = Instant::now();
    let result = match timeout_at(ctx.deadline, call).await {
        Ok(r) => r,
        Err(_) => Err(AdapterError::Timeout),
    };
    metrics::source_call(source, operation, result.as_ref().err(), started.elapsed());
    result
}
