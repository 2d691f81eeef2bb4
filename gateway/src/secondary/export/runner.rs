//! Running one export job: the walk of its cohort, page by page, from its cursor.

use actix_web::web;
use futures::StreamExt;
use serde_json::json;
use tideway_policy::Ask;
use tideway_profiles::NhsNumber;

use super::lease::Lease;
use super::output::Outputs;
use super::{Job, JobState, JobTally};
use crate::audit::AuditOutcome;
use crate::record::RecordError;
use crate::secondary::cohort::Group;
use crate::state::AppState;
use crate::store::JobProgress;

/// Patients read from the store at a time; the cursor and the files' sizes are recorded after
/// each page.
const PAGE: i64 = 50;

/// The error file's type in the job's folder (served in the manifest's `error` list).
pub const ERROR_TYPE: &str = "OperationOutcome";

/// Why a job stopped short (no patient data in any message).
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("the gateway's store could not be used")]
    Store(#[from] crate::store::StoreError),
    #[error("the job's files could not be written")]
    Files(#[from] std::io::Error),
    #[error("the audit trail could not be written")]
    Audit(#[from] crate::audit::AuditError),
    #[error("{0}")]
    Refused(String),
}

/// Resumes, now and then every half lease, every unfinished job (queued or running) that no run
/// holds a live lease on, oldest first: the jobs a restart interrupted, and those of a replica
/// that died mid-walk.
pub fn spawn_unfinished(state: web::Data<AppState>) {
    crate::periodic::now_and_every(super::lease::LEASE.as_secs() / 2, move || {
        let state = state.clone();
        async move {
            match state.secondary.store.unfinished_export_jobs(crate::epoch_us::now()).await {
                Ok(rows) => {
                    for row in rows {
                        spawn(state.clone(), row.job_id);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "unfinished export jobs could not be read; they stay queued")
                }
            }
        }
    });
}

/// Runs the job in the background once a runner is free and the job's lease is taken (nothing
/// happens if this replica already has a run of it, or another run holds it). A failure (or a
/// panic) marks the job failed, with a reason that names no patient and no internal detail.
pub fn spawn(state: web::Data<AppState>, id: String) {
    if !state.secondary.exports.start_walking(&id) {
        return;
    }
    tokio::spawn(async move {
        walk_once(&state, &id).await;
        state.secondary.exports.stop_walking(&id);
    });
}

async fn walk_once(state: &AppState, id: &str) {
    let Ok(_permit) = state.secondary.exports.running.clone().acquire_owned().await else { return };
    // A stopping gateway starts nothing: the next start (or another replica) resumes the job.
    if state.secondary.exports.is_stopping() {
        return;
    }
    let lease = match Lease::take(state.secondary.store.as_ref(), id).await {
        Ok(Some(lease)) => lease,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "an export job's lease could not be taken; it is tried again later");
            return;
        }
    };
    let mut tally = JobTally::default();
    let ran =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run(state, id, &lease, &mut tally)))
            .await;
    let failure = match ran {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::error!(error = ?e, "an export job failed");
            Some(e.to_string())
        }
        Err(_) => {
            tracing::error!("an export job stopped unexpectedly");
            Some("the job stopped unexpectedly".to_owned())
        }
    };
    // A run that lost its lease leaves the job to the run that took it over.
    if let Some(failure) = failure
        && lease.renew().await.unwrap_or(false)
    {
        tally.failure = Some(failure);
        let progress = serde_json::to_string(&tally).unwrap_or_else(|_| "{}".into());
        state.secondary.exports.note(id, JobState::Failed, 0, 0);
        if let Err(e) = state.secondary.store.fail_export_job(id, &progress).await {
            tracing::error!(error = %e, "an export job's failure could not be recorded");
        }
    }
    lease.release().await;
}

/// How a walk ended without failing.
enum Ending {
    Completed,
    Cancelled,
    Interrupted,
}

/// What one job walks with.
struct Walk<'a> {
    state: &'a AppState,
    id: &'a str,
    job: &'a Job,
    lease: &'a Lease<'a>,
    principal: tideway_auth::Principal,
    pseudonyms: std::sync::Arc<tideway_deid::Pseudonymiser>,
    group: Option<Group>,
    ask: Ask,
    request_id: String,
}

async fn run(state: &AppState, id: &str, lease: &Lease<'_>, tally: &mut JobTally) -> Result<(), RunError> {
    let secondary = &state.secondary;
    let Some(job) = secondary.exports.job(id).await? else { return Ok(()) };
    if !matches!(job.state, JobState::Queued | JobState::Running) {
        return Ok(());
    }
    *tally = job.tally.clone();
    let principal =
        job.owner.principal(id).ok_or_else(|| RunError::Refused("the job's owner no longer reads".into()))?;
    admitted(state, &principal)?;
    let pseudonyms = secondary.projects.for_organisation(&principal.organisation).ok_or_else(|| {
        RunError::Refused("no de-identification project names the job's organisation".into())
    })?;
    let group = match &job.params.group {
        Some(g) => Some(
            crate::secondary::group_named(state, g)
                .ok_or_else(|| RunError::Refused("its group is no longer offered".into()))?,
        ),
        None => None,
    };
    let mut ask = Ask::everything().of_types(job.params.types.clone());
    if let Some(since) = &job.params.since {
        let at = time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
            .map_err(|_| RunError::Refused("its _since no longer reads".into()))?;
        ask = ask.changed_since(at);
    }
    let request_id = format!("export-{id}");
    let mut audit = state.audit.begin(&request_id, "bulk-export", Some(&principal));
    audit.describe(
        json!({"job": id, "group": job.params.group, "types": job.params.types, "since": job.params.since})
            .to_string(),
    );
    audit.intent(state.records.source_ids()).await?;
    let walk = Walk { state, id, job: &job, lease, principal, pseudonyms, group, ask, request_id };
    // Every run that wrote an intent writes an outcome, however it ends.
    let (completed, outcome, detail) = match walk.run(tally).await {
        Ok(Ending::Cancelled) => (false, AuditOutcome::Partial, json!({"job": id, "cancelled": true})),
        Ok(Ending::Interrupted) => (false, AuditOutcome::Partial, json!({"job": id, "interrupted": true})),
        Ok(Ending::Completed) => {
            let partial = !tally.source_failures.is_empty() || tally.patients_left_out > 0;
            let outputs: std::collections::BTreeMap<&String, u64> =
                tally.outputs.iter().map(|(t, s)| (t, s.count)).collect();
            let detail = json!({
                "job": id,
                "patients_exported": tally.patients_exported,
                "outputs": outputs,
                "source_failures": tally.source_failures,
                "patients_left_out": tally.patients_left_out,
            });
            (true, if partial { AuditOutcome::Partial } else { AuditOutcome::Success }, detail)
        }
        Err(e) => {
            let detail = json!({"job": id, "failed": e.to_string()}).to_string();
            if audit.outcome(500, 0, AuditOutcome::Error, detail).await.is_err() {
                tracing::error!("an export job's failure could not be audited");
            }
            return Err(e);
        }
    };
    let released: u64 = tally.outputs.iter().filter(|(t, _)| *t != ERROR_TYPE).map(|(_, s)| s.count).sum();
    audit.outcome(200, usize::try_from(released).unwrap_or(usize::MAX), outcome, detail.to_string()).await?;
    // The outcome is durable before the manifest can be served.
    if completed {
        save(state, (id, job.patients_total), JobState::Completed, tally).await?;
    }
    Ok(())
}

/// The principal must still be admitted to secondary use: judged when the job (re)starts and
/// before every page, so an agreement withdrawn mid-run stops it.
fn admitted(state: &AppState, principal: &tideway_auth::Principal) -> Result<(), RunError> {
    state
        .records
        .admit_secondary(principal)
        .map_err(|e| RunError::Refused(format!("refused: {}", e.reason())))
}

impl Walk<'_> {
    async fn run(&self, tally: &mut JobTally) -> Result<Ending, RunError> {
        let (state, id) = (self.state, self.id);
        let secondary = &state.secondary;
        let exports = &secondary.exports;
        let mut outputs = Outputs::resume(&exports.folder(id), &tally.outputs).await?;
        let cohort = self.group.as_ref().map_or(crate::store::Cohort::Everyone, Group::cohort);
        tally.cursor = self.job.cursor.clone();
        tally.done = self.job.patients_done;
        save(state, (id, self.job.patients_total), JobState::Running, tally).await?;
        let today = time::OffsetDateTime::now_utc().date();
        let profile = &secondary.settings.profile;
        loop {
            if let Some(ending) = self.stopped().await? {
                if matches!(ending, Ending::Cancelled) {
                    exports.remove_files(id).await;
                }
                return Ok(ending);
            }
            admitted(state, &self.principal)?;
            // Renewed when due: the last page's progress was only recorded under a fresh renewal.
            if !self.lease.keep().await? {
                return Ok(Ending::Interrupted);
            }
            let page = secondary.store.cohort_page(&cohort, tally.cursor.as_deref(), PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            let last = last.clone();
            let count = page.len() as i64;
            let policy = state.records.policy.current();
            let terminology = policy.terminology();
            let reads = futures::stream::iter(
                page.into_iter().map(|(patient_id, nhs)| self.read_one(terminology, patient_id, nhs)),
            )
            .buffered(exports.concurrency);
            futures::pin_mut!(reads);
            let mut broke = false;
            while let Some(read) = reads.next().await {
                // A page left unfinished is not recorded: a resumed job cuts its files back and
                // reads it again.
                if exports.is_cancelled(id) || exports.is_stopping() {
                    broke = true;
                    break;
                }
                if !self.lease.keep().await? {
                    return Ok(Ending::Interrupted);
                }
                let (nhs, record, member) = match read {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(reason = e.reason(), "a patient was left out of an export");
                        tally.patients_left_out += 1;
                        continue;
                    }
                };
                tally.patients_read += 1;
                for (source, code) in &record.failures {
                    *tally
                        .source_failures
                        .entry(source.to_string())
                        .or_default()
                        .entry((*code).to_owned())
                        .or_default() += 1;
                }
                if !member {
                    continue;
                }
                let mut wrote = false;
                for r in &record.resources {
                    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&r.json) else { continue };
                    let Some(out) =
                        tideway_deid::deidentify(&value, profile, &self.pseudonyms, nhs.as_str(), today)
                    else {
                        continue;
                    };
                    let line = serde_json::to_vec(&out).map_err(std::io::Error::other)?;
                    outputs.write(&r.resource_type, &line).await?;
                    wrote = true;
                }
                tally.patients_exported += u64::from(wrote);
            }
            if broke {
                continue;
            }
            tally.done += count;
            tally.cursor = Some(last);
            tally.outputs = outputs.checkpoint().await?;
            // Only the lease's holder records how far the job has got.
            if !self.lease.renew().await? {
                return Ok(Ending::Interrupted);
            }
            save(state, (id, self.job.patients_total), JobState::Running, tally).await?;
        }
        for line in super::manifest::error_lines(tally) {
            outputs.write(ERROR_TYPE, line.as_bytes()).await?;
        }
        tally.outputs = outputs.checkpoint().await?;
        Ok(Ending::Completed)
    }

    /// Whether the walk must stop now: cancelled (here, or through another replica, as the
    /// store says) or the gateway stopping.
    async fn stopped(&self) -> Result<Option<Ending>, RunError> {
        let exports = &self.state.secondary.exports;
        if exports.is_stopping() {
            return Ok(Some(Ending::Interrupted));
        }
        let cancelled = exports.is_cancelled(self.id)
            || self
                .state
                .secondary
                .store
                .export_job(self.id)
                .await?
                .is_none_or(|j| j.state == JobState::Cancelled.code());
        Ok(cancelled.then_some(Ending::Cancelled))
    }

    /// One patient's record for the job (paced with every other walk), and whether the patient
    /// is in the job's group. Membership is judged on the whole released record, whatever
    /// `_type` and `_since` narrow the output to; both are released from the one read.
    async fn read_one(
        &self,
        terminology: &tideway_policy::Terminology,
        patient_id: String,
        nhs: String,
    ) -> Result<(NhsNumber, crate::record::PopulationRecord, bool), RecordError> {
        let records = &self.state.records;
        self.state.secondary.exports.pace().await;
        let nhs = NhsNumber::parse(&nhs).map_err(|_| RecordError::UnknownPatient)?;
        let read = records
            .read_for_secondary_use(&self.principal, (&nhs, patient_id.as_str()), &self.request_id)
            .await?;
        let resources = records.release_for_secondary_use(&self.principal, &read, &self.ask);
        let member = match &self.group {
            Some(g @ (Group::Practice(_) | Group::CodeSet(_))) => {
                let whole = records.release_for_secondary_use(&self.principal, &read, &Ask::everything());
                g.admits(&whole, terminology)
            }
            Some(Group::Source(_)) | None => true,
        };
        Ok((nhs, read.into_record(resources), member))
    }
}

/// Records the job's state, cursor and tally.
async fn save(
    state: &AppState,
    (id, total): (&str, i64),
    job_state: JobState,
    tally: &JobTally,
) -> Result<(), RunError> {
    let progress = serde_json::to_string(tally).map_err(std::io::Error::other)?;
    let step = JobProgress {
        state: job_state.code(),
        cursor: tally.cursor.as_deref(),
        patients_done: tally.done,
        progress: &progress,
    };
    state.secondary.store.save_export_progress(id, &step).await?;
    state.secondary.exports.note(id, job_state, tally.done, total);
    Ok(())
}
