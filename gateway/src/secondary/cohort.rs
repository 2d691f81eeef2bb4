//! Which patients a bulk export covers: the whole registered population (`GET /$export`) or a
//! `Group` (`GET /Group/{id}/$export`). Group ids name what they select:
//!
//! - `source.{source id}`: patients a borough exchange holds (the registration feed's and the
//!   locator's links);
//! - `practice.{ODS code}`: patients registered with a general practice (as the sources'
//!   Patients say, after the decision);
//! - `cohort.{code set}`: patients whose released record carries a coding in one of the
//!   gateway's code sets (`diabetes`, `asthma`, ...; `GET /Group` lists them).
//!
//! Opted-out patients are never in any of them (the store leaves them out of every page).

use tideway_adapters::NormalisedResource;
use tideway_policy::Terminology;
use tideway_profiles::OdsCode;

use crate::store::Cohort;

/// A group an export can be asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Group {
    /// Patients a source holds.
    Source(String),
    /// Patients registered with this practice.
    Practice(OdsCode),
    /// Patients with a released entry coded in this code set.
    CodeSet(String),
}

impl Group {
    /// Parses a Group id; `None` when it names no group this gateway offers.
    pub fn parse(id: &str, terminology: &Terminology, sources: &[String]) -> Option<Self> {
        let (kind, rest) = id.split_once('.')?;
        match kind {
            "source" => sources.iter().any(|s| s == rest).then(|| Self::Source(rest.to_owned())),
            "practice" => OdsCode::parse(rest).ok().map(Self::Practice),
            "cohort" => terminology.bit(rest).map(|_| Self::CodeSet(rest.to_owned())),
            _ => None,
        }
    }

    /// The store's cohort the group's patients are drawn from.
    pub fn cohort(&self) -> Cohort {
        match self {
            Self::Source(s) => Cohort::HeldBy(s.clone()),
            Self::Practice(_) | Self::CodeSet(_) => Cohort::Everyone,
        }
    }

    /// Whether a patient whose released record is `resources` is in the group.
    pub fn admits(&self, resources: &[NormalisedResource], terminology: &Terminology) -> bool {
        match self {
            Self::Source(_) => true,
            // A restricted patient's registered practice is never disclosed, so they are in no
            // practice's group.
            Self::Practice(ods) => {
                !resources.iter().any(|r| r.facts.restricted)
                    && resources.iter().any(|r| {
                        r.resource_type == "Patient"
                            && r.facts.registered_practice.iter().any(|p| p == ods.as_str())
                    })
            }
            Self::CodeSet(name) => {
                let Some(bit) = terminology.bit(name) else { return false };
                resources
                    .iter()
                    .any(|r| r.resource_type != "Patient" && terminology.classify(&r.facts) & bit != 0)
            }
        }
    }
}
