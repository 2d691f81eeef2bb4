//! The real `tideway` binary as a child process: the demo answers over HTTP, stops cleanly on
//! SIGTERM and logs no patient data even at debug level; `simulate --from-dir` serves Synthea
//! bundles; `serve` refuses unknown config keys; every `--help` works.
//!
//! Every child is killed if a test fails (see [`Running`]); a failed test keeps its scratch
//! directory (logs included) under the target's tmp dir for inspection.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "tests")]

use std::fs;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

mod common;

use common::*;

#[test]
fn demo_serves_real_requests_stops_on_sigterm_and_logs_no_patient_data() {
    let scratch = Scratch::new("demo");
    let (mut demo, ready) = start_demo(&scratch, &[], &[("RUST_LOG", "debug")]);

    let base = ready["base_url"].as_str().expect("ready file has base_url").trim_end_matches('/').to_owned();
    let token = ready["token"].as_str().expect("ready file has token").to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "base_url: {base}");
    let nhs_numbers: Vec<String> = ready["nhs_numbers"]
        .as_array()
        .expect("ready file has nhs_numbers")
        .iter()
        .map(|n| n.as_str().expect("NHS numbers are strings").to_owned())
        .collect();
    assert!(nhs_numbers.len() >= 5, "expected at least 5 NHS numbers, got {nhs_numbers:?}");
    assert!(nhs_numbers.iter().all(|n| n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit())));

    // The token is the real /token flow's and lasts an hour.
    let claims = jwt_claims(&token);
    let (iat, exp) = (claims["iat"].as_i64().expect("iat"), claims["exp"].as_i64().expect("exp"));
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap();
    assert!(exp - iat >= 3600, "token lifetime is {}s, expected an hour", exp - iat);
    assert!(exp >= now + 3500, "token expires at {exp}, now is {now}");

    let http = Http::new();
    let (status, cap) = http.get(&format!("{base}/metadata"), None, &[]);
    assert_eq!(status, 200, "{cap}");
    assert_eq!(cap["resourceType"], "CapabilityStatement");
    assert_eq!(cap["fhirVersion"], "4.0.1");

    // Every NHS number finds exactly one Patient; remember ids and names to look for in the logs.
    let mut patient_ids = Vec::new();
    let mut names = Vec::new();
    for n in &nhs_numbers {
        let identifier = format!("{NHS_SYSTEM}|{n}");
        let (status, bundle) =
            http.get(&format!("{base}/Patient"), Some(&token), &[("identifier", identifier.as_str())]);
        assert_eq!(status, 200, "search by NHS number: {bundle}");
        assert_eq!(bundle["resourceType"], "Bundle");
        let patients: Vec<Value> =
            entries(&bundle).into_iter().filter(|e| e["resource"]["resourceType"] == "Patient").collect();
        assert_eq!(patients.len(), 1, "one Patient per NHS number: {bundle}");
        let patient = &patients[0]["resource"];
        let id = patient["id"].as_str().expect("Patient.id").to_owned();
        assert!(!id.contains(n.as_str()), "the gateway id must not carry the NHS number");
        for name in patient["name"].as_array().into_iter().flatten() {
            names.extend(name["family"].as_str().map(str::to_owned));
            for given in name["given"].as_array().into_iter().flatten() {
                names.extend(given.as_str().map(str::to_owned));
            }
        }
        patient_ids.push(id);
    }

    // $everything brings entries from several boroughs; follow every page.
    let mut url = format!("{base}/Patient/{}/$everything", patient_ids[0]);
    let mut sources = std::collections::BTreeSet::new();
    let mut seen = 0;
    let mut total = None;
    for _page in 0..100 {
        let (status, bundle) = http.get(&url, Some(&token), &[]);
        assert_eq!(status, 200, "$everything: {bundle}");
        assert_eq!(bundle["resourceType"], "Bundle");
        total = bundle["total"].as_u64().or(total);
        for e in entries(&bundle) {
            // `total` counts matches; merged-fact Provenance rides along as `include`.
            if e["search"]["mode"] == "match" {
                seen += 1;
            }
            if let Some(s) = e["resource"]["meta"]["source"].as_str() {
                sources.insert(s.to_owned());
            }
        }
        match next_link(&bundle) {
            Some(next) => url = next,
            None => break,
        }
    }
    assert!(sources.len() >= 2, "expected entries from at least 2 sources, got {sources:?}");
    // Sources' entries name their source; the gateway's own Provenance (merged duplicates)
    // names the gateway.
    assert!(
        sources.iter().all(|s| s.starts_with("urn:tideway:source:") || s == "urn:tideway:gateway"),
        "{sources:?}"
    );
    assert!(sources.iter().filter(|s| s.starts_with("urn:tideway:source:")).count() >= 2, "{sources:?}");
    if let Some(total) = total {
        assert_eq!(seen, total, "entries across pages must add up to Bundle.total");
    }

    // SIGTERM: a clean, prompt, successful exit.
    let status = demo.terminate(STOP_TIMEOUT);
    assert!(status.success(), "demo exited with {status}\n{}", demo.diagnostics());

    // No patient data in the logs, even at debug level: not the NHS numbers (which were in
    // every search's query string), the gateway's patient ids (in every $everything path),
    // nor the patients' names.
    let stderr = demo.stderr();
    assert!(stderr.contains("DEBUG"), "RUST_LOG=debug should give debug logs:\n{}", demo.diagnostics());
    for n in &nhs_numbers {
        for (i, line) in stderr.lines().enumerate() {
            assert!(!line.contains(n.as_str()), "stderr line {} carries an NHS number: {line}", i + 1);
        }
    }
    for id in &patient_ids {
        assert!(!stderr.contains(id.as_str()), "stderr carries a patient id");
    }
    for name in names.iter().filter(|n| n.chars().count() >= 4) {
        let hit = stderr.lines().find(|l| l.contains(name.as_str()));
        assert!(hit.is_none(), "stderr carries a patient name ({name}): {hit:?}");
    }

    // stdout carries NHS numbers only in the banner: one per line under its heading, and the
    // example curl command.
    let stdout = demo.stdout();
    for n in &nhs_numbers {
        let listed = stdout.lines().filter(|l| l.trim() == n.as_str()).count();
        assert_eq!(listed, 1, "the banner lists each NHS number once:\n{stdout}");
    }
    let mut in_list = false;
    for line in stdout.lines() {
        if line.trim_start().starts_with("NHS numbers of patients") {
            in_list = true;
            continue;
        }
        let is_listed = in_list && nhs_numbers.iter().any(|n| line.trim() == n.as_str());
        in_list = is_listed;
        let banner_line = is_listed || line.starts_with("Try: curl ");
        if !banner_line {
            for n in &nhs_numbers {
                assert!(
                    !line.contains(n.as_str()),
                    "stdout carries an NHS number outside the banner: {line}"
                );
            }
        }
    }
    assert!(stdout.contains("Tideway demo ready"), "{stdout}");
}

#[test]
fn simulate_from_synthea_dir_serves_metadata_and_stops_on_sigterm() {
    let dir = workspace_root().join("../shared/data/synthea-r4");
    assert!(
        dir.is_dir(),
        "test data missing: {} (the shared/ folder must sit beside the repository)",
        dir.display()
    );
    let scratch = Scratch::new("simulate");
    let mut sim = Running::spawn(
        "simulate",
        Command::new(BIN).args(["simulate", "--port", "0", "--from-dir"]).arg(&dir),
        &scratch,
    );
    let base = sim.wait_for("base URL on stdout", READY_TIMEOUT, |s| {
        s.stdout()
            .lines()
            .find_map(|l| l.strip_prefix("simulated borough exchange at "))
            .map(|u| u.trim().to_owned())
    });
    assert!(base.ends_with('/'), "the simulator's base URL ends with '/': {base}");
    let http = Http::new();
    let (status, cap) = http.get(&format!("{base}metadata"), None, &[]);
    assert_eq!(status, 200, "{cap}");
    assert_eq!(cap["resourceType"], "CapabilityStatement", "{cap}");

    let status = sim.terminate(STOP_TIMEOUT);
    assert!(status.success(), "simulate exited with {status}\n{}", sim.diagnostics());
}

/// Runs `tideway serve` on `config` (with extra environment) to completion, bounded.
fn serve_once(scratch: &Scratch, what: &str, config: &Path, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config"]).arg(config).env_remove("TIDEWAY_CONFIG");
    // Only the overrides this test means: none inherited from the caller's environment.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TIDEWAY__")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut run = Running::spawn(what, &mut cmd, scratch);
    let status = run.wait_exit("of starting", Duration::from_secs(30));
    (status, run.stderr())
}

#[test]
fn serve_refuses_unknown_config_keys_naming_them() {
    let example = workspace_root().join("deploy/tideway.example.toml");
    let text = fs::read_to_string(&example).unwrap();
    let scratch = Scratch::new("serve");
    // (where, key): an unknown key at the top level, in a section, and in an array of tables
    // whose struct lives in another crate.
    let cases = [
        ("top", "surprise_top_level_key"),
        ("[server]", "surprise_server_key"),
        ("[federation]", "surprise_federation_key"),
        ("[[auth.clients]]", "surprise_client_key"),
        ("[[sources]]", "surprise_source_key"),
    ];
    for (i, (section, key)) in cases.iter().enumerate() {
        let injected = if *section == "top" {
            format!("{key} = 1\n{text}")
        } else {
            let header = format!("\n{section}\n");
            assert!(text.contains(&header), "the example config has no {section} section");
            text.replacen(&header, &format!("{header}{key} = 1\n"), 1)
        };
        let config = scratch.path(&format!("unknown-{i}.toml"));
        fs::write(&config, injected).unwrap();
        let (status, stderr) = serve_once(&scratch, &format!("serve-{i}"), &config, &[]);
        assert!(!status.success(), "serve accepted an unknown key in {section}");
        assert!(stderr.contains(key), "stderr should name the unknown key {key} (in {section}):\n{stderr}");
    }

    // The README: unknown keys are refused from the environment too.
    let (status, stderr) =
        serve_once(&scratch, "serve-env", &example, &[("TIDEWAY__SERVER__SURPRISE_ENV_KEY", "1")]);
    assert!(!status.success(), "serve accepted an unknown key from the environment");
    assert!(
        stderr.to_ascii_lowercase().contains("surprise_env_key"),
        "stderr should name the key:\n{stderr}"
    );
}

#[test]
fn every_help_exits_zero() {
    for args in [
        &["--help"][..],
        &["demo", "--help"],
        &["serve", "--help"],
        &["simulate", "--help"],
        &["audit", "--help"],
        &["audit", "verify", "--help"],
        &["audit", "export", "--help"],
        &["audit", "keygen", "--help"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "tideway {args:?} exited with {}", out.status);
        assert!(stdout.contains("Usage"), "tideway {args:?} printed no usage:\n{stdout}");
    }
}

/// The demo contract for the sharing-agreement personas: every persona's token comes from the
/// real `/token` flow and acts as its agreement says, the scenario patients exist, and
/// `--from-dir` adds an exchange whose patients the ready file lists.
#[test]
fn demo_ready_file_names_personas_scenario_patients_and_from_dir_patients() {
    let scratch = Scratch::new("demo-personas");
    let synthea = workspace_root().join("../shared/data/synthea-r4");
    let (mut demo, ready) = start_demo(&scratch, &["--from-dir".as_ref(), synthea.as_os_str()], &[]);
    let base = ready["base_url"].as_str().unwrap().trim_end_matches('/').to_owned();
    let personas = ready["personas"].as_object().expect("ready file has personas");
    for name in [
        "ooh-gp",
        "registered-gp",
        "podiatrist",
        "mental-health",
        "social-worker",
        "no-relationship",
        "break-glass",
        "privacy-officer",
        "admin",
    ] {
        let p = &personas[name];
        for field in ["token", "role", "ods_code", "purpose"] {
            assert!(p[field].is_string(), "{name}.{field}: {p}");
        }
        // The token carries the persona's organisation and purpose, as the /token flow issued it.
        let claims = jwt_claims(p["token"].as_str().unwrap());
        assert!(claims.to_string().contains(p["ods_code"].as_str().unwrap()), "{name}: {claims}");
    }
    assert_eq!(personas["break-glass"]["purpose"], "ETREAT");
    let token = |name: &str| personas[name]["token"].as_str().unwrap().to_owned();
    let http = Http::new();
    let find = |who: &str, nhs: &str| {
        let identifier = format!("{NHS_SYSTEM}|{nhs}");
        http.get(&format!("{base}/Patient"), Some(&token(who)), &[("identifier", identifier.as_str())])
    };
    let codes_of = |bundle: &Value| bundle.to_string();

    // The podiatrist sees the diabetic's foot ulcer and not the depression.
    let diabetic = ready["scenario_patients"]["podiatry-diabetic"].as_str().expect("podiatry-diabetic");
    let (status, found) = find("podiatrist", diabetic);
    assert_eq!(status, 200, "{found}");
    let id = entries(&found)[0]["resource"]["id"].as_str().unwrap().to_owned();
    let (status, all) =
        http.get(&format!("{base}/Patient/{id}/$everything"), Some(&token("podiatrist")), &[]);
    assert_eq!(status, 200, "{all}");
    assert!(codes_of(&all).contains("371087003") && !codes_of(&all).contains("35489007"));

    // The out-of-hours GP never sees the sensitive set.
    let sensitive = ready["scenario_patients"]["sensitive"].as_str().expect("sensitive");
    let (status, found) = find("ooh-gp", sensitive);
    assert_eq!(status, 200, "{found}");
    let id = entries(&found)[0]["resource"]["id"].as_str().unwrap().to_owned();
    let (_, all) = http.get(&format!("{base}/Patient/{id}/$everything"), Some(&token("ooh-gp")), &[]);
    assert!(!codes_of(&all).contains("86406008"), "HIV reached the out-of-hours GP");

    // The seeded consents and relationships, persona by persona: (status, entries released,
    // the whole record's text). A patient withheld from a search is not found, as an absent one.
    let record_for = |who: &str, scenario: &str| -> (u16, usize, String) {
        let nhs = ready["scenario_patients"][scenario].as_str().unwrap_or_else(|| panic!("{scenario}"));
        let (status, found) = find(who, nhs);
        if status != 200 {
            return (status, 0, found.to_string());
        }
        let Some(id) = entries(&found).iter().find_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
        else {
            return (status, 0, found.to_string());
        };
        let (status, all) = http.get(&format!("{base}/Patient/{id}/$everything"), Some(&token(who)), &[]);
        (status, entries(&all).iter().filter(|e| e["search"]["mode"] != "outcome").count(), all.to_string())
    };
    assert_eq!(record_for("registered-gp", "dissented").1, 0, "a dissent shares nothing");
    assert!(record_for("registered-gp", "no-consent").1 > 0, "implied consent for direct care");
    assert!(
        record_for("social-worker", "explicit-consent-given").1 > 0,
        "explicit consent opens social care"
    );
    let (status, _, refusal) = record_for("social-worker", "no-consent");
    assert_eq!(status, 403, "social care needs a relationship, here the person's consent: {refusal}");
    assert!(refusal.contains("relationship required; break-glass available"), "{refusal}");
    // The out-of-hours GP has no open case for this patient; breaking the glass opens the
    // record (marked, and alerted), and the token then serves that patient only.
    assert_eq!(record_for("ooh-gp", "no-consent").0, 403);
    let (status, released, text) = record_for("break-glass", "no-consent");
    assert!(status == 200 && released > 0 && text.contains("Break-glass"), "{text}");
    assert_eq!(record_for("break-glass", "dissented").0, 403, "one patient per break-glass token");
    let (status, alerts) = http.get(&format!("{base}/alerts"), Some(&token("privacy-officer")), &[]);
    assert_eq!(status, 200, "{alerts}");
    assert!(alerts.to_string().contains("break-glass"), "{alerts}");

    // An organisation with no agreement is refused.
    let (status, oo) = find("no-relationship", sensitive);
    assert_eq!(status, 403, "{oo}");

    // The admin persona (also the ready file's top-level `admin`) reads the source registry:
    // every exchange the demo runs, each attested as its config says, and each user's
    // organisation attested.
    assert_eq!(ready["admin"]["token"], personas["admin"]["token"]);
    let (status, registry) = http.get(&format!("{base}/admin/sources"), Some(&token("admin")), &[]);
    assert_eq!(status, 200, "{registry}");
    let listed = registry["sources"].as_array().expect("sources");
    assert_eq!(listed.len(), ready["sources"].as_array().unwrap().len());
    assert!(
        listed.iter().all(|s| s["attestation_standing"] == "current" && s["asked"] == true),
        "{registry}"
    );
    let (status, orgs) = http.get(&format!("{base}/admin/organisations"), Some(&token("admin")), &[]);
    assert_eq!(status, 200, "{orgs}");
    for name in ["ooh-gp", "registered-gp", "no-relationship"] {
        let ods = personas[name]["ods_code"].as_str().unwrap();
        assert!(
            orgs["organisations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["ods_code"] == ods && o["served"] == true),
            "{name}"
        );
    }
    let (status, _) = http.get(&format!("{base}/admin/sources"), Some(&token("registered-gp")), &[]);
    assert_eq!(status, 403, "only the registry's administrators read it");

    // The --from-dir exchange serves its patients to the registered GP.
    let files = ready["from_dir_patients"].as_object().expect("from_dir_patients");
    assert_eq!(files.len(), 57, "one NHS number per Synthea patient file");
    let (file, nhs) = files.iter().next().unwrap();
    assert!(file.ends_with(".json"));
    let (status, found) = find("registered-gp", nhs.as_str().unwrap());
    assert_eq!(status, 200, "{found}");
    assert_eq!(entries(&found)[0]["resource"]["resourceType"], "Patient");
    // ... registered there: the Patient names the persona's practice by its ODS code.
    let practice = personas["registered-gp"]["ods_code"].as_str().unwrap();
    assert_eq!(entries(&found)[0]["resource"]["generalPractitioner"][0]["identifier"]["value"], practice);

    let status = demo.terminate(STOP_TIMEOUT);
    assert!(status.success(), "demo exited with {status}\n{}", demo.diagnostics());
}

/// The demo runs the region's mix of systems across 25 boroughs: the ready file lists every
/// exchange with its kind (spelled as config spells it) and ODS code, and the patients it lists
/// get records assembled from systems of several kinds. `/metadata` names the terminology maps.
#[test]
fn demo_runs_the_regional_mix_of_systems_and_lists_every_source_in_the_ready_file() {
    let scratch = Scratch::new("demo-mix");
    let (mut demo, ready) = start_demo_of(&scratch, "25", &[], &[]);
    let base = ready["base_url"].as_str().unwrap().trim_end_matches('/').to_owned();
    let token = ready["token"].as_str().unwrap().to_owned();
    let sources = ready["sources"].as_array().expect("ready file has sources");
    assert_eq!(sources.len(), 25, "{sources:?}");
    let spelled = ["fhir-r4", "systmone", "emis", "vision", "gp-connect", "social-care"];
    let mut kind_of = std::collections::BTreeMap::new();
    for s in sources {
        let (id, kind, ods) =
            (s["id"].as_str().unwrap(), s["kind"].as_str().unwrap(), s["ods_code"].as_str().unwrap());
        assert!(spelled.contains(&kind), "{kind}");
        assert!(!ods.is_empty() && ods.bytes().all(|b| b.is_ascii_alphanumeric()), "{ods}");
        kind_of.insert(format!("urn:tideway:source:{id}"), kind.to_owned());
    }
    let kinds: std::collections::BTreeSet<&str> = kind_of.values().map(String::as_str).collect();
    assert_eq!(kinds, spelled.into_iter().collect(), "every kind runs in the mix");

    let http = Http::new();
    // The dashboard's figures on the operator listener, without a token: every source listed.
    let dashboard = ready["dashboard_url"].as_str().expect("ready file has dashboard_url");
    assert!(dashboard.starts_with("http://127.0.0.1:") && dashboard.ends_with("/dashboard/"), "{dashboard}");
    let (status, operations) = http.get(&format!("{dashboard}api/operations"), None, &[]);
    assert_eq!(status, 200, "{operations}");
    assert_eq!(operations["sources"].as_array().map(Vec::len), Some(25), "{operations}");
    let (status, cap) = http.get(&format!("{base}/metadata"), None, &[]);
    assert_eq!(status, 200);
    let maps = cap["extension"]
        .as_array()
        .and_then(|e| {
            e.iter().find(|x| x["url"] == "https://fhir.tideway.london/StructureDefinition/terminology-maps")
        })
        .expect("the terminology maps at /metadata");
    let version = maps["extension"][0]["valueString"].as_str().expect("a version");
    assert_eq!(version.len(), 12, "{version}");

    // The listed patients' records come from boroughs of three or more kinds, and every coding
    // a map added is named, with the maps' version, by a Provenance of the gateway's.
    let mut spread = 0;
    let mut mapped_provenances = 0;
    for n in ready["nhs_numbers"].as_array().unwrap() {
        let identifier = format!("{NHS_SYSTEM}|{}", n.as_str().unwrap());
        let (status, found) =
            http.get(&format!("{base}/Patient"), Some(&token), &[("identifier", identifier.as_str())]);
        assert_eq!(status, 200, "{found}");
        let id = entries(&found)[0]["resource"]["id"].as_str().unwrap().to_owned();
        let mut url = format!("{base}/Patient/{id}/$everything");
        let mut seen = std::collections::BTreeSet::new();
        for _page in 0..100 {
            let (status, bundle) = http.get(&url, Some(&token), &[]);
            assert_eq!(status, 200, "{bundle}");
            let in_bundle: std::collections::BTreeSet<String> = entries(&bundle)
                .iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["resource"]["resourceType"].as_str().unwrap_or_default(),
                        e["resource"]["id"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            for e in entries(&bundle) {
                let r = &e["resource"];
                if let Some(kind) = r["meta"]["source"].as_str().and_then(|s| kind_of.get(s)) {
                    seen.insert(kind.clone());
                }
                let policy = r["policy"][0].as_str().unwrap_or_default();
                if r["resourceType"] == "Provenance"
                    && policy.starts_with("https://fhir.tideway.london/terminology-maps/")
                {
                    assert_eq!(policy.rsplit('/').next(), Some(version), "{r}");
                    assert_eq!(e["search"]["mode"], "include");
                    for t in r["target"].as_array().unwrap() {
                        assert!(
                            in_bundle.contains(t["reference"].as_str().unwrap()),
                            "{t} is in the page it names"
                        );
                    }
                    mapped_provenances += 1;
                }
            }
            match next_link(&bundle) {
                Some(next) => url = next,
                None => break,
            }
        }
        if seen.len() >= 3 {
            spread += 1;
        }
    }
    assert!(spread >= 2, "at least two listed patients are held by boroughs of three kinds ({spread})");
    assert!(mapped_provenances > 0, "EMIS and Vision records gain mapped codings, named by Provenance");
    let status = demo.terminate(STOP_TIMEOUT);
    assert!(status.success(), "demo exited with {status}\n{}", demo.diagnostics());
}
