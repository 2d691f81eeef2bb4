//! The ledger of agreement versions: where each comes from, how far its approval has got, and
//! why the policy in force could not be worked out.

use tideway_policy::{Agreement, PolicyError};

use crate::store::{Approval, PublishedVersion, StoreError};

/// Where a version of an agreement comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file (or a shipped example) read at start: in force by configuration, no approvals.
    File,
    /// Published through the API.
    Published(PublishedVersion),
}

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    /// The version of its agreement decisions apply (subject to its own start and end dates).
    InForce,
    /// Published, waiting for some data controller's approval; never applied until then.
    AwaitingApproval,
    /// A higher version of the same agreement is in force.
    Superseded,
}

impl VersionState {
    /// The code the API answers.
    pub fn code(self) -> &'static str {
        match self {
            Self::InForce => "in-force",
            Self::AwaitingApproval => "awaiting-approval",
            Self::Superseded => "superseded",
        }
    }
}

/// One version of an agreement and where it stands.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    /// The version, validated.
    pub agreement: Agreement,
    /// Where it comes from.
    pub origin: Origin,
    /// The data controllers (ODS codes) whose approval it needs, sorted.
    pub controllers: Vec<String>,
    /// The approvals recorded, by controller.
    pub approvals: Vec<Approval>,
    /// Where it stands.
    pub state: VersionState,
}

impl LedgerEntry {
    /// Controllers that have not approved it yet (none for a file).
    pub fn awaiting(&self) -> Vec<String> {
        if self.origin == Origin::File {
            return Vec::new();
        }
        self.controllers
            .iter()
            .filter(|c| !self.approvals.iter().any(|a| &a.ods_code == *c))
            .cloned()
            .collect()
    }

    pub(super) fn approved(&self) -> bool {
        self.origin == Origin::File || (!self.controllers.is_empty() && self.awaiting().is_empty())
    }
}

/// The policy in force could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A version no longer validates.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}
