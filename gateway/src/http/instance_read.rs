//! `GET /{type}/{id}` for the resources a record points at (Organization, Practitioner,
//! PractitionerRole, Location), so every reference a bundle carries can be followed. Reads of
//! clinical types by id are not offered (501): search by patient instead.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use tideway_auth::Interaction;

use super::call::FhirCall;
use super::error::ApiError;
use crate::audit::AuditOutcome;
use crate::record::SHARED_TYPES;

/// The handler.
pub async fn instance_read(
    call: FhirCall,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (resource_type, id) = path.into_inner();
    if !SHARED_TYPES.contains(&resource_type.as_str()) {
        let e = ApiError::not_implemented(
            "only Patient, Organization, Practitioner, PractitionerRole and Location can be read by id; search by patient instead",
        );
        return Err(call.refuse(e, "unsupported").await);
    }
    let call = call.require(Interaction::Read, &resource_type).await?;
    let (mut call, _) = call.params(&req, &[]).await?;
    let state = call.state.clone();
    let resource =
        match state.records.read_shared(&mut call.audit, &call.principal, &resource_type, &id).await {
            Ok(r) => r,
            Err(e) => return Err(call.fail(e).await),
        };
    let detail = json!({"read": resource_type}).to_string();
    call.respond_versioned(resource.json.to_vec(), AuditOutcome::Success, detail).await
}
