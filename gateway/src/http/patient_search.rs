//! `GET /Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}`: find a patient by NHS
//! number in every source and publish the gateway's opaque id for them.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use tideway_auth::Interaction;
use tideway_profiles::{IssueType, NhsNumber, systems};

use super::call::FhirCall;
use super::error::ApiError;
use super::render::{entries_body, outcome_of};
use crate::bundle;

const KNOWN: &[&str] = &["identifier", "_count"];

/// The handler.
pub async fn patient_search(call: FhirCall, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let call = call.require(Interaction::Search, "Patient").await?;
    let (mut call, params) = call.params(&req, KNOWN).await?;
    call.audit.asks(params.audit_query("Patient"));
    let federation = &call.state.settings.federation;
    let parsed = params
        .one("identifier")
        .and_then(|v| {
            v.ok_or_else(|| {
                ApiError::invalid(
                    "a Patient search needs an NHS number: identifier=https://fhir.nhs.uk/Id/nhs-number|<number>",
                )
                .at("identifier")
            })
        })
        .and_then(parse_identifier)
        .and_then(|nhs| params.count(federation.default_page_size, federation.max_page_size).map(|_| nhs));
    let nhs = match parsed {
        Ok(n) => n,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let state = call.state.clone();
    let found = match state.records.find_by_nhs(&mut call.audit, &call.principal, &nhs).await {
        Ok(f) => f,
        Err(e) => return Err(call.fail(e).await),
    };
    let mut notices = found.notices;
    notices.extend(params.ignored.iter().cloned());
    let entries: Vec<_> = found.patient.into_iter().collect();
    // The self link does not repeat the NHS number: links end up in logs and browser histories.
    let self_link = format!("{}/Patient", state.base_url);
    let body =
        entries_body(&state.base_url, &self_link, &entries, bundle::notices_outcome(&notices).as_ref());
    let partial = found.report.is_partial();
    call.respond(body, entries.len(), outcome_of(partial), found.report.to_detail()).await
}

/// Parses `system|value` for the NHS number system.
fn parse_identifier(value: &str) -> Result<NhsNumber, ApiError> {
    let (system, number) = value.split_once('|').ok_or_else(|| {
        ApiError::invalid(format!("identifier must be given as '{}|<NHS number>'", systems::NHS_NUMBER))
            .at("identifier")
    })?;
    if system != systems::NHS_NUMBER {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            format!("only identifiers of system {} can be searched", systems::NHS_NUMBER),
        )
        .at("identifier"));
    }
    NhsNumber::parse(number)
        .map_err(|e| ApiError::invalid(format!("invalid NHS number: {e}")).at("identifier"))
}
