//! The per-source report written to the audit trail: for each source, whether it answered,
//! how many resources, how long it took, what was withheld as invalid or as another patient's;
//! then how many entries each policy reason withheld and how many duplicates were merged.
//! Identifiers and counts only, never clinical content.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tideway_adapters::{RejectionKind, SourcePatient, SourceRecord};
use tideway_policy::Decision;

use crate::sources::SourceAnswer;
use crate::telemetry::metrics;

/// The audit detail of one answer.
#[derive(Debug, Clone)]
pub struct SourceReport {
    sources: BTreeMap<String, Value>,
    extra: serde_json::Map<String, Value>,
    partial: bool,
}

impl SourceReport {
    fn of<T>(answers: &[SourceAnswer<T>], entry: impl Fn(&T) -> Value) -> Self {
        let sources = answers
            .iter()
            .map(|a| {
                let ms = a.elapsed.as_millis() as u64;
                let mut v = match &a.result {
                    Ok(t) => entry(t),
                    Err(e) => json!({"ok": false, "error": metrics::outcome_code(Some(e))}),
                };
                v["ms"] = json!(ms);
                (a.source.to_string(), v)
            })
            .collect();
        Self { sources, extra: serde_json::Map::new(), partial: answers.iter().any(|a| a.result.is_err()) }
    }

    /// The report of a Patient look-up in every source.
    pub fn of_patients(answers: &[SourceAnswer<Option<SourcePatient>>]) -> Self {
        Self::of(answers, |p| json!({"ok": true, "count": usize::from(p.is_some())}))
    }

    /// The report of record fetches.
    pub fn of_records(answers: &[SourceAnswer<std::sync::Arc<SourceRecord>>]) -> Self {
        Self::of(answers, |r| {
            let count = |k| r.rejected.iter().filter(|x| x.kind == k).count();
            json!({
                "ok": true,
                "count": r.resources.len(),
                "rejected": count(RejectionKind::Invalid),
                "other_patient": count(RejectionKind::OtherPatient),
            })
        })
    }

    /// Adds what the decision withheld, by reason.
    pub fn withheld(&mut self, decision: &Decision) {
        let counts: serde_json::Map<String, Value> =
            decision.withheld_counts().into_iter().map(|(r, n)| (r.code().to_owned(), json!(n))).collect();
        self.extra.insert("withheld".into(), Value::Object(counts));
    }

    /// Adds how many duplicates were folded into another source's entry.
    pub fn merged(&mut self, folded: usize) {
        self.extra.insert("merged_duplicates".into(), json!(folded));
    }

    /// Marks the answer partial (a source asked earlier in the request failed).
    pub fn mark_partial(&mut self) {
        self.partial = true;
    }

    /// Whether some source is missing from the answer.
    pub fn is_partial(&self) -> bool {
        self.partial
    }

    /// The JSON written to the audit record.
    pub fn to_detail(&self) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("sources".into(), json!(self.sources));
        out.extend(self.extra.clone());
        Value::Object(out)
    }
}
