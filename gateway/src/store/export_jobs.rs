//! Bulk export jobs as stored: what each asked and how far it has got, the lease of the run
//! walking it (one run per job across every replica), and which finished ones are past their
//! retention.

use async_trait::async_trait;

use super::{Store, StoreError, err};

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

/// Where export jobs are kept.
#[async_trait]
pub trait ExportJobStore: Send + Sync {
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

#[async_trait]
impl ExportJobStore for Store {
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
}
