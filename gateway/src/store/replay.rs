//! Used client-assertion ids, shared by every replica through the store.

use async_trait::async_trait;
use tideway_auth::replay::{ReplayGuard, ReplayStoreError};
use time::OffsetDateTime;

use super::{Store, StoreError, err};

impl Store {
    /// Remembers a client assertion id until it expires; false if it was already used.
    pub async fn first_use_of_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let affected = on_pool!(self, write, |p| {
            sqlx::query("DELETE FROM used_jti WHERE expires_at < $1")
                .bind(now)
                .execute(p)
                .await
                .map_err(err("purge jti"))?;
            sqlx::query("INSERT INTO used_jti (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(client_id)
                .bind(jti)
                .bind(expires_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(err("remember jti"))?;
        Ok(affected == 1)
    }
}

/// The store as the auth crate's replay guard, so a replayed assertion is refused on every
/// replica.
#[derive(Debug, Clone)]
pub struct StoreReplayGuard(pub Store);

#[async_trait]
impl ReplayGuard for StoreReplayGuard {
    async fn first_use(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, ReplayStoreError> {
        self.0
            .first_use_of_jti(client_id, jti, expires_at.unix_timestamp())
            .await
            .map_err(|_| ReplayStoreError)
    }
}
