//! This replica's memory of the patient index and record locator, so a patient seen recently
//! costs no store read on the warm path.
//!
//! The id -> NHS number mapping never changes for a given pseudonym key, so it is kept until
//! evicted. The locator's answers are kept for at most [`MAX_LINKS_AGE`] (or the locator's own
//! maximum age, if shorter) and dropped whenever this replica learns something new about the
//! patient, so another replica's news is seen within that bound.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use tideway_profiles::NhsNumber;

use crate::store::SourceLink;

/// Longest time this replica trusts its own copy of the locator's answers.
pub const MAX_LINKS_AGE: Duration = Duration::from_secs(30);

/// Patients remembered at most.
const CAPACITY: u64 = 100_000;

/// Remembered identities and locator answers.
#[derive(Clone)]
pub struct IndexMemo {
    ids: Cache<String, NhsNumber>,
    links: Cache<String, Arc<Vec<SourceLink>>>,
}

impl IndexMemo {
    /// A memo whose locator answers live at most `min(locator_max_age, MAX_LINKS_AGE)`.
    pub fn new(locator_max_age: Duration) -> Self {
        Self {
            ids: Cache::builder().max_capacity(CAPACITY).build(),
            links: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(locator_max_age.min(MAX_LINKS_AGE))
                .build(),
        }
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

    /// Remembers the locator's answers for `id`.
    pub async fn remember_links(&self, id: &str, links: Vec<SourceLink>) -> Arc<Vec<SourceLink>> {
        let links = Arc::new(links);
        self.links.insert(id.to_owned(), links.clone()).await;
        links
    }

    /// Forgets the locator's answers for `id` (they changed).
    pub async fn forget_links(&self, id: &str) {
        self.links.invalidate(id).await;
    }
}
