//! What secondary use keeps: the National Data Opt-out list, the registered population the
//! bulk export and the aggregates walk (the patient index and its source links, loaded in bulk
//! from the registration feed), and the dashboards' latest population figures; export jobs are
//! [`super::ExportJobStore`]'s.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{ExportJobStore, Store, StoreError, err};

/// Which of the registered population a walk covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cohort {
    /// Every patient the patient index knows.
    Everyone,
    /// Patients the locator links to this source (a borough exchange).
    HeldBy(String),
}

/// Where secondary use keeps its state.
#[async_trait]
pub trait SecondaryStore: ExportJobStore + Send + Sync {
    /// Replaces every opt-out of `origin` with `nhs_numbers` (a file feed is the whole list).
    async fn replace_opt_outs(&self, origin: &str, nhs_numbers: &[String]) -> Result<(), StoreError>;
    /// Adds opt-outs under `origin` (already present ones stay).
    async fn add_opt_outs(&self, origin: &str, nhs_numbers: &[String]) -> Result<(), StoreError>;
    /// Removes opt-outs recorded under `origin`.
    async fn remove_opt_outs(&self, origin: &str, nhs_numbers: &[String]) -> Result<(), StoreError>;
    /// How many patients are opted out under `origin` (for the operator who loads the feed;
    /// never published with population data).
    async fn opt_out_count(&self, origin: &str) -> Result<i64, StoreError>;

    /// Registers a source's population: each `(patient id, NHS number, local id)` joins the
    /// patient index and the locator links it to `source_id`, in one transaction.
    async fn register_population(
        &self,
        source_id: &str,
        patients: &[(String, String, String)],
    ) -> Result<(), StoreError>;
    /// The next `limit` patients of `cohort` after `after` (in patient id order), as
    /// `(patient id, NHS number)`, leaving out every opted-out patient.
    async fn cohort_page(
        &self,
        cohort: &Cohort,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// How many patients `cohort` holds, opted-out patients left out.
    async fn cohort_size(&self, cohort: &Cohort) -> Result<i64, StoreError>;

    /// Stores the latest population figures.
    async fn save_population_figures(&self, body: &str) -> Result<(), StoreError>;
    /// The latest population figures and when they were made.
    async fn population_figures(&self) -> Result<Option<(String, i64)>, StoreError>;
}

fn now_us() -> i64 {
    crate::epoch_us::now()
}

/// Runs one statement per NHS number (`$1`, with the origin `$2` and, when `timed`, the time
/// `$3`) in one transaction.
async fn each_number(
    store: &Store,
    sql: &'static str,
    timed: bool,
    origin: &str,
    nhs: &[String],
) -> Result<(), StoreError> {
    let now = now_us();
    on_pool!(store, write, |p| {
        let mut tx = p.begin().await.map_err(err("begin"))?;
        for n in nhs {
            let q = sqlx::query(sql).bind(n).bind(origin);
            let q = if timed { q.bind(now) } else { q };
            q.execute(&mut *tx).await.map_err(err("change opt-outs"))?;
        }
        tx.commit().await.map_err(err("commit opt-outs"))
    })
}

const ADD_OPT_OUT: &str = "INSERT INTO national_opt_out (nhs_number, origin, recorded_us) VALUES ($1, $2, $3) \
                           ON CONFLICT (nhs_number, origin) DO NOTHING";

/// The cohort's filter on `patient_index AS p`, and whether it takes a source id as `$1`.
fn cohort_clause(cohort: &Cohort) -> &'static str {
    match cohort {
        Cohort::Everyone => "TRUE",
        Cohort::HeldBy(_) => {
            "EXISTS (SELECT 1 FROM patient_source s WHERE s.patient_id = p.patient_id AND s.source_id = $1 \
             AND s.local_id IS NOT NULL)"
        }
    }
}

const NOT_OPTED_OUT: &str = "NOT EXISTS (SELECT 1 FROM national_opt_out o WHERE o.nhs_number = p.nhs_number)";

#[async_trait]
impl SecondaryStore for Store {
    async fn replace_opt_outs(&self, origin: &str, nhs_numbers: &[String]) -> Result<(), StoreError> {
        let now = now_us();
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await.map_err(err("begin"))?;
            sqlx::query("DELETE FROM national_opt_out WHERE origin = $1")
                .bind(origin)
                .execute(&mut *tx)
                .await
                .map_err(err("replace opt-outs"))?;
            for n in nhs_numbers {
                sqlx::query(ADD_OPT_OUT)
                    .bind(n)
                    .bind(origin)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("replace opt-outs"))?;
            }
            tx.commit().await.map_err(err("commit opt-outs"))
        })
    }

    async fn add_opt_outs(&self, origin: &str, nhs_numbers: &[String]) -> Result<(), StoreError> {
        each_number(self, ADD_OPT_OUT, true, origin, nhs_numbers).await
    }

    async fn remove_opt_outs(&self, origin: &str, nhs_numbers: &[String]) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM national_opt_out WHERE nhs_number = $1 AND origin = $2";
        each_number(self, SQL, false, origin, nhs_numbers).await
    }

    async fn opt_out_count(&self, origin: &str) -> Result<i64, StoreError> {
        on_pool!(self, read, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM national_opt_out WHERE origin = $1"
        )
        .bind(origin)
        .fetch_one(p)
        .await)
        .map_err(err("count opt-outs"))
    }

    async fn register_population(
        &self,
        source_id: &str,
        patients: &[(String, String, String)],
    ) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await.map_err(err("begin"))?;
            for (patient_id, nhs, local) in patients {
                sqlx::query(
                    "INSERT INTO patient_index (patient_id, nhs_number, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (nhs_number) DO UPDATE SET patient_id = excluded.patient_id",
                )
                .bind(patient_id)
                .bind(nhs)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(err("register patient"))?;
                sqlx::query(
                    "INSERT INTO patient_source (patient_id, source_id, local_id, seen_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (patient_id, source_id) DO UPDATE SET local_id = excluded.local_id, seen_at = excluded.seen_at",
                )
                .bind(patient_id)
                .bind(source_id)
                .bind(local)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(err("register link"))?;
            }
            tx.commit().await.map_err(err("commit registrations"))
        })
    }

    async fn cohort_page(
        &self,
        cohort: &Cohort,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let (source, first) = match cohort {
            Cohort::Everyone => ("", 1),
            Cohort::HeldBy(s) => (s.as_str(), 2),
        };
        let sql = format!(
            "SELECT p.patient_id, p.nhs_number FROM patient_index p WHERE {} AND {NOT_OPTED_OUT} \
             AND p.patient_id > ${first} ORDER BY p.patient_id LIMIT ${}",
            cohort_clause(cohort),
            first + 1
        );
        let after = after.unwrap_or("");
        on_pool!(self, read, |p| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            if first == 2 {
                q = q.bind(source);
            }
            q.bind(after).bind(limit).fetch_all(p).await
        })
        .map_err(err("read cohort"))
    }

    async fn cohort_size(&self, cohort: &Cohort) -> Result<i64, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) FROM patient_index p WHERE {} AND {NOT_OPTED_OUT}",
            cohort_clause(cohort)
        );
        on_pool!(self, read, |p| {
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
            if let Cohort::HeldBy(s) = cohort {
                q = q.bind(s.as_str());
            }
            q.fetch_one(p).await
        })
        .map_err(err("count cohort"))
    }

    async fn save_population_figures(&self, body: &str) -> Result<(), StoreError> {
        on_pool!(self, write, |p| sqlx::query(
            "INSERT INTO population_figures (figures_id, body, generated_us) VALUES ('latest', $1, $2) \
             ON CONFLICT (figures_id) DO UPDATE SET body = excluded.body, generated_us = excluded.generated_us",
        )
        .bind(body)
        .bind(now_us())
        .execute(p)
        .await
        .map(drop))
        .map_err(err("save population figures"))
    }

    async fn population_figures(&self) -> Result<Option<(String, i64)>, StoreError> {
        on_pool!(self, read, |p| sqlx::query_as(
            "SELECT body, generated_us FROM population_figures WHERE figures_id = 'latest'"
        )
        .fetch_optional(p)
        .await)
        .map_err(err("read population figures"))
    }
}
