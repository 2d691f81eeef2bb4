//! Local-authority social care sources: a council's case-management system (Liquidlogic LAS,
//! Mosaic and the like) exposing adult social care records as FHIR R4 REST. The adapter
//! ([`client`]) is the FHIR R4 adapter itself, with the social-care normalisation of
//! [`mapping`] applied to every resource; its simulator lives in
//! `tideway_simulators::social_care`, where the shared conformance suite runs this adapter.
//!
//! Design and assumptions about the real systems:
//! - The transport is plain FHIR R4 REST, exactly as the FHIR R4 adapter speaks it (`POST
//!   Patient/_search` by NHS number, `Patient/{id}/$everything` with same-origin paging,
//!   reads of shared resources). Councils expose their case management this way through an
//!   integration layer in front of the case-management database; nothing here depends on a
//!   vendor's own API.
//! - The council's FHIR id for a person is its own person number, and the NHS number is an
//!   identifier on the Patient (traced through the NHS Spine). A person the council has not
//!   traced cannot be found by NHS number, so is not in the shared record.
//! - Referrals from a GP practice are held as ServiceRequests with a Task per referral that
//!   carries where it stands: `Task.status` (R4 task status), `Task.businessStatus` (the
//!   council's workflow step, as text), `Task.statusReason` when it was turned down. These pass
//!   through unchanged: they are what tells a GP an accepted referral from a closed one.
//! - Only what a council's social care record holds is accepted (see
//!   [`mapping::ACCEPTED_TYPES`]); anything else is rejected with a reason and counted.
//! - Every accepted resource is marked as social care data with a `meta.tag` in Tideway's
//!   record-origin code system (`https://fhir.tideway.london/CodeSystem/record-origin|social-care`),
//!   which puts its content in the `social-care` section sharing agreements name.

pub mod client;
pub mod mapping;

#[cfg(test)]
mod tests;
