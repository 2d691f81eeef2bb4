//! Reads of the resources a record points at but that belong to no patient: the practice
//! Organization, Practitioners, PractitionerRoles, Locations. Their ids are `{source}.{local}`,
//! so the source to ask is in the id; they go through the decision like any other resource.

use tideway_adapters::{AdapterError, NormalisedResource};
use tideway_auth::Principal;
use tideway_policy::Ask;

use super::{RecordError, RecordService};
use crate::audit::AuditedCall;
use crate::sources::Asking;

/// The resource types readable by id besides Patient.
pub const SHARED_TYPES: [&str; 4] = ["Organization", "Practitioner", "PractitionerRole", "Location"];

/// A shared resource that could carry someone's personal data is not released by id: one with
/// `contained` resources (a contained Patient or RelatedPerson is nobody's record here), or a
/// Location that is a patient's home (`PTRES`).
fn carries_personal_data(resource: &NormalisedResource) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&resource.json) else { return true };
    v.get("contained").is_some() || resource.facts.codings.iter().any(|c| c.code == "PTRES")
}

impl RecordService {
    /// Reads `resource_type/id` from the source named in the id.
    pub async fn read_shared(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        resource_type: &str,
        id: &str,
    ) -> Result<NormalisedResource, RecordError> {
        self.admit(principal)?;
        let (source, local) = id.split_once('.').ok_or(RecordError::NoSuchResource)?;
        let adapter = self.federation.sources().adapter(source).ok_or(RecordError::NoSuchResource)?.clone();
        let asked = serde_json::to_string(&[adapter.id().as_str()]).unwrap_or_else(|_| "[]".into());
        call.intent(asked.into()).await?;
        let asking = Asking::for_principal(call.request_id(), principal);
        let answer = self.federation.read_shared(&adapter, resource_type, local, &asking).await;
        let resource = match answer.result {
            Ok(Some(r)) => r,
            Ok(None) => return Err(RecordError::NoSuchResource),
            Err(AdapterError::Timeout) => return Err(RecordError::NoSourceInTime),
            Err(_) => return Err(RecordError::AllSourcesFailed),
        };
        if resource.id != id || resource.resource_type != resource_type {
            return Err(RecordError::NoSuchResource);
        }
        // Organisations, practitioners and locations are about no patient: no directive applies.
        if !self.decide(principal, &Ask::everything(), &[], &[resource.facts.as_ref()]).releases(0)
            || carries_personal_data(&resource)
        {
            return Err(RecordError::Withheld);
        }
        Ok(resource)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn contained_resources_and_patient_homes_are_not_released_by_id() {
        let r = |v: serde_json::Value| NormalisedResource::from_value(&v).unwrap();
        assert!(!carries_personal_data(&r(
            json!({"resourceType": "Organization", "id": "s.o", "name": "A practice"})
        )));
        assert!(carries_personal_data(&r(json!({"resourceType": "Organization", "id": "s.o",
            "contained": [{"resourceType": "Patient", "id": "p"}]}))));
        assert!(carries_personal_data(&r(json!({"resourceType": "Location", "id": "s.l",
            "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "PTRES"}]}]}))));
    }
}
