//! The per-source cache: what each source answered for each patient, normalised once.
//!
//! Entries are keyed by source and the gateway's patient id, hold the adapter's output
//! (serialised resources plus the facts filtering needs), expire after a TTL and are bounded by
//! their size in bytes. Concurrent misses for the same key are coalesced (moka's
//! `try_get_with`), so a thousand identical requests cause one upstream call per source.
//! Failures are never cached. Nothing requester-specific is stored: filtering for a requester
//! happens after the cache, per request. [`SourceCache::invalidate_patient`] is the entry point
//! consent changes call. Only misses reach the source, through [`super::call`], which is where
//! the source metrics are recorded.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use tideway_adapters::{
    AdapterError, CallContext, PatientLink, SourceAdapter, SourceId, SourcePatient, SourceRecord,
};
use tideway_profiles::NhsNumber;

use super::call;
use crate::telemetry::metrics;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    source: SourceId,
    patient: String,
    local: String,
}

/// The caches of patient look-ups and of records.
#[derive(Clone)]
pub struct SourceCache {
    records: Cache<Key, Arc<SourceRecord>>,
    patients: Cache<Key, Arc<Option<SourcePatient>>>,
    index: ResourceIndex,
    enabled: bool,
}

/// Which patient each resource this replica fetched (or made) belongs to, by `Type/id`, so a
/// read by id can be answered through that patient's record, with that patient's consent,
/// relationship and audit. Filled when a record is fetched from its source (and by the record
/// service for the Provenance it makes), never from client input; an entry lives for
/// [`ResourceIndex::AGE`] and at most [`ResourceIndex::CAPACITY`] are kept in memory. With
/// several replicas it is also [`SharedIndex`]ed, so any replica finds what another fetched.
#[derive(Clone)]
pub struct ResourceIndex {
    memory: moka::sync::Cache<String, Arc<str>>,
    shared: Arc<std::sync::OnceLock<Arc<dyn SharedIndex>>>,
}

/// Where replicas share the index (the shared store).
#[async_trait::async_trait]
pub trait SharedIndex: Send + Sync {
    /// Notes that `keys` belong to `patient`; must not wait on I/O (it runs on the fetch path).
    fn note(&self, patient: &Arc<str>, keys: Vec<String>);

    /// The patient `key` belongs to, if any replica noted it within [`ResourceIndex::AGE`].
    /// `Err` when that could not be read.
    async fn patient_of(&self, key: &str) -> Result<Option<String>, ()>;
}

impl ResourceIndex {
    /// How long a resource is remembered after its record was last fetched.
    pub const AGE: Duration = Duration::from_secs(3600);
    /// Resources remembered in memory at most (about 200 bytes each).
    pub const CAPACITY: u64 = 200_000;

    fn new() -> Self {
        Self {
            memory: moka::sync::Cache::builder().time_to_live(Self::AGE).max_capacity(Self::CAPACITY).build(),
            shared: Arc::default(),
        }
    }

    /// Shares the index through `shared` from now on (once; later calls are ignored).
    pub fn share(&self, shared: Arc<dyn SharedIndex>) {
        let _ = self.shared.set(shared);
    }

    /// Notes that `resources` belong to the patient `gateway_id`.
    pub fn note<'a>(&self, gateway_id: &str, resources: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let patient: Arc<str> = Arc::from(gateway_id);
        let shared = self.shared.get();
        let mut keys = Vec::new();
        for (resource_type, id) in resources {
            let key = format!("{resource_type}/{id}");
            // Already known for this patient (a cached answer made again, a record fetched
            // again within the hour): nothing to write, here or in the shared store.
            if self.memory.get(&key).is_some_and(|p| p == patient) {
                continue;
            }
            if shared.is_some() {
                keys.push(key.clone());
            }
            self.memory.insert(key, patient.clone());
        }
        if let Some(s) = shared
            && !keys.is_empty()
        {
            s.note(&patient, keys);
        }
    }

    /// The patient whose record held `resource_type/id`, if this replica (or, shared, any
    /// replica) has seen it; `Err` when the shared index could not be read.
    pub async fn patient_of(&self, resource_type: &str, id: &str) -> Result<Option<Arc<str>>, ()> {
        let key = format!("{resource_type}/{id}");
        if let Some(p) = self.memory.get(&key) {
            return Ok(Some(p));
        }
        match self.shared.get() {
            Some(s) => Ok(s.patient_of(&key).await?.map(Arc::from)),
            None => Ok(None),
        }
    }
}

/// Fetches the linked patient's record from the source and notes its resources in `index`.
async fn fetch_indexed(
    index: &ResourceIndex,
    adapter: &Arc<dyn SourceAdapter>,
    link: &PatientLink,
    ctx: &CallContext,
) -> Result<Arc<SourceRecord>, AdapterError> {
    let record = call::fetch_record(adapter, link, ctx).await?;
    // Only what says it is this patient's: a resource several patients' records share (a
    // Medication, a Group) must not open whichever record was fetched last.
    let subject = format!("Patient/{}", link.gateway_id);
    let owned = record.resources.iter().filter(|r| r.facts.patient.as_deref() == Some(subject.as_str()));
    index.note(&link.gateway_id, owned.map(|r| (r.resource_type.as_str(), r.id.as_str())));
    Ok(Arc::new(record))
}

/// What a cached record weighs against `cache.max_bytes`: every resource's JSON and facts as
/// they sit in memory (the facts are often as large as the JSON, so counting the JSON alone let
/// the cache hold several times its bound).
fn record_weight(r: &SourceRecord) -> u32 {
    let bytes: usize = r.resources.iter().map(tideway_adapters::NormalisedResource::memory_bytes).sum();
    u32::try_from(bytes.max(1)).unwrap_or(u32::MAX)
}

impl SourceCache {
    /// A cache whose entries live for `ttl` and weigh at most `max_bytes` in all. `enabled =
    /// false` passes every call through (useful to measure cold paths).
    pub fn new(ttl: Duration, max_bytes: u64, enabled: bool) -> Self {
        let records = Cache::builder()
            .time_to_live(ttl)
            .weigher(|_k: &Key, v: &Arc<SourceRecord>| record_weight(v))
            .max_capacity(max_bytes)
            .support_invalidation_closures()
            .build();
        let patients = Cache::builder()
            .time_to_live(ttl)
            .weigher(|_k: &Key, v: &Arc<Option<SourcePatient>>| {
                v.as_ref()
                    .as_ref()
                    .map_or(64, |p| u32::try_from(p.resource.memory_bytes()).unwrap_or(u32::MAX))
            })
            .max_capacity(max_bytes / 8)
            .support_invalidation_closures()
            .build();
        Self { records, patients, index: ResourceIndex::new(), enabled }
    }

    /// Which patient each fetched resource belongs to.
    pub fn index(&self) -> &ResourceIndex {
        &self.index
    }

    /// The source's record of the linked patient, from the cache or the adapter.
    pub async fn record(
        &self,
        adapter: &Arc<dyn SourceAdapter>,
        link: &PatientLink,
        ctx: &CallContext,
    ) -> Result<Arc<SourceRecord>, AdapterError> {
        if !self.enabled {
            return fetch_indexed(&self.index, adapter, link, ctx).await;
        }
        let key = Key {
            source: adapter.id().clone(),
            patient: link.gateway_id.clone(),
            local: link.local_id.clone(),
        };
        if let Some(hit) = self.records.get(&key).await {
            metrics::cache_lookup(adapter.id(), "record", true);
            return Ok(hit);
        }
        metrics::cache_lookup(adapter.id(), "record", false);
        self.records
            .try_get_with(key, fetch_indexed(&self.index, adapter, link, ctx))
            .await
            .map_err(|e| (*e).clone())
    }

    /// Whether the source holds the patient, from the cache or the adapter.
    pub async fn patient(
        &self,
        adapter: &Arc<dyn SourceAdapter>,
        nhs: &NhsNumber,
        gateway_id: &str,
        ctx: &CallContext,
    ) -> Result<Arc<Option<SourcePatient>>, AdapterError> {
        if !self.enabled {
            return call::find_patient(adapter, nhs, gateway_id, ctx).await.map(Arc::new);
        }
        let key = Key { source: adapter.id().clone(), patient: gateway_id.to_owned(), local: String::new() };
        if let Some(hit) = self.patients.get(&key).await {
            metrics::cache_lookup(adapter.id(), "patient", true);
            return Ok(hit);
        }
        metrics::cache_lookup(adapter.id(), "patient", false);
        self.patients
            .try_get_with(key, async {
                call::find_patient(adapter, nhs, gateway_id, ctx).await.map(Arc::new)
            })
            .await
            .map_err(|e| (*e).clone())
    }

    /// Drops everything cached from one source, at once: its registration changed or ended,
    /// so what it answered before may no longer be its answer.
    pub fn invalidate_source(&self, source: &SourceId) {
        let source = source.clone();
        self.invalidate_where(move |k| k.source == source);
    }

    /// Drops everything cached about a patient, from every source, at once: later reads go to
    /// the sources. Consent and agreement changes call this before they are acknowledged.
    pub fn invalidate_patient(&self, gateway_id: &str) {
        let id = gateway_id.to_owned();
        self.invalidate_where(move |k| k.patient == id);
    }

    fn invalidate_where(&self, matches: impl Fn(&Key) -> bool + Clone + Send + Sync + 'static) {
        let again = matches.clone();
        // Both caches were built with invalidation closures, so these cannot fail; if they
        // ever did, fall back to dropping everything rather than serving stale data.
        if self.records.invalidate_entries_if(move |k, _| matches(k)).is_err() {
            self.records.invalidate_all();
        }
        if self.patients.invalidate_entries_if(move |k, _| again(k)).is_err() {
            self.patients.invalidate_all();
        }
    }
}
