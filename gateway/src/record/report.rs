//! The per-source report written to the audit trail: for each source, whether it answered,
//! how many resources, how long it took, what was withheld as invalid or as another patient's;
//! then how many entries each policy reason withheld (and under which agreement, section and
//! source), the agreements applied, and how many duplicates were merged.
//! Identifiers and counts only, never clinical content. Serialised straight to JSON text.

use std::collections::BTreeMap;

use serde::Serialize;
use tideway_adapters::{RejectionKind, SourcePatient, SourceRecord};
use tideway_policy::{Decision, WithheldCount};
use tideway_profiles::ResourceFacts;

use crate::sources::SourceAnswer;
use crate::telemetry::metrics;

/// What one source did in this request.
#[derive(Debug, Clone, Serialize)]
struct SourceEntry {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    other_patient: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    ms: u64,
}

/// The audit detail of one answer.
#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    sources: BTreeMap<String, SourceEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    withheld: Option<BTreeMap<&'static str, usize>>,
    /// `id@version` of the agreements the decision applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    agreements: Vec<String>,
    /// Which rule of which agreement withheld how many entries of which section, from which
    /// source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    withheld_by: Vec<WithheldCount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merged_duplicates: Option<usize>,
    /// How the requester stood to the patient (`registered-practice`, `care`, `consent`,
    /// `agreement`, `break-glass`).
    #[serde(skip_serializing_if = "Option::is_none")]
    standing: Option<&'static str>,
    #[serde(skip)]
    partial: bool,
}

impl SourceReport {
    /// Whether `source` was asked in this answer and failed.
    pub fn failed(&self, source: &str) -> bool {
        self.sources.get(source).is_some_and(|e| !e.ok)
    }

    fn of<T>(answers: &[SourceAnswer<T>], entry: impl Fn(&T) -> SourceEntry) -> Self {
        let sources = answers
            .iter()
            .map(|a| {
                let ms = a.elapsed.as_millis() as u64;
                let e = match &a.result {
                    Ok(t) => SourceEntry { ms, ..entry(t) },
                    Err(e) => SourceEntry {
                        ok: false,
                        count: None,
                        rejected: None,
                        other_patient: None,
                        error: Some(metrics::outcome_code(Some(e))),
                        ms,
                    },
                };
                (a.source.to_string(), e)
            })
            .collect();
        Self {
            sources,
            withheld: None,
            agreements: Vec::new(),
            withheld_by: Vec::new(),
            merged_duplicates: None,
            standing: None,
            partial: answers.iter().any(|a| a.result.is_err()),
        }
    }

    /// The report of a Patient look-up in every source.
    pub fn of_patients(answers: &[SourceAnswer<Option<SourcePatient>>]) -> Self {
        Self::of(answers, |p| SourceEntry {
            ok: true,
            count: Some(usize::from(p.is_some())),
            rejected: None,
            other_patient: None,
            error: None,
            ms: 0,
        })
    }

    /// The report of record fetches.
    pub fn of_records(answers: &[SourceAnswer<std::sync::Arc<SourceRecord>>]) -> Self {
        Self::of(answers, |r| {
            let count = |k| r.rejected.iter().filter(|x| x.kind == k).count();
            SourceEntry {
                ok: true,
                count: Some(r.resources.len()),
                rejected: Some(r.rejected.len() - count(RejectionKind::OtherPatient)),
                other_patient: Some(count(RejectionKind::OtherPatient)),
                error: None,
                ms: 0,
            }
        })
    }

    /// Adds what the decision over `facts` withheld: by reason, and by rule, agreement,
    /// section and source; and the agreements it applied.
    pub fn withheld(&mut self, decision: &Decision, facts: &[&ResourceFacts]) {
        self.withheld = Some(decision.withheld_counts().into_iter().map(|(r, n)| (r.code(), n)).collect());
        self.agreements = decision.agreements().to_vec();
        self.withheld_by = decision.withheld_detail(facts);
    }

    /// Adds how the requester stood to the patient.
    pub fn standing(&mut self, standing: tideway_policy::Standing) {
        self.standing = Some(standing.code());
    }

    /// Adds how many duplicates were folded into another source's entry.
    pub fn merged(&mut self, folded: usize) {
        self.merged_duplicates = Some(folded);
    }

    /// Marks the answer partial (a source asked earlier in the request failed).
    pub fn mark_partial(&mut self) {
        self.partial = true;
    }

    /// Whether some source is missing from the answer.
    pub fn is_partial(&self) -> bool {
        self.partial
    }

    /// The JSON text written to the audit record.
    pub fn to_detail(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "null".into())
    }
}
