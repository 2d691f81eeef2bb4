//! Paging: later pages of a search or `$everything` come from a snapshot taken when the first
//! page was answered, so a client paging through sees one consistent result.
//!
//! Links are opaque (a random 128-bit id), bound to the principal that made them (anyone else
//! gets 403) and expire. Snapshots live in this replica's memory (moka, TTL and size bound);
//! behind a load balancer, page links need session affinity until a shared tier is added.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use tideway_adapters::NormalisedResource;
use tideway_profiles::OperationOutcome;

use crate::Principal;

/// What later pages are served from.
#[derive(Debug)]
pub struct PageSnapshot {
    /// [`principal_key`] of the principal that made the search.
    pub owner: String,
    /// Every matching resource, in answer order.
    pub resources: Vec<NormalisedResource>,
    /// The outcome entry repeated on each page.
    pub outcome: Option<OperationOutcome>,
    /// Entries per page.
    pub page_size: usize,
    /// The patient, for the audit trail.
    pub patient_id: Option<String>,
}

/// Identifies a principal for page ownership: the same client, user, organisation and purpose.
pub fn principal_key(p: &Principal) -> String {
    format!("{}\u{1f}{}\u{1f}{}\u{1f}{}", p.client_id, p.user_id, p.organisation, p.purpose.code())
}

/// The snapshots.
#[derive(Clone)]
pub struct PageStore {
    cache: Cache<String, Arc<PageSnapshot>>,
}

impl PageStore {
    /// Snapshots expire `ttl` after creation; at most `capacity` resources are held in all.
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        let cache = Cache::builder()
            .time_to_live(ttl)
            .weigher(|_k: &String, v: &Arc<PageSnapshot>| {
                u32::try_from(v.resources.len().max(1)).unwrap_or(u32::MAX)
            })
            .max_capacity(capacity)
            .build();
        Self { cache }
    }

    /// Stores `snapshot` and returns the link to the page starting at `offset`.
    pub async fn insert(&self, snapshot: Arc<PageSnapshot>, base_url: &str, offset: usize) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.cache.insert(token.clone(), snapshot).await;
        self.link(base_url, &token, offset)
    }

    /// The snapshot behind `token`, if it has not expired.
    pub async fn get(&self, token: &str) -> Option<Arc<PageSnapshot>> {
        self.cache.get(token).await
    }

    /// A page link.
    pub fn link(&self, base_url: &str, token: &str, offset: usize) -> String {
        format!("{base_url}/_page?id={token}&offset={offset}")
    }
}
