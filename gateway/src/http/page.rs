//! `GET /_page?id=…&offset=…`: a later page of a search, only for the principal that made it.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::call::FhirCall;
use super::error::ApiError;
use super::render::page_body;
use crate::audit::AuditOutcome;

/// The handler.
pub async fn page(call: FhirCall, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (mut call, params) = call.params(&req, &["id", "offset"]).await?;
    let parsed = match (params.one("id"), params.one("offset")) {
        (Ok(Some(t)), Ok(Some(o))) => o
            .parse::<usize>()
            .map(|o| (t.to_owned(), o))
            .map_err(|_| ApiError::invalid("offset must be a whole number")),
        _ => Err(ApiError::invalid("a page link needs id and offset")),
    };
    let (token, offset) = match parsed {
        Ok(p) => p,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let state = call.state.clone();
    let page = match state.records.later_page(&mut call.audit, &call.principal, &token, offset).await {
        Ok(p) => p,
        Err(e) => return Err(call.fail(e).await),
    };
    let body = page_body(&state.base_url, "", &page);
    let withheld: serde_json::Map<String, serde_json::Value> =
        page.withheld.iter().map(|(code, n)| ((*code).to_owned(), json!(n))).collect();
    let detail = json!({"page_offset": page.start, "withheld": withheld}).to_string();
    call.respond(body, page.entries.len() + page.includes.len(), AuditOutcome::Success, detail).await
}
