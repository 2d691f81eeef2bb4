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
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use tideway_adapters::SourceConfig;
use tideway_policy::agreement::{Controllers, parse_agreement};
use tideway_policy::{Agreement, Policy, PolicyError, Terminology};
use tideway_profiles::OdsCode;

use crate::app::StartError;
use crate::config::PolicySettings;
use crate::store::{AgreementStore, Approval, PublishedVersion, StoreError};

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

    fn approved(&self) -> bool {
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

/// The policy for these settings and sources: the agreement files and every fully approved
/// published version in `store`.
pub async fn load(
    settings: &PolicySettings,
    sources: &[SourceConfig],
    store: &dyn AgreementStore,
) -> Result<PolicyInForce, StartError> {
    let controllers: Vec<(String, OdsCode)> =
        sources.iter().map(|s| (s.id.to_string(), s.ods_code.clone())).collect();
    let fail = |e: PolicyError| StartError::Policy(e.to_string());
    let policy = match &settings.agreements_dir {
        None => PolicyInForce::examples(controllers).map_err(fail)?,
        Some(dir) => {
            let files = read_dir(dir)?;
            let terminology = Terminology::embedded().map_err(|e| StartError::Policy(e.to_string()))?;
            PolicyInForce::new(files, terminology, controllers).map_err(fail)?
        }
    };
    policy.refresh(store).await.map_err(|e| StartError::Policy(e.to_string()))?;
    Ok(policy)
}

/// Every `*.toml` file in `dir`, as `(file name, text)`, in name order.
fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, StartError> {
    let fail = |e: std::io::Error| StartError::Policy(format!("{}: {e}", dir.display()));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let path = entry.map_err(fail)?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let text =
                std::fs::read_to_string(&path).map_err(|e| StartError::Policy(format!("{name}: {e}")))?;
            files.push((name, text));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tideway-agreements-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    fn settings(dir: &Path) -> PolicySettings {
        PolicySettings { agreements_dir: Some(dir.to_owned()), ..PolicySettings::default() }
    }

    #[tokio::test]
    async fn a_directory_of_agreements_loads_and_a_bad_file_stops_the_start_naming_its_line() {
        let store = crate::store::memory::MemoryStore::default();
        let good = tideway_policy::agreement::EXAMPLES[2].1;
        let dir = dir_with(&[("podiatry.toml", good), ("README.txt", "not an agreement")]);
        let policy = load(&settings(&dir), &[], &store).await.unwrap();
        assert_eq!(policy.current().agreements().len(), 1);
        std::fs::write(
            dir.join("zz-bad.toml"),
            good.replace("id = \"podiatry\"", "id = \"other\"").replace("\"R8003\"", "\"nurse\""),
        )
        .unwrap();
        let err = load(&settings(&dir), &[], &store).await.unwrap_err().to_string();
        assert!(err.contains("zz-bad.toml:") && err.contains("recipients.roles"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        let err = load(&settings(&dir_with(&[])), &[], &store).await.unwrap_err().to_string();
        assert!(err.contains("no sharing agreement"), "{err}");
        let missing = load(&settings(Path::new("/nonexistent/agreements")), &[], &store).await;
        assert!(missing.is_err());
    }

    fn ods(code: &str) -> OdsCode {
        OdsCode::parse(code).unwrap()
    }

    fn published(version: i64, body: String) -> PublishedVersion {
        PublishedVersion {
            agreement_id: "podiatry".into(),
            version,
            body,
            published_by: "c/u".into(),
            published_org: "LBX01".into(),
            published_at_us: 0,
        }
    }

    fn approval(version: i64, ods: &str) -> Approval {
        Approval {
            agreement_id: "podiatry".into(),
            version,
            ods_code: ods.into(),
            user_id: "u".into(),
            approved_at_us: 0,
        }
    }

    fn podiatry_version(p: &PolicyInForce) -> u32 {
        p.latest().agreements().iter().find(|a| a.id == "podiatry").unwrap().version
    }

    #[tokio::test]
    async fn a_published_version_applies_only_once_every_controller_has_approved_it() {
        let policy = PolicyInForce::examples(vec![
            ("a".into(), ods("LBX01")),
            ("b".into(), ods("LBX02")),
            ("c".into(), ods("LBX02")),
        ])
        .unwrap();
        let store = crate::store::memory::MemoryStore::default();
        let v2 = tideway_policy::agreement::EXAMPLES[2].1.replace("version = 1", "version = 2");
        assert!(store.publish_agreement(&published(2, v2)).await.unwrap());
        assert!(!policy.refresh(&store).await.unwrap());
        let ledger = policy.ledger(&store.published_agreements().await.unwrap(), &[]).unwrap();
        let v2 = ledger.iter().find(|e| e.agreement.label() == "podiatry@2").unwrap();
        assert_eq!(v2.state, VersionState::AwaitingApproval);
        assert_eq!(v2.awaiting(), ["LBX01", "LBX02"], "each controller once, for controllers = [\"*\"]");
        store.approve_agreement(&approval(2, "LBX01")).await.unwrap();
        assert!(!policy.refresh(&store).await.unwrap());
        assert_eq!(podiatry_version(&policy), 1, "the previous version stays in force");
        // A request that started before the last approval keeps its snapshot.
        let pinned = policy.pinned(async {
            store.approve_agreement(&approval(2, "LBX02")).await.unwrap();
            assert!(policy.refresh(&store).await.unwrap());
            policy.current().agreements().iter().find(|a| a.id == "podiatry").unwrap().version
        });
        assert_eq!(pinned.await, 1);
        assert_eq!(podiatry_version(&policy), 2);
        let ledger = policy
            .ledger(&store.published_agreements().await.unwrap(), &store.agreement_approvals().await.unwrap())
            .unwrap();
        let states: Vec<_> =
            ledger.iter().filter(|e| e.agreement.id == "podiatry").map(|e| e.state.code()).collect();
        assert_eq!(states, ["superseded", "in-force"]);
        // A version naming fewer controllers needs those it drops too: LBX02 cannot be cut out of
        // podiatry by LBX01 alone.
        let narrower = tideway_policy::agreement::EXAMPLES[2]
            .1
            .replace("version = 1", "version = 3")
            .replace("controllers = [\"*\"]", "controllers = [\"LBX01\"]");
        assert!(narrower.contains("controllers = [\"LBX01\"]"), "the example names every controller");
        store.publish_agreement(&published(3, narrower)).await.unwrap();
        store.approve_agreement(&approval(3, "LBX01")).await.unwrap();
        assert!(!policy.refresh(&store).await.unwrap());
        let ledger = policy
            .ledger(&store.published_agreements().await.unwrap(), &store.agreement_approvals().await.unwrap())
            .unwrap();
        let v3 = ledger.iter().find(|e| e.agreement.label() == "podiatry@3").unwrap();
        assert_eq!(v3.awaiting(), ["LBX02"]);
        store.approve_agreement(&approval(3, "LBX02")).await.unwrap();
        assert!(policy.refresh(&store).await.unwrap());
        assert_eq!(podiatry_version(&policy), 3);
        // A stored version that no longer validates is named.
        store.publish_agreement(&published(4, "id = \"podiatry\"\nversion = 4\n".into())).await.unwrap();
        let err = policy.refresh(&store).await.unwrap_err().to_string();
        assert!(err.starts_with("podiatry@4 (published):"), "{err}");
        assert_eq!(podiatry_version(&policy), 3, "the policy in force is kept");
    }
}
