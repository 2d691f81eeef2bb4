//! The resource index shared through the store, for deployments of several replicas: what one
//! replica fetched, any replica can read by id. Notes are handed to one background writer
//! (bounded queue; when it is full a note is dropped, never waited for, and that replica's
//! memory still holds it), and read back within the index's age.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::mpsc;

use crate::sources::{ResourceIndex, SharedIndex};
use crate::store::{ResourceOwners, Store};

/// Batches of notes the writer may have queued.
const QUEUE: usize = 1024;

/// The store-backed [`SharedIndex`].
pub struct StoreIndex {
    store: Store,
    queue: mpsc::Sender<(Arc<str>, Vec<String>)>,
    last_warned_us: AtomicI64,
}

impl StoreIndex {
    /// Shares `index` through `store` and starts the writer (on the current runtime); old notes
    /// are pruned by the housekeeping of [`prune`].
    pub fn share(index: &ResourceIndex, store: Store) {
        let (queue, mut notes) = mpsc::channel::<(Arc<str>, Vec<String>)>(QUEUE);
        let writer = store.clone();
        tokio::spawn(async move {
            while let Some((patient, keys)) = notes.recv().await {
                if let Err(e) = writer.note_owners(&patient, &keys, crate::epoch_us::now()).await {
                    tracing::warn!(error = %e, "resource owners could not be noted in the store");
                }
            }
        });
        index.share(Arc::new(Self { store, queue, last_warned_us: AtomicI64::new(0) }));
    }
}

#[async_trait::async_trait]
impl SharedIndex for StoreIndex {
    fn note(&self, patient: &Arc<str>, keys: Vec<String>) {
        if self.queue.try_send((patient.clone(), keys)).is_err() {
            // Said at most once a minute: a backed-up store must not flood the log.
            let now = crate::epoch_us::now();
            let last = self.last_warned_us.load(Ordering::Relaxed);
            if now - last > 60_000_000
                && self
                    .last_warned_us
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(
                    "resource owners not shared: the writer's queue is full (this replica still knows them)"
                );
            }
        }
    }

    async fn patient_of(&self, key: &str) -> Result<Option<String>, ()> {
        let since = crate::epoch_us::now() - age_us();
        self.store.owner_of(key, since).await.map_err(|e| {
            tracing::warn!(error = %e, "resource owner could not be read");
        })
    }
}

fn age_us() -> i64 {
    i64::try_from(ResourceIndex::AGE.as_micros()).unwrap_or(i64::MAX)
}

/// Forgets owners older than the index's age.
pub async fn prune(store: &Store, now_us: i64) {
    if let Err(e) = store.prune_owners(now_us - age_us()).await {
        tracing::warn!(error = %e, "resource owners could not be pruned");
    }
}
