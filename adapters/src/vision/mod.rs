//! Vision-style GP systems: an XML record extract shaped like Vision's journal, read into the
//! neutral GP record ([`mapping`]) and fetched through the one GP system client ([`client`]).
//! Its simulator lives in `tideway_simulators::vision`, where the shared conformance suite runs
//! this adapter against it.
//!
//! Vision's (INPS, now Cegedim) interfaces are not public, so this dialect is designed, not
//! copied. What it assumes about the real system, and why:
//! - **Read v2 with its term id on older entries.** Vision recorded in Read v2 until the 2018
//!   move to SNOMED CT; a term is the 5-byte code and a 2-digit term id, written as one 7
//!   character code (`C10F.00`, `E11..12`), as CPRD GOLD (built from Vision) keeps `readcode`.
//!   The term id matters: a synonym can map to another concept than the code's preferred term
//!   (`E11..12` is "depressive psychoses", 35489007; `E11..00` is 46206005), so it is passed on
//!   and the `readv2-snomed` map reads both. A Read code of any other shape makes its row
//!   unreadable, never guessed at.
//! - **SNOMED CT on newer entries** (`<Snomed concept=>`).
//! - **Medicines in dm+d or Gemscript.** Vision's drug dictionary was Gemscript (formerly
//!   Multilex); older therapy rows carry only the Gemscript code (GOLD's `gemscriptcode`),
//!   mapped to dm+d by `gemscript-dmd`; newer ones carry dm+d.
//! - **A journal of typed rows**, as GOLD's files are: `Clinical` (problems, allergies,
//!   procedures, by `category`), `Test` (results with value and unit), `Immunisation`, `Therapy`
//!   (`type="repeat"` for what the patient is on, `"issue"` for each prescription), `Referral`,
//!   and `Consultation` rows that the others name.
//! - **Gender as Vision codes it** (GOLD: 1 male, 2 female, 3 indeterminate, 0 not recorded);
//!   the NHS number with the NHS number status indicator (`01` verified; anything else is passed
//!   on as not traced).
//! - **Every row names its patient** (`patient=`): a row filed under someone else is refused.
//! - **Calls.** `POST {base}patients/search` with `<PatientSearch><NhsNumber>`, `GET
//!   {base}patients/{id}/journal`, `GET {base}practices/{id}`, all `application/xml`. Documents
//!   go through [`crate::xml`], which refuses a DOCTYPE (so any external entity) before reading
//!   further.

pub mod client;
pub mod mapping;

#[cfg(test)]
mod tests;

pub use client::{Vision, VisionAdapter};

/// The XML namespace of the dialect.
pub const NAMESPACE: &str = "urn:tideway:dialect:vision:1";
/// The media type of its documents.
pub const MEDIA_TYPE: &str = "application/xml";
