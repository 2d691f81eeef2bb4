//! The shared tail of `$everything` and the type searches: ask the record service for the
//! record under the question asked, cut the first page, render it, audit, respond.

use actix_web::HttpResponse;
use tideway_policy::Ask;

use super::call::FhirCall;
use super::error::ApiError;
use super::params::Params;
use super::render::{outcome_of, page_body};
use crate::search::Criteria;

/// Answers the first page of the patient `id`'s record under `ask`.
pub async fn record_page(
    mut call: FhirCall,
    id: &str,
    ask: Ask,
    criteria: &Criteria,
    params: &Params,
    count: usize,
    self_link: String,
) -> Result<HttpResponse, ApiError> {
    let state = call.state.clone();
    let records = &state.records;
    let answer = match records.record(&mut call.audit, &call.principal, id, &ask, criteria).await {
        Ok(a) => a,
        Err(e) => return Err(call.fail(e).await),
    };
    let report = answer.report.clone();
    if criteria.count_only {
        // `_summary=count`: how many this requester may see, and nothing else.
        let total = answer.resources.len();
        let mut notices = answer.notices;
        notices.extend(params.ignored.iter().cloned());
        let outcome = crate::bundle::notices_outcome(&notices);
        let body = crate::bundle::searchset(&crate::bundle::Searchset {
            base_url: &state.base_url,
            self_link: &self_link,
            next_link: None,
            total,
            entries: &[],
            includes: &[],
            outcome: outcome.as_ref(),
        });
        return call.respond(body, 0, outcome_of(report.is_partial()), report.to_detail()).await;
    }
    let page = match records.first_page(&call.audit, &call.principal, answer, &params.ignored, count).await {
        Ok(p) => p,
        Err(e) => return Err(call.fail(e).await),
    };
    let body = page_body(&state.base_url, &self_link, &page);
    call.respond(
        body,
        page.entries.len() + page.includes.len(),
        outcome_of(report.is_partial()),
        report.to_detail(),
    )
    .await
}
