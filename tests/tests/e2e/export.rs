//! Secondary use over HTTP: the Bulk Data `$export` flow (kick-off, progress, manifest,
//! downloads, cancel, restart mid-job), de-identification of every output file, the National
//! Data Opt-out (file feed and admin API), and the dashboards' `MeasureReport`s with small-number
//! suppression.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use tideway_auth::PurposeOfUse;
use tideway_deid::{ProjectKey, Pseudonymiser};
use tideway_simulators::faults::FaultConfig;
use tideway_simulators::kinds;
use tideway_tests::{Answer, Options, PRIVACY_OFFICE, REGISTRY_ADMIN, TestApp, analyst, user};

const PREFER_ASYNC: (&str, &str) = ("prefer", "respond-async");

/// The test population's opted-out patients (population indices).
const OPTED_OUT: [usize; 2] = [3, 24];

fn options() -> Options {
    Options { boroughs: 3, patients: 20, secondary: Some(OPTED_OUT.to_vec()), ..Options::default() }
}

/// The project pseudonymiser the gateway exports under, rebuilt from its settings.
fn pseudonyms(app: &TestApp) -> Pseudonymiser {
    use secrecy::ExposeSecret;
    let p = &app.settings.secondary.projects[0];
    Pseudonymiser::new(
        &p.id,
        ProjectKey::new(p.key_id.clone(), p.key.expose_secret().as_bytes().to_vec()).unwrap(),
    )
}

/// Every distinct patient the exchanges register, as population indices.
fn registered(app: &TestApp) -> Vec<usize> {
    let pop = &app.population;
    let mut all: Vec<usize> = (0..app.settings.sources.len())
        .flat_map(|b| kinds::registered(app.settings.sources[b].kind, pop, b))
        .filter_map(|(nhs, _)| pop.patient_index(&nhs))
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

async fn kick_off(app: &TestApp, path: &str, token: &str) -> Answer {
    app.get_with(path, Some(token), &[PREFER_ASYNC]).await
}

/// Polls the status URL until the job is done; returns the manifest answer and every
/// `X-Progress` seen on the way.
async fn wait_for(app: &TestApp, status_url: &str, token: &str) -> (Answer, Vec<String>) {
    let mut progress = Vec::new();
    for _ in 0..600 {
        let a = app.get(status_url, Some(token)).await;
        if a.status != 202 {
            return (a, progress);
        }
        assert!(a.header("retry-after").is_some(), "a 202 says when to ask again");
        progress.push(a.header("x-progress").expect("a 202 says how far it has got"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the export did not finish");
}

/// A gateway whose three boroughs each answer `latency_ms` late, with 40 patients: an export
/// of it runs long enough to be caught mid-walk.
async fn slow_app(latency_ms: u64) -> TestApp {
    let slow = FaultConfig { latency_ms, ..FaultConfig::default() };
    let mut opts = options();
    opts.faults = vec![(0, slow.clone()), (1, slow.clone()), (2, slow)];
    opts.patients = 40;
    TestApp::spawn(opts).await
}

/// Polls the status URL until the job has written some patients (and is still running).
async fn wait_until_walking(app: &TestApp, status_url: &str, token: &str) {
    loop {
        let a = app.get(status_url, Some(token)).await;
        let progress = a.header("x-progress").unwrap_or_default();
        if progress.starts_with("running") && !progress.contains(": 0 of") {
            return;
        }
        assert_eq!(a.status, 202, "the job must still be running to be caught mid-walk: {progress}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Downloads every file of a manifest's `output` (and `error`) list as ndjson lines.
async fn download(app: &TestApp, manifest: &Value, list: &str, token: &str) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    for item in manifest[list].as_array().unwrap() {
        let url = item["url"].as_str().unwrap();
        let res = app
            .http
            .get(url)
            .bearer_auth(token)
            .header("accept", "application/fhir+ndjson")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{url}");
        assert_eq!(res.headers()["content-type"], "application/fhir+ndjson");
        let text = res.text().await.unwrap();
        let lines: Vec<Value> =
            text.lines().map(|l| serde_json::from_str(l).expect("one JSON resource a line")).collect();
        assert_eq!(lines.len() as u64, item["count"].as_u64().unwrap(), "the manifest's count is the file's");
        for line in text.lines() {
            tideway_tests::collect(line.as_bytes());
        }
        out.push((item["type"].as_str().unwrap().to_owned(), lines));
    }
    out
}

/// Asserts that no output line identifies a patient of the population: no NHS number, gateway
/// id, local id, family name, full birth date or full postcode, as a word or a whole value.
fn assert_nothing_identifying(app: &TestApp, lines: &[&Value]) {
    let text: String = lines.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n");
    let words: HashSet<&str> =
        text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let pop = &app.population;
    for i in 0..pop.patient_count() {
        let Some(nhs) = pop.nhs_number(i) else { continue };
        assert!(!words.contains(nhs.as_str()), "an NHS number is in an output file");
        assert!(!text.contains(&app.state.records.ids.id_for(&nhs)), "a gateway id is in an output file");
        for b in pop.boroughs_of(i) {
            assert!(!text.contains(&pop.local_id(b, i)), "a local id is in an output file");
        }
        let Some(p) = pop.person(i) else { continue };
        assert!(!words.contains(p.family), "a family name is in an output file");
        assert!(!text.contains(&p.birth_date), "a full birth date is in an output file");
        assert!(!text.contains(&p.address.postcode), "a full postcode is in an output file");
    }
}

#[tokio::test]
async fn a_commissioning_analyst_exports_de_identified_data_without_opted_out_patients() {
    let app = TestApp::spawn(options()).await;
    let token = app.token_for(&analyst()).await;

    // The asynchronous pattern only, with the parameters the IG names.
    assert_eq!(app.get("/$export", Some(&token)).await.status, 400, "without Prefer: respond-async");
    for bad in [
        "/$export?_typeFilter=Condition%3Fcode%3Dx",
        "/$export?_outputFormat=text/csv",
        "/$export?_type=Practitioner",
        "/$export?_since=yesterday",
    ] {
        let a = kick_off(&app, bad, &token).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
        assert_eq!(a.body["resourceType"], "OperationOutcome");
    }
    let started = kick_off(&app, "/$export?_outputFormat=application/fhir%2Bndjson", &token).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let status_url = started.header("content-location").expect("Content-Location names the status URL");
    assert!(status_url.starts_with(&app.base_url));
    let (done, _) = wait_for(&app, &status_url, &token).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let manifest = &done.body;
    assert_eq!(manifest["requiresAccessToken"], true);
    assert!(manifest["transactionTime"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(
        manifest["request"].as_str().unwrap().ends_with("/$export?_outputFormat=application/fhir%2Bndjson")
    );
    let files = download(&app, manifest, "output", &token).await;
    assert!(manifest["error"].as_array().unwrap().is_empty(), "every source answered: {}", manifest["error"]);

    // One Patient per registered patient who has not opted out, under the project's pseudonym.
    let pseudonyms = pseudonyms(&app);
    let patients: Vec<&Value> = files.iter().filter(|(t, _)| t == "Patient").flat_map(|(_, l)| l).collect();
    let ids: HashSet<&str> = patients.iter().map(|p| p["id"].as_str().unwrap()).collect();
    let expected: Vec<usize> = registered(&app).into_iter().filter(|i| !OPTED_OUT.contains(i)).collect();
    assert_eq!(ids.len(), patients.len(), "no patient twice");
    assert_eq!(patients.len(), expected.len(), "every registered patient who did not opt out");
    for i in expected {
        let nhs = app.population.nhs_number(i).unwrap();
        assert!(ids.contains(pseudonyms.patient(nhs.as_str()).as_str()), "patient {i} is exported");
    }
    let everything: String = files.iter().flat_map(|(_, l)| l).map(Value::to_string).collect();
    for i in OPTED_OUT {
        let nhs = app.population.nhs_number(i).unwrap();
        assert!(
            !everything.contains(&pseudonyms.patient(nhs.as_str())),
            "opted-out patient {i} is in no file"
        );
    }
    // Nothing identifying anywhere, and no free text.
    let all: Vec<&Value> = files.iter().flat_map(|(_, l)| l).collect();
    assert_nothing_identifying(&app, &all);
    for (_, lines) in &files {
        for r in lines {
            for key in ["text", "note", "identifier", "name", "telecom"] {
                assert!(r.get(key).is_none(), "{} carries {key}", r["resourceType"]);
            }
            if let Some(subject) = r.get("subject").or_else(|| r.get("patient")) {
                let reference = subject["reference"].as_str().unwrap();
                assert!(
                    ids.contains(reference.trim_start_matches("Patient/")),
                    "references point at pseudonyms"
                );
            }
        }
    }
    assert!(files.iter().any(|(t, l)| t == "Condition" && !l.is_empty()), "clinical data is exported too");
    // A restricted (S-flagged) patient's district is not exported either.
    let restricted: Vec<String> = (0..app.population.patient_count())
        .filter(|i| app.population.is_restricted(*i) && !OPTED_OUT.contains(i))
        .filter_map(|i| app.population.nhs_number(i))
        .map(|n| pseudonyms.patient(n.as_str()))
        .collect();
    let shown: Vec<&&Value> =
        patients.iter().filter(|p| restricted.iter().any(|r| p["id"] == r.as_str())).collect();
    assert!(!shown.is_empty(), "the fixture holds a restricted patient");
    assert!(shown.iter().all(|p| p.get("address").is_none()), "no district for a restricted patient");
}

#[tokio::test]
async fn only_secondary_use_under_an_agreement_may_export_and_only_the_owner_sees_the_job() {
    let app = TestApp::spawn(options()).await;
    let analyst_token = app.token_for(&analyst()).await;
    // Direct care is never served population data, and secondary use never a record.
    let clinician = app.token().await;
    assert_eq!(kick_off(&app, "/$export", &clinician).await.status, 403);
    let nhs = app.population.nhs_number(0).unwrap();
    let search = app.get(&tideway_tests::nhs_search(nhs.as_str()), Some(&analyst_token)).await;
    assert_eq!(search.status, 403, "an analyst cannot read a patient's record: {}", search.body);
    assert!(search.body.to_string().contains("de-identified population data only"));
    // HOPERAT at an organisation no secondary-use agreement names.
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    assert_eq!(kick_off(&app, "/$export", &officer).await.status, 403);

    let started =
        kick_off(&app, "/Group/source.borough-01/$export?_type=Patient,Condition", &analyst_token).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let status_url = started.header("content-location").unwrap();
    let (done, _) = wait_for(&app, &status_url, &analyst_token).await;
    assert_eq!(done.status, 200);
    let types: HashSet<&str> =
        done.body["output"].as_array().unwrap().iter().map(|o| o["type"].as_str().unwrap()).collect();
    assert!(types.iter().all(|t| ["Patient", "Condition"].contains(t)), "_type is honoured: {types:?}");
    let patients = done.body["output"].as_array().unwrap().iter().find(|o| o["type"] == "Patient").unwrap();
    let held = kinds::registered(app.settings.sources[1].kind, &app.population, 1)
        .into_iter()
        .filter(|(nhs, _)| app.population.patient_index(nhs).is_some_and(|i| !OPTED_OUT.contains(&i)))
        .count();
    assert_eq!(patients["count"].as_u64().unwrap() as usize, held, "the group is borough-01's patients");

    // Another analyst of the same unit is not the owner: 403 for the status and every file.
    let mut other = analyst();
    other.user_id = "other-analyst".to_owned();
    let colleague = app.token_for(&other).await;
    assert_eq!(app.get(&status_url, Some(&colleague)).await.status, 403);
    let file = patients["url"].as_str().unwrap();
    assert_eq!(app.get(file, Some(&colleague)).await.status, 403);
    assert_eq!(app.get(file, None).await.status, 401);
    assert_eq!(kick_off(&app, "/Group/practice.NOPE!/$export", &analyst_token).await.status, 404);
    assert_eq!(kick_off(&app, "/Group/nothing.here/$export", &analyst_token).await.status, 404);
    let groups = app.get("/Group", Some(&analyst_token)).await;
    assert_eq!(groups.status, 200);
    assert!(groups.body.to_string().contains("source.borough-01"));
    // Every fullUrl reads back.
    let full_url = groups.body["entry"][0]["fullUrl"].as_str().unwrap().to_owned();
    let one = app.get(&full_url, Some(&analyst_token)).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.body, groups.body["entry"][0]["resource"]);
    assert_eq!(app.get("/Group/source.nowhere", Some(&analyst_token)).await.status, 404);
}

#[tokio::test]
async fn a_cancelled_export_is_gone_and_an_interrupted_one_resumes_after_a_restart() {
    let app = slow_app(40).await;
    let token = app.token_for(&analyst()).await;

    // Cancel while it runs: the status URL is gone, and so are the files.
    let started = kick_off(&app, "/$export", &token).await;
    let status_url = started.header("content-location").unwrap();
    let running = app.get(&status_url, Some(&token)).await;
    assert_eq!(running.status, 202);
    let job = status_url.rsplit('/').next().unwrap().to_owned();
    let cancelled = app.http.delete(&status_url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(cancelled.status(), 202);
    assert_eq!(app.get(&status_url, Some(&token)).await.status, 404);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !app.settings.secondary.export_directory.join(&job).exists(),
        "a cancelled job's files are removed"
    );

    // Start another and stop the gateway halfway: the next start resumes it where it was.
    let started = kick_off(&app, "/$export?_type=Patient", &token).await;
    let status_url = started.header("content-location").unwrap();
    wait_until_walking(&app, &status_url, &token).await;
    app.state.secondary.exports.stop_flag().store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let job = status_url.rsplit('/').next().unwrap();
    let interrupted = app.state.secondary.exports.job(job).await.unwrap().unwrap();
    assert_eq!(interrupted.state.code(), "running", "a stopped gateway leaves its job to be resumed");
    assert!(interrupted.patients_done > 0 && interrupted.patients_done < interrupted.patients_total);
    let path = status_url.trim_start_matches(&app.base_url).to_owned();
    let restarted = app.spawn_replica().await;
    let resumed = format!("{}{path}", restarted.base_url);
    let mut manifest = None;
    for _ in 0..600 {
        let res = app.http.get(&resumed).bearer_auth(&token).send().await.unwrap();
        if res.status() == 200 {
            manifest = Some(res.json::<Value>().await.unwrap());
            break;
        }
        assert_eq!(res.status(), 202);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let manifest = manifest.expect("the resumed job completes");
    let url = manifest["output"][0]["url"].as_str().unwrap().to_owned();
    let text = app.http.get(&url).bearer_auth(&token).send().await.unwrap().text().await.unwrap();
    let ids: Vec<&str> =
        text.lines().map(|l| l.split("\"id\":\"").nth(1).unwrap().split('"').next().unwrap()).collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "nothing was written twice");
    let expected = registered(&app).into_iter().filter(|i| !OPTED_OUT.contains(i)).count();
    assert_eq!(ids.len(), expected, "nothing was lost across the restart");
    restarted.handle.stop(true).await;
}

#[tokio::test]
async fn opt_outs_through_the_api_take_effect_on_the_next_export_and_the_figures_are_suppressed() {
    let mut opts = options();
    opts.patients = 60;
    opts.admin = true;
    let app = TestApp::spawn(opts).await;
    let analyst_token = app.token_for(&analyst()).await;
    let admin = app.token_for(&user(REGISTRY_ADMIN, "R8000", PurposeOfUse::Operations)).await;
    let newly = app.population.nhs_number(5).unwrap();
    let body = serde_json::json!({"add": [newly.as_str()]});
    let analyst_refused =
        app.send_json(reqwest::Method::POST, "/admin/opt-outs", &analyst_token, &body).await;
    assert_eq!(analyst_refused.status, 403);
    let bad = app
        .send_json(
            reqwest::Method::POST,
            "/admin/opt-outs",
            &admin,
            &serde_json::json!({"add": ["1234567890"]}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(!bad.body.to_string().contains("1234567890"), "a bad number is not repeated");
    let added = app.send_json(reqwest::Method::POST, "/admin/opt-outs", &admin, &body).await;
    assert_eq!(added.status, 200, "{}", added.body);
    // An emptied (or cut-off) feed file does not lift the opt-outs it held.
    std::fs::write(app.settings.secondary.opt_out_file.as_ref().unwrap(), "").unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let origins = app.get("/admin/opt-outs", Some(&admin)).await;
    assert_eq!(origins.body["origins"]["file"], OPTED_OUT.len(), "{}", origins.body);
    assert_eq!(origins.body["origins"]["api"], 1);

    let refreshed = app
        .send_json(reqwest::Method::POST, "/admin/population-figures", &admin, &serde_json::json!({}))
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let reports = app.get("/MeasureReport?measure=diabetes", Some(&analyst_token)).await;
    assert_eq!(reports.status, 200, "{}", reports.body);
    let opted: Vec<usize> = OPTED_OUT.iter().copied().chain([5]).collect();
    let mut published_boroughs = 0;
    for entry in reports.body["entry"].as_array().unwrap() {
        let r = &entry["resource"];
        tideway_tests::collect(r.to_string().as_bytes());
        assert_eq!(r["resourceType"], "MeasureReport");
        let group = &r["group"][0];
        let count = |p: &Value, code: &str| {
            p.as_array()
                .unwrap()
                .iter()
                .find(|x| x["code"]["coding"][0]["code"] == code)
                .and_then(|x| x["count"].as_u64())
        };
        // Every published count is at least the threshold, and no suppressed stratum can be
        // worked out from its total and the others.
        let strata = group["stratifier"][0]["stratum"].as_array().unwrap();
        // Nowhere does a published numerator sit within the threshold of its published
        // denominator (that would say how few do not have the condition).
        for p in strata.iter().map(|s| &s["population"]).chain([&group["population"]]) {
            if let (Some(n), Some(d)) = (count(p, "numerator"), count(p, "initial-population")) {
                assert!(d - n >= 5, "{n} of {d}: the few without the condition could be worked out");
            }
        }
        for code in ["initial-population", "numerator"] {
            let total = count(&group["population"], code);
            let parts: Vec<Option<u64>> = strata.iter().map(|s| count(&s["population"], code)).collect();
            assert!(
                total.is_none_or(|n| n >= 5) && parts.iter().flatten().all(|n| *n >= 5),
                "{code} below 5 published"
            );
            if total.is_some() {
                assert_ne!(
                    parts.iter().filter(|p| p.is_none()).count(),
                    1,
                    "one suppressed part could be differenced"
                );
            }
        }
        // A borough's registered patients, opted-out ones left out (when published).
        if let Some(borough) =
            r["subject"]["reference"].as_str().and_then(|s| s.strip_prefix("Group/source."))
        {
            let b = app.settings.sources.iter().position(|s| s.id.as_str() == borough).unwrap();
            let expected = kinds::registered(app.settings.sources[b].kind, &app.population, b)
                .into_iter()
                .filter(|(nhs, _)| app.population.patient_index(nhs).is_some_and(|i| !opted.contains(&i)))
                .count() as u64;
            if let Some(den) = count(&group["population"], "initial-population") {
                assert_eq!(den, expected, "{borough}: registered patients less the opted-out");
                published_boroughs += 1;
            }
        }
    }
    assert_eq!(published_boroughs, 3, "every borough's registered population is large enough to publish");
    // The dashboard's population panel shows the same figures as the MeasureReports.
    let panel: Value = app
        .http
        .get(format!("{}/dashboard/api/population", app.admin_url.as_deref().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for entry in reports.body["entry"].as_array().unwrap() {
        let r = &entry["resource"];
        let Some(borough) = r["subject"]["reference"].as_str().and_then(|s| s.strip_prefix("Group/source."))
        else {
            continue;
        };
        let cell = panel["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["measure"] == "diabetes" && c["borough"] == borough)
            .expect("the panel has every borough");
        let numerator = r["group"][0]["population"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["code"]["coding"][0]["code"] == "numerator")
            .unwrap();
        assert_eq!(cell["numerator"], numerator.get("count").cloned().unwrap_or(Value::Null), "{borough}");
        assert_eq!(cell["suppressed"], numerator.get("count").is_none(), "{borough}");
    }
    assert!(!reports.body.to_string().contains(newly.as_str()));
    let full_url = reports.body["entry"][0]["fullUrl"].as_str().unwrap().to_owned();
    let one = app.get(&full_url, Some(&analyst_token)).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.body, reports.body["entry"][0]["resource"]);
    // Clinicians and unknown measures are refused.
    assert_eq!(app.get("/MeasureReport", Some(&app.token().await)).await.status, 403);
    assert_eq!(app.get("/MeasureReport?measure=gout", Some(&analyst_token)).await.status, 400);

    // The next export leaves the patient opted out through the API out.
    let started = kick_off(&app, "/$export?_type=Patient", &analyst_token).await;
    let (done, _) = wait_for(&app, &started.header("content-location").unwrap(), &analyst_token).await;
    let files = download(&app, &done.body, "output", &analyst_token).await;
    let text: String = files.iter().flat_map(|(_, l)| l).map(Value::to_string).collect();
    assert!(!text.contains(&pseudonyms(&app).patient(newly.as_str())));
}

/// GP Connect serves direct care only (every call says `reason_for_request: directcare`), so
/// an export across a region with a GP Connect practice never asks it, and the manifest's error
/// file says so, counting its patients; a clinician's read of one of them still asks it.
#[tokio::test]
async fn an_export_never_asks_a_gp_connect_practice_and_says_what_is_missing() {
    let options = Options {
        boroughs: 12,
        patients: 10,
        regional: true,
        secondary: Some(Vec::new()),
        ..Options::default()
    };
    let app = TestApp::spawn(options).await;
    let gpc = (0..12).find(|i| kinds::regional_mix(*i).as_str() == "gp-connect").unwrap();
    let source = app.settings.sources[gpc].id.clone();
    let readers = || async {
        let a = app.get(&format!("{}_readers", app.simulators[gpc].base_url()), None).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["interaction"] == tideway_adapters::gp_connect::client::GET_STRUCTURED_RECORD)
            .count()
    };
    let before = readers().await;

    let token = app.token_for(&analyst()).await;
    let started = kick_off(&app, "/$export", &token).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let (done, _) = wait_for(&app, &started.header("content-location").unwrap(), &token).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(readers().await, before, "the export asked the GP Connect practice for no record");
    let errors = download(&app, &done.body, "error", &token).await;
    let said: Vec<&str> = errors
        .iter()
        .flat_map(|(_, lines)| lines)
        .filter_map(|o| o["issue"][0]["diagnostics"].as_str())
        .filter(|d| d.starts_with(&format!("source {source} ")))
        .collect();
    let held = kinds::registered(app.settings.sources[gpc].kind, &app.population, gpc).len();
    assert!(held > 0, "the practice registers patients");
    assert_eq!(
        said,
        [format!(
            "source {source} serves direct care only, so was not asked for {held} patients' records; their data from it is missing"
        )],
        "{errors:?}"
    );

    // Direct care still reads it.
    let (nhs, _) = kinds::registered(app.settings.sources[gpc].kind, &app.population, gpc)[0].clone();
    let clinician = app.token().await;
    let id = app.patient_id(&clinician, nhs.as_str()).await;
    assert_eq!(app.get(&format!("/Patient/{id}/$everything"), Some(&clinician)).await.status, 200);
    assert!(readers().await > before, "a clinician's read asks the practice");
    app.stop().await;
}

/// POSTs a Bulk Data kick-off: a `Parameters` body, `Prefer: respond-async`.
async fn kick_off_by_post(app: &TestApp, path: &str, token: &str, parameters: &[Value]) -> Answer {
    let body = serde_json::json!({"resourceType": "Parameters", "parameter": parameters});
    let res = app
        .http
        .post(format!("{}{path}", app.base_url))
        .bearer_auth(token)
        .header(PREFER_ASYNC.0, PREFER_ASYNC.1)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    Answer::from_response(res).await
}

/// The types a finished job's manifest lists in its `output`.
fn output_types(manifest: &Value) -> Vec<String> {
    let mut types: Vec<String> = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    types
}

/// Bulk Data v2's other kick-offs: POST with a `Parameters` body (the same parameters as the
/// query), and the Patient level (the Patient compartment's types only). A `patient` parameter
/// is refused: a de-identified export is never of named patients.
#[tokio::test]
async fn an_export_is_kicked_off_by_post_or_at_the_patient_level() {
    use serde_json::json;
    let app = TestApp::spawn(options()).await;
    let token = app.token_for(&analyst()).await;

    let asked = [
        json!({"name": "_type", "valueString": "Patient,Condition"}),
        json!({"name": "_outputFormat", "valueString": "application/fhir+ndjson"}),
    ];
    let started = kick_off_by_post(&app, "/$export", &token, &asked).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let (done, _) = wait_for(&app, &started.header("content-location").unwrap(), &token).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(output_types(&done.body), ["Condition", "Patient"]);
    assert!(done.body["request"].as_str().unwrap().ends_with("/$export"), "{}", done.body["request"]);
    let files = download(&app, &done.body, "output", &token).await;
    let patients = files.iter().find(|(t, _)| t == "Patient").map(|(_, l)| l.len()).unwrap();
    let expected = registered(&app).into_iter().filter(|i| !OPTED_OUT.contains(i)).count();
    assert_eq!(patients, expected, "the POSTed export is the same population");

    for (path, parameters, said) in [
        (
            "/$export",
            vec![json!({"name": "patient", "valueReference": {"reference": "Patient/p1"}})],
            "never of named patients",
        ),
        (
            "/Patient/$export",
            vec![json!({"name": "_type", "valueString": "Task"})],
            "by a Patient-level export",
        ),
        ("/$export", vec![json!({"name": "_typeFilter", "valueString": "Condition?code=x"})], "_typeFilter"),
        ("/$export", vec![json!({"name": "_type", "valueCoding": {"code": "x"}})], "Parameters"),
    ] {
        let refused = kick_off_by_post(&app, path, &token, &parameters).await;
        assert_eq!(refused.status, 400, "{path} {parameters:?}: {}", refused.body);
        assert_eq!(refused.body["resourceType"], "OperationOutcome");
        assert!(refused.body.to_string().contains(said), "{said}: {}", refused.body);
    }
    assert_eq!(kick_off(&app, "/Patient/$export?_type=Task", &token).await.status, 400);
    // A HEAD never starts a job: 405, naming what does.
    for path in ["/$export", "/Patient/$export", "/Group/source.borough-00/$export"] {
        let head = app
            .http
            .head(format!("{}{path}", app.base_url))
            .bearer_auth(&token)
            .header(PREFER_ASYNC.0, PREFER_ASYNC.1)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 405, "HEAD {path}");
        assert_eq!(head.headers()["allow"], "GET, POST");
        assert!(head.headers().get("content-location").is_none(), "HEAD {path} started no job");
    }

    // The Patient level: every exported type of the compartment, no other.
    let started = kick_off(&app, "/Patient/$export", &token).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let (done, _) = wait_for(&app, &started.header("content-location").unwrap(), &token).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let types = output_types(&done.body);
    assert!(types.iter().all(|t| tideway_deid::in_patient_compartment(t)), "{types:?}");
    assert!(types.contains(&"Patient".to_owned()) && types.contains(&"Condition".to_owned()), "{types:?}");

    // Not a patient's id: a clinician is refused the export (403), not told of no patient.
    let clinician = app.token().await;
    let refused = kick_off(&app, "/Patient/$export", &clinician).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    app.stop().await;
}

/// A finished export is kept for `secondary.export_retention_secs`, then removed with its
/// files: the status URL and the files answer 404, as a cancelled job's do.
#[tokio::test]
async fn a_finished_export_is_removed_with_its_files_after_its_retention() {
    let app = TestApp::spawn(options()).await;
    let token = app.token_for(&analyst()).await;
    let started = kick_off(&app, "/$export?_type=Patient", &token).await;
    let status_url = started.header("content-location").unwrap();
    let (done, _) = wait_for(&app, &status_url, &token).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let file_url = done.body["output"][0]["url"].as_str().unwrap().to_owned();
    let job = status_url.rsplit('/').next().unwrap().to_owned();
    let folder = app.settings.secondary.export_directory.join(&job);
    assert!(folder.exists(), "kept while within its retention (a day by default)");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(app.get(&status_url, Some(&token)).await.status, 200, "a day has not passed");

    // The same gateway restarted with a retention of one second removes it.
    let mut settings = app.settings.clone();
    settings.secondary.export_retention_secs = 1;
    let restarted = app.spawn_replica_with(settings).await;
    let path = status_url.trim_start_matches(&app.base_url).to_owned();
    let mut status = 0;
    for _ in 0..100 {
        status = app.get(&format!("{}{path}", restarted.base_url), Some(&token)).await.status;
        if status != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404, "the job is gone after its retention");
    assert!(!folder.exists(), "and so are its files");
    let file = app.http.get(&file_url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(file.status(), 404);
    restarted.handle.stop(true).await;
    app.stop().await;
}

/// Replicas sharing a store never walk one job at once: a replica started while another walks
/// a job leaves it alone (the walking run holds the job's lease), and the finished files hold
/// each patient once.
#[tokio::test]
async fn a_replica_started_mid_export_leaves_the_job_to_the_replica_walking_it() {
    let app = slow_app(150).await;
    let token = app.token_for(&analyst()).await;
    let started = kick_off(&app, "/$export?_type=Patient", &token).await;
    let status_url = started.header("content-location").unwrap();
    wait_until_walking(&app, &status_url, &token).await;
    let replica = app.spawn_replica().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = app.get(&status_url, Some(&token)).await;
    assert_eq!(
        a.status, 202,
        "the job is still being walked after the replica has looked for unfinished jobs"
    );
    let path = status_url.trim_start_matches(&app.base_url).to_owned();
    let (done, _) = wait_for(&app, &format!("{}{path}", replica.base_url), &token).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let files = download(&app, &done.body, "output", &token).await;
    let ids: Vec<&str> = files.iter().flat_map(|(_, l)| l).map(|p| p["id"].as_str().unwrap()).collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "no patient was written twice");
    let expected = registered(&app).into_iter().filter(|i| !OPTED_OUT.contains(i)).count();
    assert_eq!(ids.len(), expected, "and none was lost");
    // One run walked it: one audit intent and one outcome for the job's walk.
    use sqlx::Connection;
    let job = status_url.rsplit('/').next().unwrap();
    let path = app.sqlite_path.clone().unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let (intents, outcomes): (i64, i64) = sqlx::query_as(
        "SELECT SUM(phase = 'intent'), SUM(phase = 'outcome') FROM audit_event WHERE request_id = $1",
    )
    .bind(format!("export-{job}"))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((intents, outcomes), (1, 1), "one walk of the job, by one replica");
    replica.handle.stop(true).await;
    app.stop().await;
}

/// The registered population feed is looked at again while the gateway runs: a registration
/// added to the file joins the locator and the population an export walks, without a restart;
/// the registrations already loaded stay.
#[tokio::test]
async fn a_registration_added_to_the_feed_joins_the_locator_without_a_restart() {
    use tideway_gateway::store::{Cohort, PatientIndex as _};
    let app = TestApp::spawn(options()).await;
    let pop = &app.population;
    let index = (0..pop.patient_count())
        .find(|i| !pop.boroughs_of(*i).contains(&0) && pop.nhs_number(*i).is_some())
        .expect("a patient borough 0 does not hold");
    let nhs = pop.nhs_number(index).unwrap();
    let id = app.state.records.ids.id_for(&nhs);
    let source = app.settings.sources[0].id.to_string();
    let held_by_0 =
        || async { app.state.secondary.store.cohort_size(&Cohort::HeldBy(source.clone())).await.unwrap() };
    let linked = || async {
        app.state.store.links(&id, u64::MAX).await.unwrap().into_iter().any(|l| l.source_id == source)
    };
    let before = held_by_0().await;
    assert!(!linked().await, "borough 0 is not known to hold the patient");

    let path = app.settings.identity.registrations_file.clone().unwrap();
    let mut feed = std::fs::read_to_string(&path).unwrap();
    feed.push_str(&format!("{source},{},moved-in-1\n", nhs.as_str()));
    std::fs::write(&path, feed).unwrap();
    let mut joined = false;
    for _ in 0..50 {
        if linked().await {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(joined, "the new registration reached the locator (the feed is looked at every second)");
    assert_eq!(held_by_0().await, before + 1, "and the population borough 0 registers");
    app.stop().await;
}
