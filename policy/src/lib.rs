//! The one decision point: which of a patient's resources a requester receives, and why each
//! of the others is withheld.
//!
//! [`Policy::decide`] is a pure function of the sharing agreements and code sets in force, who
//! asks ([`tideway_auth::Principal`]), what was asked ([`Ask`]), the day, and the facts of each
//! resource ([`tideway_profiles::ResourceFacts`], computed once by the adapter that normalised
//! it). The record service calls it exactly once per answer, after the cache and before the
//! merge, and page links call it again for whoever follows them, so a policy change reaches
//! answers already cached or paged. [`Policy::admit`] answers, before anything is fetched,
//! whether any agreement lets this requester read records at all. The rules are the SMART
//! scopes, the query's own filters (`_type`, `_since`, the searched type), and the sharing
//! agreements ([`agreement`]) with their code sets ([`terminology`]), and the patient's consent
//! directives ([`consent`]): an explicit dissent wins over every agreement. This crate does no I/O and must not depend on the gateway, HTTP or storage.

pub mod agreement;
pub mod consent;
mod decide;
pub mod identity;
mod relationship;
pub mod terminology;

use serde::{Deserialize, Serialize};
use tideway_auth::Interaction;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use agreement::{Agreement, AgreementError, ConsentModel};
pub use consent::{ConsentError, ConsentSummary, Directive, read_consent};
pub use decide::{Policy, PolicyError, Refusal, WithheldCount};
pub use identity::PatientMarks;
pub use relationship::{Standing, registered_practices};
pub use terminology::{Terminology, TerminologyError};

/// What the requester asked for, as far as it narrows the answer. Kept with page snapshots so
/// later pages are decided again under the same question.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ask {
    /// Only these resource types (`_type`, or the type searched), when given.
    types: Option<Vec<String>>,
    /// Only resources changed after this instant (`_since`), RFC 3339.
    since: Option<String>,
    /// How the requester stands to the patient the answer is about, once shown; `None` for
    /// what is about no patient (organisations, practitioners read by id). Agreements that
    /// require a relationship apply only under a standing of the requester's own.
    standing: Option<Standing>,
    /// What the scopes must permit on each released resource's type: a read for `$everything`
    /// and reads by id, a search for searches. Snapshots written before it was kept read as
    /// reads.
    #[serde(default)]
    interaction: Interaction,
}

impl Ask {
    /// Everything the principal may see.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Only resources of these types.
    pub fn of_types(mut self, types: Vec<String>) -> Self {
        self.types = Some(types);
        self
    }

    /// Also decides resources of `extra` types when only some types were asked for (the types an
    /// `_include` may bring in beside the matches); asking for everything stays so.
    pub fn deciding_also(mut self, extra: &[&str]) -> Self {
        if let Some(types) = &mut self.types {
            for t in extra {
                if !types.iter().any(|x| x == t) {
                    types.push((*t).to_owned());
                }
            }
        }
        self
    }

    /// Decides resources of every type, whatever was asked (an `_include` that may point at
    /// any type); the caller keeps to the types asked for when it picks the matches.
    pub fn deciding_every_type(mut self) -> Self {
        self.types = None;
        self
    }

    /// Answered as a search: the scopes must permit searching each released type.
    pub fn by_search(mut self) -> Self {
        self.interaction = Interaction::Search;
        self
    }

    /// What the scopes must permit on each released type.
    pub fn interaction(&self) -> Interaction {
        self.interaction
    }

    /// Only resources changed after `since`.
    pub fn changed_since(mut self, since: OffsetDateTime) -> Self {
        self.since = since.format(&Rfc3339).ok();
        self
    }

    /// Decided for a requester who stands so to the patient.
    pub fn standing_as(mut self, standing: Standing) -> Self {
        self.standing = Some(standing);
        self
    }

    /// The standing the answer is decided under.
    pub fn standing(&self) -> Option<Standing> {
        self.standing
    }

    /// The types asked for, if narrowed.
    pub fn types(&self) -> Option<&[String]> {
        self.types.as_deref()
    }
}

/// Why a resource is withheld. The codes are stable: they go to the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The granted SMART scopes do not allow reading this type.
    Scope,
    /// Not one of the types asked for.
    NotAskedType,
    /// Not changed since the instant asked for.
    NotChangedSince,
    /// The question itself could not be read (a corrupt snapshot): fail closed.
    Undecidable,
    /// No sharing agreement in force grants this requester anything.
    NoAgreement,
    /// The source's data controller is not a party to the agreements that grant the requester.
    Controller,
    /// The agreements share other sections of the record.
    Section,
    /// In the sensitive set, which no agreement granting the requester shares.
    Sensitive,
    /// In a code set the agreements exclude.
    Excluded,
    /// The agreements share only resources in certain code sets, and this is in none of them.
    NotIncluded,
    /// The agreements share only resources in certain code sets, and this one carries no code
    /// to classify it by: fail closed.
    Unclassified,
    /// The agreement needs the patient's explicit consent, and none is recorded.
    ConsentRequired,
    /// The patient's consent denies it (to this requester, for this purpose, or at all).
    ConsentDenied,
    /// It refers to a resource withheld for its content (sensitive or excluded), so it would
    /// tell what that one hides.
    Linked,
    /// The patient is restricted (S-flagged) at some source, and this is their registered
    /// practice's directory entry: withheld from everyone.
    Restricted,
}

impl Reason {
    /// Stable code for the audit trail.
    pub fn code(self) -> &'static str {
        match self {
            Self::Scope => "scope",
            Self::NotAskedType => "not-asked-type",
            Self::NotChangedSince => "not-changed-since",
            Self::Undecidable => "undecidable",
            Self::NoAgreement => "no-agreement",
            Self::Controller => "controller",
            Self::Section => "section",
            Self::Sensitive => "sensitive",
            Self::Excluded => "excluded",
            Self::NotIncluded => "not-included",
            Self::Unclassified => "unclassified",
            Self::ConsentRequired => "consent-required",
            Self::ConsentDenied => "consent-denied",
            Self::Linked => "linked",
            Self::Restricted => "restricted",
        }
    }

    /// Whether the requester is entitled to know this was left out: filters the requester asked
    /// for are theirs to know; anything decided on their behalf is not said per resource.
    pub fn is_query_filter(self) -> bool {
        matches!(self, Self::NotAskedType | Self::NotChangedSince)
    }
}

/// Keep or withhold, for one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Released to the requester.
    Release,
    /// Withheld, and why.
    Withhold(Reason),
}

/// One verdict per resource decided on, in the order they were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    verdicts: Vec<Verdict>,
    /// For each withheld resource, the agreement (index into `agreements`) whose rule withheld
    /// it, when an agreement's rule did.
    rules: Vec<Option<u16>>,
    /// `id@version` of every agreement the decision applied, in id order.
    agreements: Vec<String>,
    /// How the patient is presented (restricted, deceased), from every source's Patient.
    marks: PatientMarks,
}

impl Decision {
    /// The verdicts, aligned with the resources decided on.
    pub fn verdicts(&self) -> &[Verdict] {
        &self.verdicts
    }

    /// Whether resource `index` is released.
    pub fn releases(&self, index: usize) -> bool {
        matches!(self.verdicts.get(index), Some(Verdict::Release))
    }

    /// The items whose verdict is release, in order. `items` must be the list decided on.
    pub fn released<'a, T>(&'a self, items: &'a [T]) -> impl Iterator<Item = &'a T> + 'a {
        items.iter().zip(&self.verdicts).filter(|(_, v)| **v == Verdict::Release).map(|(i, _)| i)
    }

    /// How many were withheld for each reason, for the audit record (reasons in a fixed order).
    pub fn withheld_counts(&self) -> Vec<(Reason, usize)> {
        let mut counts: Vec<(Reason, usize)> = Vec::new();
        for v in &self.verdicts {
            if let Verdict::Withhold(r) = v {
                match counts.iter_mut().find(|(c, _)| c == r) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((*r, 1)),
                }
            }
        }
        counts.sort();
        counts
    }

    /// How every answer presents the patient: restricted, deceased (from all the Patients
    /// decided on).
    pub fn marks(&self) -> &PatientMarks {
        &self.marks
    }

    /// `id@version` of every agreement the decision applied.
    pub fn agreements(&self) -> &[String] {
        &self.agreements
    }

    /// Whether anything was withheld for a reason other than the requester's own filters.
    pub fn withheld_for_requester(&self) -> bool {
        self.verdicts.iter().any(|v| matches!(v, Verdict::Withhold(r) if !r.is_query_filter()))
    }
}

#[cfg(test)]
mod tests;
