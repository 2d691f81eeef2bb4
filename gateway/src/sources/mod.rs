//! The sources: fan-out, the per-source cache and the calls that leave the gateway.
//!
//! Fan-out: ask every relevant source at once, each within its own deadline and all within the
//! request's, and report per source what happened.
//!
//! A slow or failing source never fails the others: its slot in the answer says why it is
//! missing, and the caller turns that into an `incomplete` OperationOutcome entry.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::future::join_all;
use tideway_adapters::{
    AdapterError, CallContext, DemographicQuery, NormalisedResource, PatientLink, Requester, SourceAdapter,
    SourceId, SourcePatient, SourceRecord,
};
use tideway_profiles::NhsNumber;
use tokio::time::{Instant, timeout_at};
use tracing::Instrument;

pub mod cache;
pub mod call;

pub use cache::{ResourceIndex, SharedIndex, SourceCache};

/// The sources a request works with: those the gateway asks, in registry order, and those it
/// may not ask (suspended, or without a current attestation), reported as missing from every
/// answer. Built by the registry; swapped whole, never edited.
pub struct Sources {
    adapters: Vec<Arc<dyn SourceAdapter>>,
    not_asked: Vec<(SourceId, &'static str)>,
    source_ids: Arc<str>,
}

impl Sources {
    /// `adapters` are asked, in this order; `not_asked` are reported with the fixed phrase
    /// saying why.
    pub fn new(adapters: Vec<Arc<dyn SourceAdapter>>, not_asked: Vec<(SourceId, &'static str)>) -> Self {
        let ids: Vec<&str> = adapters.iter().map(|a| a.id().as_str()).collect();
        let source_ids = Arc::from(serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()));
        Self { adapters, not_asked, source_ids }
    }

    /// The sources that are asked.
    pub fn adapters(&self) -> &[Arc<dyn SourceAdapter>] {
        &self.adapters
    }

    /// The source registered as `id`, if it is asked.
    pub fn adapter(&self, id: &str) -> Option<&Arc<dyn SourceAdapter>> {
        self.adapters.iter().find(|a| a.id().as_str() == id)
    }

    /// Every source that is asked, by id, as a JSON array (for the audit trail).
    pub fn source_ids_json(&self) -> Arc<str> {
        self.source_ids.clone()
    }

    /// The registered sources that are not asked, as answers saying why (an answer reports
    /// them as it reports a source that failed).
    pub fn not_asked<T>(&self) -> impl Iterator<Item = SourceAnswer<T>> + '_ {
        self.not_asked.iter().map(|(source, why)| SourceAnswer {
            source: source.clone(),
            result: Err(AdapterError::NotAsked(why)),
            elapsed: Duration::ZERO,
        })
    }
}

/// For whom a request's calls to the sources are made: its request id (forwarded as
/// `X-Request-ID`) and the person asking, whom sources that audit their own readers are told of
/// (GP Connect's JWT).
#[derive(Debug, Clone)]
pub struct Asking {
    /// The gateway's request id.
    pub request_id: String,
    /// The person asking.
    pub requester: Requester,
}

impl Asking {
    /// Calls made for `principal`'s user, in request `request_id`.
    pub fn for_principal(request_id: &str, principal: &tideway_auth::Principal) -> Self {
        Self {
            request_id: request_id.to_owned(),
            requester: Requester {
                user_id: principal.user_id.clone(),
                role: principal.role.as_str().to_owned(),
                organisation: principal.organisation.as_str().to_owned(),
            },
        }
    }
}

tokio::task_local! {
    /// The sources the current request works with: `(Federation::id, sources)`.
    static PINNED: (usize, Arc<Sources>);
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// The registered sources, their cache and the overall deadline. The sources are swapped
/// whole when the registry changes ([`Self::replace`]); a request pinned with [`Self::pinned`]
/// keeps the sources it started with, so its audit record names exactly the sources it asked.
#[derive(Clone)]
pub struct Federation {
    id: usize,
    sources: Arc<RwLock<Arc<Sources>>>,
    request_deadline: Duration,
    cache: SourceCache,
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
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            sources: Arc::new(RwLock::new(Arc::new(Sources::new(adapters, Vec::new())))),
            request_deadline,
            cache,
        }
    }

    /// The per-source cache (consent changes invalidate through it).
    pub fn cache(&self) -> &SourceCache {
        &self.cache
    }

    /// The sources this request works with: those pinned for it, or else the latest.
    pub fn sources(&self) -> Arc<Sources> {
        PINNED
            .try_with(|(id, sources)| (*id == self.id).then(|| sources.clone()))
            .ok()
            .flatten()
            .unwrap_or_else(|| self.latest())
    }

    /// The latest sources, whatever a request has pinned.
    pub fn latest(&self) -> Arc<Sources> {
        self.sources.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Makes `sources` the ones every request from now on works with.
    pub fn replace(&self, sources: Sources) {
        *self.sources.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(sources);
    }

    /// Runs `request` with the latest sources throughout.
    pub async fn pinned<F: Future>(&self, request: F) -> F::Output {
        PINNED.scope((self.id, self.latest()), request).await
    }

    /// Reads one shared resource from one source, within that source's timeout and the
    /// request deadline. Never cached: shared resources are read rarely and one at a time.
    pub async fn read_shared(
        &self,
        adapter: &Arc<dyn SourceAdapter>,
        resource_type: &str,
        local_id: &str,
        asking: &Asking,
    ) -> SourceAnswer<Option<NormalisedResource>> {
        let ctx = self.context(adapter.as_ref(), self.deadline(), asking);
        let started = Instant::now();
        let result = call::read_shared(adapter, resource_type, local_id, &ctx)
            .instrument(tracing::info_span!("source.read", source = %adapter.id()))
            .await;
        SourceAnswer { source: adapter.id().clone(), result, elapsed: started.elapsed() }
    }

    fn context(&self, adapter: &dyn SourceAdapter, overall: Instant, asking: &Asking) -> CallContext {
        let own = Instant::now() + adapter.config().timeout();
        CallContext {
            deadline: own.min(overall),
            max_body_bytes: adapter.config().max_body_bytes,
            request_id: asking.request_id.clone(),
            requester: Some(asking.requester.clone()),
        }
    }

    /// The overall deadline for a request starting now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.request_deadline
    }

    /// Asks every source whether it holds the patient; the sources that may not be asked
    /// answer that they were not.
    pub async fn find_patient(
        &self,
        nhs: &NhsNumber,
        gateway_id: &str,
        asking: &Asking,
        overall: Instant,
    ) -> Vec<SourceAnswer<Option<SourcePatient>>> {
        let sources = self.sources();
        let mut answers = self.find_patient_in(sources.adapters(), nhs, gateway_id, asking, overall).await;
        answers.extend(sources.not_asked());
        answers
    }

    /// Searches every source's patients by demographics, in parallel, never through the cache
    /// (a search is rare, and its answer is not a record); the sources that may not be asked
    /// answer that they were not.
    pub async fn search_patients(
        &self,
        query: &DemographicQuery,
        asking: &Asking,
        overall: Instant,
    ) -> Vec<SourceAnswer<Option<Vec<NhsNumber>>>> {
        let sources = self.sources();
        let calls = sources.adapters().iter().map(|a| {
            let ctx = self.context(a.as_ref(), overall, asking);
            let span = tracing::info_span!("source.search_patients", source = %a.id());
            async move {
                let started = Instant::now();
                let result = call::search_patients(a, query, &ctx).await;
                SourceAnswer { source: a.id().clone(), result, elapsed: started.elapsed() }
            }
            .instrument(span)
        });
        let mut answers = join_all(calls).await;
        answers.extend(sources.not_asked());
        answers
    }

    /// Asks the given sources whether they hold the patient, in parallel.
    pub async fn find_patient_in(
        &self,
        adapters: &[Arc<dyn SourceAdapter>],
        nhs: &NhsNumber,
        gateway_id: &str,
        asking: &Asking,
        overall: Instant,
    ) -> Vec<SourceAnswer<Option<SourcePatient>>> {
        let calls = adapters.iter().map(|a| {
            let ctx = self.context(a.as_ref(), overall, asking);
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
        asking: &Asking,
        overall: Instant,
    ) -> Vec<SourceAnswer<Arc<SourceRecord>>> {
        let calls = links.iter().map(|(a, link)| {
            let ctx = self.context(a.as_ref(), overall, asking);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pinned_request_keeps_its_sources_while_the_registry_changes() {
        let cache = SourceCache::new(Duration::from_secs(1), 1024, false);
        let federation = Federation::new(Vec::new(), Duration::from_secs(1), cache);
        let camden = SourceId::parse("camden").unwrap();
        federation.replace(Sources::new(Vec::new(), vec![(camden, "its registration is suspended")]));
        let seen = federation
            .pinned(async {
                let before = federation.sources().not_asked::<()>().count();
                federation.replace(Sources::new(Vec::new(), Vec::new()));
                (before, federation.sources().not_asked::<()>().count())
            })
            .await;
        assert_eq!(seen, (1, 1), "the request in flight keeps what it started with");
        assert_eq!(federation.sources().not_asked::<()>().count(), 0, "the next one sees the change");
        let other = Federation::new(
            Vec::new(),
            Duration::from_secs(1),
            SourceCache::new(Duration::from_secs(1), 1024, false),
        );
        let unpinned = federation.pinned(async { other.sources().not_asked::<()>().count() }).await;
        assert_eq!(unpinned, 0, "one federation's pin is not another's");
        assert_eq!(&*federation.sources().source_ids_json(), "[]");
    }

    #[test]
    fn sources_not_asked_answer_that_they_were_not() {
        let camden = SourceId::parse("camden").unwrap();
        let sources = Sources::new(Vec::new(), vec![(camden.clone(), "its registration is suspended")]);
        let answers: Vec<SourceAnswer<()>> = sources.not_asked().collect();
        assert_eq!(answers[0].source, camden);
        assert_eq!(answers[0].result, Err(AdapterError::NotAsked("its registration is suspended")));
        assert!(sources.adapter("camden").is_none(), "a source not asked is not readable either");
    }
}
