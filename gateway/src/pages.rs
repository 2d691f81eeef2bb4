//! Paging: later pages of a search or `$everything` come from a snapshot taken when the first
//! page was answered, so a client paging through sees one consistent result.
//!
//! Links are opaque (a random 128-bit id), bound to the principal that made them (anyone else
//! gets 403) and expire. Snapshots live in this replica's memory by default (moka, TTL and a
//! bound on resources held), or in Redis (`[pages] redis_url`) so that any replica behind a load
//! balancer can serve any page.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use moka::future::Cache;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tideway_adapters::NormalisedResource;
use tideway_policy::Ask;
use tideway_profiles::ResourceFacts;
use tideway_profiles::elements::Subset;

use crate::Principal;

/// What later pages are served from.
#[derive(Debug)]
pub struct PageSnapshot {
    /// [`principal_key`] of the principal that made the search.
    pub owner: String,
    /// Every matching resource, in answer order.
    pub resources: Vec<NormalisedResource>,
    /// What supports the matches (`search.mode = include`); each page carries those linked to
    /// its own matches.
    pub includes: Vec<NormalisedResource>,
    /// How much of each match to send.
    pub subset: Subset,
    /// The outcome entry (rendered OperationOutcome) repeated on each page.
    pub outcome: Option<Value>,
    /// Entries per page.
    pub page_size: usize,
    /// The patient, for the audit trail.
    pub patient_id: Option<String>,
    /// The question first asked: later pages are decided again under it.
    pub ask: Ask,
}

/// Resources as a Redis snapshot keeps them: type, id, facts and the JSON as it is.
fn stored_resources(resources: &[NormalisedResource]) -> Result<Vec<StoredResource>, PageStoreError> {
    resources
        .iter()
        .map(|r| {
            let text = String::from_utf8(r.json.to_vec()).map_err(|_| PageStoreError("not UTF-8"))?;
            let j = RawValue::from_string(text).map_err(|_| PageStoreError("not JSON"))?;
            Ok(StoredResource { t: r.resource_type.clone(), i: r.id.clone(), f: Some((*r.facts).clone()), j })
        })
        .collect()
}

/// A resource read back from a Redis snapshot.
fn normalised(r: StoredResource) -> NormalisedResource {
    NormalisedResource {
        resource_type: r.t,
        id: r.i,
        facts: Arc::new(r.f.unwrap_or_else(|| {
            serde_json::from_str::<Value>(r.j.get()).map(|v| ResourceFacts::of(&v)).unwrap_or_default()
        })),
        json: Arc::from(r.j.get().as_bytes()),
    }
}

/// Identifies a principal for page ownership: the same client, user, role, organisation,
/// purpose and granted scopes.
pub fn principal_key(p: &Principal) -> String {
    let mut scopes = p.scopes.clone();
    scopes.sort();
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
        p.client_id,
        p.user_id,
        p.role.as_str(),
        p.organisation,
        p.purpose.code(),
        scopes.join(" ")
    )
}

/// The page store could not be used. Carries no data.
#[derive(Debug, thiserror::Error)]
#[error("page store: {0}")]
pub struct PageStoreError(&'static str);

/// Where snapshots are kept. Each principal may hold at most `quota` live snapshots: a new one
/// beyond that replaces that principal's oldest, so one user's many searches never push out
/// another user's page links.
#[derive(Clone)]
pub enum PageStore {
    /// This replica's memory.
    Memory {
        /// The snapshots.
        cache: Cache<String, Arc<PageSnapshot>>,
        /// Each owner's tokens, oldest first.
        owners: Arc<Mutex<HashMap<String, VecDeque<String>>>>,
        /// Live snapshots per principal.
        quota: usize,
    },
    /// Redis, shared by every replica.
    Redis {
        /// Reconnecting connection.
        conn: redis::aio::ConnectionManager,
        /// Snapshot lifetime.
        ttl: Duration,
        /// Live snapshots per principal.
        quota: usize,
        /// Deployment secret mixed into owner keys.
        salt: Arc<[u8]>,
    },
}

/// Redis list of one principal's tokens, newest first; keyed by a digest of the deployment's
/// secret and the principal, so Redis keys carry no user identifiers and two deployments
/// sharing one Redis never share a quota.
fn redis_owner_key(salt: &[u8], owner: &str) -> String {
    // HMAC under the deployment key, labelled for this use only.
    let digest = match Hmac::<Sha256>::new_from_slice(salt) {
        Ok(mut mac) => {
            mac.update(b"tideway-page-owner\0");
            mac.update(owner.as_bytes());
            mac.finalize().into_bytes()
        }
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => Sha256::digest(owner.as_bytes()),
    };
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("tideway:pages-of:{hex}")
}

const REDIS_PREFIX: &str = "tideway:page:";

/// Owners tracked before the memory store forgets those with no live link.
const OWNERS_PRUNE_AT: usize = 10_000;

#[derive(Serialize, Deserialize)]
struct StoredResource {
    t: String,
    i: String,
    /// Absent in snapshots written before facts were stored; read again from `j` then.
    #[serde(default)]
    f: Option<ResourceFacts>,
    j: Box<RawValue>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    owner: String,
    page_size: usize,
    patient_id: Option<String>,
    /// Absent in snapshots written before the question was stored: everything was asked.
    #[serde(default)]
    ask: Ask,
    outcome: Option<Value>,
    resources: Vec<StoredResource>,
    /// Absent in snapshots written before includes were kept apart: the gateway's own
    /// Provenance among `resources` is an include then.
    #[serde(default)]
    includes: Vec<StoredResource>,
    #[serde(default)]
    subset: Subset,
}

impl PageStore {
    /// An in-memory store: snapshots expire `ttl` after creation; at most `capacity`
    /// resources are held in all, and `quota` snapshots per principal.
    pub fn memory(ttl: Duration, capacity: u64, quota: usize) -> Self {
        let cache = Cache::builder()
            .time_to_live(ttl)
            .weigher(|_k: &String, v: &Arc<PageSnapshot>| {
                u32::try_from((v.resources.len() + v.includes.len()).max(1)).unwrap_or(u32::MAX)
            })
            .max_capacity(capacity)
            .build();
        Self::Memory { cache, owners: Arc::default(), quota: quota.max(1) }
    }

    /// A Redis-backed store (connects now, so a wrong URL fails at start-up).
    pub async fn redis(url: &str, ttl: Duration, quota: usize, salt: &[u8]) -> Result<Self, PageStoreError> {
        let client = redis::Client::open(url).map_err(|_| PageStoreError("invalid Redis URL"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|_| PageStoreError("cannot connect to Redis"))?;
        Ok(Self::Redis { conn, ttl, quota: quota.max(1), salt: Arc::from(salt) })
    }

    /// Stores `snapshot` and returns the link to the page starting at `offset`.
    pub async fn insert(
        &self,
        snapshot: Arc<PageSnapshot>,
        base_url: &str,
        offset: usize,
    ) -> Result<String, PageStoreError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        match self {
            Self::Memory { cache, owners, quota } => {
                let evicted: Vec<String> = {
                    let mut map = owners.lock().map_err(|_| PageStoreError("page owners lock poisoned"))?;
                    // Forget principals whose links have all expired, now and then, so the map
                    // does not grow with every principal ever seen.
                    if map.len() > OWNERS_PRUNE_AT {
                        map.retain(|_, tokens| tokens.iter().any(|t| cache.contains_key(t)));
                    }
                    let mine = map.entry(snapshot.owner.clone()).or_default();
                    mine.retain(|t| cache.contains_key(t));
                    let over = (mine.len() + 1).saturating_sub(*quota);
                    let evicted = mine.drain(..over).collect();
                    mine.push_back(token.clone());
                    evicted
                };
                for t in evicted {
                    cache.invalidate(&t).await;
                }
                cache.insert(token.clone(), snapshot).await;
            }
            Self::Redis { conn, ttl, quota, salt } => {
                let stored = StoredSnapshot {
                    owner: snapshot.owner.clone(),
                    page_size: snapshot.page_size,
                    patient_id: snapshot.patient_id.clone(),
                    ask: snapshot.ask.clone(),
                    outcome: snapshot.outcome.clone(),
                    resources: stored_resources(&snapshot.resources)?,
                    includes: stored_resources(&snapshot.includes)?,
                    subset: snapshot.subset.clone(),
                };
                let bytes = serde_json::to_vec(&stored).map_err(|_| PageStoreError("cannot serialise"))?;
                let mut conn = conn.clone();
                redis::cmd("SET")
                    .arg(format!("{REDIS_PREFIX}{token}"))
                    .arg(bytes)
                    .arg("EX")
                    .arg(ttl.as_secs().max(1))
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|_| PageStoreError("Redis write failed"))?;
                let owner = redis_owner_key(salt, &snapshot.owner);
                let (evicted,): (Vec<String>,) = redis::pipe()
                    .cmd("LPUSH")
                    .arg(&owner)
                    .arg(&token)
                    .ignore()
                    .cmd("LRANGE")
                    .arg(&owner)
                    .arg(*quota)
                    .arg(-1)
                    .cmd("LTRIM")
                    .arg(&owner)
                    .arg(0)
                    .arg(*quota - 1)
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(&owner)
                    .arg(ttl.as_secs().max(1))
                    .ignore()
                    .query_async(&mut conn)
                    .await
                    .map_err(|_| PageStoreError("Redis write failed"))?;
                if !evicted.is_empty() {
                    let keys: Vec<String> = evicted.iter().map(|t| format!("{REDIS_PREFIX}{t}")).collect();
                    redis::cmd("DEL")
                        .arg(keys)
                        .query_async::<()>(&mut conn)
                        .await
                        .map_err(|_| PageStoreError("Redis write failed"))?;
                }
            }
        }
        Ok(self.link(base_url, &token, offset))
    }

    /// The snapshot behind `token`, if it has not expired.
    pub async fn get(&self, token: &str) -> Result<Option<Arc<PageSnapshot>>, PageStoreError> {
        match self {
            Self::Memory { cache, .. } => Ok(cache.get(token).await),
            Self::Redis { conn, .. } => {
                // Tokens we mint are 32 hex digits; anything else cannot name a snapshot.
                if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Ok(None);
                }
                let mut conn = conn.clone();
                let bytes: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(format!("{REDIS_PREFIX}{token}"))
                    .query_async(&mut conn)
                    .await
                    .map_err(|_| PageStoreError("Redis read failed"))?;
                let Some(bytes) = bytes else { return Ok(None) };
                let stored: StoredSnapshot = serde_json::from_slice(&bytes)
                    .map_err(|_| PageStoreError("stored snapshot unreadable"))?;
                let (resources, mut includes): (Vec<_>, Vec<_>) = stored
                    .resources
                    .into_iter()
                    .map(normalised)
                    .partition(|r| !crate::bundle::is_included(r));
                includes.extend(stored.includes.into_iter().map(normalised));
                Ok(Some(Arc::new(PageSnapshot {
                    owner: stored.owner,
                    resources,
                    includes,
                    subset: stored.subset,
                    outcome: stored.outcome,
                    page_size: stored.page_size,
                    patient_id: stored.patient_id,
                    ask: stored.ask,
                })))
            }
        }
    }

    /// A page link.
    pub fn link(&self, base_url: &str, token: &str, offset: usize) -> String {
        format!("{base_url}/_page?id={token}&offset={offset}")
    }
}
