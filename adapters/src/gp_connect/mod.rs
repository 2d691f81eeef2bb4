//! GP Connect Access Record Structured sources: the adapter ([`client`]), the STU3 -> R4
//! conversion of each resource ([`stu3`]) and of a whole structured record ([`mapping`]). The
//! simulator lives in `tideway_simulators::gp_connect`, where the shared conformance suite runs
//! this adapter against it.
//!
//! What the dialect is, and what this adapter assumes of the real system it talks to:
//! - **One operation for the record.** `POST {base}/Patient/$gpc.getstructuredrecord` with a
//!   FHIR STU3 `Parameters` body naming the patient by NHS number (`patientNHSNumber`) and the
//!   sections wanted (`includeAllergies` with `includeResolvedAllergies`, `includeMedication`
//!   with `includePrescriptionIssues`, `includeProblems`, `includeImmunisations`,
//!   `includeConsultations`, `includeInvestigations`, `includeReferrals`,
//!   `includeUncategorisedData`). The answer is an STU3 `collection` Bundle: the Patient, the
//!   practice Organization, the usual GP (Practitioner and PractitionerRole), one List per
//!   section naming its entries, and the entries. There is no paging, so no `next` link to
//!   follow or refuse. Finding a patient is the same operation with no section asked for: the
//!   Patient's logical id in the answer is the source's local id.
//! - **Spine headers and a JWT on every call**: a fresh `Ssp-TraceID` (UUID), `Ssp-From` (the
//!   gateway's ASID, [`client::GatewayIdentity`]), `Ssp-To` (the source's ASID: `SourceConfig`
//!   has none, so it is derived from the source's ODS code by [`client::asid_for`]),
//!   `Ssp-InteractionID`, and `Authorization: Bearer` an unsigned JWT (`alg: none`) with GP
//!   Connect's claims, `exp` five minutes after `iat`. The JWT names the clinician the call is
//!   made for ([`crate::CallContext::requester`]: the access token's user as the requesting
//!   practitioner, with their national role, and their organisation as the requesting
//!   organisation); the gateway is the requesting device. Only the gateway's own calls, made
//!   for no user, name the gateway as the user.
//! - **Direct care only.** The JWT's `reason_for_request` is always `directcare`, the reason
//!   GP Connect's consumer terms allow here; secondary uses (the Bulk Data export, the
//!   dashboards' figures) therefore never ask a GP Connect practice
//!   ([`crate::SourceAdapter::serves_secondary_use`]), and an export names the practice as a
//!   gap in its error file instead.
//! - **Errors** are STU3 OperationOutcomes with Spine error codes (`BAD_REQUEST`,
//!   `INVALID_NHS_NUMBER`, `PATIENT_NOT_FOUND`, ...); only the status is read (404 on a find is
//!   "not held"), the body is never echoed.
//! - **Shared resources** (Organization, Practitioner, Location) are read with the Foundations
//!   reads `GET {base}/{type}/{id}` and their own interaction ids; PractitionerRole has no
//!   Foundations read, so `read_shared` answers `None` for it without asking.
//! - **Lists carry warnings.** `confidential-items`, `data-in-transit` and
//!   `data-awaiting-filing` (GP Connect's List warning-code extension) mean a section is
//!   incomplete; they reach the gateway as [`crate::ListWarning`]s on the record and stay in
//!   the R4 List with a readable note. Lists carry no id in GP Connect; the converter names
//!   them by section code.
//! - **No `meta.lastUpdated`**: GP Connect does not populate it on clinical resources, so the
//!   converted resources have none either (nothing is invented).
//! - Conversion is STU3 to R4 per type as [`stu3`] lists it; every original coding is kept,
//!   and what cannot be converted or is not valid R4 afterwards is rejected with a
//!   content-free reason, never passed on.

pub mod client;
pub mod mapping;
pub mod stu3;

#[cfg(test)]
mod tests;
pub use client::GpConnectAdapter;
