//! `GET /Patient/{id}`: the patient as the first source in registry order holds them.

use actix_web::{HttpRequest, HttpResponse, web};
use tideway_auth::Interaction;

use super::call::FhirCall;
use super::error::ApiError;
use super::render::outcome_of;

/// The handler.
pub async fn patient_read(
    call: FhirCall,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if id.starts_with('$') {
        // `GET /Patient/$everything` and friends: type-level operations, not a patient id.
        let e = ApiError::not_implemented(
            "type-level operations on Patient are not supported; use Patient/{id}/$everything",
        );
        return Err(call.refuse(e, "unsupported").await);
    }
    let call = call.require(Interaction::Read, "Patient").await?;
    let (mut call, _) = call.params(&req, &[]).await?;
    let state = call.state.clone();
    let found = match state.records.read_patient(&mut call.audit, &call.principal, &id).await {
        Ok(f) => f,
        Err(e) => return Err(call.fail(e).await),
    };
    let Some(patient) = found.patient else {
        return Err(call.fail(crate::record::RecordError::NotHeld).await);
    };
    let partial = found.report.is_partial();
    call.respond(patient.json.to_vec(), 1, outcome_of(partial), found.report.to_detail()).await
}
