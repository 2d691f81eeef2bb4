//! The policy in force: the sharing agreements loaded at start-up (from `[policy]
//! agreements_dir`, or the region's examples shipped with the gateway) plus every published
//! version that all its data controllers have approved, with the code sets, for the registered
//! sources' data controllers. Any file or stored version that cannot be read or validated stops
//! the start, naming the file (or `id@version`), line and field: a gateway never runs under a
//! rule it could not read.
//!
//! [`PolicyInForce`] holds the current [`Policy`]; it is rebuilt at start, at once in the
//! process that records a version's last approval, and by every replica on a periodic refresh
//! (`[policy] refresh_secs`), so other replicas follow within that long. Each request works
//! under one snapshot from start to end ([`PolicyInForce::pinned`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use tideway_policy::agreement::{Controllers, parse_agreement};
use tideway_policy::{Agreement, Policy, PolicyError, Terminology};
use tideway_profiles::OdsCode;

use crate::store::{AgreementStore, Approval, PublishedVersion};

mod files;
mod ledger;

pub use files::load;
pub use ledger::{LedgerEntry, LedgerError, Origin, VersionState};

tokio::task_local! {
    /// The snapshot the current request works under: `(PolicyInForce::id, policy)`.
    static PINNED: (usize, Arc<Policy>);
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

struct Snapshot {
    policy: Arc<Policy>,
    /// `(id, version)` of the published versions applied in `policy`.
    applied: Vec<(String, u32)>,
    /// The `(source id, controller)` pairs `policy` decides by, sorted.
    sources: Vec<(String, OdsCode)>,
}

/// Where the registered sources' data controllers are read from at each refresh (the live
/// source registry), so a source registered while the gateway runs is known to the agreements.
pub type ControllerFeed = Arc<dyn Fn() -> Vec<(String, OdsCode)> + Send + Sync>;

/// The sharing agreements and code sets in force now, and what is needed to rebuild them.
pub struct PolicyInForce {
    /// Tells this instance's pinned snapshot from another's (several gateways in one process).
    id: usize,
    /// `(file name, text)` of every agreement file read at start.
    files: Vec<(String, String)>,
    /// The same, validated.
    file_agreements: Vec<Agreement>,
    terminology: Terminology,
    /// `(source id, controller ODS code)` of every registered source, as given at start, sorted.
    sources: Vec<(String, OdsCode)>,
    /// The live registry's controllers, once followed ([`Self::follow`]); `sources` until then.
    feed: std::sync::OnceLock<ControllerFeed>,
    snapshot: RwLock<Snapshot>,
    /// When the store last answered a refresh, and how long the policy in force may go
    /// unconfirmed (set by [`Self::spawn_refresh`]; `None`: no other replica can change it).
    confirmed: std::sync::Mutex<(std::time::Instant, Option<Duration>)>,
}

impl std::fmt::Debug for PolicyInForce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyInForce(..)")
    }
}

impl PolicyInForce {
    /// The policy of these agreement files alone, for these sources.
    pub fn new(
        files: Vec<(String, String)>,
        terminology: Terminology,
        sources: Vec<(String, OdsCode)>,
    ) -> Result<Self, PolicyError> {
        let mut sources = sources;
        sources.sort();
        let file_agreements = files
            .iter()
            .map(|(name, text)| parse_agreement(name, text, &terminology))
            .collect::<Result<Vec<_>, _>>()?;
        let policy = Policy::new(
            files.iter().map(|(n, t)| (n.as_str(), t.as_str())),
            terminology.clone(),
            sources.iter().cloned(),
        )?;
        let applied_sources = sources.clone();
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            files,
            file_agreements,
            terminology,
            sources,
            feed: std::sync::OnceLock::new(),
            snapshot: RwLock::new(Snapshot {
                policy: Arc::new(policy),
                applied: Vec::new(),
                sources: applied_sources,
            }),
            confirmed: std::sync::Mutex::new((std::time::Instant::now(), None)),
        })
    }

    /// Whether the policy in force is known to be current: the last refresh that read the
    /// store is no older than three refresh periods (at least 15 s). A replica that cannot read what other
    /// replicas approved cannot decide, and releases nothing (503).
    pub fn is_confirmed(&self) -> bool {
        let (at, limit) = *self.confirmed.lock().unwrap_or_else(PoisonError::into_inner);
        limit.is_none_or(|limit| at.elapsed() <= limit)
    }

    /// Records that the store answered now, and (when given) how long an answer holds.
    pub(crate) fn confirm(&self, limit: Option<Duration>) {
        let mut confirmed = self.confirmed.lock().unwrap_or_else(PoisonError::into_inner);
        confirmed.0 = std::time::Instant::now();
        if limit.is_some() {
            confirmed.1 = limit;
        }
    }

    /// The region's examples, for these sources.
    pub fn examples(sources: Vec<(String, OdsCode)>) -> Result<Self, PolicyError> {
        let files = tideway_policy::agreement::EXAMPLES
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect();
        Self::new(files, Terminology::embedded()?, sources)
    }

    /// The policy this request works under: the snapshot pinned for it, or else the latest.
    pub fn current(&self) -> Arc<Policy> {
        PINNED
            .try_with(|(id, policy)| (*id == self.id).then(|| policy.clone()))
            .ok()
            .flatten()
            .unwrap_or_else(|| self.latest())
    }

    /// The latest policy, whatever a request has pinned.
    pub fn latest(&self) -> Arc<Policy> {
        self.snapshot.read().unwrap_or_else(PoisonError::into_inner).policy.clone()
    }

    /// Runs `request` under the latest snapshot throughout, so an approval landing meanwhile
    /// cannot give one answer two policies (admitted under one, decided under another).
    pub async fn pinned<F: Future>(&self, request: F) -> F::Output {
        PINNED.scope((self.id, self.latest()), request).await
    }

    /// The code sets agreements are checked against.
    pub fn terminology(&self) -> &Terminology {
        &self.terminology
    }

    /// From now on, reads the registered sources' data controllers from `feed` at every
    /// refresh instead of the list given at start. Only the first call counts.
    pub fn follow(&self, feed: ControllerFeed) {
        let _ = self.feed.set(feed);
    }

    /// `(source id, controller ODS code)` of every registered source now, sorted.
    fn sources_now(&self) -> Vec<(String, OdsCode)> {
        match self.feed.get() {
            Some(feed) => {
                let mut sources = feed();
                sources.sort();
                sources
            }
            None => self.sources.clone(),
        }
    }

    /// The controllers `agreement` names, sorted (for `controllers = ["*"]`, those of every
    /// source registered now).
    pub fn controllers_of(&self, agreement: &Agreement) -> Vec<String> {
        named_by(agreement, &controllers_in(&self.sources_now()))
    }

    /// Every version known, files and published, with where each stands, by id then version,
    /// for the sources registered now.
    pub fn ledger(
        &self,
        published: &[PublishedVersion],
        approvals: &[Approval],
    ) -> Result<Vec<LedgerEntry>, PolicyError> {
        self.ledger_under(published, approvals, &controllers_in(&self.sources_now()))
    }

    /// The ledger when `registered` are the registered sources' data controllers.
    fn ledger_under(
        &self,
        published: &[PublishedVersion],
        approvals: &[Approval],
        registered: &[String],
    ) -> Result<Vec<LedgerEntry>, PolicyError> {
        let mut entries: Vec<LedgerEntry> = self
            .file_agreements
            .iter()
            .map(|a| LedgerEntry {
                controllers: named_by(a, registered),
                agreement: a.clone(),
                origin: Origin::File,
                approvals: Vec::new(),
                state: VersionState::Superseded,
            })
            .collect();
        for p in published {
            let agreement = parse_agreement(&stored_name(p), &p.body, &self.terminology)?;
            let approvals = approvals
                .iter()
                .filter(|a| a.agreement_id == p.agreement_id && a.version == p.version)
                .cloned()
                .collect();
            entries.push(LedgerEntry {
                controllers: named_by(&agreement, registered),
                agreement,
                origin: Origin::Published(p.clone()),
                approvals,
                state: VersionState::Superseded,
            });
        }
        entries.sort_by(|a, b| {
            (&a.agreement.id, a.agreement.version).cmp(&(&b.agreement.id, b.agreement.version))
        });
        // A new version needs the approval of the controllers of the version before it too: no
        // controller can end another's part in an agreement (or change what the other shares)
        // on its own.
        let own: Vec<Vec<String>> = entries.iter().map(|e| e.controllers.clone()).collect();
        for i in 1..entries.len() {
            if entries[i].agreement.id == entries[i - 1].agreement.id
                && matches!(entries[i].origin, Origin::Published(_))
            {
                let controllers = &mut entries[i].controllers;
                controllers.extend(own[i - 1].iter().filter(|c| !own[i].contains(c)).cloned());
                controllers.sort();
            }
        }
        let mut in_force: BTreeMap<String, u32> = BTreeMap::new();
        for e in entries.iter().filter(|e| e.approved()) {
            let v = in_force.entry(e.agreement.id.clone()).or_insert(e.agreement.version);
            *v = (*v).max(e.agreement.version);
        }
        for e in &mut entries {
            let current = in_force.get(&e.agreement.id).copied();
            e.state = if current == Some(e.agreement.version) {
                VersionState::InForce
            } else if e.approved() || current.is_some_and(|c| e.agreement.version < c) {
                VersionState::Superseded
            } else {
                VersionState::AwaitingApproval
            };
        }
        Ok(entries)
    }

    /// Reads the store and, if the approved versions or the registered sources' controllers
    /// differ from those applied, rebuilds the policy. Whether it changed.
    ///
    /// A data controller registered since a `controllers = ["*"]` version was approved has
    /// not approved it: until it does, that version awaits again and the one before it is in
    /// force (no controller's data is shared under terms it has not approved).
    pub async fn refresh(&self, store: &dyn AgreementStore) -> Result<bool, LedgerError> {
        let sources = self.sources_now();
        let published = store.published_agreements().await?;
        let approvals = store.agreement_approvals().await?;
        // One reading of the registry for both the approvals needed and the policy built.
        let ledger = self.ledger_under(&published, &approvals, &controllers_in(&sources))?;
        let applied: Vec<(&LedgerEntry, &PublishedVersion)> = ledger
            .iter()
            .filter(|e| e.state == VersionState::InForce)
            .filter_map(|e| match &e.origin {
                Origin::Published(p) => Some((e, p)),
                Origin::File => None,
            })
            .collect();
        let keys: Vec<(String, u32)> =
            applied.iter().map(|(e, _)| (e.agreement.id.clone(), e.agreement.version)).collect();
        {
            let snapshot = self.snapshot.read().unwrap_or_else(PoisonError::into_inner);
            if snapshot.applied == keys && snapshot.sources == sources {
                return Ok(false);
            }
        }
        let names: Vec<String> = applied.iter().map(|(_, p)| stored_name(p)).collect();
        let policy = Policy::new(
            self.files
                .iter()
                .map(|(n, t)| (n.as_str(), t.as_str()))
                .chain(names.iter().zip(&applied).map(|(n, (_, p))| (n.as_str(), p.body.as_str()))),
            self.terminology.clone(),
            sources.iter().cloned(),
        )?;
        let mut snapshot = self.snapshot.write().unwrap_or_else(PoisonError::into_inner);
        *snapshot = Snapshot { policy: Arc::new(policy), applied: keys, sources };
        Ok(true)
    }

    /// Refreshes every `every` for as long as the policy is in use, keeping the policy in force
    /// when the store cannot be read (it only ever gains approved versions).
    pub fn spawn_refresh(self: &Arc<Self>, store: Arc<dyn AgreementStore>, every: Duration) {
        // Three periods, and never under 15 s, so a busy moment is not an outage.
        self.confirm(Some(every.saturating_mul(3).max(Duration::from_secs(15))));
        let policy: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(policy) = policy.upgrade() else { break };
                match policy.refresh(store.as_ref()).await {
                    Ok(changed) => {
                        policy.confirm(None);
                        if changed {
                            tracing::info!("sharing agreements in force changed");
                        }
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "sharing agreements could not be refreshed; after three refresh periods nothing is released"
                    ),
                }
            }
        });
    }
}

/// The distinct ODS codes of these sources' data controllers, sorted: whose approval an
/// agreement for `controllers = ["*"]` needs.
fn controllers_in(sources: &[(String, OdsCode)]) -> Vec<String> {
    let all: BTreeSet<&str> = sources.iter().map(|(_, ods)| ods.as_str()).collect();
    all.into_iter().map(str::to_owned).collect()
}

/// The controllers `agreement` names, sorted, when `registered` are the registered ones.
fn named_by(agreement: &Agreement, registered: &[String]) -> Vec<String> {
    match &agreement.controllers {
        Controllers::Every => registered.to_vec(),
        Controllers::Only(set) => set.iter().map(|o| o.as_str().to_owned()).collect(),
    }
}

/// How a stored version is named in errors.
fn stored_name(p: &PublishedVersion) -> String {
    format!("{}@{} (published)", p.agreement_id, p.version)
}

#[cfg(test)]
mod tests;
