//! The HTTP edge: routes, request ids and access logging, content negotiation, and the
//! OperationOutcome responder ([`error::ApiError`]).

pub mod error;
pub mod fhir;
pub mod meta;
pub mod middleware;
pub mod params;
pub mod token;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;

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
        .service(web::resource("/_page").get(fhir::page).to(fhir_method_not_allowed))
        .service(web::resource("/Patient").get(fhir::patient_search).to(fhir_method_not_allowed))
        .service(web::resource("/Patient/{id}").get(fhir::patient_read).to(fhir_method_not_allowed))
        .service(
            web::resource("/Patient/{id}/{operation}")
                .get(fhir::patient_operation)
                .to(fhir_method_not_allowed),
        )
        .service(web::resource("/{type}").get(fhir::type_search).to(fhir_method_not_allowed))
        .service(web::resource("/{type}/{id}").to(fhir::instance_other))
        .default_service(web::to(not_found));
}

/// The operator listener: metrics and health, no token (bind it to a private address).
pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").get(meta::metrics))
        .service(web::resource("/healthz").get(meta::healthz))
        .service(web::resource("/readyz").get(meta::readyz))
        .default_service(web::to(not_found));
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed())
}

async fn fhir_method_not_allowed(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    Err(fhir::refuse_unsupported(state, &req, ApiError::method_not_allowed()).await)
}

async fn not_found(state: Option<web::Data<AppState>>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let e = ApiError::not_found("no such endpoint on this FHIR server");
    match state {
        Some(state) => Err(fhir::refuse_unsupported(state, &req, e).await),
        None => Err(e),
    }
}
