//! Legitimate relationship: whether the requester is caring for the patient, shown from the
//! record itself, the patient's consent, an agreement that grants it, or break-glass.
//!
//! Established from facts only ([`ResourceFacts::care_providers`], the Organizations' ODS codes,
//! the consent directives), so it stays a pure function like the decision it gates. The record
//! service asks [`Policy::standing`] after fetching and before deciding; without a standing the
//! answer is one refusal, the same whether or not the patient exists.

use std::collections::HashMap;

use tideway_auth::{Principal, PurposeOfUse};
use tideway_profiles::ResourceFacts;
use time::Date;

use crate::agreement::RelationshipRule;
use crate::consent::Directive;
use crate::decide::Policy;

/// How the requester stands to the patient. The codes go to the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    /// The patient's registered practice.
    RegisteredPractice,
    /// Caring for the patient now: an open encounter, an active referral, episode of care or
    /// care team in some source names the requester's organisation.
    Care,
    /// The patient's consent names the requester's organisation as one they agreed may see it.
    Consent,
    /// An agreement granting the requester grants the relationship for its service.
    Agreement,
    /// Emergency access (purpose of use `ETREAT` with a reason): recorded, time-limited and
    /// alerted to the privacy officer.
    BreakGlass,
}

impl Standing {
    /// Stable code for the audit trail and the policy simulator.
    pub fn code(self) -> &'static str {
        match self {
            Self::RegisteredPractice => "registered-practice",
            Self::Care => "care",
            Self::Consent => "consent",
            Self::Agreement => "agreement",
            Self::BreakGlass => "break-glass",
        }
    }

    /// Whether the requester has shown a relationship of their own (not one granted wholesale
    /// by an agreement): every agreement granting them then applies.
    fn is_shown(self) -> bool {
        !matches!(self, Self::Agreement)
    }
}

impl Policy {
    /// Whether some agreement granting `principal` today grants the relationship itself, so the
    /// requester never needs to show one (checked before anything is fetched).
    pub fn grants_relationship(&self, principal: &Principal, today: Date) -> bool {
        self.granting(principal, today).any(|(_, a)| a.relationship == RelationshipRule::Granted)
    }

    /// How `principal` stands to the patient whose record (every source's resources) is
    /// `record`, under the patient's consent `directives`; `None` when no relationship is shown
    /// and nothing grants one. A relationship of the requester's own ranks first, so the audit
    /// names the strongest; break-glass is the last resort.
    pub fn standing(
        &self,
        principal: &Principal,
        today: Date,
        directives: &[Directive],
        record: &[&ResourceFacts],
    ) -> Option<Standing> {
        let own = principal.organisation.as_str();
        let ods_of = OdsOf::of(record);
        let names_requester = |provider: &String| ods_of.code(provider) == Some(own);
        let mut best: Option<Standing> = None;
        for facts in record {
            if facts.care_providers.iter().any(names_requester) {
                let kind = if facts.resource_type == "Patient" {
                    Standing::RegisteredPractice
                } else {
                    Standing::Care
                };
                best = Some(best.map_or(kind, |b| b.min(kind)));
            }
        }
        best.or_else(|| {
            directives
                .iter()
                .any(|d| d.names_permitted(&principal.organisation, principal.purpose, today))
                .then_some(Standing::Consent)
        })
        .or_else(|| self.grants_relationship(principal, today).then_some(Standing::Agreement))
        .or_else(|| (principal.purpose == PurposeOfUse::EmergencyTreat).then_some(Standing::BreakGlass))
    }
}

/// The ODS codes of the patient's registered practices, as the Patient resources of `record`
/// name them (`generalPractitioner`, by ODS identifier or by reference to an Organization of the
/// record that carries one), sorted and without repeats. Empty when no source names one the
/// record can resolve.
pub fn registered_practices(record: &[&ResourceFacts]) -> Vec<String> {
    let ods_of = OdsOf::of(record);
    let mut out: Vec<String> = record
        .iter()
        .filter(|f| f.resource_type == "Patient")
        .flat_map(|f| f.care_providers.iter())
        .filter_map(|p| ods_of.code(p).map(str::to_owned))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The ODS code a care provider names: given directly (`ods:{code}`) or through an
/// Organization of the record that carries one.
struct OdsOf<'a>(HashMap<String, &'a str>);

impl<'a> OdsOf<'a> {
    fn of(record: &[&'a ResourceFacts]) -> Self {
        Self(
            record
                .iter()
                .filter_map(|f| f.ods_code.as_deref().map(|ods| (format!("Organization/{}", f.id), ods)))
                .collect(),
        )
    }

    fn code<'b>(&'b self, provider: &'b str) -> Option<&'b str> {
        match provider.strip_prefix("ods:") {
            Some(ods) => Some(ods),
            None => self.0.get(provider).copied(),
        }
    }
}

/// Whether an agreement applies to a requester of this standing: one that requires a
/// relationship applies only when the requester has shown one (or broken the glass).
pub(crate) fn applies(rule: RelationshipRule, standing: Standing) -> bool {
    rule == RelationshipRule::Granted || standing.is_shown()
}
