//! The policy in force and the decision itself.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use tideway_auth::Principal;
use tideway_profiles::{OdsCode, ResourceFacts, Section};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use crate::agreement::{self, Agreement, AgreementError, ConsentModel, Controllers, Sections};
use crate::consent::{ConsentVerdict, Directive, consent_verdict};
use crate::identity::PatientMarks;
use crate::relationship::{self, Standing};
use crate::terminology::{SetMask, Terminology, TerminologyError};
use crate::{Ask, Decision, Reason, Verdict};

/// The policy could not be built: nothing may be decided under it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A code set could not be read.
    #[error(transparent)]
    Terminology(#[from] TerminologyError),
    /// An agreement could not be read.
    #[error(transparent)]
    Agreement(#[from] AgreementError),
    /// Two files hold the same version of one agreement.
    #[error("agreement '{0}' is defined twice")]
    Duplicate(String),
    /// No agreement at all: every request would be refused.
    #[error("no sharing agreement is defined")]
    Empty,
}

/// Why a requester may not read records at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No agreement in force grants this role and purpose at this organisation.
    NoAgreement,
    /// A secondary purpose of use (commissioning, research, public health) asked for a
    /// patient's record: secondary use is served de-identified population data only.
    SecondaryUse,
    /// A direct-care purpose asked for population data, which only secondary use is served.
    NotSecondaryUse,
}

/// How many resources one rule withheld, for the audit record and the policy simulator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct WithheldCount {
    /// The reason code.
    pub reason: &'static str,
    /// `id@version` of the agreement whose rule it was, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
    /// The section of the record withheld.
    pub section: Section,
    /// The source it came from, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// How many.
    pub count: usize,
}

/// The sharing agreements and code sets in force, and which data controller runs each source.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The latest version of each agreement, in id order.
    agreements: Vec<Agreement>,
    terminology: Terminology,
    sensitive: SetMask,
    /// Source id -> the ODS code of its data controller.
    controllers: HashMap<String, OdsCode>,
}

impl Policy {
    /// A policy of these agreement files (`(file name, text)`), classified by `terminology`, for
    /// sources run by the given data controllers (`(source id, ODS code)`). Where several
    /// versions of one agreement are given, the highest applies.
    pub fn new<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
        terminology: Terminology,
        sources: impl IntoIterator<Item = (String, OdsCode)>,
    ) -> Result<Self, PolicyError> {
        let mut latest: BTreeMap<String, Agreement> = BTreeMap::new();
        for (file, text) in files {
            let a = agreement::parse_agreement(file, text, &terminology)?;
            match latest.get(&a.id) {
                Some(have) if have.version == a.version => return Err(PolicyError::Duplicate(a.label())),
                Some(have) if have.version > a.version => {}
                _ => {
                    latest.insert(a.id.clone(), a);
                }
            }
        }
        if latest.is_empty() {
            return Err(PolicyError::Empty);
        }
        Ok(Self {
            agreements: latest.into_values().collect(),
            sensitive: terminology.sensitive(),
            terminology,
            controllers: sources.into_iter().collect(),
        })
    }

    /// The region's example agreements ([`agreement::EXAMPLES`]) with the shipped code sets.
    pub fn examples(sources: impl IntoIterator<Item = (String, OdsCode)>) -> Result<Self, PolicyError> {
        Self::new(agreement::EXAMPLES, Terminology::embedded()?, sources)
    }

    /// The agreements in force (latest version of each).
    pub fn agreements(&self) -> &[Agreement] {
        &self.agreements
    }

    /// The code sets.
    pub fn terminology(&self) -> &Terminology {
        &self.terminology
    }

    /// Whether any agreement in force on `today` lets `principal` read records at all: checked
    /// before anything is fetched, so a refusal says nothing about the patient.
    pub fn admit(&self, principal: &Principal, today: Date) -> Result<(), Refusal> {
        if principal.purpose.is_secondary() {
            return Err(Refusal::SecondaryUse);
        }
        if self.granting(principal, today).next().is_some() { Ok(()) } else { Err(Refusal::NoAgreement) }
    }

    /// Whether any agreement in force on `today` lets `principal` have de-identified population
    /// data (bulk export, aggregates) for a secondary purpose: only a secondary purpose of use
    /// is, and only through an agreement granting it.
    pub fn admit_secondary(&self, principal: &Principal, today: Date) -> Result<(), Refusal> {
        if !principal.purpose.is_secondary() {
            return Err(Refusal::NotSecondaryUse);
        }
        if self.granting(principal, today).next().is_some() { Ok(()) } else { Err(Refusal::NoAgreement) }
    }

    pub(crate) fn granting<'a>(
        &'a self,
        principal: &'a Principal,
        today: Date,
    ) -> impl Iterator<Item = (usize, &'a Agreement)> {
        self.agreements.iter().enumerate().filter(move |(_, a)| {
            a.in_force(today)
                && a.organisations.contains(&principal.organisation)
                && a.roles.contains(principal.role.as_str())
                && a.purposes.contains(&principal.purpose)
        })
    }

    /// Decides, for each resource, whether `principal` receives it in answer to `ask` on
    /// `today`, under the patient's active consent directives `consents`.
    ///
    /// A resource is released when the scopes and the question allow it, no directive denies
    /// it, and at least one agreement granting the requester shares it (an explicit-consent
    /// agreement only what a directive permits); then whatever refers to a resource withheld
    /// for its content is withheld too, until nothing changes. Each verdict depends only on the
    /// principal, the question and the resources' facts, so the answer does not depend on the
    /// order resources (or sources) come in, and deciding again over what was released
    /// releases all of it.
    pub fn decide(
        &self,
        principal: &Principal,
        ask: &Ask,
        today: Date,
        consents: &[Directive],
        resources: &[&ResourceFacts],
    ) -> Decision {
        let granting: Vec<(usize, &Agreement)> = self
            .granting(principal, today)
            .filter(|(_, a)| ask.standing.is_none_or(|s| relationship::applies(a.relationship, s)))
            .collect();
        let break_glass = ask.standing == Some(Standing::BreakGlass);
        let since = match ask.since.as_deref().map(|s| OffsetDateTime::parse(s, &Rfc3339)) {
            None => Ok(None),
            Some(Ok(t)) => Ok(Some(t)),
            Some(Err(_)) => Err(()),
        };
        let mut rules = vec![None; resources.len()];
        // Each resource is classified once, for the agreements' rules and for its links; with no
        // agreement granting the requester nothing is shared and no code set is consulted.
        let masks: Vec<SetMask> = if granting.is_empty() {
            vec![0; resources.len()]
        } else {
            resources.iter().map(|f| self.terminology.classify(f)).collect()
        };
        // Whether the patient's consent denies each resource to this requester, whatever else
        // withholds it first: a denied resource hides its links even when it was not asked for.
        let mut denied = vec![false; resources.len()];
        let mut verdicts: Vec<Verdict> = resources
            .iter()
            .zip(&masks)
            .zip(rules.iter_mut())
            .zip(denied.iter_mut())
            .map(|(((facts, mask), rule), denied)| {
                let filtered = match since {
                    Err(()) => Err(Reason::Undecidable),
                    Ok(since) => query_verdict(principal, ask, since, facts),
                };
                let consent = consent_verdict(consents, principal, today, facts);
                *denied = consent == ConsentVerdict::Denied;
                let decided = filtered.and_then(|()| match consent {
                    ConsentVerdict::Denied => Err(Reason::ConsentDenied),
                    _ => self.shared(&granting, facts, *mask, consent, break_glass, rule),
                });
                match decided {
                    Ok(()) => Verdict::Release,
                    Err(reason) => Verdict::Withhold(reason),
                }
            })
            .collect();
        // What is withheld for its content hides its links too, whichever rule spoke first: an
        // HIV result outside the shared sections is still HIV.
        let hides_content: Vec<bool> = masks
            .iter()
            .zip(&verdicts)
            .zip(&denied)
            .map(|((mask, verdict), denied)| match verdict {
                Verdict::Release => false,
                Verdict::Withhold(
                    Reason::Sensitive | Reason::Excluded | Reason::Linked | Reason::ConsentDenied,
                ) => true,
                Verdict::Withhold(_) if *denied => true,
                Verdict::Withhold(_) => {
                    !granting.is_empty()
                        && granting
                            .iter()
                            .all(|(_, a)| mask & ((self.sensitive & !a.sensitive) | a.exclude) != 0)
                }
            })
            .collect();
        withhold_linked(resources, &hides_content, &mut verdicts);
        // A restricted patient's registered practice never leaves, whoever asks and whatever
        // the agreements share.
        let marks = PatientMarks::of(resources);
        for (verdict, practice) in verdicts.iter_mut().zip(marks.practice_entries(resources)) {
            if practice && *verdict == Verdict::Release {
                *verdict = Verdict::Withhold(Reason::Restricted);
            }
        }
        let agreements = granting.iter().map(|(_, a)| a.label()).collect();
        Decision { verdicts, rules, agreements, marks }
    }

    /// Whether some granting agreement shares the resource; if none does, the first one's
    /// reason (agreements are in id order, so the reason is stable).
    fn shared(
        &self,
        granting: &[(usize, &Agreement)],
        facts: &ResourceFacts,
        mask: SetMask,
        consent: ConsentVerdict,
        break_glass: bool,
        rule: &mut Option<u16>,
    ) -> Result<(), Reason> {
        if granting.is_empty() {
            return Err(Reason::NoAgreement);
        }
        let mut first = None;
        for (position, (_, a)) in granting.iter().enumerate() {
            match self.under(a, facts, mask, consent, break_glass) {
                Ok(()) => return Ok(()),
                Err(reason) if first.is_none() => first = Some((position, reason)),
                Err(_) => {}
            }
        }
        let (position, reason) = first.unwrap_or((0, Reason::NoAgreement));
        *rule = u16::try_from(position).ok();
        Err(reason)
    }

    fn under(
        &self,
        a: &Agreement,
        facts: &ResourceFacts,
        mask: SetMask,
        consent: ConsentVerdict,
        break_glass: bool,
    ) -> Result<(), Reason> {
        if let Controllers::Only(parties) = &a.controllers {
            let controller = facts.source.as_ref().and_then(|s| self.controllers.get(s));
            if !controller.is_some_and(|c| parties.contains(c)) {
                return Err(Reason::Controller);
            }
        }
        // Break-glass stands in for a consent not yet given, never for one refused (a refusal is
        // `Denied`, decided before any agreement).
        let consented =
            consent == ConsentVerdict::Permitted || (break_glass && consent == ConsentVerdict::Silent);
        if a.consent_model == ConsentModel::Explicit && !consented {
            return Err(Reason::ConsentRequired);
        }
        let section = facts.section.unwrap_or(Section::Unclassified);
        let context = matches!(section, Section::Demographics | Section::Administrative);
        if let Sections::Only(shared) = &a.sections
            && !context
            && !shared.contains(&section)
        {
            return Err(Reason::Section);
        }
        if mask & self.sensitive & !a.sensitive != 0 {
            return Err(Reason::Sensitive);
        }
        // A clinical entry coded only in a legacy or local code no map translates cannot be
        // checked against the sensitive sets: under an agreement that withholds any of them it
        // is withheld, not guessed harmless. (An Encounter's type is not its content; what it
        // was about is linked, and decided on its own.)
        if facts.unmapped
            && !context
            && facts.resource_type != "Encounter"
            && self.sensitive & !a.sensitive != 0
        {
            return Err(Reason::Unclassified);
        }
        if mask & a.exclude != 0 {
            return Err(Reason::Excluded);
        }
        if a.include != 0 && !context {
            if facts.codings.is_empty() {
                return Err(Reason::Unclassified);
            }
            if mask & a.include == 0 {
                return Err(Reason::NotIncluded);
            }
        }
        Ok(())
    }

    /// Whether a resource the gateway makes itself to support what was released (a Provenance
    /// naming the origins of a merged fact) may go to `principal`. It is included beside the
    /// matches whatever `_type` asked for, as FHIR's `search.mode = include` entries are.
    pub fn may_include(&self, principal: &Principal, ask: &Ask, facts: &ResourceFacts) -> bool {
        principal.may(ask.interaction(), &facts.resource_type)
    }
}

/// Reason, agreement, section and source of a withheld resource.
type WithheldKey = (&'static str, Option<String>, Section, Option<String>);

impl Decision {
    /// What was withheld, counted by reason, agreement, section and source. `resources` must be
    /// the list decided on.
    pub fn withheld_detail(&self, resources: &[&ResourceFacts]) -> Vec<WithheldCount> {
        let mut counts: BTreeMap<WithheldKey, usize> = BTreeMap::new();
        for ((verdict, rule), facts) in self.verdicts.iter().zip(&self.rules).zip(resources) {
            if let Verdict::Withhold(reason) = verdict {
                let agreement = rule.and_then(|r| self.agreements.get(usize::from(r)).cloned());
                let key = (
                    reason.code(),
                    agreement,
                    facts.section.unwrap_or(Section::Unclassified),
                    facts.source.clone(),
                );
                *counts.entry(key).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .map(|((reason, agreement, section, source), count)| WithheldCount {
                reason,
                agreement,
                section,
                source,
                count,
            })
            .collect()
    }
}

/// The SMART scopes and the requester's own filters.
fn query_verdict(
    principal: &Principal,
    ask: &Ask,
    since: Option<OffsetDateTime>,
    facts: &ResourceFacts,
) -> Result<(), Reason> {
    if !principal.may(ask.interaction(), &facts.resource_type) {
        return Err(Reason::Scope);
    }
    if let Some(types) = &ask.types
        && !types.contains(&facts.resource_type)
    {
        return Err(Reason::NotAskedType);
    }
    if let Some(since) = since
        && !changed_since(facts, since)
    {
        return Err(Reason::NotChangedSince);
    }
    Ok(())
}

/// A resource whose source gave no (readable) `meta.lastUpdated` counts as changed: the gateway
/// cannot show it is unchanged, and leaving it out could hide clinical data.
fn changed_since(facts: &ResourceFacts, since: OffsetDateTime) -> bool {
    match facts.last_updated.as_deref().map(|t| OffsetDateTime::parse(t, &Rfc3339)) {
        Some(Ok(t)) => t > since,
        _ => true,
    }
}

/// Withholds, until nothing changes, every released resource that refers to one withheld for
/// its content (`hides_content`: sensitive or excluded codes under every applying agreement, a
/// code or class the patient's consent denies, or linked to such): a prescription, result or
/// referral tied to a withheld condition or encounter would tell what it hides. Resources
/// withheld only because they are out of the agreement's scope do not pull others with them.
fn withhold_linked(resources: &[&ResourceFacts], hides_content: &[bool], verdicts: &mut [Verdict]) {
    let mut hidden: HashSet<String> = resources
        .iter()
        .zip(hides_content)
        .filter(|(_, hides)| **hides)
        .map(|(f, _)| format!("{}/{}", f.resource_type, f.id))
        .collect();
    while !hidden.is_empty() {
        let mut more = Vec::new();
        for (facts, verdict) in resources.iter().zip(verdicts.iter_mut()) {
            if *verdict == Verdict::Release && facts.references.iter().any(|r| hidden.contains(r)) {
                *verdict = Verdict::Withhold(Reason::Linked);
                more.push(format!("{}/{}", facts.resource_type, facts.id));
            }
        }
        if more.is_empty() {
            break;
        }
        hidden.extend(more);
    }
}
