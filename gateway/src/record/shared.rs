//! Reads of the resources a record points at but that belong to no patient: the practice
//! Organization, Practitioners, PractitionerRoles, Locations. Their ids are `{source}.{local}`,
//! so the source to ask is in the id; they go through the decision like any other resource.

use tideway_adapters::{AdapterError, NormalisedResource};
use tideway_auth::Principal;
use tideway_policy::{Ask, decide};

use super::{RecordError, RecordService};
use crate::audit::AuditedCall;

/// The resource types readable by id besides Patient.
pub const SHARED_TYPES: [&str; 4] = ["Organization", "Practitioner", "PractitionerRole", "Location"];

impl RecordService {
    /// Reads `resource_type/id` from the source named in the id.
    pub async fn read_shared(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        resource_type: &str,
        id: &str,
    ) -> Result<NormalisedResource, RecordError> {
        let (source, local) = id.split_once('.').ok_or(RecordError::NoSuchResource)?;
        let adapter = self.federation.adapter(source).ok_or(RecordError::NoSuchResource)?.clone();
        call.intent(std::sync::Arc::from(format!("[\"{}\"]", adapter.id()))).await?;
        let answer = self.federation.read_shared(&adapter, resource_type, local, call.request_id()).await;
        let resource = match answer.result {
            Ok(Some(r)) => r,
            Ok(None) => return Err(RecordError::NoSuchResource),
            Err(AdapterError::Timeout) => return Err(RecordError::NoSourceInTime),
            Err(_) => return Err(RecordError::AllSourcesFailed),
        };
        if resource.id != id || resource.resource_type != resource_type {
            return Err(RecordError::NoSuchResource);
        }
        if !decide(principal, &Ask::everything(), &[resource.facts.as_ref()]).releases(0) {
            return Err(RecordError::Withheld);
        }
        Ok(resource)
    }
}
