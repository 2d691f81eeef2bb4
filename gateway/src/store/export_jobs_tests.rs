//! Export jobs' leases and retention against both real databases: one run holds a job at a
//! time, a lapsed lease lets another run take the job over, and only finished jobs age out.

use super::test_db::{Backend, fresh_store};
use super::{ExportJobRow, ExportJobStore};

fn job(id: &str, state: &str, updated_us: i64) -> ExportJobRow {
    ExportJobRow {
        job_id: id.to_owned(),
        owner: "{}".into(),
        request: "https://gateway.test/$export".into(),
        params: "{}".into(),
        state: state.to_owned(),
        transaction_time: "2026-12-04T18:00:00Z".into(),
        cursor: None,
        patients_done: 0,
        patients_total: 10,
        progress: "{}".into(),
        created_us: updated_us,
        updated_us,
    }
}

async fn unfinished(store: &dyn ExportJobStore, now_us: i64) -> Vec<String> {
    store.unfinished_export_jobs(now_us).await.unwrap().into_iter().map(|r| r.job_id).collect()
}

async fn one_run_holds_a_job_at_a_time(backend: Backend) {
    let (store, _dir) = fresh_store(backend).await;
    let store: &dyn ExportJobStore = &store;
    store.create_export_job(&job("j1", "running", 1)).await.unwrap();
    assert_eq!(unfinished(store, 100).await, ["j1"], "unleased, it is offered for resuming");

    assert!(store.lease_export_job("j1", "a", 100, 200).await.unwrap(), "free: taken");
    assert!(!store.lease_export_job("j1", "b", 150, 250).await.unwrap(), "held: refused to another run");
    assert!(unfinished(store, 150).await.is_empty(), "a job walked elsewhere is not offered");
    assert!(store.lease_export_job("j1", "a", 190, 300).await.unwrap(), "its holder renews it");
    assert!(!store.lease_export_job("j1", "b", 250, 350).await.unwrap(), "renewed, it is still live");

    // Lapsed: offered again and taken over; the stalled run can no longer renew it.
    assert_eq!(unfinished(store, 301).await, ["j1"]);
    assert!(store.lease_export_job("j1", "b", 301, 400).await.unwrap());
    assert!(!store.lease_export_job("j1", "a", 302, 500).await.unwrap());

    // Only its holder gives it up.
    store.release_export_job("j1", "a").await.unwrap();
    assert!(!store.lease_export_job("j1", "c", 303, 600).await.unwrap(), "a stale run freed nothing");
    store.release_export_job("j1", "b").await.unwrap();
    assert!(store.lease_export_job("j1", "c", 304, 600).await.unwrap());

    // Forgetting the job forgets its lease.
    assert!(store.remove_export_job("j1").await.unwrap());
    assert!(store.lease_export_job("j1", "d", 305, 700).await.unwrap(), "no lease is left behind");
}

async fn only_finished_jobs_age_out(backend: Backend) {
    let (store, _dir) = fresh_store(backend).await;
    let store: &dyn ExportJobStore = &store;
    for (id, state, at) in [
        ("done", "completed", 1_000),
        ("broke", "failed", 2_000),
        ("gone", "cancelled", 3_000),
        ("walking", "running", 500),
        ("waiting", "queued", 400),
    ] {
        store.create_export_job(&job(id, state, at)).await.unwrap();
    }
    assert!(store.finished_export_jobs(1_000).await.unwrap().is_empty(), "none finished before 1000");
    assert_eq!(store.finished_export_jobs(2_500).await.unwrap(), ["done", "broke"], "oldest first");
    assert_eq!(store.finished_export_jobs(i64::MAX).await.unwrap(), ["done", "broke", "gone"]);
}

#[tokio::test]
async fn sqlite_one_run_holds_a_job_at_a_time() {
    one_run_holds_a_job_at_a_time(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_one_run_holds_a_job_at_a_time() {
    one_run_holds_a_job_at_a_time(Backend::Postgres).await;
}

#[tokio::test]
async fn sqlite_only_finished_jobs_age_out() {
    only_finished_jobs_age_out(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_only_finished_jobs_age_out() {
    only_finished_jobs_age_out(Backend::Postgres).await;
}
