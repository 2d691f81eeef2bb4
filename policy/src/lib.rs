//! The one decision point: which of a patient's resources a requester receives, and why each
//! of the others is withheld.
//!
//! [`decide`] is a pure function of who asks ([`Principal`]), what was asked ([`Ask`]) and the
//! facts of each resource ([`ResourceFacts`], computed once by the adapter that normalised it).
//! The record service calls it exactly once per answer, after the cache and before the merge,
//! and page links call it again for whoever follows them, so a policy change reaches answers
//! already cached or paged. The rules today are the SMART scopes and the query's own filters
//! (`_type`, `_since`, the searched type); consent and sharing agreements are added here and
//! nowhere else. This crate does no I/O and must not depend on the gateway, HTTP or storage.

use serde::{Deserialize, Serialize};
use tideway_auth::Principal;
use tideway_profiles::ResourceFacts;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the requester asked for, as far as it narrows the answer. Kept with page snapshots so
/// later pages are decided again under the same question.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ask {
    /// Only these resource types (`_type`, or the type searched), when given.
    types: Option<Vec<String>>,
    /// Only resources changed after this instant (`_since`), RFC 3339.
    since: Option<String>,
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

    /// Only resources changed after `since`.
    pub fn changed_since(mut self, since: OffsetDateTime) -> Self {
        self.since = since.format(&Rfc3339).ok();
        self
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
}

impl Reason {
    /// Stable code for the audit trail.
    pub fn code(self) -> &'static str {
        match self {
            Self::Scope => "scope",
            Self::NotAskedType => "not-asked-type",
            Self::NotChangedSince => "not-changed-since",
            Self::Undecidable => "undecidable",
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

    /// Whether anything was withheld for a reason other than the requester's own filters.
    pub fn withheld_for_requester(&self) -> bool {
        self.verdicts.iter().any(|v| matches!(v, Verdict::Withhold(r) if !r.is_query_filter()))
    }
}

/// Decides, for each resource, whether `principal` receives it in answer to `ask`.
///
/// Each verdict depends only on the principal, the question and that resource's facts, so the
/// answer does not depend on the order resources (or sources) come in, and deciding again over
/// what was released releases all of it.
pub fn decide(principal: &Principal, ask: &Ask, resources: &[&ResourceFacts]) -> Decision {
    let since = match ask.since.as_deref().map(|s| OffsetDateTime::parse(s, &Rfc3339)) {
        None => Ok(None),
        Some(Ok(t)) => Ok(Some(t)),
        Some(Err(_)) => Err(()),
    };
    let verdicts = resources
        .iter()
        .map(|facts| match since {
            Err(()) => Verdict::Withhold(Reason::Undecidable),
            Ok(since) => verdict(principal, ask, since, facts),
        })
        .collect();
    Decision { verdicts }
}

/// Whether a resource the gateway makes itself to support what was released (a Provenance
/// naming the origins of a merged fact) may go to `principal`. It is included beside the
/// matches whatever `_type` asked for, as FHIR's `search.mode = include` entries are.
pub fn may_include(principal: &Principal, facts: &ResourceFacts) -> bool {
    principal.may_read(&facts.resource_type)
}

fn verdict(
    principal: &Principal,
    ask: &Ask,
    since: Option<OffsetDateTime>,
    facts: &ResourceFacts,
) -> Verdict {
    if !principal.may_read(&facts.resource_type) {
        return Verdict::Withhold(Reason::Scope);
    }
    if let Some(types) = &ask.types
        && !types.contains(&facts.resource_type)
    {
        return Verdict::Withhold(Reason::NotAskedType);
    }
    if let Some(since) = since
        && !changed_since(facts, since)
    {
        return Verdict::Withhold(Reason::NotChangedSince);
    }
    Verdict::Release
}

/// A resource whose source gave no (readable) `meta.lastUpdated` counts as changed: the gateway
/// cannot show it is unchanged, and leaving it out could hide clinical data.
fn changed_since(facts: &ResourceFacts, since: OffsetDateTime) -> bool {
    match facts.last_updated.as_deref().map(|t| OffsetDateTime::parse(t, &Rfc3339)) {
        Some(Ok(t)) => t > since,
        _ => true,
    }
}

#[cfg(test)]
mod tests;
