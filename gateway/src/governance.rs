//! Governance of the sharing agreements: publishing a new version and the data controllers'
//! approvals of it.
//!
//! A version is published by a user of one of the data controllers it names (for
//! `controllers = ["*"]`, of any registered source) and takes effect only when every one of
//! them has approved it, each with a token of that organisation; until then the previous
//! version stays in force. Each publication and approval is audited before it is stored (the
//! intent), so one that cannot be audited is not stored. The process that records the last
//! approval applies the new version at once; other replicas on their next refresh
//! (`crate::agreements::PolicyInForce`).

use std::sync::Arc;

use serde_json::json;
use tideway_auth::Principal;
use tideway_policy::agreement::parse_agreement;

use crate::agreements::{LedgerEntry, LedgerError, Origin, PolicyInForce, VersionState};
use crate::audit::{AuditError, AuditedCall};
use crate::store::{AgreementStore, Approval, PublishedVersion};

/// Why a publication or approval was refused or failed. `http::error` maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    /// The text is not a valid agreement: `line:column: field: message`.
    #[error("{0}")]
    Invalid(String),
    /// The version is not higher than one already known for that agreement.
    #[error("{label} is not newer than version {known} of that agreement")]
    Stale {
        /// `id@version` as sent.
        label: String,
        /// The highest version known.
        known: u32,
    },
    /// The requester's organisation is not a data controller the version names.
    #[error("the requester's organisation is not a data controller of {0}")]
    NotController(String),
    /// This organisation has approved this version already.
    #[error("{0} is already approved by this organisation")]
    AlreadyApproved(String),
    /// The version is not waiting for approvals (in force from a file, or superseded).
    #[error("{0} is not awaiting approval")]
    NotAwaiting(String),
    /// No such agreement, or no such version of it.
    #[error("no such agreement version")]
    NotFound,
    /// The store could not be used, or a stored version no longer validates.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The audit trail could not be written: nothing is stored.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl GovernanceError {
    /// The reason code written to the audit trail.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "bad-agreement",
            Self::Stale { .. } => "stale-version",
            Self::NotController(_) => "not-controller",
            Self::AlreadyApproved(_) => "already-approved",
            Self::NotAwaiting(_) => "not-awaiting",
            Self::NotFound => "not-found",
            Self::Ledger(_) => "agreement-store",
            Self::Audit(_) => "audit",
        }
    }
}

/// Publishing and approving agreement versions.
pub struct Governance {
    /// The policy in force, rebuilt when a version's last approval is recorded.
    pub policy: Arc<PolicyInForce>,
    store: Arc<dyn AgreementStore>,
}

impl Governance {
    /// Governance over `policy`, keeping versions and approvals in `store`.
    pub fn new(policy: Arc<PolicyInForce>, store: Arc<dyn AgreementStore>) -> Self {
        Self { policy, store }
    }

    /// Every version known, files and published, with where each stands.
    pub async fn ledger(&self) -> Result<Vec<LedgerEntry>, GovernanceError> {
        let published = self.store.published_agreements().await.map_err(LedgerError::from)?;
        let approvals = self.store.agreement_approvals().await.map_err(LedgerError::from)?;
        Ok(self.policy.ledger(&published, &approvals).map_err(LedgerError::from)?)
    }

    /// Publishes `text` as a new version, awaiting its controllers' approvals.
    pub async fn publish(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        text: &[u8],
    ) -> Result<LedgerEntry, GovernanceError> {
        let text = std::str::from_utf8(text)
            .map_err(|_| GovernanceError::Invalid("the body is not UTF-8 text".into()))?;
        let agreement = parse_agreement("agreement", text, self.policy.terminology())
            .map_err(|e| GovernanceError::Invalid(e.to_string()))?;
        let label = agreement.label();
        if !self.policy.controllers_of(&agreement).iter().any(|c| c == principal.organisation.as_str()) {
            return Err(GovernanceError::NotController(label));
        }
        let known = self
            .ledger()
            .await?
            .iter()
            .filter(|e| e.agreement.id == agreement.id)
            .map(|e| e.agreement.version)
            .max();
        if let Some(known) = known.filter(|k| *k >= agreement.version) {
            return Err(GovernanceError::Stale { label, known });
        }
        call.describe(json!({ "agreement": label }).to_string());
        call.intent(Arc::from("[]")).await?;
        let version = PublishedVersion {
            agreement_id: agreement.id.clone(),
            version: i64::from(agreement.version),
            body: text.to_owned(),
            published_by: format!("{}/{}", principal.client_id, principal.user_id),
            published_org: principal.organisation.as_str().to_owned(),
            published_at_us: crate::epoch_us::now(),
        };
        // Another publisher may have added this version (or a higher one) meanwhile.
        if !self.store.publish_agreement(&version).await.map_err(LedgerError::from)? {
            return Err(GovernanceError::Stale { label, known: agreement.version });
        }
        self.entry(&agreement.id, agreement.version).await
    }

    /// Records the approval of `id@version` by the requester's organisation; the last one
    /// needed puts the version in force at once in this process.
    pub async fn approve(
        &self,
        call: &mut AuditedCall,
        principal: &Principal,
        id: &str,
        version: u32,
    ) -> Result<LedgerEntry, GovernanceError> {
        let entry = self.entry(id, version).await?;
        let label = entry.agreement.label();
        let ods = principal.organisation.as_str();
        if !entry.controllers.iter().any(|c| c == ods) {
            return Err(GovernanceError::NotController(label));
        }
        if entry.approvals.iter().any(|a| a.ods_code == ods) {
            return Err(GovernanceError::AlreadyApproved(label));
        }
        if entry.origin == Origin::File || entry.state != VersionState::AwaitingApproval {
            return Err(GovernanceError::NotAwaiting(label));
        }
        call.describe(json!({ "agreement": label }).to_string());
        call.intent(Arc::from("[]")).await?;
        let approval = Approval {
            agreement_id: id.to_owned(),
            version: i64::from(version),
            ods_code: ods.to_owned(),
            user_id: principal.user_id.clone(),
            approved_at_us: crate::epoch_us::now(),
        };
        if !self.store.approve_agreement(&approval).await.map_err(LedgerError::from)? {
            return Err(GovernanceError::AlreadyApproved(label));
        }
        if self.policy.refresh(self.store.as_ref()).await? {
            tracing::info!(agreement = %label, "a new agreement version is in force");
        }
        self.entry(id, version).await
    }

    /// Applies a change of the source registry at once: the agreements decide data
    /// controllers by the sources registered now. A store that cannot be read leaves the policy
    /// to the next periodic refresh (which fails closed after three periods).
    pub async fn sources_changed(&self) {
        match self.policy.refresh(self.store.as_ref()).await {
            Ok(true) => tracing::info!("sharing agreements follow a change of the registered sources"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "sharing agreements could not follow a change of the registered sources yet")
            }
        }
    }

    async fn entry(&self, id: &str, version: u32) -> Result<LedgerEntry, GovernanceError> {
        self.ledger()
            .await?
            .into_iter()
            .find(|e| e.agreement.id == id && e.agreement.version == version)
            .ok_or(GovernanceError::NotFound)
    }
}
