//! What a finished job tells its owner: the Bulk Data manifest, and the error file's lines
//! (counts only, never patient data).

use serde_json::json;

use super::runner::ERROR_TYPE;
use super::{Job, JobTally};

/// The error file: one OperationOutcome per source failure kind, and one for patients left
/// out, counts only.
pub(super) fn error_lines(tally: &JobTally) -> Vec<String> {
    let outcome = |code: &str, text: String| {
        json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}).to_string()
    };
    let mut out: Vec<String> = tally
        .source_failures
        .iter()
        .flat_map(|(source, codes)| {
            codes.iter().map(move |(code, n)| {
                let text = if *code == crate::record::DIRECT_CARE_ONLY {
                    format!("source {source} serves direct care only, so was not asked for {n} patients' records; their data from it is missing")
                } else {
                    format!("source {source} could not give {n} patients' records ({code}); their data from it is missing")
                };
                outcome("incomplete", text)
            })
        })
        .collect();
    if tally.patients_left_out > 0 {
        out.push(outcome(
            "incomplete",
            format!(
                "{} patients were left out: their records could not be decided on",
                tally.patients_left_out
            ),
        ));
    }
    out
}

impl Job {
    /// The Bulk Data manifest of a completed job.
    pub fn manifest(&self, base_url: &str) -> serde_json::Value {
        let entry = |t: &str, count: u64| json!({"type": t, "url": format!("{base_url}/export-files/{}/{}", self.id, super::output::file_name(t)), "count": count});
        let (errors, outputs): (Vec<_>, Vec<_>) =
            self.tally.outputs.iter().filter(|(_, s)| s.count > 0).partition(|(t, _)| *t == ERROR_TYPE);
        json!({
            "transactionTime": self.transaction_time,
            "request": self.request,
            "requiresAccessToken": true,
            "output": outputs.iter().map(|(t, s)| entry(t, s.count)).collect::<Vec<_>>(),
            "error": errors.iter().map(|(t, s)| entry(t, s.count)).collect::<Vec<_>>(),
        })
    }
}
