//! Which patient each resource handed out belongs to (`Type/id` -> the gateway's patient id),
//! kept in the shared store when several replicas serve one region, so a read by id reaching a
//! replica that never fetched that record still finds the patient whose record answers it.
//! Written in the background after a record is fetched from its source; pruned by age.

use async_trait::async_trait;

use super::{Store, StoreError, err};

/// Where the owners of handed-out resources are kept.
#[async_trait]
pub trait ResourceOwners: Send + Sync {
    /// Notes that the resources `keys` (`Type/id`) belong to `patient_id`, as of `at_us`.
    async fn note_owners(&self, patient_id: &str, keys: &[String], at_us: i64) -> Result<(), StoreError>;

    /// The patient `key` belongs to, if noted since `since_us`.
    async fn owner_of(&self, key: &str, since_us: i64) -> Result<Option<String>, StoreError>;

    /// Forgets owners noted before `before_us`.
    async fn prune_owners(&self, before_us: i64) -> Result<(), StoreError>;
}

#[async_trait]
impl ResourceOwners for Store {
    async fn note_owners(&self, patient_id: &str, keys: &[String], at_us: i64) -> Result<(), StoreError> {
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await.map_err(err("begin"))?;
            for key in keys {
                sqlx::query(
                    "INSERT INTO resource_owner (resource_key, patient_id, noted_at_us) VALUES ($1, $2, $3) \
                     ON CONFLICT (resource_key) DO UPDATE SET patient_id = excluded.patient_id, \
                     noted_at_us = excluded.noted_at_us",
                )
                .bind(key)
                .bind(patient_id)
                .bind(at_us)
                .execute(&mut *tx)
                .await
                .map_err(err("note resource owner"))?;
            }
            tx.commit().await.map_err(err("commit resource owners"))?;
            Ok(())
        })
    }

    async fn owner_of(&self, key: &str, since_us: i64) -> Result<Option<String>, StoreError> {
        on_pool!(self, read, |p| sqlx::query_scalar(
            "SELECT patient_id FROM resource_owner WHERE resource_key = $1 AND noted_at_us >= $2"
        )
        .bind(key)
        .bind(since_us)
        .fetch_optional(p)
        .await)
        .map_err(err("read resource owner"))
    }

    async fn prune_owners(&self, before_us: i64) -> Result<(), StoreError> {
        on_pool!(self, write, |p| {
            sqlx::query("DELETE FROM resource_owner WHERE noted_at_us < $1")
                .bind(before_us)
                .execute(p)
                .await
                .map_err(err("prune resource owners"))?;
            Ok(())
        })
    }
}
