//! SystmOne-style sources: TPP SystmOne practices' record extracts, as XML.
//!
//! The real SystmOne interfaces are not public, so this dialect is designed to be faithful to
//! how SystmOne records differ from the other GP systems, and every assumption is written here:
//!
//! - **One XML extract per patient**, `GET {base}/patients/{id}/extract`, root `SystmOneExtract`
//!   in namespace `urn:tideway:dialect:systmone:1`. The patient is found by
//!   `POST {base}/patients/search` with `<PatientSearch><NHSNumber>…</NHSNumber></PatientSearch>`,
//!   answered by `<PatientSearchResult>` holding zero or more `<Patient>`; the practice ("unit")
//!   is read by `GET {base}/units/{id}`. Documents are `application/xml`, UTF-8.
//! - **Event-centred**: SystmOne files everything against an *event* (a consultation, a home
//!   visit, an administrative action). Consultations are `<Event>`; coded items are `<Entry>`
//!   with a `Type` (`Problem`, `Allergy`, `Observation`, `Procedure`, `Immunisation`) and an
//!   `EventID` when they were recorded in one; medication is `<RepeatTemplate>` (what the
//!   patient is on) and `<Issue>` (each prescription issued); referrals are `<Referral>`.
//! - **Every row names its patient** (`PatientID`), as SystmOne's tables key every row by the
//!   patient: an entry filed under another patient is refused, never merged in.
//! - **Codes**: `<Code Scheme="SNOMED|CTV3|DMD" Value=… Term=…/>`. Entries recorded before the
//!   2018 move to SNOMED CT keep their CTV3 code only (CTV3 includes TPP's local `Y…` codes);
//!   newer ones carry SNOMED CT; medication is dm+d. There is no published CTV3 to SNOMED CT map
//!   in the data Tideway builds its maps from, so CTV3-only entries are carried with their CTV3
//!   code and tagged unmapped ([`tideway_profiles::maps`]); the sharing agreements' code sets
//!   carry CTV3 codes where a published list had them.
//! - **Dates** are ISO 8601 (`YYYY-MM-DD` or with a time and `Z`); `LastUpdated` on every row.
//! - **Status**: problems and allergies `Active`/`Ended`; a repeat template `Current="true"`;
//!   an event `Open="true"` when still in progress (with `ServiceODS` naming the service it is
//!   open with, e.g. out-of-hours); a referral `Open="true"` until closed.
//! - **NHS number**: `<NHSNumber Traced="true">` when traced and verified against the Spine.
//!
//! Anything not understood is reported per entry ([`crate::gp_record::model::Unreadable`]),
//! never guessed; a document with a DOCTYPE or any undeclared entity is refused whole
//! ([`crate::xml`]).

pub mod client;
pub mod mapping;

#[cfg(test)]
mod tests;

pub use client::{SystmOne, SystmOneAdapter};

/// The XML namespace of the dialect.
pub const NAMESPACE: &str = "urn:tideway:dialect:systmone:1";
/// The media type of its documents.
pub const MEDIA_TYPE: &str = "application/xml";
