//! Superseded NHS numbers: an old number resolves to the one that replaced it.
//!
//! The gateway learns a supersession from a source's Patient that keeps an NHS number as
//! `identifier.use = old` beside its current one, and from the configured feed
//! (`identity.superseded_nhs_numbers_file`: `old,current` lines). A number the gateway has seen
//! a source hold as a patient's current number is never redirected, and a source is never
//! believed about such a number, so no source can take over a living patient's number. Chains
//! are followed (an old number superseded twice), never round a cycle.

use tideway_adapters::SourcePatient;
use tideway_profiles::NhsNumber;

use super::{RecordError, RecordService};
use crate::sources::SourceAnswer;

/// The longest chain of supersessions followed.
const MAX_HOPS: usize = 8;

/// Origin of the feed's supersessions in the store.
pub const FEED_ORIGIN: &str = "feed";

impl RecordService {
    /// The current NHS number for `asked`, and whether `asked` was superseded.
    pub(super) async fn current_number(&self, asked: &NhsNumber) -> Result<(NhsNumber, bool), RecordError> {
        let mut seen = vec![asked.clone()];
        for _ in 0..MAX_HOPS {
            let Some(current) = seen.last().cloned() else { break };
            if self.is_published(&current).await? {
                break;
            }
            let next = self
                .store
                .superseded_by(current.as_str())
                .await
                .map_err(|cause| RecordError::PatientIndex { what: "read", cause })?;
            match next.and_then(|n| NhsNumber::parse(&n).ok()) {
                Some(next) if !seen.contains(&next) => seen.push(next),
                _ => break,
            }
        }
        let current = seen.last().cloned().unwrap_or_else(|| asked.clone());
        let superseded = current != *asked;
        Ok((current, superseded))
    }

    /// Whether some source has held `nhs` as a patient's current number (the gateway
    /// published an id for it).
    async fn is_published(&self, nhs: &NhsNumber) -> Result<bool, RecordError> {
        match self.resolve(&self.ids.id_for(nhs)).await {
            Ok(_) => Ok(true),
            Err(RecordError::UnknownPatient) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Learns what the sources' Patients of `current` say it superseded. Numbers that fail
    /// Mod 11, and numbers the gateway knows as someone's current number, are ignored.
    pub(super) async fn learn_supersessions(
        &self,
        current: &NhsNumber,
        answers: &[SourceAnswer<Option<SourcePatient>>],
    ) -> Result<(), RecordError> {
        for a in answers {
            let Some(patient) = a.result.as_ref().ok().and_then(|p| p.as_ref()) else { continue };
            let mut pairs = Vec::new();
            for old in &patient.resource.facts.former_nhs_numbers {
                let Ok(old) = NhsNumber::parse(old) else { continue };
                if old == *current || self.is_published(&old).await? {
                    continue;
                }
                pairs.push((old.as_str().to_owned(), current.as_str().to_owned()));
            }
            self.store
                .record_supersessions(&pairs, &format!("source:{}", a.source))
                .await
                .map_err(|cause| RecordError::PatientIndex { what: "written", cause })?;
        }
        Ok(())
    }

    /// Loads the supersession feed's pairs into the store.
    pub async fn load_supersessions(&self, pairs: &[(NhsNumber, NhsNumber)]) -> Result<(), RecordError> {
        let rows: Vec<(String, String)> =
            pairs.iter().map(|(o, c)| (o.as_str().to_owned(), c.as_str().to_owned())).collect();
        self.store
            .record_supersessions(&rows, FEED_ORIGIN)
            .await
            .map_err(|cause| RecordError::PatientIndex { what: "written", cause })
    }
}

/// Reads the feed: one `old,current` pair of NHS numbers a line; blank lines and lines
/// beginning `#` are skipped. A mistake is named by its line number, never its content.
pub fn parse_feed(text: &str) -> Result<Vec<(NhsNumber, NhsNumber)>, String> {
    crate::feed::records(text)
        .map(|(at, fields)| {
            let [old, current] = fields.as_slice() else {
                return Err(format!("line {at}: expected 'old,current' NHS numbers"));
            };
            let old = crate::feed::nhs_number(old, at, "old")?;
            let current = crate::feed::nhs_number(current, at, "current")?;
            if old == current {
                return Err(format!("line {at}: a number cannot supersede itself"));
            }
            Ok((old, current))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_is_read_and_every_mistake_named_by_line_only() {
        let ok = "# old,current\n9434765919,9434765870\n\n";
        let pairs = parse_feed(ok).unwrap();
        assert_eq!(pairs.len(), 1);
        assert_eq!((pairs[0].0.as_str(), pairs[0].1.as_str()), ("9434765919", "9434765870"));
        for (bad, said) in [
            ("9434765918,9434765870", "line 1: the old NHS number is not valid"),
            ("9434765919,943476587", "line 1: the current NHS number is not valid"),
            ("# c\n9434765919", "line 2: expected 'old,current' NHS numbers"),
            ("9434765919,9434765919", "line 1: a number cannot supersede itself"),
        ] {
            let e = parse_feed(bad).unwrap_err();
            assert_eq!(e, said);
            assert!(!e.contains("94347659"), "never the number: {e}");
        }
    }
}
