//! What administrators decided about registered backend clients at run time: suspended,
//! reinstated or removed (`client_state`). The config lists the clients; a row here wins over
//! it at every start and on every replica, so a client suspended or removed through the API
//! stays so after a restart, and a removed one cannot come back through the config unseen.

use async_trait::async_trait;

use super::{Store, StoreError, err};

/// Where clients' run-time states are kept.
#[async_trait]
pub trait ClientStateStore: Send + Sync {
    /// Every client's stored state: `(client id, "active" | "suspended" | "removed")`.
    async fn client_states(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Writes `client_id`'s state over any stored before.
    async fn put_client_state(&self, client_id: &str, state: &str, at_us: i64) -> Result<(), StoreError>;
}

const UPSERT: &str = "INSERT INTO client_state (client_id, state, updated_at_us) VALUES ($1, $2, $3) \
     ON CONFLICT (client_id) DO UPDATE SET state = excluded.state, updated_at_us = excluded.updated_at_us";

#[async_trait]
impl ClientStateStore for Store {
    async fn client_states(&self) -> Result<Vec<(String, String)>, StoreError> {
        on_pool!(self, read, |p| sqlx::query_as(
            "SELECT client_id, state FROM client_state ORDER BY client_id"
        )
        .fetch_all(p)
        .await)
        .map_err(err("read client states"))
    }

    async fn put_client_state(&self, client_id: &str, state: &str, at_us: i64) -> Result<(), StoreError> {
        on_pool!(self, write, |p| sqlx::query(UPSERT)
            .bind(client_id)
            .bind(state)
            .bind(at_us)
            .execute(p)
            .await
            .map(drop))
        .map_err(err("write client state"))
    }
}
