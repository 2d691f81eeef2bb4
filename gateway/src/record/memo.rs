//! This replica's memory of the patient index and record locator, so a patient seen recently
//! costs no store read on the warm path, and of the Provenance it made for merged facts, so
//! the same merge is not written out again on every answer.
//!
//! The id -> NHS number mapping never changes for a given pseudonym key, so it is kept until
//! evicted. The locator's answers are kept for at most [`MAX_LINKS_AGE`] (or the locator's own
//! maximum age, if shorter) and dropped whenever this replica learns something new about the
//! patient, so another replica's news is seen within that bound. A Provenance is keyed by
//! everything it says (fact, kept entry, every origin), so a reused one is the same statement,
//! recorded when it was first made.
//!
//! A patient's consent directives are remembered only when this replica is the only writer of
//! the store (SQLite, one process): every consent write here bumps an epoch before it is
//! acknowledged, and a remembered entry is used only while the epoch it was read under is still
//! the current one, so the very next request after a change reads the store again. With a
//! shared store (PostgreSQL, several replicas) nothing is remembered and every request reads the
//! directives afresh, so a change made on one replica holds on all of them at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;
use tideway_adapters::{NormalisedResource, SourceId};
use tideway_policy::Directive;
use tideway_profiles::NhsNumber;

use crate::merge::{MergedFact, may_add_codes, provenance_for, with_codes_of};
use crate::store::SourceLink;

/// Longest time this replica trusts its own copy of the locator's answers.
pub const MAX_LINKS_AGE: Duration = Duration::from_secs(30);

/// How long an id -> NHS number mapping is kept (a pseudonym key change publishes new ids).
const IDS_AGE: Duration = Duration::from_secs(3600);

/// Patients remembered at most.
const CAPACITY: u64 = 100_000;

/// How long a Provenance made for a merged fact is reused.
const PROVENANCE_AGE: Duration = Duration::from_secs(3600);

/// Widened entries remembered at most: each holds its two inputs' JSON alive, so fewer than the
/// rest. They live no longer than the per-source cache keeps those inputs (`cache.ttl_secs`):
/// the key is the cached buffers' addresses, so once the cache lets a record go its widened
/// entries can never be asked for again, and would only hold its bytes.
const WIDENED_CAPACITY: u64 = 10_000;

/// A kept entry widened with a folded copy's codes, with the JSON it was made from: held so
/// that the addresses keying it cannot be reused for other content while it is remembered.
#[derive(Clone)]
struct Widened {
    kept: Arc<[u8]>,
    copy: Arc<[u8]>,
    result: Option<NormalisedResource>,
}

/// A patient's directives and the consent epoch they were read under.
type Remembered = (u64, Arc<Vec<Directive>>);

/// Remembered identities, locator answers and Provenance.
#[derive(Clone)]
pub struct ReplicaMemo {
    ids: Cache<String, NhsNumber>,
    links: Cache<String, Arc<Vec<SourceLink>>>,
    /// Bumped whenever this replica writes the locator, so a read that raced with the write
    /// does not leave the rows it read before the write in the memo.
    links_epoch: Arc<AtomicU64>,
    provenance: moka::sync::Cache<String, NormalisedResource>,
    /// Kept entries widened with folded copies' codes, by the addresses of the two JSONs (the
    /// per-source cache hands out the same bytes on every warm answer); `None` when there is no
    /// cache to hand out the same bytes twice.
    widened: Option<moka::sync::Cache<(usize, usize), Widened>>,
    /// What the gateway made for a record (its Provenance), by `Type/id`, so a read by id finds
    /// one made for a narrower question than the whole record.
    made: moka::sync::Cache<String, NormalisedResource>,
    /// Patients' directives with the consent epoch they were read under; `None` when another
    /// process may write consents.
    consents: Option<moka::sync::Cache<String, Remembered>>,
    consents_epoch: Arc<AtomicU64>,
}

impl ReplicaMemo {
    /// A memo whose locator answers live at most `min(locator_max_age, MAX_LINKS_AGE)`, which
    /// remembers consent directives only if `sole_consent_writer` (this process is the only one
    /// writing the store), and widened entries for `cached_for` (the per-source cache's time to
    /// live; `None`, the cache being off: not at all).
    pub fn new(locator_max_age: Duration, sole_consent_writer: bool, cached_for: Option<Duration>) -> Self {
        Self {
            consents: sole_consent_writer
                .then(|| moka::sync::Cache::builder().max_capacity(CAPACITY).build()),
            consents_epoch: Arc::new(AtomicU64::new(0)),
            ids: Cache::builder().max_capacity(CAPACITY).time_to_live(IDS_AGE).build(),
            links_epoch: Arc::new(AtomicU64::new(0)),
            links: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(locator_max_age.min(MAX_LINKS_AGE))
                .build(),
            provenance: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(PROVENANCE_AGE)
                .build(),
            made: moka::sync::Cache::builder().max_capacity(CAPACITY).time_to_live(PROVENANCE_AGE).build(),
            widened: cached_for.map(|ttl| {
                moka::sync::Cache::builder().max_capacity(WIDENED_CAPACITY).time_to_live(ttl).build()
            }),
        }
    }

    /// Remembers a resource the gateway made for an answer (kept as first made).
    pub fn remember_made(&self, r: &NormalisedResource) {
        let key = r.reference();
        if !self.made.contains_key(&key) {
            self.made.insert(key, r.clone());
        }
    }

    /// The resource the gateway made before under `r`'s id (its id names what it says, so it
    /// is the same statement, recorded when first made), or `r`, remembered from now on.
    pub fn made_before(&self, r: NormalisedResource) -> NormalisedResource {
        self.made.get_with(r.reference(), || r)
    }

    /// A resource the gateway made, by type and id, if remembered.
    pub fn made(&self, resource_type: &str, id: &str) -> Option<NormalisedResource> {
        self.made.get(&format!("{resource_type}/{id}"))
    }

    /// The Provenance for `fact`: the one made before for exactly this fact, or a new one
    /// recorded now.
    pub fn provenance(&self, fact: &MergedFact<'_>, now: impl FnOnce() -> String) -> NormalisedResource {
        self.provenance.get_with(fact.identity(), || provenance_for(fact, &now()))
    }

    /// `kept` widened with `copy`'s codes ([`with_codes_of`]): as made before for exactly these
    /// bytes, or made now and remembered.
    pub fn widened(
        &self,
        kept: &NormalisedResource,
        source: &SourceId,
        copy: &NormalisedResource,
    ) -> Option<NormalisedResource> {
        if !may_add_codes(kept, copy) {
            return None;
        }
        let Some(widened) = &self.widened else { return with_codes_of(kept, source, copy) };
        let key =
            (Arc::as_ptr(&kept.json).cast::<u8>() as usize, Arc::as_ptr(&copy.json).cast::<u8>() as usize);
        if let Some(w) = widened.get(&key)
            && Arc::ptr_eq(&w.kept, &kept.json)
            && Arc::ptr_eq(&w.copy, &copy.json)
        {
            return w.result;
        }
        let result = with_codes_of(kept, source, copy);
        widened.insert(
            key,
            Widened { kept: kept.json.clone(), copy: copy.json.clone(), result: result.clone() },
        );
        result
    }

    /// The NHS number behind `id`, if remembered.
    pub async fn nhs_number(&self, id: &str) -> Option<NhsNumber> {
        self.ids.get(id).await
    }

    /// Remembers the NHS number behind `id`.
    pub async fn remember_id(&self, id: &str, nhs: &NhsNumber) {
        self.ids.insert(id.to_owned(), nhs.clone()).await;
    }

    /// The locator's answers for `id`, if remembered and fresh.
    pub async fn links(&self, id: &str) -> Option<Arc<Vec<SourceLink>>> {
        self.links.get(id).await
    }

    /// The locator's write epoch, to take before reading the store.
    pub fn links_epoch(&self) -> u64 {
        self.links_epoch.load(Ordering::SeqCst)
    }

    /// Remembers the locator's answers for `id`, read from the store when the epoch was
    /// `epoch`; if this replica wrote the locator since, they may be old and are not kept.
    pub async fn remember_links(&self, id: &str, links: Vec<SourceLink>, epoch: u64) -> Arc<Vec<SourceLink>> {
        let links = Arc::new(links);
        self.links.insert(id.to_owned(), links.clone()).await;
        // A write that ends after this check invalidates the entry itself (see forget_links).
        if self.links_epoch() != epoch {
            self.links.invalidate(id).await;
        }
        links
    }

    /// Forgets the locator's answers for every patient (a source's registration changed and
    /// its links were dropped from the store).
    pub fn forget_all_links(&self) {
        self.links_epoch.fetch_add(1, Ordering::SeqCst);
        self.links.invalidate_all();
    }

    /// Forgets the locator's answers for `id`, after they were written to the store.
    pub async fn forget_links(&self, id: &str) {
        self.links_epoch.fetch_add(1, Ordering::SeqCst);
        self.links.invalidate(id).await;
    }

    /// The consent epoch, to take before reading directives from the store.
    pub fn consents_epoch(&self) -> u64 {
        self.consents_epoch.load(Ordering::SeqCst)
    }

    /// The patient's directives, if remembered under the current epoch.
    pub fn consents(&self, id: &str) -> Option<Arc<Vec<Directive>>> {
        let (epoch, directives) = self.consents.as_ref()?.get(id)?;
        (epoch == self.consents_epoch()).then_some(directives)
    }

    /// Remembers directives read from the store under `epoch`.
    pub fn remember_consents(&self, id: &str, directives: Arc<Vec<Directive>>, epoch: u64) {
        if let Some(c) = &self.consents {
            c.insert(id.to_owned(), (epoch, directives));
        }
    }

    /// A consent was written: nothing remembered before is used again.
    pub fn consents_changed(&self) {
        self.consents_epoch.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn allergy(source: &str, extra: Value) -> NormalisedResource {
        let mut coding = vec![json!({"system": "http://snomed.info/sct", "code": "91936005"})];
        coding.extend(extra.as_array().cloned().unwrap_or_default());
        NormalisedResource::from_value(
            &json!({"resourceType": "AllergyIntolerance", "id": format!("{source}.al1"),
            "code": {"coding": coding}, "patient": {"reference": "Patient/p"}, "recordedDate": "2019-05-01"}),
        )
        .unwrap()
    }

    /// A kept allergy with no code, and EMIS's copy of it carrying one.
    fn kept_and_emis_copy() -> (SourceId, NormalisedResource, NormalisedResource) {
        let copy = allergy(
            "emis",
            json!([{"system": "https://fhir.tideway.london/CodeSystem/emis-code-id", "code": "1"}]),
        );
        (SourceId::parse("emis").unwrap(), allergy("s1", json!([])), copy)
    }

    /// A remembered widening is the one made from exactly these bytes: the same answer again
    /// for the same buffers, and a fresh one for other bytes (even were an address reused).
    #[test]
    fn a_widening_is_remembered_for_the_very_bytes_it_was_made_from() {
        let memo = ReplicaMemo::new(Duration::from_secs(30), true, Some(Duration::from_secs(60)));
        let (emis, kept, copy) = kept_and_emis_copy();
        let first = memo.widened(&kept, &emis, &copy).expect("the copy adds a code");
        assert_eq!(first.json, with_codes_of(&kept, &emis, &copy).unwrap().json);
        let again = memo.widened(&kept, &emis, &copy).unwrap();
        assert!(Arc::ptr_eq(&first.json, &again.json), "the same buffers give the remembered entry");
        let other = allergy(
            "emis",
            json!([{"system": "https://fhir.tideway.london/CodeSystem/emis-code-id", "code": "2"}]),
        );
        let fresh = memo.widened(&kept, &emis, &other).unwrap();
        assert!(String::from_utf8_lossy(&fresh.json).contains("\"code\":\"2\""));
        assert!(memo.widened(&kept, &emis, &kept).is_none(), "nothing to add, nothing made");
    }

    /// With the per-source cache off no buffer is handed out twice, so nothing is remembered:
    /// each widening is made afresh and nothing holds the record's bytes.
    #[test]
    fn without_a_cache_no_widening_is_remembered() {
        let memo = ReplicaMemo::new(Duration::from_secs(30), true, None);
        let (emis, kept, copy) = kept_and_emis_copy();
        let first = memo.widened(&kept, &emis, &copy).expect("the copy adds a code");
        let again = memo.widened(&kept, &emis, &copy).unwrap();
        assert_eq!(first.json, again.json, "the same widening");
        assert!(!Arc::ptr_eq(&first.json, &again.json), "made afresh, not remembered");
        assert_eq!(Arc::strong_count(&kept.json), 1, "nothing else holds the kept entry's bytes");
    }
}
