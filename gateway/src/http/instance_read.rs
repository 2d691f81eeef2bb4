//! `GET /{type}/{id}` for every resource a bundle hands out, so each `fullUrl` and reference can
//! be followed: the shared ones a record points at (Organization, Practitioner,
//! PractitionerRole, Location) from the source named in the id, and whatever a patient's record
//! holds (the clinical types, referrals, the gateway's Provenance...) through that patient's
//! record. An id this gateway has not handed out is not found.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use tideway_auth::Interaction;

use super::call::FhirCall;
use super::error::ApiError;
use crate::audit::AuditOutcome;
use crate::record::SHARED_TYPES;

/// An id as the audit shows it: a FHIR id as given, anything else (or ten digits, which may
/// be an NHS number put in the URL) not shown.
fn audit_shown(id: &str) -> &str {
    let fhir_id = (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let maybe_nhs_number = id.len() == 10 && id.bytes().all(|b| b.is_ascii_digit());
    if fhir_id && !maybe_nhs_number { id } else { "(not shown)" }
}

/// The handler.
pub async fn instance_read(
    call: FhirCall,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (resource_type, id) = path.into_inner();
    let shared = SHARED_TYPES.contains(&resource_type.as_str());
    if !tideway_profiles::schema::is_resource_type(&resource_type) {
        let e = ApiError::not_found(format!(
            "'{}' is not an R4 resource type",
            super::error::echo(&resource_type)
        ));
        return Err(call.refuse(e, "unsupported").await);
    }
    let call = call.require(Interaction::Read, &resource_type).await?;
    let (mut call, _) = call.params(&req, &[]).await?;
    call.audit.asks(format!("{resource_type}/{}", audit_shown(&id)));
    let state = call.state.clone();
    let records = &state.records;
    let (audit, principal) = (&mut call.audit, &call.principal);
    let read = if shared {
        records.read_shared(audit, principal, &resource_type, &id).await
    } else {
        records.read_in_record(audit, principal, &resource_type, &id).await
    };
    let resource = match read {
        Ok(r) => r,
        Err(e) => return Err(call.fail(e).await),
    };
    let detail = json!({"read": resource_type}).to_string();
    if shared {
        call.respond_versioned(resource.json.to_vec(), AuditOutcome::Success, detail).await
    } else {
        // A record's resource may have been merged and marked by the gateway: no validators.
        call.respond(resource.json.to_vec(), 1, AuditOutcome::Success, detail).await
    }
}
