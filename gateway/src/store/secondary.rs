//! What secondary use keeps: the National Data Opt-out list, the registered population the
//! bulk export and the aggregates walk (the patient index and its source links, loaded in bulk
//! from the registration feed), export jobs with their progress, and the dashboards' latest
//! population figures.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Store, StoreError, err};

/// Which of the registered population a walk covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cohort {
    /// Every patient the patient index knows.
    Everyone,
    /// Patients the locator links to this source (a borough exchange).
    HeldBy(String),
}

/// One export job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJobRow {
    /// The job's id (random, unguessable: it is in the status URL).
    pub job_id: String,
    /// Who started it, as JSON (the only principal served its status and files).
    pub owner: String,
    /// The kick-off request URL, as the manifest's `request`.
    pub request: String,
    /// What was asked (group, types, since), as JSON.
    pub params: String,
    /// `queued`, `running`, `completed`, `failed` or `cancelled`.
    pub state: String,
    /// The manifest's `transactionTime`.
    pub transaction_time: String,
    /// The last patient id written, when any.
    pub cursor: Option<String>,
    /// Patients walked so far.
    pub patients_done: i64,
    /// Patients in the cohort when the job started.
    pub patients_total: i64,
    /// Outputs and errors so far, as JSON (counts and file sizes, never content).
    pub progress: String,
    /// When it was started, microseconds since the epoch.
    pub created_us: i64,
    /// When it last changed.
    pub updated_us: i64,
}

/// How far a job has got, written after each page of patients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobProgress<'a> {
    /// The job's state after this step.
    pub state: &'a str,
    /// The last patient id written.
    pub cursor: Option<&'a str>,
    /// Patients walked so far.
    pub patients_done: i64,
    /// Outputs and errors so far, as JSON.
    pub progress: &'a str,
}

/// Where secondary use keeps its state.
#[async_trait]
pub trait SecondaryStore: Send + Sync {
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

    /// Stores a new job.
    async fn create_export_job(&self, job: &ExportJobRow) -> Result<(), StoreError>;
    /// The job with this id.
    async fn export_job(&self, job_id: &str) -> Result<Option<ExportJobRow>, StoreError>;
    /// Records a job's progress (and state).
    async fn save_export_progress(&self, job_id: &str, step: &JobProgress<'_>) -> Result<(), StoreError>;
    /// Sets a job's state, unless it has already reached a final one (a cancelled job stays
    /// cancelled whatever its runner says last). Returns whether it changed.
    async fn set_export_state(&self, job_id: &str, state: &str) -> Result<bool, StoreError>;
    /// Marks a job failed, with its tally, unless it already finished.
    async fn fail_export_job(&self, job_id: &str, progress: &str) -> Result<(), StoreError>;
    /// Forgets a job (and its lease). Returns whether there was one.
    async fn remove_export_job(&self, job_id: &str) -> Result<bool, StoreError>;
    /// Takes or renews `holder`'s lease on a job until `until_us`: granted when no lease is
    /// held, when `holder` holds it, or when the one held lapsed before `now_us`. Returns
    /// whether it was granted.
    async fn lease_export_job(
        &self,
        job_id: &str,
        holder: &str,
        now_us: i64,
        until_us: i64,
    ) -> Result<bool, StoreError>;
    /// Gives `holder`'s lease on a job up, if it still holds it.
    async fn release_export_job(&self, job_id: &str, holder: &str) -> Result<(), StoreError>;
    /// Jobs not yet finished (queued or running) that no run holds a live lease on at
    /// `now_us`, oldest first: to be resumed.
    async fn unfinished_export_jobs(&self, now_us: i64) -> Result<Vec<ExportJobRow>, StoreError>;
    /// The newest jobs, newest first (for the operations dashboard).
    async fn recent_export_jobs(&self, limit: i64) -> Result<Vec<ExportJobRow>, StoreError>;
    /// Jobs that finished (completed, failed or cancelled) before `before_us`, oldest first:
    /// past their retention.
    async fn finished_export_jobs(&self, before_us: i64) -> Result<Vec<String>, StoreError>;

    /// Stores the latest population figures.
    async fn save_population_figures(&self, body: &str) -> Result<(), StoreError>;
    /// The latest population figures and when they were made.
    async fn population_figures(&self) -> Result<Option<(String, i64)>, StoreError>;
}

fn now_us() -> i64 {
    crate::epoch_us::now()
}

/// The states a job never leaves.
const FINAL: &str = "('completed', 'failed', 'cancelled')";

const JOB_COLUMNS: &str = "job_id, owner, request, params, state, transaction_time, cursor, patients_done, \
                           patients_total, progress, created_us, updated_us";

type JobTuple = (String, String, String, String, String, String, Option<String>, i64, i64, String, i64, i64);

fn job_of(r: JobTuple) -> ExportJobRow {
    ExportJobRow {
        job_id: r.0,
        owner: r.1,
        request: r.2,
        params: r.3,
        state: r.4,
        transaction_time: r.5,
        cursor: r.6,
        patients_done: r.7,
        patients_total: r.8,
        progress: r.9,
        created_us: r.10,
        updated_us: r.11,
    }
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

    async fn create_export_job(&self, job: &ExportJobRow) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO export_job ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        on_pool!(self, write, |p| sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&job.job_id)
            .bind(&job.owner)
            .bind(&job.request)
            .bind(&job.params)
            .bind(&job.state)
            .bind(&job.transaction_time)
            .bind(&job.cursor)
            .bind(job.patients_done)
            .bind(job.patients_total)
            .bind(&job.progress)
            .bind(job.created_us)
            .bind(job.updated_us)
            .execute(p)
            .await
            .map(drop))
        .map_err(err("create export job"))
    }

    async fn export_job(&self, job_id: &str) -> Result<Option<ExportJobRow>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM export_job WHERE job_id = $1");
        let row: Option<JobTuple> = on_pool!(self, read, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(job_id)
            .fetch_optional(p)
            .await)
        .map_err(err("read export job"))?;
        Ok(row.map(job_of))
    }

    async fn save_export_progress(&self, job_id: &str, step: &JobProgress<'_>) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE export_job SET state = $1, cursor = $2, patients_done = $3, progress = $4, updated_us = $5 \
             WHERE job_id = $6 AND state NOT IN {FINAL}"
        );
        on_pool!(self, write, |p| sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(step.state)
            .bind(step.cursor)
            .bind(step.patients_done)
            .bind(step.progress)
            .bind(now_us())
            .bind(job_id)
            .execute(p)
            .await
            .map(drop))
        .map_err(err("save export progress"))
    }

    async fn set_export_state(&self, job_id: &str, state: &str) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE export_job SET state = $1, updated_us = $2 WHERE job_id = $3 AND state NOT IN {FINAL}"
        );
        let done = on_pool!(self, write, |p| sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state)
            .bind(now_us())
            .bind(job_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(err("set export state"))?;
        Ok(done > 0)
    }

    async fn fail_export_job(&self, job_id: &str, progress: &str) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE export_job SET state = 'failed', progress = $1, updated_us = $2 WHERE job_id = $3 AND state NOT IN {FINAL}"
        );
        on_pool!(self, write, |p| sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(progress)
            .bind(now_us())
            .bind(job_id)
            .execute(p)
            .await
            .map(drop))
        .map_err(err("fail export job"))
    }

    async fn remove_export_job(&self, job_id: &str) -> Result<bool, StoreError> {
        let done = on_pool!(self, write, |p| {
            let mut tx = p.begin().await.map_err(err("remove export job"))?;
            sqlx::query("DELETE FROM export_lease WHERE job_id = $1")
                .bind(job_id)
                .execute(&mut *tx)
                .await
                .map_err(err("remove export job"))?;
            let done = sqlx::query("DELETE FROM export_job WHERE job_id = $1")
                .bind(job_id)
                .execute(&mut *tx)
                .await
                .map_err(err("remove export job"))?;
            tx.commit().await.map_err(err("remove export job"))?;
            done.rows_affected()
        });
        Ok(done > 0)
    }

    async fn lease_export_job(
        &self,
        job_id: &str,
        holder: &str,
        now_us: i64,
        until_us: i64,
    ) -> Result<bool, StoreError> {
        let granted = on_pool!(self, write, |p| sqlx::query(
            "INSERT INTO export_lease (job_id, holder, until_us) VALUES ($1, $2, $3) \
             ON CONFLICT (job_id) DO UPDATE SET holder = excluded.holder, until_us = excluded.until_us \
             WHERE export_lease.holder = excluded.holder OR export_lease.until_us < $4",
        )
        .bind(job_id)
        .bind(holder)
        .bind(until_us)
        .bind(now_us)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .map_err(err("lease export job"))?;
        Ok(granted > 0)
    }

    async fn release_export_job(&self, job_id: &str, holder: &str) -> Result<(), StoreError> {
        on_pool!(self, write, |p| sqlx::query("DELETE FROM export_lease WHERE job_id = $1 AND holder = $2")
            .bind(job_id)
            .bind(holder)
            .execute(p)
            .await
            .map(drop))
        .map_err(err("release export job"))
    }

    async fn unfinished_export_jobs(&self, now_us: i64) -> Result<Vec<ExportJobRow>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM export_job WHERE state IN ('queued', 'running') AND NOT EXISTS \
             (SELECT 1 FROM export_lease l WHERE l.job_id = export_job.job_id AND l.until_us >= $1) \
             ORDER BY created_us"
        );
        let rows: Vec<JobTuple> = on_pool!(self, read, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now_us)
            .fetch_all(p)
            .await)
        .map_err(err("read export jobs"))?;
        Ok(rows.into_iter().map(job_of).collect())
    }

    async fn recent_export_jobs(&self, limit: i64) -> Result<Vec<ExportJobRow>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM export_job ORDER BY created_us DESC LIMIT $1");
        let rows: Vec<JobTuple> =
            on_pool!(self, read, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(p).await)
                .map_err(err("read export jobs"))?;
        Ok(rows.into_iter().map(job_of).collect())
    }

    async fn finished_export_jobs(&self, before_us: i64) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT job_id FROM export_job WHERE state IN {FINAL} AND updated_us < $1 ORDER BY updated_us"
        );
        let rows: Vec<(String,)> = on_pool!(self, read, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(before_us)
            .fetch_all(p)
            .await)
        .map_err(err("read export jobs"))?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
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
