//! `GET /AuditEvent?patient=…` and `GET /AuditEvent/{id}`: who accessed a patient's record, for
//! the privacy officer. The answer is the audit trail's outcome records about that patient as
//! BALP-style `AuditEvent`s (client, user, role, organisation, purpose of use, request id,
//! sources asked, outcome, count released), newest first. Parameters: `patient` (required, the
//! gateway's patient id in any of the forms a type search takes), `date` (repeatable; `eq`,
//! `ge`, `gt`, `le`, `lt`, `sa`, `eb` and partial dates, on `recorded`) and `_count` (1 to 1000,
//! default 100). Only a privacy office's officers may; every read is audited (`audit-read`).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::call::FhirCall;
use super::error::ApiError;
use crate::audit::AuditOutcome;
use crate::audit::PatientWindow;
use crate::search::date::{DateQuery, Prefix};

/// The most events one answer holds.
const MAX_EVENTS: usize = 1000;

/// `[from, to)` in microseconds that the `date` values together allow, or the value that
/// cannot be read or is not supported (`ne` would need two windows).
fn window(values: &[&str]) -> Result<(i64, i64), ApiError> {
    let (mut from, mut to) = (i64::MIN, i64::MAX);
    for value in values {
        let query = DateQuery::parse(value).filter(|q| q.prefix != Prefix::Ne).ok_or_else(|| {
            ApiError::invalid(
                "date must be a FHIR date or instant with an optional prefix eq, ge, gt, le, lt, sa or eb",
            )
            .at("date")
        })?;
        let (start, end) =
            (query.range.start.saturating_mul(1_000_000), query.range.end.saturating_mul(1_000_000));
        let (lower, upper) = match query.prefix {
            Prefix::Eq => (Some(start), Some(end)),
            Prefix::Ge => (Some(start), None),
            Prefix::Gt | Prefix::Sa => (Some(end), None),
            Prefix::Le => (None, Some(end)),
            Prefix::Lt | Prefix::Eb => (None, Some(start)),
            Prefix::Ne => (None, None),
        };
        from = from.max(lower.unwrap_or(i64::MIN));
        to = to.min(upper.unwrap_or(i64::MAX));
    }
    Ok((from, to))
}

/// `GET /AuditEvent`
pub async fn search(call: FhirCall, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (mut call, params) = call.params(&req, &["patient", "date", "_count"]).await?;
    let state = call.state.clone();
    let read = || -> Result<PatientWindow, ApiError> {
        let patient = params.one("patient")?.ok_or_else(|| {
            ApiError::invalid("patient is required: the access history of one patient's record").at("patient")
        })?;
        let patient_id = super::type_search::patient_reference(patient, &state.base_url, "patient")?;
        let (from_us, to_us) = window(&params.all("date"))?;
        let limit = i64::try_from(params.count(100, MAX_EVENTS)?).unwrap_or(100);
        Ok(PatientWindow { patient_id, from_us, to_us, limit })
    };
    let query = match read() {
        Ok(q) => q,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let events =
        match state.records.access_history(&mut call.audit, &call.principal, &state.audit, &query).await {
            Ok(events) => events,
            Err(e) => return Err(call.fail(e).await),
        };
    let body = super::render::made_searchset(&state.base_url, "AuditEvent", &events);
    let detail = json!({"audit_events": events.len()}).to_string();
    call.respond(body, events.len(), AuditOutcome::Success, detail).await
}

/// `GET /AuditEvent/{id}`: `audit-{seq}`, as the search hands them out.
pub async fn read(
    call: FhirCall,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (mut call, _) = call.params(&req, &[]).await?;
    let state = call.state.clone();
    let id = path.into_inner();
    let Some(seq) = id.strip_prefix("audit-").and_then(|n| n.parse::<i64>().ok()) else {
        return Err(call.refuse(ApiError::not_found("no AuditEvent with this id"), "not-found").await);
    };
    let event = match state.records.audit_event(&mut call.audit, &call.principal, &state.audit, seq).await {
        Ok(Some(event)) => event,
        Ok(None) => {
            return Err(call.refuse(ApiError::not_found("no AuditEvent with this id"), "not-found").await);
        }
        Err(e) => return Err(call.fail(e).await),
    };
    call.respond(
        event.to_string().into_bytes(),
        1,
        AuditOutcome::Success,
        json!({"audit_events": 1}).to_string(),
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    #[test]
    fn date_values_narrow_one_window() {
        let day = 86_400 * 1_000_000;
        assert_eq!(window(&[]).unwrap(), (i64::MIN, i64::MAX));
        assert_eq!(window(&["1970-01-02"]).unwrap(), (day, 2 * day));
        assert_eq!(window(&["ge1970-01-02", "lt1970-01-05"]).unwrap(), (day, 4 * day));
        assert_eq!(window(&["gt1970-01-02", "le1970-01-05"]).unwrap(), (2 * day, 5 * day));
        assert!(window(&["ne1970-01-02"]).is_err());
        assert!(window(&["yesterday"]).is_err());
    }
}
