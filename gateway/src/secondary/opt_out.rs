//! The National Data Opt-out: patients who opted out of their data being used beyond their own
//! care. Loaded through the admin API (`origin = api`) and a file feed (`origin = file`, the
//! whole list each time it is read); applied to every secondary use, so an opted-out patient is
//! absent from every export file and every count. The cohort a job or an aggregate walks is
//! read from the store with opted-out patients left out, page by page, so a change takes effect
//! from the next page read: at the latest on the next export and the next aggregate.
//!
//! How many patients opted out is never published with population data (it could be worked out
//! from a total and the registered list); the operator loading the feed is told how many lines
//! it held.

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::store::{SecondaryStore, StoreError};

/// Origin of opt-outs recorded through the admin API.
pub const API_ORIGIN: &str = "api";

/// Origin of the configured file feed's opt-outs.
pub const FILE_ORIGIN: &str = "file";

/// Why the feed could not be loaded (names the line, never a number).
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The file could not be read.
    #[error("secondary.opt_out_file could not be read: {0}")]
    Read(std::io::Error),
    /// A line is not an NHS number.
    #[error("secondary.opt_out_file: {0}")]
    Line(String),
    /// The store refused it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The new list would drop more than half of the one in force: a cut-off or emptied file is
    /// far likelier than half the opted-out patients opting back in at once.
    #[error(
        "secondary.opt_out_file holds {after} numbers against {before} in force; the list in force is kept"
    )]
    Shrunk {
        /// Numbers in force.
        before: i64,
        /// Numbers in the file.
        after: usize,
    },
}

/// The file feed and what was last loaded from it.
pub struct OptOutFeed {
    path: PathBuf,
    store: Arc<dyn SecondaryStore>,
    /// The digest of the text last loaded: an unchanged file is not written again.
    loaded: Mutex<Option<[u8; 32]>>,
}

impl OptOutFeed {
    /// The feed at `path`, loaded into `store`.
    pub fn new(path: PathBuf, store: Arc<dyn SecondaryStore>) -> Arc<Self> {
        Arc::new(Self { path, store, loaded: Mutex::new(None) })
    }

    /// Reads the file and, when it changed, replaces the feed's opt-outs with it. Returns how
    /// many numbers it holds. A file that cannot be read or parsed leaves the list as it was.
    pub async fn load(&self) -> Result<usize, FeedError> {
        let text = tokio::fs::read_to_string(&self.path).await.map_err(FeedError::Read)?;
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        let mut loaded = self.loaded.lock().await;
        let numbers = crate::feed::nhs_numbers(&text).map_err(FeedError::Line)?;
        if *loaded != Some(digest) {
            let before = self.store.opt_out_count(FILE_ORIGIN).await?;
            if before > 0 && (numbers.len() as i64) * 2 < before {
                return Err(FeedError::Shrunk { before, after: numbers.len() });
            }
            let numbers: Vec<String> = numbers.iter().map(|n| n.as_str().to_owned()).collect();
            self.store.replace_opt_outs(FILE_ORIGIN, &numbers).await?;
            *loaded = Some(digest);
        }
        Ok(numbers.len())
    }

    /// Reads the file again every `secs` seconds; failures are logged (without content) and
    /// the list already loaded stays in force.
    pub fn spawn_reload(self: &Arc<Self>, secs: u64) {
        let feed = self.clone();
        crate::periodic::every(secs, move || {
            let feed = feed.clone();
            async move {
                if let Err(e) = feed.load().await {
                    tracing::error!(error = %e, "the National Data Opt-out feed could not be loaded; the list already loaded stays in force");
                }
            }
        });
    }
}
