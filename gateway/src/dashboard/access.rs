//! Who may read the dashboard's figures on the main listener: an operator, that is a user
//! acting for operations (purpose of use `HOPERAT`) at an organisation that administers the
//! source registry (`registry.admin_organisations`) or is a privacy office
//! (`policy.privacy_officers`). The checks are the registry's and the record service's own.

use actix_web::HttpRequest;

use crate::http::ApiError;
use crate::http::meta::bearer_principal;
use crate::state::AppState;

/// 401 without a valid token, 403 for anyone but an operator.
pub(super) fn operator(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let principal = bearer_principal(state, req)?;
    if state.registry.is_admin(&principal) || state.records.is_privacy_officer(&principal) {
        return Ok(());
    }
    Err(ApiError::forbidden(
        "the dashboard's figures are for operators: users acting for operations (purpose of use \
         HOPERAT) at a registry-administering organisation (registry.admin_organisations) or a \
         privacy office (policy.privacy_officers)",
    ))
}
