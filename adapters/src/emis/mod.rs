//! EMIS-style GP systems: a JSON record export shaped like EMIS Web's journal, read into the
//! neutral GP record ([`mapping`]) and fetched through the one GP system client ([`client`]).
//! Its simulator lives in `tideway_simulators::emis`, where the shared conformance suite runs
//! this adapter against it.
//!
//! EMIS's interfaces are not public, so this dialect is designed, not copied. What it assumes
//! about the real system, and why:
//! - **Every coded item carries the EMIS code id.** EMIS Web keys clinical terms by its own code
//!   id, the `MedCodeId` of CPRD Aurum (which is built from EMIS Web): a SNOMED CT description id
//!   where one exists, an id in EMIS's own SNOMED CT namespace (`...1000006...`) where not. Code
//!   ids are passed on in [`tideway_profiles::systems::EMIS_CODE_ID`] and mapped to SNOMED CT by
//!   the `emis-snomed` map.
//! - **Newer entries carry the SNOMED CT concept, older ones the Read v2 code they were entered
//!   with.** CPRD describes EMIS Web data as "a combination of SNOMED, Read and local EMIS codes".
//!   The Read code is written as EMIS (and Aurum's `OriginalReadCode`) writes it: without its
//!   trailing dots, with `-N` for the synonym term id `1N` (`C10F` is `C10F.` term `00`,
//!   `C10F-1` is `C10F.` term `11`); the adapter restores the 5-byte code and the term id, so
//!   the `readv2-snomed` map can use both. EMIS's local codes (`EMISNQ..`, `ESCT..`), which fill
//!   the Read slot where Read v2 had no code, are kept under
//!   [`tideway_profiles::systems::EMIS_LOCAL_CODE`] and never read as Read v2.
//! - **Medicines carry the EMIS product code id and dm+d.** A medication course (the repeat or
//!   acute template) and each issue of it are separate items, as in EMIS Web's medication
//!   screen; the product code id is Aurum's `ProdCodeId`, mapped by `emis-dmd`.
//! - **Dates carry their precision** (`Y`, `YM`, `YMD`, `YMDT`): EMIS lets a clinician record
//!   "in 2015"; the adapter passes on only what was recorded.
//! - **The NHS number is exported spaced** (`999 000 0018`) with its trace status; only
//!   `Verified` becomes the UK Core "present and verified" status.
//! - **Calls.** `POST {base}patients/search` with `{"nhsNumber"}` (never in a URL), `GET
//!   {base}patients/{guid}/record`, `GET {base}organisations/{guid}`, all JSON.
//! - **Entries are filed by patient guid**, so an entry filed under another patient is refused
//!   by [`crate::gp_record::r4::normalise`] before anything of it is read.

pub mod client;
pub mod mapping;

#[cfg(test)]
mod tests;

pub use client::{Emis, EmisAdapter};

/// The media type of its documents.
pub const MEDIA_TYPE: &str = "application/json";
