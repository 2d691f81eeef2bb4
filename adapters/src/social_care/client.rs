//! The social care adapter: the FHIR R4 adapter with the social-care profile. Every call,
//! limit and refusal is the FHIR R4 adapter's ([`FhirR4Adapter`]); only normalisation differs,
//! so there is no second client to keep in step with the first.

use std::sync::Arc;

use super::mapping::SocialCare;
use crate::fhir_r4::FhirR4Adapter;
use crate::fhir_r4::client::ClientBuildError;
use crate::source::SourceConfig;

/// An adapter for a council's social care system speaking FHIR R4 REST.
pub fn adapter(config: SourceConfig) -> Result<FhirR4Adapter, ClientBuildError> {
    Ok(FhirR4Adapter::new(config)?.with_profile(Arc::new(SocialCare)))
}
