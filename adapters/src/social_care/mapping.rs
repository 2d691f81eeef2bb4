//! Social-care normalisation: pure functions, no I/O, applied to each resource after the FHIR
//! R4 adapter's own normalisation (ids, references, `meta.source`) and before validation.
//!
//! Two rules. A council's social care record carries people, its directory (organisations,
//! staff, places), the episodes, care teams, plans and goals of its work, the referrals it
//! received and the tasks tracking them, contacts and assessments; any other resource type is
//! rejected, without content, and reported. And every resource passed on is tagged as social
//! care data.
//!
//! Types refused, and why: clinical facts (Condition, medication resources,
//! AllergyIntolerance, Immunization, Procedure, DiagnosticReport) belong to the NHS record,
//! and a council's copy of one would be shown beside the GP's as a second, unverified
//! source; Consent, because a council's consent records are about its own processing and must
//! never be read as the patient's sharing directives (the gateway records those itself);
//! DocumentReference and Binary, because a council's documents point into its own system,
//! which a reader of the shared record cannot open.

use serde_json::{Map, Value, json};
use tideway_profiles::systems;

use crate::adapter::RejectedResource;
use crate::fhir_r4::mapping::{Profile, resource_type_of};

/// The resource types a council's social care record may carry.
pub const ACCEPTED_TYPES: &[&str] = &[
    "Patient",
    "RelatedPerson",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "EpisodeOfCare",
    "CareTeam",
    "CarePlan",
    "Goal",
    "ServiceRequest",
    "Task",
    "Encounter",
    "Observation",
    "QuestionnaireResponse",
];

/// Why a resource of another type is refused (no content, no type name beyond the field).
pub const NOT_CARRIED: &str = "a social care record does not carry this resource type";

/// The `meta.tag` every resource from a social care source carries.
pub fn social_care_tag() -> Value {
    json!({
        "system": systems::RECORD_ORIGIN,
        "code": systems::RECORD_ORIGIN_SOCIAL_CARE,
        "display": "Local authority social care record"
    })
}

/// The social-care rules, as a [`Profile`] of the FHIR R4 adapter.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocialCare;

impl Profile for SocialCare {
    fn apply(&self, mut resource: Value) -> Result<Value, RejectedResource> {
        let ty = resource_type_of(&resource);
        if !ty.as_deref().is_some_and(|t| ACCEPTED_TYPES.contains(&t)) {
            return Err(RejectedResource::not_carried(ty, NOT_CARRIED));
        }
        let reject = |reason: &str| RejectedResource::invalid(ty.clone(), reason);
        let meta = resource
            .as_object_mut()
            .ok_or_else(|| reject("entry resource is not a JSON object"))?
            .entry("meta")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| reject("meta is not an object"))?;
        match meta.entry("tag").or_insert_with(|| Value::Array(Vec::new())) {
            Value::Array(tags) => tags.push(social_care_tag()),
            _ => return Err(reject("meta.tag is not an array")),
        }
        Ok(resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tideway_profiles::{ResourceFacts, Section};

    #[test]
    fn every_carried_type_is_tagged_and_its_content_is_the_social_care_section() {
        for ty in ACCEPTED_TYPES {
            let out = SocialCare
                .apply(json!({"resourceType": ty, "id": "x", "meta": {"source": "urn:s"}}))
                .unwrap();
            assert_eq!(out["meta"]["tag"], json!([social_care_tag()]), "{ty}");
            assert_eq!(out["meta"]["source"], "urn:s");
            let section = ResourceFacts::of(&out).section.unwrap();
            let context = matches!(*ty, "Patient" | "RelatedPerson")
                || matches!(*ty, "Organization" | "Practitioner" | "PractitionerRole" | "Location");
            assert_eq!(section == Section::SocialCare, !context, "{ty}: {section:?}");
        }
    }

    #[test]
    fn other_types_are_refused_naming_no_content() {
        for ty in
            ["Condition", "MedicationRequest", "AllergyIntolerance", "Consent", "DocumentReference", "Basic"]
        {
            let err = SocialCare
                .apply(json!({"resourceType": ty, "id": "x", "code": {"text": "SECRET"}}))
                .unwrap_err();
            assert_eq!(err.resource_type.as_deref(), Some(ty));
            assert_eq!(err.reason, NOT_CARRIED);
        }
        let err = SocialCare.apply(json!({"id": "x"})).unwrap_err();
        assert_eq!(err.resource_type, None);
    }

    #[test]
    fn the_sources_other_tags_are_kept_and_a_broken_meta_is_refused() {
        let other = json!({"system": "http://council.example/tags", "code": "restricted"});
        let out =
            SocialCare.apply(json!({"resourceType": "Task", "id": "t", "meta": {"tag": [other]}})).unwrap();
        assert_eq!(out["meta"]["tag"], json!([other, social_care_tag()]));
        assert!(SocialCare.apply(json!({"resourceType": "Task", "id": "t", "meta": {"tag": "x"}})).is_err());
        assert!(SocialCare.apply(json!({"resourceType": "Task", "id": "t", "meta": 3})).is_err());
    }
}
