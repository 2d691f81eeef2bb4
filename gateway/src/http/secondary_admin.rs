//! Secondary use's admin resources (plain JSON; administrators only, as the source registry's):
//!
//! - `POST /admin/population-figures`: computes the dashboards' population figures now (they
//!   are otherwise computed every `secondary.aggregates.interval_secs`) and answers when they
//!   are stored: `{"generated", "boroughs"}`.
//!
//! The National Data Opt-out:
//!
//! - `POST /admin/opt-outs` with `{"add": ["9434765919", ...], "remove": [...]}`: records or
//!   withdraws opt-outs (every number Mod 11 checked; a bad one refuses the whole request,
//!   naming its position, never the number). Effective from the next page any export or
//!   aggregate reads.
//! - `GET /admin/opt-outs`: how many numbers each origin holds (`api`, `file`), for the operator;
//!   never published with population data.
//!
//! Every call is audited; the audit record carries counts, never the numbers.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use tideway_profiles::NhsNumber;

use super::call::FhirCall;
use super::error::ApiError;
use super::{fhir, readable};
use crate::audit::AuditOutcome;
use crate::secondary::opt_out::{API_ORIGIN, FILE_ORIGIN};
use crate::state::AppState;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        readable(fhir("/admin/opt-outs", "opt-out", "GET, HEAD, POST"), counts).route(web::post().to(change)),
    )
    .service(
        fhir("/admin/population-figures", "population-figures-refresh", "POST")
            .route(web::post().to(refresh)),
    );
}

async fn admin(
    state: web::Data<AppState>,
    req: &HttpRequest,
    action: &'static str,
) -> Result<FhirCall, ApiError> {
    super::sources::administrator(state, req, action, "secondary use").await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

fn numbers(list: &[String], field: &str) -> Result<Vec<String>, ApiError> {
    list.iter()
        .enumerate()
        .map(|(i, n)| {
            NhsNumber::parse(n).map(|n| n.as_str().to_owned()).map_err(|_| {
                ApiError::invalid(format!("{field}[{i}] is not a valid NHS number"))
                    .at(format!("{field}[{i}]"))
            })
        })
        .collect()
}

async fn change(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "opt-out").await?;
    let (call, body) = call.body(&req, payload).await?;
    let parsed = serde_json::from_slice::<Change>(&body)
        .map_err(|_| ApiError::invalid("expected {\"add\": [NHS numbers], \"remove\": [NHS numbers]}"))
        .and_then(|c| Ok((numbers(&c.add, "add")?, numbers(&c.remove, "remove")?)));
    let (add, remove) = match parsed {
        Ok(p) => p,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let store = call.state.secondary.store.clone();
    let written = async {
        store.add_opt_outs(API_ORIGIN, &add).await?;
        store.remove_opt_outs(API_ORIGIN, &remove).await
    }
    .await;
    if let Err(e) = written {
        return Err(call.refuse(e.into(), "store").await);
    }
    let detail = json!({"added": add.len(), "removed": remove.len()});
    call.audit.outcome(200, 0, AuditOutcome::Success, detail.to_string()).await?;
    Ok(HttpResponse::Ok().content_type("application/json").body(detail.to_string()))
}

async fn counts(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "opt-out").await?;
    let store = call.state.secondary.store.clone();
    let read = async {
        Ok::<_, crate::store::StoreError>((
            store.opt_out_count(API_ORIGIN).await?,
            store.opt_out_count(FILE_ORIGIN).await?,
        ))
    }
    .await;
    let (api, file) = match read {
        Ok(c) => c,
        Err(e) => return Err(call.refuse(e.into(), "store").await),
    };
    let body = json!({"origins": {API_ORIGIN: api, FILE_ORIGIN: file}});
    call.audit.outcome(200, 0, AuditOutcome::Success, "null".into()).await?;
    Ok(HttpResponse::Ok().content_type("application/json").body(body.to_string()))
}

async fn refresh(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let call = admin(state, &req, "population-figures-refresh").await?;
    match crate::secondary::aggregate::refresh(&call.state).await {
        Ok(f) => {
            let body = json!({"generated": f.generated, "boroughs": f.boroughs.len()});
            call.audit.outcome(200, 0, AuditOutcome::Success, "null".into()).await?;
            Ok(HttpResponse::Ok().content_type("application/json").body(body.to_string()))
        }
        Err(e) => {
            tracing::error!(error = %e, "the population figures could not be computed");
            let err = ApiError::unavailable(format!("the population figures could not be computed: {e}"));
            Err(call.refuse(err, "figures").await)
        }
    }
}
