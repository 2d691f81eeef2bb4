//! What secondary use may read besides an export: `GET /Group` and `GET /Group/{id}` (the
//! groups an export can be asked for, as definitions, never member lists) and
//! `GET /MeasureReport` (the dashboards' population figures, small cells suppressed). Only a
//! secondary purpose of use admitted by an agreement is served; every call is audited.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::call::FhirCall;
use super::error::ApiError;
use super::export::secondary;
use super::{GET_HEAD, fhir, readable};
use crate::audit::AuditOutcome;
use crate::secondary::aggregate;
use crate::state::AppState;

/// Registers the routes (before the FHIR type routes, which would match them).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(readable(fhir("/Group", "group-read", GET_HEAD), groups))
        .service(readable(fhir("/Group/{id}", "group-read", GET_HEAD), group))
        .service(readable(fhir("/MeasureReport", "measure-report", GET_HEAD), measure_reports))
        .service(readable(fhir("/MeasureReport/{id}", "measure-report", GET_HEAD), measure_report));
}

/// The Group ids offered now: one per registered source, one per code set.
fn offered_groups(state: &AppState) -> Vec<String> {
    let mut out: Vec<String> =
        crate::secondary::source_ids(state).into_iter().map(|s| format!("source.{s}")).collect();
    out.extend(
        state.records.policy.current().terminology().sets().iter().map(|s| format!("cohort.{}", s.name)),
    );
    out
}

/// A Group this gateway offers, as a definition (never a member list).
fn group_resource(id: &str) -> serde_json::Value {
    let (kind, name) = id.split_once('.').unwrap_or((id, ""));
    let text = match kind {
        "source" => format!("patients held by {name}"),
        "practice" => format!("patients registered with practice {name}"),
        _ => format!("patients with an entry in the {name} code set"),
    };
    json!({"resourceType": "Group", "id": id, "type": "person", "actual": false, "name": text})
}

/// `GET /Group`: a searchset of the groups an export can be asked for (no patient data: a
/// Group here is a definition, not a member list; `practice.{ODS code}` works for any practice
/// and is not listed).
async fn groups(call: FhirCall, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let call = secondary(call).await?;
    let (call, _) = call.params(&req, &[]).await?;
    let base = call.state.base_url.clone();
    let entries: Vec<serde_json::Value> = offered_groups(&call.state)
        .into_iter()
        .map(|id| {
            json!({"fullUrl": format!("{base}/Group/{id}"), "resource": group_resource(&id), "search": {"mode": "match"}})
        })
        .collect();
    let body =
        json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries});
    call.respond(body.to_string().into_bytes(), 0, AuditOutcome::Success, "null".into()).await
}

/// `GET /MeasureReport[?measure=diabetes]`: the latest population figures.
async fn measure_reports(call: FhirCall, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let call = secondary(call).await?;
    let (call, params) = call.params(&req, &["measure"]).await?;
    let only = match params.one("measure") {
        Ok(m) => m.map(|m| m.rsplit('/').next().unwrap_or(m).to_owned()),
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    if let Some(m) = &only
        && !aggregate::MEASURES.iter().any(|(set, _)| set == m)
    {
        let known: Vec<&str> = aggregate::MEASURES.iter().map(|(s, _)| *s).collect();
        let e = ApiError::invalid(format!("measure must be one of {}", known.join(", "))).at("measure");
        return Err(call.refuse(e, "bad-request").await);
    }
    let figures = match aggregate::latest(&call.state).await {
        Ok(f) => f,
        Err(e) => return Err(call.refuse(e.into(), "store").await),
    };
    let base = call.state.base_url.clone();
    let reports = figures.map(|f| f.measure_reports(only.as_deref())).unwrap_or_default();
    let entries: Vec<serde_json::Value> = reports
        .into_iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap_or_default().to_owned();
            json!({"fullUrl": format!("{base}/MeasureReport/{id}"), "resource": r, "search": {"mode": "match"}})
        })
        .collect();
    let body =
        json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries});
    call.respond(body.to_string().into_bytes(), 0, AuditOutcome::Success, "null".into()).await
}

/// `GET /Group/{id}`: one group's definition.
async fn group(call: FhirCall, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let call = secondary(call).await?;
    let state = call.state.clone();
    let offered = crate::secondary::group_named(&state, &id).is_some();
    if !offered {
        return Err(call.refuse(ApiError::not_found("no such Group"), "not-found").await);
    }
    call.respond(group_resource(&id).to_string().into_bytes(), 0, AuditOutcome::Success, "null".into()).await
}

/// `GET /MeasureReport/{id}`: one report of the latest figures (`{measure}.{borough or all}`).
async fn measure_report(call: FhirCall, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let call = secondary(call).await?;
    let figures = match aggregate::latest(&call.state).await {
        Ok(f) => f,
        Err(e) => return Err(call.refuse(e.into(), "store").await),
    };
    let measure = id.split_once('.').map(|(m, _)| m);
    let found = figures.and_then(|f| f.measure_reports(measure).into_iter().find(|r| r["id"] == id.as_str()));
    match found {
        Some(r) => call.respond(r.to_string().into_bytes(), 0, AuditOutcome::Success, "null".into()).await,
        None => Err(call
            .refuse(ApiError::not_found("no such MeasureReport in the latest figures"), "not-found")
            .await),
    }
}
