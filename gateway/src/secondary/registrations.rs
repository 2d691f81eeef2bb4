//! The registered population feed (`identity.registrations_file`): which patients each borough
//! exchange holds, as `source_id,nhs_number,local_id` lines. Each patient joins the patient
//! index under the gateway's id for them, linked to the source with its local id, so the bulk
//! export and the aggregates walk the whole registered population without asking every source
//! about every patient. Clinical reads are unchanged: the locator still asks sources it has no
//! fresh answer from.
//!
//! The file is read at start and looked at again every `identity.registrations_reload_secs`:
//! when its text has changed, it is loaded again, so a new registration joins the index and
//! the locator without a restart. A registration no longer listed is kept: a patient who left
//! a practice is unlinked by the source's own answer ("does not hold"), never by an absence
//! from a file that may be cut short.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use tideway_profiles::NhsNumber;

use crate::identity::PatientIds;
use crate::store::{SecondaryStore, StoreError};

/// Patients written per transaction.
const BATCH: usize = 5_000;

/// One line of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The source (registry id) that holds the patient.
    pub source: String,
    /// The patient's NHS number.
    pub nhs: NhsNumber,
    /// The source's own id for the patient.
    pub local_id: String,
}

/// Reads the feed; a mistake is named by line number, never content.
pub fn parse(text: &str) -> Result<Vec<Registration>, String> {
    crate::feed::records(text)
        .map(|(at, fields)| {
            let [source, nhs, local] = fields.as_slice() else {
                return Err(format!("line {at}: expected 'source_id,nhs_number,local_id'"));
            };
            if tideway_adapters::SourceId::parse(source).is_err() || local.is_empty() {
                return Err(format!("line {at}: the source id or the local id is not valid"));
            }
            let nhs = crate::feed::nhs_number(nhs, at, "registered")?;
            Ok(Registration { source: (*source).to_owned(), nhs, local_id: (*local).to_owned() })
        })
        .collect()
}

/// Writes the feed to the patient index, source by source, in batches.
pub async fn load(
    store: &dyn SecondaryStore,
    ids: &PatientIds,
    feed: &[Registration],
) -> Result<(), StoreError> {
    let mut by_source: BTreeMap<&str, Vec<(String, String, String)>> = BTreeMap::new();
    for r in feed {
        by_source.entry(&r.source).or_default().push((
            ids.id_for(&r.nhs),
            r.nhs.as_str().to_owned(),
            r.local_id.clone(),
        ));
    }
    for (source, patients) in by_source {
        for batch in patients.chunks(BATCH) {
            store.register_population(source, batch).await?;
        }
    }
    Ok(())
}

/// The feed file and what was last loaded from it.
pub struct RegistrationsFeed {
    path: PathBuf,
    store: Arc<dyn SecondaryStore>,
    ids: PatientIds,
    /// The digest of the text last loaded: an unchanged file is not written again.
    loaded: tokio::sync::Mutex<Option<[u8; 32]>>,
}

impl RegistrationsFeed {
    /// The feed at `path`, loaded into `store` under the gateway's ids.
    pub fn new(path: PathBuf, store: Arc<dyn SecondaryStore>, ids: PatientIds) -> Arc<Self> {
        Arc::new(Self { path, store, ids, loaded: tokio::sync::Mutex::new(None) })
    }

    /// Reads the file and, when it changed since it was last loaded, writes it to the patient
    /// index and the locator. Returns whether it was loaded. A file that cannot be read or
    /// parsed changes nothing (the message names the line, never its content).
    pub async fn load(&self) -> Result<bool, String> {
        let text = tokio::fs::read_to_string(&self.path).await.map_err(|e| e.to_string())?;
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        let mut loaded = self.loaded.lock().await;
        if *loaded == Some(digest) {
            return Ok(false);
        }
        let feed = parse(&text)?;
        load(self.store.as_ref(), &self.ids, &feed).await.map_err(|e| e.to_string())?;
        *loaded = Some(digest);
        Ok(true)
    }

    /// Looks at the file again every `secs` seconds; failures are logged (without content) and
    /// what was loaded stays.
    pub fn spawn_reload(self: &Arc<Self>, secs: u64) {
        let feed = self.clone();
        crate::periodic::every(secs, move || {
            let feed = feed.clone();
            async move {
                match feed.load().await {
                    Ok(true) => tracing::info!("the registered population feed changed and was loaded again"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "the registered population feed could not be loaded again; what was loaded stays")
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_names_each_mistake_by_line_and_never_the_number() {
        let ok = parse("# source,nhs,local\nborough-00,9434765919,b00-p0\n").unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(
            (ok[0].source.as_str(), ok[0].nhs.as_str(), ok[0].local_id.as_str()),
            ("borough-00", "9434765919", "b00-p0")
        );
        for (bad, said) in [
            ("borough-00,9434765918,x", "line 1: the registered NHS number is not valid"),
            ("\nborough-00,9434765919", "line 2: expected 'source_id,nhs_number,local_id'"),
            ("not a source!,9434765919,x", "line 1: the source id or the local id is not valid"),
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e, said);
            assert!(!e.contains("94347659"), "{e}");
        }
    }

    /// The feed is loaded again only when its text changed; a changed feed adds its new
    /// registrations and keeps the old ones; a bad line changes nothing.
    #[tokio::test]
    async fn a_changed_feed_is_loaded_again_and_an_unchanged_or_bad_one_is_not() {
        use crate::store::test_db::{Backend, fresh_store};
        let (store, dir) = fresh_store(Backend::Sqlite).await;
        let path = dir.0.join("registrations.csv");
        let held = |store: crate::store::Store| async move {
            store.cohort_size(&crate::store::Cohort::HeldBy("borough-00".into())).await.unwrap()
        };
        let ids = PatientIds::new(secrecy::SecretString::from("k".repeat(32)));
        std::fs::write(&path, "borough-00,9434765919,b00-p0\n").unwrap();
        let feed = RegistrationsFeed::new(path.clone(), Arc::new(store.clone()), ids);
        assert!(feed.load().await.unwrap(), "read at start");
        assert_eq!(held(store.clone()).await, 1);
        assert!(!feed.load().await.unwrap(), "unchanged: not loaded again");
        std::fs::write(&path, "borough-00,9434765870,b00-p1\n").unwrap();
        assert!(feed.load().await.unwrap(), "changed: loaded again");
        assert_eq!(held(store.clone()).await, 2, "the new registration joins, the old one is kept");
        std::fs::write(&path, "borough-00,9434765870,b00-p1\nborough-00,9434765918,b00-p2\n").unwrap();
        let e = feed.load().await.unwrap_err();
        assert_eq!(e, "line 2: the registered NHS number is not valid");
        assert_eq!(held(store).await, 2, "a bad line changes nothing");
    }
}
