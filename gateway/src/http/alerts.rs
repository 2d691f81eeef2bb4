//! `GET /alerts`: the privacy officer's alerts (break-glass, misuse), and `GET /notifications`:
//! first-access notifications (a registered practice reads those addressed to it, a privacy
//! officer all), each a searchset Bundle of FHIR `Communication`s, oldest first. Parameters:
//! `patient` (a gateway patient id), `_since` (an instant) and `_count` (1 to 1000, default
//! 100). Audited like any read.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::call::FhirCall;
use super::error::ApiError;
use super::params::Params;
use crate::audit::AuditOutcome;

/// The most entries one answer holds.
const MAX_ENTRIES: i64 = 1000;

/// Which list is asked for.
#[derive(Debug, Clone, Copy)]
enum List {
    Alerts,
    Notifications,
}

/// `GET /alerts`
pub async fn alerts(call: FhirCall, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    list(call, req, List::Alerts).await
}

/// `GET /notifications`
pub async fn notifications(call: FhirCall, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    list(call, req, List::Notifications).await
}

async fn list(call: FhirCall, req: HttpRequest, which: List) -> Result<HttpResponse, ApiError> {
    let (mut call, params) = call.params(&req, &["patient", "_since", "_count"]).await?;
    let (patient, since, count) = match window(&params) {
        Ok(v) => v,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let state = call.state.clone();
    let records = &state.records;
    let (audit, principal, patient) = (&mut call.audit, &call.principal, patient.as_deref());
    let (found, path) = match which {
        List::Alerts => (records.privacy_alerts(audit, principal, patient, since, count).await, "alerts"),
        List::Notifications => {
            (records.access_notifications(audit, principal, patient, since, count).await, "notifications")
        }
    };
    let found = match found {
        Ok(v) => v,
        Err(e) => return Err(call.fail(e).await),
    };
    let body = super::render::made_searchset(&state.base_url, path, &found);
    let detail = json!({ path: found.len() }).to_string();
    call.respond(body, found.len(), AuditOutcome::Success, detail).await
}

/// `patient`, `_since` (microseconds since the epoch, 0 when not given) and `_count`.
fn window(params: &Params) -> Result<(Option<String>, i64, i64), ApiError> {
    let patient = params.one("patient")?.map(str::to_owned);
    let since = match params.one("_since")? {
        None => 0,
        Some(s) => OffsetDateTime::parse(s, &Rfc3339)
            .map(crate::epoch_us::of)
            .map_err(|_| ApiError::invalid("_since must be an instant (RFC 3339)").at("_since"))?,
    };
    let count =
        match params.one("_count")? {
            None => 100,
            Some(c) => c.parse::<i64>().ok().filter(|n| (1..=MAX_ENTRIES).contains(n)).ok_or_else(|| {
                ApiError::invalid("_count must be a whole number from 1 to 1000").at("_count")
            })?,
        };
    Ok((patient, since, count))
}
