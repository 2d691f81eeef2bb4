//! Replay protection for client assertions: each `jti` may be used once per client while the
//! assertion could still be accepted. The gateway implements [`ReplayGuard`] over its shared
//! store so that every replica sees the same history; [`InMemoryReplayGuard`] serves tests and
//! single-process deployments.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

/// The replay store could not answer. The token endpoint then refuses the request (fail
/// closed) with `temporarily_unavailable`. It carries no detail on purpose: the implementor
/// logs its own cause, and nothing of the request can leak through this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the replay store is unavailable")]
pub struct ReplayStoreError;

/// Remembers which assertion ids (`jti`) each client has used.
#[async_trait]
pub trait ReplayGuard: Send + Sync {
    /// Atomically records `(client_id, jti)` and says whether it was new: `true` if it had
    /// never been seen (it is now remembered until `expires_at`), `false` if it is a replay.
    /// Entries past their `expires_at` may be forgotten.
    async fn first_use(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, ReplayStoreError>;
}

/// A [`ReplayGuard`] in process memory: for tests and a single gateway process only, since
/// replicas would not see each other's entries and a restart forgets them all.
#[derive(Debug, Default)]
pub struct InMemoryReplayGuard {
    seen: Mutex<HashMap<(String, String), OffsetDateTime>>,
}

impl InMemoryReplayGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many entries are remembered (expired ones may linger until the next call).
    pub fn len(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ReplayGuard for InMemoryReplayGuard {
    async fn first_use(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, ReplayStoreError> {
        let now = OffsetDateTime::now_utc();
        let mut seen = self.seen.lock().map_err(|_| ReplayStoreError)?;
        // Purging on every call keeps memory bounded by the assertions of the last few
        // minutes; a linear sweep is cheap at single-process volumes.
        seen.retain(|_, until| *until > now);
        let key = (client_id.to_owned(), jti.to_owned());
        if seen.contains_key(&key) {
            return Ok(false);
        }
        seen.insert(key, expires_at);
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic is a test failure")]
mod tests {
    use super::*;
    use time::Duration;

    #[tokio::test]
    async fn second_use_of_a_jti_is_a_replay() {
        let guard = InMemoryReplayGuard::new();
        let until = OffsetDateTime::now_utc() + Duration::minutes(5);
        assert!(guard.first_use("a", "j1", until).await.unwrap());
        assert!(!guard.first_use("a", "j1", until).await.unwrap());
    }

    #[tokio::test]
    async fn jtis_are_scoped_per_client() {
        let guard = InMemoryReplayGuard::new();
        let until = OffsetDateTime::now_utc() + Duration::minutes(5);
        assert!(guard.first_use("a", "j1", until).await.unwrap());
        assert!(guard.first_use("b", "j1", until).await.unwrap());
        // No delimiter ambiguity between client id and jti.
        assert!(guard.first_use("a:j", "1", until).await.unwrap());
        assert!(guard.first_use("a", "j:1", until).await.unwrap());
    }

    #[tokio::test]
    async fn expired_entries_are_purged() {
        let guard = InMemoryReplayGuard::new();
        let past = OffsetDateTime::now_utc() - Duration::seconds(1);
        assert!(guard.first_use("a", "old", past).await.unwrap());
        let until = OffsetDateTime::now_utc() + Duration::minutes(5);
        assert!(guard.first_use("a", "new", until).await.unwrap());
        assert_eq!(guard.len(), 1);
    }
}
