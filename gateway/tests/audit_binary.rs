//! `tideway audit` as an operator runs it, on the trail the real demo wrote: `verify` exits 0
//! on the intact trail (its closing checkpoint signed at SIGTERM) and non-zero naming the first
//! bad sequence number and the kind of damage once a record is edited behind its back;
//! `export` writes every record as an `AuditEvent` line carrying the request ids the clients
//! were answered; `keygen` never overwrites a key.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "tests")]

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::Value;

/// Runs `tideway audit {args}` with an operator's config naming the demo's store and
/// checkpoint files.
fn audit(scratch: &Scratch, args: &[&str]) -> Output {
    let data = scratch.path("data");
    let config = scratch.path("operator.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\n\
             [store]\nurl = \"sqlite://{}\"\n\
             [audit]\ncheckpoint_key = \"{}\"\ncheckpoint_file = \"{}\"\n\
             [identity]\npseudonym_key = \"{}\"\n\
             [auth]\ntoken_signing_secret = \"{}\"\n\
             [[auth.clients]]\nclient_id = \"ops\"\nname = \"Operator\"\njwks = '{}'\n",
            data.join("tideway.db").display(),
            data.join("audit-checkpoint.key").display(),
            data.join("checkpoints").join("checkpoints.jsonl").display(),
            "p".repeat(40),
            "s".repeat(40),
            tideway_auth::client::BackendClient::generate_es384("ops", "ops-1").unwrap().jwks_json(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("audit").args(args).env_remove("TIDEWAY_CONFIG");
    if args.first().is_some_and(|a| *a != "keygen") {
        cmd.arg("--config").arg(&config);
    }
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TIDEWAY__")) {
        cmd.env_remove(k);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The number in "audit trail intact: N records".
fn records_in(stdout: &str) -> usize {
    stdout
        .strip_prefix("audit trail intact: ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an intact report: {stdout}"))
}

#[test]
fn audit_verify_and_export_check_the_demos_trail_and_name_the_damage() {
    let scratch = Scratch::new("audit");
    let (mut demo, ready) = start_demo(&scratch, &[], &[]);
    let base = ready["base_url"].as_str().unwrap().trim_end_matches('/').to_owned();
    let token = ready["token"].as_str().unwrap().to_owned();
    let nhs = ready["nhs_numbers"][0].as_str().unwrap();
    let http = Http::new();
    let mut request_ids = Vec::new();
    for (url, token) in [
        (format!("{base}/Patient?identifier={NHS_SYSTEM}|{nhs}"), Some(token.as_str())),
        (format!("{base}/Patient?identifier={NHS_SYSTEM}|{nhs}"), None),
        (format!("{base}/AllergyIntolerance?patient=p0"), Some(token.as_str())),
    ] {
        let (status, id) = http.get_request_id(&url, token);
        assert!(status < 500, "{url}: {status}");
        assert!(!id.is_empty(), "every answer carries X-Request-ID");
        request_ids.push(id);
    }
    // The ready file's privacy officer sees the search in the patient's access history.
    let officer =
        ready["privacy-officer"]["token"].as_str().expect("the ready file has a privacy-officer token");
    let (_, found) =
        http.get(&format!("{base}/Patient"), Some(&token), &[("identifier", &format!("{NHS_SYSTEM}|{nhs}"))]);
    let patient = found["entry"][0]["resource"]["id"].as_str().unwrap().to_owned();
    let (status, history) = http.get(&format!("{base}/AuditEvent"), Some(officer), &[("patient", &patient)]);
    assert_eq!(status, 200, "{history}");
    let listed: Vec<&str> = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["entity"][0]["what"]["identifier"]["value"].as_str())
        .collect();
    assert!(
        listed.contains(&request_ids[0].as_str()),
        "the clinician's search is in the history: {listed:?}"
    );
    assert!(demo.terminate(STOP_TIMEOUT).success(), "{}", demo.diagnostics());

    let verified = audit(&scratch, &["verify"]);
    let stdout = text(&verified.stdout);
    assert!(verified.status.success(), "verify: {stdout}\n{}", text(&verified.stderr));
    assert!(stdout.contains("checkpoints verified"), "the closing checkpoint is checked: {stdout}");
    let records = records_in(&stdout);

    let exported = audit(&scratch, &["export"]);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let events: Vec<Value> = text(&exported.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(events.len(), records, "every record is exported");
    assert!(events.iter().all(|e| e["resourceType"] == "AuditEvent"));
    let names = |e: &Value, id: &str| {
        e["entity"].as_array().into_iter().flatten().any(|x| x["what"]["identifier"]["value"] == id)
    };
    for id in &request_ids {
        assert!(events.iter().any(|e| names(e, id)), "request {id} is in the exported trail");
    }
    // The unauthenticated search is counted, at shutdown, in its peer's tally of refusals.
    let refused = events.iter().find(|e| names(e, &request_ids[1])).unwrap();
    assert_eq!(refused["outcome"], "4");
    let counted = refused["entity"][0]["detail"][2]["valueString"].as_str().unwrap();
    assert!(counted.contains("\"no-token\":1"), "{refused}");
    for line in text(&exported.stdout).lines().take(40) {
        collect_for_validator(line.as_bytes());
    }
    let later = audit(&scratch, &["export", "--since", "2999-01-01"]);
    assert!(later.status.success() && later.stdout.is_empty(), "nothing is recorded in the future");
    let bad = audit(&scratch, &["export", "--since", "last tuesday"]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("--since"), "{}", text(&bad.stderr));

    // Someone with the database file edits a record.
    let db = rusqlite::Connection::open(scratch.path("data").join("tideway.db")).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_event_no_update; UPDATE audit_event SET released = released + 1 WHERE seq = 3;",
    )
    .unwrap();
    drop(db);
    let damaged = audit(&scratch, &["verify"]);
    let stdout = text(&damaged.stdout);
    assert!(!damaged.status.success(), "verify passed a damaged trail: {stdout}");
    assert!(stdout.starts_with("audit trail damaged: first damage at seq 3: edited"), "{stdout}");

    let key = scratch.path("new.key");
    let made = audit(&scratch, &["keygen", "--out", key.to_str().unwrap()]);
    assert!(made.status.success() && text(&made.stdout).contains("checkpoint key"), "{}", text(&made.stderr));
    let again = audit(&scratch, &["keygen", "--out", key.to_str().unwrap()]);
    assert!(!again.status.success(), "an existing key is never overwritten");
}

/// Writes a body to `$TIDEWAY_COLLECT_DIR` (if set) for the independent validator.
fn collect_for_validator(body: &[u8]) {
    if let Ok(dir) = std::env::var("TIDEWAY_COLLECT_DIR") {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(
            std::path::Path::new(&dir).join(format!("audit-export-{}-{n:04}.json", std::process::id())),
            body,
        );
    }
}

/// A small deterministic generator (xorshift), seeded from the clock and printed, so a failing
/// run can be replayed.
struct Draw(u64);

impl Draw {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// Kills the demo with SIGKILL at random moments while a client streams requests at it, three
/// times over one data directory, then proves that every answer the client received has its
/// outcome record and that the chain still verifies.
#[test]
fn every_answer_received_before_a_sigkill_is_in_an_intact_trail() {
    let seed = std::env::var("TIDEWAY_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("kill points drawn with TIDEWAY_KILL_SEED={seed}");
    let mut draw = Draw(seed);
    let scratch = Scratch::new("sigkill");
    let mut answered: Vec<(String, u16)> = Vec::new();
    for round in 0..3 {
        let _ = std::fs::remove_file(scratch.path("ready.json"));
        let (mut demo, ready) = start_demo(&scratch, &[], &[]);
        let base = ready["base_url"].as_str().unwrap().trim_end_matches('/').to_owned();
        let token = ready["token"].as_str().unwrap().to_owned();
        let nhs: Vec<String> =
            ready["nhs_numbers"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let http = Http::new();
                let mut got = Vec::new();
                let mut n = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let url = format!("{base}/Patient?identifier={NHS_SYSTEM}|{}", nhs[n % nhs.len()]);
                    n += 1;
                    match http.try_get_request_id(&url, Some(&token)) {
                        Some((status, id)) => got.push((id, status)),
                        None => break,
                    }
                }
                got
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(100 + draw.next(900)));
        demo.kill();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let got = client.join().unwrap();
        assert!(!got.is_empty(), "round {round}: the client was answered before the kill");
        answered.extend(got);
    }

    let verified = audit(&scratch, &["verify"]);
    let stdout = text(&verified.stdout);
    assert!(verified.status.success(), "the chain survives SIGKILL: {stdout}");
    let exported = audit(&scratch, &["export"]);
    let outcomes: std::collections::HashMap<String, u16> = text(&exported.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["extension"][0]["extension"][1]["valueCode"] == "outcome")
        .map(|e| {
            let id = e["entity"][0]["what"]["identifier"]["value"].as_str().unwrap().to_owned();
            let status = e["outcomeDesc"].as_str().unwrap_or_default().to_owned();
            (
                id,
                status.rsplit("HTTP ").next().and_then(|s| s.trim_end_matches(')').parse().ok()).unwrap_or(0),
            )
        })
        .collect();
    for (id, status) in &answered {
        assert_eq!(
            outcomes.get(id),
            Some(status),
            "request {id} was answered {status} but its outcome is not recorded"
        );
    }
    eprintln!("{} answers received across 3 kills, every one recorded", answered.len());
}
