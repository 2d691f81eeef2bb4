//! The registered population feed (`identity.registrations_file`): which patients each borough
//! exchange holds, as `source_id,nhs_number,local_id` lines. Each patient joins the patient
//! index under the gateway's id for them, linked to the source with its local id, so the bulk
//! export and the aggregates walk the whole registered population without asking every source
//! about every patient. Clinical reads are unchanged: the locator still asks sources it has no
//! fresh answer from.

use std::collections::BTreeMap;

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
}
