//! `POST /Patient/$match` (IHE PDQm ITI-119): a `Parameters` body holding `resource` (a
//! Patient: NHS number, name, birth date, gender, postcode), `onlyCertainMatches` (default
//! true) and `count` (1 to [`MAX_COUNT`], default [`DEFAULT_COUNT`]). The answer is a
//! searchset Bundle of the candidates this requester may see, best first, each with
//! `search.score` and the `match-grade` extension.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use tideway_auth::Interaction;
use tideway_profiles::IssueType;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::call::FhirCall;
use super::error::ApiError;
use super::render::outcome_of;
use crate::bundle;
use crate::record::{MATCH_GRADE_URL, MatchAnswer, MatchQuery};

/// The most candidates one `$match` returns.
pub const MAX_COUNT: usize = 20;
/// How many candidates a `$match` returns when `count` is not given.
pub const DEFAULT_COUNT: usize = 10;

/// The handler.
pub async fn patient_match(
    call: FhirCall,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let call = call.require(Interaction::Search, "Patient").await?;
    let (call, _) = call.params(&req, &[]).await?;
    let (mut call, body) = call.body(&req, payload).await?;
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let query = match parse(content_type, &body) {
        Ok(q) => q,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let state = call.state.clone();
    let answer = match state.records.match_patients(&mut call.audit, &call.principal, &query).await {
        Ok(a) => a,
        Err(e) => return Err(call.fail(e).await),
    };
    let body = render(&state.base_url, &answer);
    let released = answer.candidates.len();
    call.respond(body, released, outcome_of(answer.partial), answer.detail.to_string()).await
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid(message)
}

/// Reads the `Parameters` body.
fn parse(content_type: Option<&str>, body: &[u8]) -> Result<MatchQuery, ApiError> {
    let mime =
        content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if mime != "application/fhir+json" && mime != "application/json" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            "send Patient/$match a Parameters resource as application/fhir+json",
        ));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| invalid("the body is not JSON"))?;
    if v.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(invalid("the body must be a Parameters resource"));
    }
    let (mut resource, mut only_certain, mut count) = (None, None, None);
    for p in v.get("parameter").and_then(Value::as_array).into_iter().flatten() {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        let twice = || invalid(format!("parameter '{name}' is given twice")).at(name.to_owned());
        match name {
            "resource" => {
                let r = p
                    .get("resource")
                    .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Patient"));
                let r =
                    r.ok_or_else(|| invalid("parameter 'resource' must hold a Patient").at("resource"))?;
                if resource.replace(r).is_some() {
                    return Err(twice());
                }
            }
            "onlyCertainMatches" => {
                let b = p.get("valueBoolean").and_then(Value::as_bool).ok_or_else(|| {
                    invalid("parameter 'onlyCertainMatches' must be a valueBoolean").at("onlyCertainMatches")
                })?;
                if only_certain.replace(b).is_some() {
                    return Err(twice());
                }
            }
            "count" => {
                let n = p
                    .get("valueInteger")
                    .and_then(Value::as_u64)
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| (1..=MAX_COUNT).contains(n))
                    .ok_or_else(|| {
                        invalid(format!("parameter 'count' must be a valueInteger from 1 to {MAX_COUNT}"))
                            .at("count")
                    })?;
                if count.replace(n).is_some() {
                    return Err(twice());
                }
            }
            other => {
                let named = if is_plain(other) { format!(" '{other}'") } else { String::new() };
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    IssueType::NotSupported,
                    format!(
                        "parameter{named} is not supported by Patient/$match (resource, onlyCertainMatches, count)"
                    ),
                ));
            }
        }
    }
    let resource =
        resource.ok_or_else(|| invalid("Patient/$match needs a 'resource' parameter holding a Patient"))?;
    MatchQuery::of_patient(resource, only_certain.unwrap_or(true), count.unwrap_or(DEFAULT_COUNT))
        .map_err(|why| invalid(why).at("resource"))
}

/// A short plain name is safe to repeat in a message; anything else is not repeated.
fn is_plain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The searchset Bundle: each candidate with its score and grade, then the outcome entry.
fn render(base_url: &str, answer: &MatchAnswer) -> Vec<u8> {
    let mut entries: Vec<Value> = answer
        .candidates
        .iter()
        .map(|c| {
            let resource: Value = serde_json::from_slice(&c.patient.json).unwrap_or(Value::Null);
            json!({
                "fullUrl": format!("{base_url}/Patient/{}", c.patient.id),
                "resource": resource,
                "search": {
                    "extension": [{"url": MATCH_GRADE_URL, "valueCode": c.grade.code()}],
                    "mode": "match",
                    "score": c.score
                }
            })
        })
        .collect();
    if let Some(oo) = bundle::notices_outcome(&answer.notices) {
        entries.push(json!({
            "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            "resource": oo,
            "search": {"mode": "outcome"}
        }));
    }
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"lastUpdated": now},
        "type": "searchset",
        "total": answer.candidates.len(),
        "link": [{"relation": "self", "url": format!("{base_url}/Patient/$match")}],
        "entry": entries
    })
    .to_string()
    .into_bytes()
}
