//! The POST forms of the searches (`[type]/_search` with a form body) and of `$everything`
//! (a form or a `Parameters` resource), so a caller never has to put an NHS number or a
//! patient id in a URL that proxies log. The body's parameters join the query's and the GET
//! handlers answer.

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use super::call::FhirCall;
use super::error::ApiError;
use super::params::body_params;

/// `POST /Patient/_search`
pub async fn patient_search(
    call: FhirCall,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let call = with_body(call, &req, payload).await?;
    super::patient_search::patient_search(call, req).await
}

/// `POST /{type}/_search`
pub async fn type_search(
    call: FhirCall,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let call = with_body(call, &req, payload).await?;
    super::type_search::type_search(call, req, path).await
}

/// `POST /Patient/{id}/$everything`
pub async fn everything(
    call: FhirCall,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let call = with_body(call, &req, payload).await?;
    super::everything::patient_operation(call, req, path).await
}

/// Reads the body (capped) as parameters and attaches them to the request; a refusal is audited.
pub(super) async fn with_body(
    call: FhirCall,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<FhirCall, ApiError> {
    let (call, body) = call.body(req, payload).await?;
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    match body_params(content_type, &body) {
        Ok(params) => {
            req.extensions_mut().insert(params);
            Ok(call)
        }
        Err(e) => Err(call.refuse(e, "bad-request").await),
    }
}
