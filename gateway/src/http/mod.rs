//! The HTTP edge: routes, request ids and access logging, content negotiation, and the
//! OperationOutcome responder ([`error::ApiError`]).

mod answer;
pub mod call;
pub mod error;
mod everything;
pub mod meta;
pub mod middleware;
mod page;
pub mod params;
mod patient_read;
mod patient_search;
mod render;
pub mod token;
mod type_search;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::state::AppState;
use call::{Action, refuse_unsupported};

pub use error::{ApiError, FHIR_JSON};

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metadata").get(meta::metadata).to(method_not_allowed))
        .service(
            web::resource("/.well-known/smart-configuration")
                .get(meta::smart_configuration)
                .to(method_not_allowed),
        )
        .service(web::resource("/healthz").get(meta::healthz).to(method_not_allowed))
        .service(web::resource("/readyz").get(meta::readyz).to(method_not_allowed))
        .service(web::resource("/token").post(token::token).to(method_not_allowed))
        .service(web::resource("/metrics").get(meta::metrics_with_token).to(method_not_allowed))
        .service(fhir("/_page", "page").get(page::page).to(fhir_method_not_allowed))
        .service(
            fhir("/Patient", "patient-search")
                .get(patient_search::patient_search)
                .to(fhir_method_not_allowed),
        )
        .service(
            fhir("/Patient/{id}", "patient-read").get(patient_read::patient_read).to(fhir_method_not_allowed),
        )
        .service(
            fhir("/Patient/{id}/{operation}", "patient-everything")
                .get(everything::patient_operation)
                .to(fhir_method_not_allowed),
        )
        .service(fhir("/{type}", "search").get(type_search::type_search).to(fhir_method_not_allowed))
        .service(web::resource("/{type}/{id}").to(instance_other))
        .default_service(web::to(not_found));
}

/// The operator listener: metrics and health, no token (bind it to a private address).
pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").get(meta::metrics))
        .service(web::resource("/healthz").get(meta::healthz))
        .service(web::resource("/readyz").get(meta::readyz))
        .default_service(web::to(not_found));
}

/// A FHIR resource route whose requests are audited as `action`.
fn fhir(path: &str, action: &'static str) -> actix_web::Resource {
    web::resource(path).app_data(Action(action))
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed())
}

async fn fhir_method_not_allowed(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    Err(refuse_unsupported(state, &req, ApiError::method_not_allowed()).await)
}

async fn not_found(state: Option<web::Data<AppState>>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let e = ApiError::not_found("no such endpoint on this FHIR server");
    match state {
        Some(state) => Err(refuse_unsupported(state, &req, e).await),
        None => Err(e),
    }
}

/// Any other interaction on `/{type}/{id}`: reads of non-Patient types are not offered (501);
/// writes are refused (405).
async fn instance_other(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let e = if req.method() == actix_web::http::Method::GET {
        ApiError::not_implemented("only Patient can be read by id; search by patient instead")
    } else {
        ApiError::method_not_allowed()
    };
    Err(refuse_unsupported(state, &req, e).await)
}
