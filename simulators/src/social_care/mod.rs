//! A simulated local-authority social care system: a council's case-management system (in
//! the style of Liquidlogic LAS or Mosaic) exposing its adult social care records as FHIR R4
//! REST, the way a council's integration layer does for a shared care record.
//!
//! The facts are the population's social-care records
//! ([`crate::population::social_care`]), rendered by [`render`] and served by the plain R4
//! exchange's own server ([`crate::fhir_r4::simulator::serve`]) with the same interactions and
//! faults: `POST Patient/_search` by NHS number, `Patient/{id}/$everything`, reads of the
//! council, its staff and the GP practice, and type searches of what a social care record
//! holds.
//!
//! Assumptions about the real systems this imitates:
//! - The council's system keeps its own person id (a Mosaic or LAS person number), never the
//!   NHS number, as the FHIR id; the NHS number is an identifier on the Patient (councils
//!   trace it through the NHS Spine's demographics service).
//! - A referral from a GP practice arrives as a ServiceRequest that the council stores as its
//!   own copy (requester the practice, performer the council), and the council's workflow for
//!   it is a Task (owner the council, `focus` the request, `for` the person) whose `status` is
//!   the R4 task status and whose `businessStatus` is the council's own workflow step. When a
//!   referral is turned down, the reason is in `statusReason` as text. The ServiceRequest's own
//!   status follows the task (active while open, completed, or revoked when turned down or
//!   withdrawn); a system that leaves it `active` is the hazard the Task is there for.
//! - Care plans are CarePlans under an EpisodeOfCare of adult social care, their services
//!   as activities; equipment is recorded by catalogue item, so it carries text and no code.
//! - Clinical facts (diagnoses, medicines) are the NHS's: the council's record does not carry
//!   them, and its adapter refuses them if a system sends them.

pub mod render;
pub mod simulator;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;
