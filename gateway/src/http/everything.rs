//! `GET /Patient/{id}/$everything` (and 501 for any other instance operation).

use actix_web::{HttpRequest, HttpResponse, web};
use tideway_auth::Interaction;
use tideway_policy::Ask;

use super::answer::record_page;
use super::call::FhirCall;
use super::error::ApiError;
use super::params::Params;
use super::render::echo_query;
use super::type_search::bad_param;
use crate::bundle;

const KNOWN: &[&str] = &["_type", "_since", "_count", "_summary", "_elements"];

/// The handler.
pub async fn patient_operation(
    call: FhirCall,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, operation) = path.into_inner();
    if operation != "$everything" {
        let e = ApiError::not_implemented(format!(
            "only $everything is supported on Patient instances{}",
            if operation.starts_with('$') { "" } else { " (this is not an operation)" }
        ));
        return Err(call.refuse(e, "unsupported").await);
    }
    let call = call.require(Interaction::Read, "Patient").await?;
    let (mut call, params) = call.params(&req, KNOWN).await?;
    call.audit.asks(params.audit_query("Patient/$everything"));
    let federation = &call.state.settings.federation;
    let shaping = crate::search::Criteria::parse_shaping(params.pairs()).map_err(|e| bad_param(&e));
    let parsed = ask_of(&params).and_then(|ask| {
        let count = params.count(federation.default_page_size, federation.max_page_size)?;
        Ok((ask, count, shaping?))
    });
    let (ask, count, criteria) = match parsed {
        Ok(p) => p,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    if let Some(t) = ask.types().and_then(|ts| ts.iter().find(|t| !call.principal.may_read(t))) {
        let e = ApiError::insufficient_scope(format!("the granted scopes do not allow reading {t}"));
        return Err(call.refuse(e, "scope").await);
    }
    let self_link =
        format!("{}/Patient/{}/$everything{}", call.state.base_url, id, echo_query(&params, KNOWN));
    record_page(call, &id, ask, &criteria, &params, count, self_link).await
}

/// The question `_type` and `_since` ask.
fn ask_of(params: &Params) -> Result<Ask, ApiError> {
    let mut ask = Ask::everything();
    // `_type` may be repeated (a Parameters body naturally repeats it): the union of them all.
    let given = params.all("_type");
    if !given.is_empty() {
        let types: Vec<String> = given
            .iter()
            .flat_map(|t| t.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        // An unknown type would filter everything out: a clinician would see an empty record.
        if types.is_empty() || !types.iter().all(|t| tideway_profiles::schema::is_resource_type(t)) {
            return Err(
                ApiError::invalid("_type must be a comma-separated list of R4 resource types").at("_type")
            );
        }
        ask = ask.of_types(types);
    }
    if let Some(s) = params.one("_since")? {
        let since = bundle::parse_instant(s).ok_or_else(|| {
            ApiError::invalid("_since must be a FHIR instant, e.g. 2024-01-31T09:00:00Z").at("_since")
        })?;
        ask = ask.changed_since(since);
    }
    Ok(ask)
}
