//! Reads by id of what a patient's record holds (the clinical types, and the Provenance the
//! gateway makes for merged facts), so every `fullUrl` a bundle hands out can be read at that
//! address. The patient is the one whose record this replica found the resource in
//! ([`crate::sources::ResourceIndex`]); the read is then that patient's record, asked for the
//! one resource: the same admission, relationship, consent, decision and audit as a search.
//! Anything not released to this requester, and a record the requester may not open at all, is
//! not found exactly as an unknown id is (the audit keeps the real reason). Break-glass tokens
//! do not read by id: the id would choose the patient their session binds to.

use tideway_adapters::NormalisedResource;
use tideway_auth::Principal;
use tideway_policy::Ask;

use super::{RecordError, RecordService};
use crate::audit::AuditedCall;
use crate::search::Criteria;

impl RecordService {
    /// Reads `resource_type/id` through the record of the patient it belongs to.
    pub async fn read_in_record(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        resource_type: &str,
        id: &str,
    ) -> Result<NormalisedResource, RecordError> {
        self.admit(principal)?;
        if principal.breaks_glass() {
            return Err(RecordError::ByIdBreakGlass);
        }
        let patient = self
            .federation
            .cache()
            .index()
            .patient_of(resource_type, id)
            .await
            .map_err(|()| RecordError::PatientIndex {
                what: "read",
                cause: crate::store::StoreError::other("read resource owner", "the shared index failed"),
            })?
            .ok_or(RecordError::NoSuchResource)?;
        // The gateway's own Provenance is an include beside what it names, whatever was asked;
        // everything else is asked for by type and id.
        let gateway_made = crate::bundle::is_gateway_made(resource_type, id);
        let (ask, criteria) = if gateway_made {
            (Ask::everything(), Criteria::default())
        } else {
            (
                Ask::everything().of_types(vec![resource_type.to_owned()]),
                Criteria::of_ids(vec![id.to_owned()]),
            )
        };
        let answer = match self.record(call, principal, &patient, &ask, &criteria).await {
            Ok(a) => a,
            // Whatever keeps this requester from the record, the id is told as unknown.
            Err(
                e @ (RecordError::RelationshipRequired
                | RecordError::NotHeld
                | RecordError::UnknownPatient
                | RecordError::Withheld
                | RecordError::Refused(_)),
            ) => return Err(RecordError::HiddenById(Box::new(e))),
            Err(e) => return Err(e),
        };
        let hidden = || RecordError::HiddenById(Box::new(RecordError::Withheld));
        if let Some(r) = answer
            .resources
            .iter()
            .chain(&answer.includes)
            .find(|r| r.resource_type == resource_type && r.id == id)
        {
            return Ok(r.clone());
        }
        // Its own source failed this time: not known to be gone, so not a 404 a client could
        // take for a deletion.
        if let Some((source, _)) = id.split_once('.')
            && answer.report.failed(source)
        {
            return Err(RecordError::ResourceSourceFailed);
        }
        if !gateway_made {
            return Err(hidden());
        }
        // A Provenance the gateway made for a narrower question (a map Provenance of a type
        // search names only that type's entries): released only if everything it names is
        // released to this requester now.
        let made = self.memo.made(resource_type, id).ok_or_else(hidden)?;
        let released: std::collections::HashSet<String> =
            answer.resources.iter().chain(&answer.includes).map(|r| r.reference()).collect();
        if made.facts.references.iter().all(|x| released.contains(x)) && !made.facts.references.is_empty() {
            Ok(made)
        } else {
            Err(hidden())
        }
    }
}
