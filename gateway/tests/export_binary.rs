//! `tideway export` against the real demo binary: the demo's ready file names a commissioning
//! analyst, the opted-out patients and the dashboard; the CLI runs the whole Bulk Data flow,
//! writes the files, and exits non-zero with the gateway's explanation when it is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "tests")]

use std::fs;
use std::process::Command;

mod common;

use common::*;

fn export(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).arg("export").args(args).output().expect("tideway export runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_export_command_downloads_a_de_identified_export_of_the_demo_and_fails_clearly() {
    let scratch = Scratch::new("export");
    let (mut demo, ready) = start_demo(&scratch, &[], &[]);
    assert_eq!(ready["analyst"]["purpose"], "HOPERAT");
    assert!(ready["analyst"]["token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(ready["dashboard_url"].as_str().is_some_and(|u| u.ends_with("/dashboard/")));
    let opted_out: Vec<String> =
        ready["opted_out"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect();
    assert_eq!(opted_out.len(), 3);
    assert!(opted_out.iter().all(|n| n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit())));

    let ready_file = scratch.path("ready.json");
    let out_dir = scratch.path("out");
    let (ok, stdout, stderr) =
        export(&["--ready-file", ready_file.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("export complete:"), "{stdout}");
    let patients = fs::read_to_string(out_dir.join("Patient.ndjson")).unwrap();
    // 3 boroughs of 30 home patients each; the opted-out ones are left out, and so is the
    // patient whose recorded consent is a full dissent (it denies every purpose).
    assert!(ready["scenario_patients"]["dissented"].is_string());
    assert_eq!(patients.lines().count(), 90 - opted_out.len() - 1);
    for entry in fs::read_dir(&out_dir).unwrap() {
        let text = fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("ndjson");
            assert!(v["resourceType"].is_string());
        }
        for n in &opted_out {
            assert!(!text.contains(n.as_str()), "no NHS number in any file");
        }
    }

    // Refusals exit non-zero with the gateway's own explanation.
    let base = ready["base_url"].as_str().unwrap();
    let (ok, _, stderr) =
        export(&["--base-url", base, "--token", "not-a-token", "--out", out_dir.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("the export was not started: the gateway answered HTTP 401"), "{stderr}");
    let clinician = ready["token"].as_str().unwrap();
    let (ok, _, stderr) =
        export(&["--base-url", base, "--token", clinician, "--out", out_dir.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("HTTP 403") && stderr.contains("secondary purpose of use"), "{stderr}");
    let (ok, _, stderr) = export(&[
        "--ready-file",
        ready_file.to_str().unwrap(),
        "--type",
        "Practitioner",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("HTTP 400") && stderr.contains("is not exported"), "{stderr}");
    demo.terminate(STOP_TIMEOUT);
}
