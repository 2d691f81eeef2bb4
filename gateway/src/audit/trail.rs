//! The one audit writer and the intent/outcome protocol of a request.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;

use super::AuditLog;
use super::{AuditOutcome, AuditPhase, AuditRecord, ChainedAudit, PatientWindow};
use crate::Principal;

/// Longest wait for an audit append before the request is answered 503.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The audit trail could not be written (or did not answer in time): nothing may be released.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit trail could not be written: {0}")]
pub struct AuditError(String);

impl AuditError {
    /// An error whose cause is described by `cause` (names operations and tables, never values).
    pub fn new(cause: impl Into<String>) -> Self {
        Self(cause.into())
    }
}

/// Appends audit records durably.
#[derive(Clone)]
pub struct AuditTrail {
    log: Arc<dyn AuditLog>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditTrail(..)")
    }
}

impl AuditTrail {
    /// A trail kept in `log`.
    pub fn new(log: Arc<dyn AuditLog>) -> Self {
        Self { log }
    }

    /// Appends one record durably and returns its sequence number, giving up (as a failure)
    /// if the store does not answer within the audit timeout.
    pub async fn append(&self, record: &AuditRecord) -> Result<i64, AuditError> {
        within_timeout(self.log.append_audit(record)).await
    }

    /// [`Self::append`] of a record handed over (the log need not copy it).
    async fn append_shared(&self, record: Arc<AuditRecord>) -> Result<i64, AuditError> {
        within_timeout(self.log.append_shared(record)).await
    }

    /// One patient's outcome records in `window`, newest first.
    pub async fn for_patient(&self, window: &PatientWindow) -> Result<Vec<ChainedAudit>, AuditError> {
        within_timeout(self.log.audit_for_patient(window)).await
    }

    /// The record with sequence number `seq`, if any.
    pub async fn record(&self, seq: i64) -> Result<Option<ChainedAudit>, AuditError> {
        within_timeout(self.log.audit_record(seq)).await
    }

    /// Starts the audit of one request for `action`, on behalf of `principal` when known.
    pub fn begin(
        &self,
        request_id: &str,
        action: &'static str,
        principal: Option<&Principal>,
    ) -> AuditedCall {
        AuditedCall {
            trail: self.clone(),
            record: Arc::new(AuditRecord::new(request_id, action, principal)),
            break_glass_reason: principal.and_then(|p| p.break_glass_reason.clone()),
            query: None,
            disclosed: Vec::new(),
        }
    }
}

/// `detail` with the member `name: value` added. Every record's detail is a JSON object
/// written by the gateway, so the member is spliced in before its closing brace (this runs
/// twice on every audited request: no parse); a detail that is not an object, or already has
/// a member of that name, is parsed and rebuilt instead (a non-object kept under `detail`).
fn with_member(mut detail: String, name: &str, value: &str) -> String {
    let member = format!("{}:{}", json!(name), json!(value));
    let open = detail.trim_start().starts_with('{');
    if let (true, Some(end)) = (open, detail.rfind('}'))
        && detail[end + 1..].trim().is_empty()
        && !detail.contains(&format!("{}:", json!(name)))
    {
        let empty = detail.trim_start()[1..].trim_start().starts_with('}');
        detail.insert_str(end, &if empty { member } else { format!(",{member}") });
        return detail;
    }
    let mut value_map = match serde_json::from_str::<serde_json::Value>(&detail) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(serde_json::Value::Null) | Err(_) => serde_json::Map::new(),
        Ok(other) => serde_json::Map::from_iter([("detail".to_owned(), other)]),
    };
    value_map.insert(name.to_owned(), json!(value));
    serde_json::Value::Object(value_map).to_string()
}

/// The log's answer, or a failure if it does not answer within the audit timeout.
async fn within_timeout<T>(call: impl Future<Output = Result<T, AuditError>>) -> Result<T, AuditError> {
    match tokio::time::timeout(AUDIT_TIMEOUT, call).await {
        Ok(answer) => answer,
        Err(_) => Err(AuditError("timed out".into())),
    }
}

/// The audit of one request in flight: an intent before any source is asked, then exactly one
/// outcome or refusal.
///
/// The record is shared with the log while an append is in flight rather than copied into it:
/// a log that keeps it (the SQLite writer's queue) lets go before answering, so the next change
/// (intent to outcome) finds the only reference and edits it in place. Should an append be
/// abandoned (timed out) while the log still holds it, the change copies it first.
#[derive(Debug)]
pub struct AuditedCall {
    trail: AuditTrail,
    record: Arc<AuditRecord>,
    /// Why the glass was broken, for a break-glass token: every record of the request says so.
    break_glass_reason: Option<String>,
    /// What was asked, when it is a search or a read by id: every record of the request says
    /// so (`query` in the detail).
    query: Option<String>,
    /// The patients the answer releases that the request's records do not name: each gets a
    /// disclosure record before the outcome.
    disclosed: Vec<String>,
}

impl AuditedCall {
    /// The request id the records carry.
    pub fn request_id(&self) -> &str {
        &self.record.request_id
    }

    /// When the request's latest record was made (its intent, once written): one instant for
    /// every check of the request that depends on the time.
    pub fn recorded_at(&self) -> time::OffsetDateTime {
        self.record.recorded_at
    }

    /// The patient the request is about, when known.
    pub fn patient_id(&self) -> Option<&str> {
        self.record.patient_id.as_deref()
    }

    /// Names the registered client a refusal is about, when only the client is known (its
    /// signature verified, but no token was granted).
    pub fn on_behalf_of_client(&mut self, client_id: &str) {
        Arc::make_mut(&mut self.record).client_id = Some(client_id.to_owned());
    }

    /// Names the patient the request is about (the gateway's opaque id, never an NHS number).
    pub fn about_patient(&mut self, patient_id: &str) {
        Arc::make_mut(&mut self.record).patient_id = Some(patient_id.to_owned());
    }

    /// Notes that the answer releases patient `patient_id`'s details: unless the request's
    /// records already name that patient ([`Self::about_patient`]), the outcome is preceded by
    /// a disclosure record naming them, so each patient's access history shows the request.
    pub fn discloses(&mut self, patient_id: &str) {
        let named = self.record.patient_id.as_deref() == Some(patient_id);
        if !named && !self.disclosed.iter().any(|p| p == patient_id) {
            self.disclosed.push(patient_id.to_owned());
        }
    }

    /// Notes what the request asks: `resource_type` and, for a search, the names of the
    /// parameters it gives (never their values, which may identify a patient: an NHS number,
    /// a name, a birth date), as `Condition?code&patient`; for a read by id, `Type/id` (the
    /// gateway's or a source's id of a resource, not a person). Every record of the request
    /// carries it, refusals included.
    pub fn asks(&mut self, query: String) {
        self.query = Some(query);
    }

    /// Sets the detail the intent record carries (what is about to be done, in identifiers).
    pub fn describe(&mut self, detail: String) {
        Arc::make_mut(&mut self.record).detail = detail;
    }

    /// `detail` with what every record of the request says added: the break-glass reason
    /// (`break_glass_reason`) and what was asked (`query`), when there are; as it was otherwise.
    fn with_context(&self, mut detail: String) -> String {
        if let Some(reason) = &self.break_glass_reason {
            detail = with_member(detail, "break_glass_reason", reason);
        }
        if let Some(query) = &self.query {
            detail = with_member(detail, "query", query);
        }
        detail
    }

    /// Writes the intent record. Nothing may be asked of a source before this succeeds.
    pub async fn intent(&mut self, sources: Arc<str>) -> Result<(), AuditError> {
        if self.break_glass_reason.is_some() || self.query.is_some() {
            let detail = self.with_context(self.record.detail.clone());
            Arc::make_mut(&mut self.record).detail = detail;
        }
        let record = Arc::make_mut(&mut self.record);
        record.phase = AuditPhase::Intent;
        record.outcome = AuditOutcome::Pending;
        record.sources = sources;
        record.recorded_at = OffsetDateTime::now_utc();
        self.trail.append_shared(self.record.clone()).await.map(drop).map_err(|e| {
            tracing::error!(request_id = %self.record.request_id, error = %e, "audit intent could not be written");
            e
        })
    }

    /// Writes the outcome record; the response may leave only if this succeeds.
    pub async fn outcome(
        mut self,
        status: u16,
        released: usize,
        outcome: AuditOutcome,
        detail: String,
    ) -> Result<(), AuditError> {
        self.finish(status, released, outcome, detail);
        for patient in std::mem::take(&mut self.disclosed) {
            let mut disclosure = (*self.record).clone();
            disclosure.phase = AuditPhase::Disclosure;
            disclosure.patient_id = Some(patient);
            disclosure.released = 1;
            disclosure.detail = json!({ "one_of": released }).to_string();
            self.trail.append(&disclosure).await.map_err(|e| {
                tracing::error!(request_id = %self.record.request_id, error = %e, "audit disclosure could not be written; nothing released");
                e
            })?;
        }
        self.trail.append_shared(self.record.clone()).await.map(drop).map_err(|e| {
            tracing::error!(request_id = %self.record.request_id, error = %e, "audit outcome could not be written; nothing released");
            e
        })
    }

    /// Records a refusal (`failed` when the fault was ours or upstream rather than the
    /// requester's). Best effort: the request is refused whether or not this is written, since
    /// nothing is released.
    pub async fn refused(mut self, status: u16, failed: bool, reason: &str) {
        let outcome = if failed { AuditOutcome::Error } else { AuditOutcome::Denied };
        self.finish(status, 0, outcome, json!({ "reason": reason }).to_string());
        if self.trail.append_shared(self.record.clone()).await.is_err() {
            tracing::error!(request_id = %self.record.request_id, "audit write failed while refusing a request");
        }
    }

    fn finish(&mut self, status: u16, released: usize, outcome: AuditOutcome, detail: String) {
        let detail = self.with_context(detail);
        let record = Arc::make_mut(&mut self.record);
        record.phase = AuditPhase::Outcome;
        record.outcome = outcome;
        record.http_status = status;
        record.released = released as u64;
        record.detail = detail;
        record.recorded_at = OffsetDateTime::now_utc();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod tests {
    use super::with_member;

    #[test]
    fn a_member_is_spliced_into_an_object_and_anything_else_is_rebuilt() {
        let parsed = |s: String| serde_json::from_str::<serde_json::Value>(&s).unwrap();
        assert_eq!(
            with_member(r#"{"a":1}"#.into(), "query", "Condition?code"),
            r#"{"a":1,"query":"Condition?code"}"#
        );
        assert_eq!(with_member("{}".into(), "query", "Patient"), r#"{"query":"Patient"}"#);
        assert_eq!(with_member(String::new(), "query", "Patient"), r#"{"query":"Patient"}"#);
        assert_eq!(
            parsed(with_member("[1,2]".into(), "query", "q")),
            serde_json::json!({"detail": [1, 2], "query": "q"})
        );
        // Already there: replaced, never doubled; quotes in a value stay JSON.
        let twice = with_member(r#"{"query":"old"}"#.into(), "query", "new");
        assert_eq!(parsed(twice), serde_json::json!({"query": "new"}));
        let quoted = with_member(r#"{"n":1}"#.into(), "break_glass_reason", "said \"urgent\"");
        assert_eq!(parsed(quoted)["break_glass_reason"], "said \"urgent\"");
    }
}
