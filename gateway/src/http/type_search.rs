//! `GET /{type}?patient={id}` for the searchable clinical types.

use actix_web::{HttpRequest, HttpResponse, web};
use tideway_auth::Interaction;
use tideway_policy::Ask;

use super::answer::record_page;
use super::call::FhirCall;
use super::error::ApiError;
use super::render::{echo_query, entries_body};
use crate::audit::AuditOutcome;
use crate::{bundle, search};

/// Every parameter a search of `resource_type` understands.
fn known(resource_type: &str) -> Vec<&'static str> {
    let mut names = search::COMMON.to_vec();
    names.extend(search::supported(resource_type).iter().map(|p| p.name));
    names
}

/// The error for a search value that cannot be used.
pub(super) fn bad_param(e: &search::BadParam) -> ApiError {
    let message = format!("{} {}", e.name, e.problem);
    if e.unsupported {
        ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            tideway_profiles::IssueType::NotSupported,
            message,
        )
        .at(e.name)
    } else {
        ApiError::invalid(message).at(e.name)
    }
}

/// The gateway patient id in a `patient`/`subject` value: `p…`, `Patient/p…`, or the absolute
/// URL under this gateway's base (the very `fullUrl` it hands out). Anything else (an NHS
/// number, another server's URL, a malformed id) cannot name a patient here: 400, naming the
/// parameter, never an empty answer that looks like "no data".
pub(super) fn patient_reference(value: &str, base_url: &str, name: &str) -> Result<String, ApiError> {
    let relative = value.strip_prefix(base_url).and_then(|r| r.strip_prefix('/')).unwrap_or(value);
    let id = relative.strip_prefix("Patient/").unwrap_or(relative);
    if crate::identity::PatientIds::is_well_formed(id) {
        Ok(id.to_owned())
    } else {
        Err(ApiError::invalid(format!(
            "{name} must be this gateway's patient id (p followed by 32 hex digits), as Patient/<id> or {base_url}/Patient/<id>"
        ))
        .at(name.to_owned()))
    }
}

/// The handler.
pub async fn type_search(
    call: FhirCall,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let resource_type = path.into_inner();
    if !tideway_profiles::PATIENT_SEARCH_TYPES.contains(&resource_type.as_str()) {
        let e = ApiError::not_found(format!(
            "resource type '{}' is not served by this gateway",
            super::error::echo(&resource_type)
        ));
        return Err(call.refuse(e, "unsupported").await);
    }
    let call = call.require(Interaction::Search, &resource_type).await?;
    let known = known(&resource_type);
    let (mut call, params) = call.params(&req, &known).await?;
    call.audit.asks(params.audit_query(&resource_type));
    let criteria = match search::Criteria::parse(&resource_type, params.pairs()) {
        Ok(c) => c,
        Err(e) => return Err(call.refuse(bad_param(&e), "bad-request").await),
    };
    let federation = &call.state.settings.federation;
    let base = call.state.base_url.clone();
    let parsed = match (params.one("patient"), params.one("subject")) {
        (Ok(Some(p)), Ok(None)) => patient_reference(p, &base, "patient"),
        (Ok(None), Ok(Some(p))) => patient_reference(p, &base, "subject"),
        (Err(e), _) | (_, Err(e)) => Err(e),
        _ => Err(ApiError::invalid(format!(
            "a {resource_type} search needs exactly one of patient or subject"
        ))
        .at("patient")),
    }
    .and_then(|p| params.count(federation.default_page_size, federation.max_page_size).map(|c| (p, c)));
    let (patient_id, count) = match parsed {
        Ok(p) => p,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let self_link = format!("{}/{}{}", call.state.base_url, resource_type, echo_query(&params, &known));
    match call.state.records.resolve(&patient_id).await {
        Ok(_) => {}
        // A search for an unknown patient matches nothing: an empty searchset, as FHIR expects;
        // but a requester refused for every patient, or who must show a relationship, is
        // refused as for a present patient, so the answer does not tell which ids exist.
        // Break-glass goes through the record service, which binds its token to this id first.
        Err(crate::record::RecordError::UnknownPatient) if call.principal.breaks_glass() => {}
        Err(crate::record::RecordError::UnknownPatient) => {
            let records = &call.state.records;
            let refusal = records.admit(&call.principal).err().or_else(|| {
                records
                    .must_show_relationship(&call.principal)
                    .then_some(crate::record::RecordError::RelationshipRequired)
            });
            if let Some(e) = refusal {
                return Err(call.fail(e).await);
            }
            let outcome = bundle::notices_outcome(&params.ignored);
            let body = entries_body(&call.state.base_url, &self_link, &[], outcome.as_ref());
            let detail = serde_json::json!({"reason": "unknown-patient"}).to_string();
            return call.respond(body, 0, AuditOutcome::Success, detail).await;
        }
        Err(e) => return Err(call.fail(e).await),
    }
    let ask = Ask::everything().of_types(vec![resource_type]).by_search();
    record_page(call, &patient_id, ask, &criteria, &params, count, self_link).await
}
