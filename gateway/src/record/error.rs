//! Why the record service could not answer. Each variant knows its audit reason code; the HTTP
//! edge (`http::error`) is the one place these become a status and an OperationOutcome.

use crate::audit::AuditError;
use crate::pages::PageStoreError;
use crate::store::StoreError;

/// A read could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The id was never published by this gateway (or is not one it could publish).
    #[error("unknown patient id")]
    UnknownPatient,
    /// No such resource (an id this gateway could not have published, or one its source no
    /// longer has).
    #[error("no such resource")]
    NoSuchResource,
    /// Every source that held the patient now says it does not.
    #[error("no source holds this patient any more")]
    NotHeld,
    /// Every source asked failed.
    #[error("every source failed")]
    AllSourcesFailed,
    /// No source answered before the deadline.
    #[error("no source answered in time")]
    NoSourceInTime,
    /// The patient index or record locator could not be used (`what` is "read" or "written").
    #[error("patient index could not be {what}: {cause}")]
    PatientIndex {
        /// "read" or "written".
        what: &'static str,
        /// The store's error (names tables, never values).
        cause: StoreError,
    },
    /// The audit trail could not be written: nothing is released.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Page snapshots could not be stored or read.
    #[error(transparent)]
    Pages(#[from] PageStoreError),
    /// The page link is unknown or expired.
    #[error("page link unknown or expired")]
    PageExpired,
    /// The policy withholds what was asked for from this requester.
    #[error("withheld by policy")]
    Withheld,
    /// The patient's consent directives could not be read: nothing is released.
    #[error("consent could not be read: {0}")]
    Consent(StoreError),
    /// A Consent definition the gateway cannot enforce (names the element).
    #[error("bad consent: {0}")]
    BadConsent(tideway_policy::ConsentError),
    /// The requester may not record or read this patient's consents.
    #[error("not allowed to manage this patient's consent")]
    ConsentForbidden,
    /// Another version of the consent was recorded at the same time.
    #[error("consent version conflict")]
    ConsentConflict,
    /// No sharing agreement lets this requester read records.
    #[error("no sharing agreement grants this requester")]
    Refused(tideway_policy::Refusal),
    /// The requester shows no legitimate relationship with the patient, and no agreement grants
    /// one: the same answer whether or not the patient exists.
    #[error("relationship required")]
    RelationshipRequired,
    /// This break-glass token is already bound to another patient.
    #[error("break-glass is bound to another patient")]
    BreakGlassElsewhere,
    /// This token's break-glass session has ended.
    #[error("break-glass has ended")]
    BreakGlassEnded,
    /// The break-glass session or its alert could not be stored: nothing is released.
    #[error("break-glass could not be recorded: {0}")]
    Alerts(StoreError),
    /// Only a trusted privacy office's officers may read alerts or run the policy simulator.
    #[error("not a privacy officer")]
    NotPrivacyOfficer,
    /// The sharing agreements in force could not be confirmed against the store for three
    /// refresh periods: nothing is released.
    #[error("the sharing agreements in force could not be confirmed")]
    PolicyUnconfirmed,
    /// A break-glass token asked `Patient/$match`: it opens one patient's record, found by
    /// NHS number, and never a search across patients.
    #[error("break-glass token used for $match")]
    MatchBreakGlass,
    /// The page link was made for someone else.
    #[error("page link belongs to another principal")]
    PageOwner,
    /// A read by id that may not be answered for this reason: told as an unknown id is, so a
    /// requester cannot learn which ids exist; the reason is audited.
    #[error("resource not found to this requester: {0}")]
    HiddenById(Box<RecordError>),
    /// A read by id whose resource's own source failed in this answer: not known to be gone.
    #[error("the source of the resource read by id failed")]
    ResourceSourceFailed,
    /// A break-glass token reads one patient's record through that patient (`Patient/{id}`,
    /// `$everything`), never by a resource's id, which would choose the patient for it.
    #[error("break-glass token used for a read by id")]
    ByIdBreakGlass,
    /// A first access or a misuse count could not be stored: nothing is released.
    #[error("oversight could not be recorded: {0}")]
    Oversight(StoreError),
    /// The user raised a misuse alert and rate limiting is on: no patient reads until it lifts.
    #[error("patient reads paused after a misuse alert")]
    MisuseLimited {
        /// Seconds until the alert's window has passed.
        retry_after_secs: u64,
    },
}

impl RecordError {
    /// The reason code written to the audit trail.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownPatient => "unknown-patient",
            Self::NoSuchResource => "not-found",
            Self::NotHeld => "not-held",
            Self::AllSourcesFailed | Self::NoSourceInTime | Self::ResourceSourceFailed => "sources-failed",
            Self::PatientIndex { .. } => "store",
            Self::Audit(_) => "audit",
            Self::Pages(_) => "page-store",
            Self::PageExpired => "page-expired",
            Self::PageOwner => "page-owner",
            Self::Withheld => "policy",
            Self::Refused(tideway_policy::Refusal::NoAgreement) => "no-agreement",
            Self::Refused(tideway_policy::Refusal::SecondaryUse) => "secondary-use",
            Self::Refused(tideway_policy::Refusal::NotSecondaryUse) => "not-secondary-use",
            Self::Consent(_) => "consent-store",
            Self::BadConsent(_) => "bad-consent",
            Self::ConsentForbidden => "consent-forbidden",
            Self::ConsentConflict => "consent-conflict",
            Self::RelationshipRequired => "relationship-required",
            Self::MatchBreakGlass => "match-break-glass",
            Self::HiddenById(inner) => inner.reason(),
            Self::ByIdBreakGlass => "by-id-break-glass",
            Self::BreakGlassElsewhere => "break-glass-other-patient",
            Self::BreakGlassEnded => "break-glass-ended",
            Self::Alerts(_) => "alert-store",
            Self::NotPrivacyOfficer => "not-privacy-officer",
            Self::PolicyUnconfirmed => "policy-unconfirmed",
            Self::Oversight(_) => "oversight-store",
            Self::MisuseLimited { .. } => "misuse-limited",
        }
    }
}
