//! The HTTP edge: routes, request ids and access logging, content negotiation, and the
//! OperationOutcome responder ([`error::ApiError`]).

mod agreements;
mod alerts;
mod answer;
mod audit_events;
pub mod call;
mod clients;
mod consent;
pub mod error;
mod everything;
mod export;
mod instance_read;
pub mod meta;
pub mod middleware;
mod page;
pub mod params;
mod patient_match;
mod patient_read;
mod patient_search;
pub mod peers;
mod population;
mod post;
mod render;
mod secondary_admin;
mod simulate;
mod sources;
mod throttle;
pub mod tls;
pub mod token;
mod transparency;
mod type_search;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::state::AppState;
use call::{Action, refuse_unsupported};

pub use error::{ApiError, FHIR_JSON};

/// Methods of the read-only endpoints.
const GET_HEAD: &str = "GET, HEAD";

/// Methods of the searches and operations that also take their parameters in a POST body.
const GET_HEAD_POST: &str = "GET, HEAD, POST";

/// Registers every route. Every GET answers HEAD too (actix sends no body for HEAD).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(readable(public("/metadata"), meta::metadata))
        .service(readable(public("/.well-known/smart-configuration"), meta::smart_configuration))
        .service(readable(public("/healthz"), meta::healthz))
        .service(readable(public("/readyz"), meta::readyz))
        .service(
            web::resource("/token")
                .post(token::token)
                .to(|| async { Err::<HttpResponse, _>(ApiError::method_not_allowed("POST")) }),
        )
        .service(readable(public("/metrics"), meta::metrics_with_token))
        .service(readable(fhir("/_page", "page", GET_HEAD), page::page))
        // Before the Patient routes, which would read `/Patient/$export` as a patient's id.
        .configure(export::routes)
        .configure(population::routes)
        .service(readable(fhir("/Patient", "patient-search", GET_HEAD), patient_search::patient_search))
        .service(
            readable(
                fhir("/Patient/_search", "patient-search", GET_HEAD_POST),
                patient_search::patient_search,
            )
            .route(web::post().to(post::patient_search)),
        )
        .service(
            fhir("/Patient/$match", "patient-match", "POST")
                .route(web::post().to(patient_match::patient_match)),
        )
        .service(readable(fhir("/Patient/{id}", "patient-read", GET_HEAD), patient_read::patient_read))
        .service(
            readable(
                fhir("/Patient/{id}/{operation}", "patient-everything", GET_HEAD_POST),
                everything::patient_operation,
            )
            .route(web::post().to(post::everything)),
        )
        .service(
            readable(fhir("/Consent", "consent", "GET, HEAD, POST"), consent::search)
                .route(web::post().to(consent::create)),
        )
        .service(readable(fhir("/Consent/{id}/_history", "consent", GET_HEAD), consent::history))
        .service(
            readable(fhir("/Consent/{id}", "consent", "GET, HEAD, PUT"), consent::read)
                .route(web::put().to(consent::update)),
        )
        .service(readable(public("/transparency"), transparency::json))
        .service(readable(public("/transparency.html"), transparency::html))
        .service(
            readable(fhir("/agreements", "agreement-read", "GET, HEAD, POST"), agreements::list)
                .route(web::post().to(agreements::publish)),
        )
        .service(
            fhir("/agreements/{id}/{version}/approve", "agreement-approve", "POST")
                .route(web::post().to(agreements::approve)),
        )
        .service(readable(fhir("/agreements/{id}", "agreement-read", GET_HEAD), agreements::read))
        .service(readable(fhir("/alerts", "alerts", GET_HEAD), alerts::alerts))
        .service(readable(fhir("/notifications", "notifications", GET_HEAD), alerts::notifications))
        .service(readable(fhir("/AuditEvent", "audit-read", GET_HEAD), audit_events::search))
        .service(readable(fhir("/AuditEvent/{id}", "audit-read", GET_HEAD), audit_events::read))
        .service(readable(fhir("/policy/simulate", "policy-simulate", GET_HEAD), simulate::simulate))
        .configure(sources::routes)
        .configure(clients::routes)
        .configure(secondary_admin::routes)
        .configure(crate::dashboard::routes)
        .service(readable(fhir("/{type}", "search", GET_HEAD), type_search::type_search))
        .service(
            readable(fhir("/{type}/_search", "search", GET_HEAD_POST), type_search::type_search)
                .route(web::post().to(post::type_search)),
        )
        .service(readable(fhir("/{type}/{id}", "read", GET_HEAD), instance_read::instance_read))
        .service(web::resource("/").route(web::post().to(batch)))
        .default_service(web::to(not_found));
}

/// `resource` answering GET and HEAD with `handler`.
pub(crate) fn readable<F, Args>(resource: actix_web::Resource, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    resource.route(web::get().to(handler.clone())).route(web::head().to(handler))
}

/// A public endpoint: GET and HEAD, 405 (with `Allow`) for anything else.
pub(crate) fn public(path: &str) -> actix_web::Resource {
    web::resource(path)
        .default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::method_not_allowed(GET_HEAD)) }))
}

/// The operator listener: metrics and health, no token (bind it to a private address).
pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").get(meta::metrics))
        .service(web::resource("/healthz").get(meta::healthz))
        .service(web::resource("/readyz").get(meta::readyz))
        .configure(crate::dashboard::admin_routes)
        .default_service(web::to(not_found));
}

/// A FHIR resource route whose requests are audited as `action`; other methods get an audited
/// 405 naming `allow`.
fn fhir(path: &str, action: &'static str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).app_data(Action(action)).default_service(web::to(move |state, req| async move {
        fhir_method_not_allowed(state, req, allow).await
    }))
}

async fn fhir_method_not_allowed(
    state: web::Data<AppState>,
    req: HttpRequest,
    allow: &'static str,
) -> Result<HttpResponse, ApiError> {
    Err(refuse_unsupported(state, &req, ApiError::method_not_allowed(allow)).await)
}

/// `POST [base]`: batch and transaction Bundles are not offered (501), after authentication.
async fn batch(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let e = ApiError::not_implemented(
        "batch and transaction Bundles are not supported: the gateway is read-only",
    );
    Err(refuse_unsupported(state, &req, e).await)
}

async fn not_found(state: Option<web::Data<AppState>>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let e = ApiError::not_found("no such endpoint on this FHIR server");
    match state {
        Some(state) => Err(refuse_unsupported(state, &req, e).await),
        None => Err(e),
    }
}

#[cfg(test)]
mod tests {
    /// Every action a route or handler audits under must be one the trail can read back: a
    /// name missing from `audit::ACTIONS` is written but cannot be decoded, and would break
    /// `audit verify`, `audit export` and the access history.
    #[test]
    fn every_audited_action_is_one_the_trail_knows() {
        let sources = [include_str!("mod.rs"), include_str!("sources.rs"), include_str!("token.rs")];
        let mut named = Vec::new();
        for text in sources {
            for (opening, skip_first) in
                [("fhir(\"", true), ("admin(state, &req, \"", false), ("begin(&rid, \"", false)]
            {
                for (i, _) in text.match_indices(opening) {
                    let mut rest = &text[i + opening.len()..];
                    if skip_first {
                        // The first literal is the path; the action is the second.
                        let Some(after) = rest.find("\", \"") else { continue };
                        rest = &rest[after + 4..];
                    }
                    if let Some(end) = rest.find('"') {
                        named.push(rest[..end].to_owned());
                    }
                }
            }
        }
        assert!(named.len() > 20, "the scan found the routes: {named:?}");
        for action in &named {
            assert!(
                crate::audit::action_named(action).is_some(),
                "action '{action}' is not in audit::ACTIONS"
            );
        }
    }
}
