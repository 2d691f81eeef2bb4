//! `GET /policy/simulate?patient={NHS number}&role={RBAC role}&organisation={ODS}&purpose={code}`:
//! the policy simulator for privacy officers and information-governance leads. It answers what
//! that role at that organisation would receive of the patient's record, for that purpose, and
//! why the rest would be withheld, as a FHIR `Parameters` of counts only; nothing of the record
//! leaves. Audited as the officer's own access to the patient.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;
use tideway_auth::{PurposeOfUse, RoleCode};
use tideway_profiles::{NhsNumber, OdsCode};

use super::call::FhirCall;
use super::error::ApiError;
use crate::audit::AuditOutcome;
use crate::record::Hypothesis;

/// `GET /policy/simulate`
pub async fn simulate(call: FhirCall, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (mut call, params) = call.params(&req, &["patient", "role", "organisation", "purpose"]).await?;
    let read = || -> Result<(NhsNumber, Hypothesis), ApiError> {
        let required = |name: &str, what: &str| -> Result<String, ApiError> {
            params
                .one(name)?
                .map(str::to_owned)
                .ok_or_else(|| ApiError::invalid(format!("{name} is required: {what}")).at(name))
        };
        let nhs = NhsNumber::parse(&required("patient", "the patient's NHS number")?)
            .map_err(|_| ApiError::invalid("patient must be a valid NHS number").at("patient"))?;
        let role = RoleCode::parse(&required("role", "a national RBAC role code")?).ok_or_else(|| {
            ApiError::invalid("role must be a national RBAC role code (e.g. R8000)").at("role")
        })?;
        let organisation = OdsCode::parse(&required("organisation", "an ODS code")?)
            .map_err(|_| ApiError::invalid("organisation must be an ODS code").at("organisation"))?;
        let purpose = PurposeOfUse::parse(&required("purpose", "a purpose of use")?).ok_or_else(|| {
            ApiError::invalid(format!("purpose must be one of {}", PurposeOfUse::CODES)).at("purpose")
        })?;
        Ok((nhs, Hypothesis { role, organisation, purpose }))
    };
    let (nhs, who) = match read() {
        Ok(v) => v,
        Err(e) => return Err(call.refuse(e, "bad-request").await),
    };
    let state = call.state.clone();
    let answer = match state.records.simulate(&mut call.audit, &call.principal, &nhs, &who).await {
        Ok(v) => v,
        Err(e) => return Err(call.fail(e).await),
    };
    let detail = json!({
        "simulated": {"role": who.role.as_str(), "organisation": who.organisation.as_str(), "purpose": who.purpose.code()}
    })
    .to_string();
    call.respond(answer.to_string().into_bytes(), 0, AuditOutcome::Success, detail).await
}
