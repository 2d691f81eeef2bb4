//! A fixed-count audit workload for counting CPU: `N` requests' audits (an intent and an
//! outcome each, through the `AuditTrail` as the request path writes them), `C` requests at a
//! time, to a fresh SQLite store in the temp directory. Fixed counts make the figures of
//! `perf stat` or `valgrind --tool=callgrind` comparable between builds (criterion's timed loop
//! runs a varying number of iterations).
//!
//! Run: `cargo run --release -p tideway-gateway --example audit_appends -- N C` (defaults
//! 1000 and 16), e.g. `perf stat -e task-clock,context-switches <binary> 1000 16`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tideway_gateway::audit::{AuditOutcome, AuditTrail};
use tideway_gateway::store::{AuditLog, Store};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a whole number"));
    let requests = args.next().unwrap_or(1000);
    let concurrency = args.next().unwrap_or(16).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("tideway-audit-appends-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("audit.db").display()).into();
    rt.block_on(async {
        let store = Arc::new(Store::connect(&url, 2, Duration::from_secs(5)).await.unwrap());
        let trail = AuditTrail::new(store.clone());
        let sources: Arc<str> = Arc::from(r#"["borough-00","borough-01","borough-02"]"#);
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|t| {
                let (trail, sources) = (trail.clone(), sources.clone());
                let share = requests / concurrency + usize::from(t < requests % concurrency);
                tokio::spawn(async move {
                    for i in 0..share {
                        let mut call = trail.begin(&format!("req-{t:04}-{i:08}"), "patient-everything", None);
                        call.about_patient("p0123456789abcdef0123456789abcdef");
                        call.intent(sources.clone()).await.unwrap();
                        let detail = r#"{"borough-00":{"released":14}}"#.to_owned();
                        call.outcome(200, 42, AuditOutcome::Success, detail).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = started.elapsed();
        let rows = store.audit_for_request("req-0000-00000000").await.unwrap();
        assert_eq!(rows.len(), 2, "an intent and an outcome are read back");
        println!(
            "{requests} requests ({} appends), {concurrency} at a time: {:.1} ms wall, {:.1} us/append",
            2 * requests,
            elapsed.as_secs_f64() * 1e3,
            elapsed.as_secs_f64() * 1e6 / (2 * requests) as f64
        );
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
}
