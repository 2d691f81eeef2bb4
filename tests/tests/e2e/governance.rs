//! Governance of sharing agreements over HTTP: a new version is published, waits for every
//! data controller's approval while the previous one stays in force, and is then what decides;
//! every step is audited; the public transparency notice lists only what is in force.

use serde_json::Value;
use tideway_auth::PurposeOfUse;
use tideway_gateway::store::AuditLog;
use tideway_simulators::population::Scenario;
use tideway_tests::{Answer, Options, TestApp, codings_in, user};

/// The shipped podiatry agreement as version `version`, also sharing mental-health problems.
fn podiatry_widened(version: u32) -> String {
    tideway_policy::agreement::EXAMPLES[2]
        .1
        .replace("version = 1", &format!("version = {version}"))
        .replace("\"circulation\"]", "\"circulation\", \"mental-health\"]")
}

/// An agreement of a new id, shared by `controller` only, titled `title`.
fn pharmacy(controller: &str, title: &str) -> String {
    format!(
        "id = \"pharmacy\"\nversion = 1\ntitle = \"{title}\"\nconsent_model = \"implied-direct-care\"\n\
         start = 2026-01-01\nobjection = \"Ask the pharmacy.\"\ncontrollers = [\"{controller}\"]\n\n\
         [recipients]\norganisations = [\"FPH01\"]\nroles = [\"R8003\"]\npurposes = [\"TREAT\"]\n\n\
         [record]\nsections = [\"medications\", \"allergies\"]\n"
    )
}

async fn controller_token(app: &TestApp, ods: &str) -> String {
    app.token_for(&user(ods, "R8000", PurposeOfUse::Treat)).await
}

/// What the podiatrist sees of the patient, and the agreements the audit says decided it.
async fn podiatry_view(app: &TestApp, token: &str, id: &str) -> (bool, Value) {
    let all = app.get(&format!("/Patient/{id}/$everything"), Some(token)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let depression = all.matches().iter().flat_map(|r| codings_in(r)).any(|c| c.code == "35489007");
    let rows = app.state.store.audit_for_request(&all.header("x-request-id").unwrap()).await.unwrap();
    let detail: Value = serde_json::from_str(&rows.last().unwrap().detail).unwrap();
    (depression, detail["agreements"].clone())
}

async fn audited(app: &TestApp, answer: &Answer) -> Vec<tideway_gateway::audit::StoredAudit> {
    app.state.store.audit_for_request(&answer.header("x-request-id").unwrap()).await.unwrap()
}

fn in_force_versions(transparency: &Value, id: &str) -> Vec<u64> {
    transparency["agreements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"] == id)
        .map(|a| a["version"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_new_version_decides_only_once_every_data_controller_has_approved_it() {
    let app = TestApp::spawn(Options::default()).await;
    let podiatrist = app.token_for(&user("YPOD1", "R8003", PurposeOfUse::Treat)).await;
    let nhs = app.population.scenario_patients(Scenario::PodiatryDiabetic, 1)[0].as_str().to_owned();
    let id = app.patient_id(&podiatrist, &nhs).await;
    assert_eq!(podiatry_view(&app, &podiatrist, &id).await, (false, serde_json::json!(["podiatry@1"])));
    let controllers = ["LBX01", "LBX02", "LBX03"];
    let mut tokens = Vec::new();
    for c in controllers {
        tokens.push(controller_token(&app, c).await);
    }

    let published = app.post_text("/agreements", Some(&tokens[0]), &podiatry_widened(2)).await;
    assert_eq!(published.status, 201, "{}", published.body);
    assert_eq!(
        published.body,
        serde_json::json!({"id": "podiatry", "version": 2, "state": "awaiting-approval",
            "controllers": controllers, "approved_by": [], "awaiting": controllers})
    );
    assert!(published.header("location").unwrap().ends_with("/agreements/podiatry/2"));
    let rows = audited(&app, &published).await;
    assert_eq!(rows.iter().map(|r| r.phase.as_str()).collect::<Vec<_>>(), ["intent", "outcome"]);
    assert!(rows.iter().all(|r| r.action == "agreement-publish" && r.detail.contains("podiatry@2")));
    assert_eq!(rows[1].outcome, "success");

    // Two of three approvals: the previous version still decides.
    for (n, token) in tokens[..2].iter().enumerate() {
        let approved = app.post_text("/agreements/podiatry/2/approve", Some(token), "").await;
        assert_eq!(approved.status, 200, "{}", approved.body);
        assert_eq!(approved.body["state"], "awaiting-approval");
        assert_eq!(approved.body["approved_by"][n]["ods_code"], controllers[n]);
        assert_eq!(approved.body["approved_by"][n]["user"], "555021935199");
        assert!(approved.body["approved_by"][n]["at"].is_string());
        assert_eq!(approved.body["awaiting"].as_array().unwrap().len(), 2 - n);
        let rows = audited(&app, &approved).await;
        assert!(rows.iter().all(|r| r.action == "agreement-approve" && r.detail.contains("podiatry@2")));
        assert_eq!(rows.last().unwrap().organisation.as_deref(), Some(controllers[n]));
        assert_eq!(podiatry_view(&app, &podiatrist, &id).await, (false, serde_json::json!(["podiatry@1"])));
    }
    let again = app.post_text("/agreements/podiatry/2/approve", Some(&tokens[0]), "").await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.issue_code(), "conflict");
    let outsider = app.post_text("/agreements/podiatry/2/approve", Some(&podiatrist), "").await;
    assert_eq!(outsider.status, 403, "{}", outsider.body);
    assert_eq!(outsider.issue_code(), "forbidden");
    assert_eq!(audited(&app, &outsider).await.last().unwrap().outcome, "denied");
    for unknown in
        ["/agreements/podiatry/3/approve", "/agreements/nosuch/1/approve", "/agreements/podiatry/x/approve"]
    {
        let a = app.post_text(unknown, Some(&tokens[2]), "").await;
        assert_eq!(a.status, 404, "{unknown}: {}", a.body);
        assert_eq!(a.body["resourceType"], "OperationOutcome");
    }
    let transparency = app.get("/transparency", None).await;
    assert_eq!(in_force_versions(&transparency.body, "podiatry"), [1]);

    // The last approval: in force from the very next request.
    let last = app.post_text("/agreements/podiatry/2/approve", Some(&tokens[2]), "").await;
    assert_eq!(last.status, 200, "{}", last.body);
    assert_eq!(last.body["state"], "in-force");
    assert_eq!(last.body["awaiting"], serde_json::json!([]));
    assert_eq!(podiatry_view(&app, &podiatrist, &id).await, (true, serde_json::json!(["podiatry@2"])));
    let transparency = app.get("/transparency", None).await;
    assert_eq!(in_force_versions(&transparency.body, "podiatry"), [2]);

    let listed = app.get("/agreements/podiatry", Some(&tokens[0])).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let states: Vec<(u64, &str)> = listed.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_u64().unwrap(), v["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [(1, "superseded"), (2, "in-force")]);
    assert_eq!(listed.body["versions"][1]["approved_by"].as_array().unwrap().len(), 3);
    let all = app.get("/agreements", Some(&podiatrist)).await;
    assert_eq!(all.status, 200);
    assert_eq!(all.body["agreements"].as_array().unwrap().len(), 7, "six files and one published");
    assert_eq!(app.get("/agreements/nosuch", Some(&podiatrist)).await.status, 404);
    // A version already in force needs no more approvals; an older one none at all.
    assert_eq!(app.post_text("/agreements/podiatry/2/approve", Some(&tokens[2]), "").await.status, 409);
    assert_eq!(app.post_text("/agreements/podiatry/1/approve", Some(&tokens[2]), "").await.status, 409);
    app.stop().await;
}

#[tokio::test]
async fn publishing_refuses_bad_stale_and_unauthorised_versions_naming_what_is_wrong() {
    let app = TestApp::spawn(Options { boroughs: 2, ..Options::default() }).await;
    let controller = controller_token(&app, "LBX01").await;

    for (path, body) in
        [("/agreements", podiatry_widened(2)), ("/agreements/podiatry/2/approve", String::new())]
    {
        let a = app.post_text(path, None, &body).await;
        assert_eq!(a.status, 401, "{path}");
        assert!(a.header("www-authenticate").is_some());
    }
    assert_eq!(app.get("/agreements", None).await.status, 401);

    // A field error names its line, column and field.
    let text = podiatry_widened(2).replace("roles = [\"R8003\"]", "roles = [\"nurse\"]");
    let line = text.lines().position(|l| l.contains("\"nurse\"")).unwrap() + 1;
    let bad = app.post_text("/agreements", Some(&controller), &text).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.issue_code(), "invalid");
    let diagnostics = bad.body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains(&format!("{line}:10: recipients.roles:")), "{diagnostics}");
    assert_eq!(audited(&app, &bad).await.last().unwrap().outcome, "denied");
    // So does a syntax error, and an unknown key (never a rule silently ignored).
    for (broken, field) in [
        (podiatry_widened(2).replace("title = \"", "title = "), "title"),
        (podiatry_widened(2).replace("[record]", "[record]\nshare_everything = true"), "share_everything"),
    ] {
        let a = app.post_text("/agreements", Some(&controller), &broken).await;
        assert_eq!(a.status, 400, "{}", a.body);
        let d = a.body["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(d.starts_with("agreement:") && d.split(':').nth(1).unwrap().parse::<u32>().is_ok(), "{d}");
        assert!(field == "title" || d.contains(field), "{d}");
    }
    // Not higher than the version in force from the files.
    let stale =
        app.post_text("/agreements", Some(&controller), tideway_policy::agreement::EXAMPLES[2].1).await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert_eq!(stale.issue_code(), "conflict");
    // Only a data controller it names may publish it.
    let podiatrist = app.token_for(&user("YPOD1", "R8003", PurposeOfUse::Treat)).await;
    assert_eq!(app.post_text("/agreements", Some(&podiatrist), &podiatry_widened(2)).await.status, 403);
    let other = controller_token(&app, "LBX02").await;
    assert_eq!(app.post_text("/agreements", Some(&other), &pharmacy("LBX01", "Pharmacy")).await.status, 403);
    // Once published, the same version again (or a lower one) is stale.
    assert_eq!(app.post_text("/agreements", Some(&controller), &podiatry_widened(3)).await.status, 201);
    for version in [3, 2] {
        let a = app.post_text("/agreements", Some(&other), &podiatry_widened(version)).await;
        assert_eq!(a.status, 409, "version {version}: {}", a.body);
    }
    // A body beyond server.max_request_bytes is refused before it is read whole.
    let huge = format!("{}\n# {}", podiatry_widened(4), "x".repeat(32 * 1024));
    assert_eq!(app.post_text("/agreements", Some(&controller), &huge).await.status, 413);
    app.stop().await;
}

#[tokio::test]
async fn a_publication_or_approval_that_cannot_be_audited_is_not_stored() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let controller = controller_token(&app, "LBX01").await;
    let published = app.post_text("/agreements", Some(&controller), &pharmacy("LBX01", "Pharmacy")).await;
    assert_eq!(published.status, 201, "{}", published.body);
    let path = app.sqlite_path.clone().unwrap();
    {
        use sqlx::Connection;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::raw_sql("DROP TABLE audit_event").execute(&mut conn).await.unwrap();
    }
    let a = app.post_text("/agreements", Some(&controller), &podiatry_widened(2)).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.issue_code(), "transient");
    let a = app.post_text("/agreements/pharmacy/1/approve", Some(&controller), "").await;
    assert_eq!(a.status, 503, "{}", a.body);
    let ledger = app.state.agreements.ledger().await.unwrap();
    assert!(!ledger.iter().any(|e| e.agreement.id == "podiatry" && e.agreement.version == 2));
    let pharmacy = ledger.iter().find(|e| e.agreement.id == "pharmacy").unwrap();
    assert!(pharmacy.approvals.is_empty(), "the approval was not stored");
    assert_eq!(pharmacy.state.code(), "awaiting-approval");
    app.stop().await;
}

#[tokio::test]
async fn the_public_transparency_notice_lists_what_is_in_force_and_no_patient_data() {
    let app = TestApp::spawn(Options::default()).await;
    let controller = controller_token(&app, "LBX01").await;
    let title = "Community pharmacy <b>medicines & allergies</b>";
    let published = app.post_text("/agreements", Some(&controller), &pharmacy("LBX01", title)).await;
    assert_eq!(published.status, 201, "{}", published.body);
    assert_eq!(published.body["controllers"], serde_json::json!(["LBX01"]));

    let json = app.get("/transparency", None).await;
    assert_eq!(json.status, 200, "{}", json.body);
    assert!(json.header("content-type").unwrap().starts_with("application/json"));
    let ids: Vec<&str> =
        json.body["agreements"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["commissioning", "direct-care", "mental-health", "ooh-gp", "podiatry", "social-care"],
        "awaiting versions are not listed"
    );
    let podiatry =
        json.body["agreements"].as_array().unwrap().iter().find(|a| a["id"] == "podiatry").unwrap();
    assert_eq!(podiatry["version"], 1);
    assert_eq!(podiatry["consent_model"], "implied-direct-care");
    assert_eq!(podiatry["start"], "2026-01-01");
    assert_eq!(podiatry["controllers"], serde_json::json!(["LBX01", "LBX02", "LBX03"]));
    assert_eq!(podiatry["organisations"], serde_json::json!(["YPOD1"]));
    assert_eq!(podiatry["roles"], serde_json::json!(["R8003"]));
    assert_eq!(podiatry["purposes"], serde_json::json!(["TREAT"]));
    assert!(podiatry["sections"].as_array().unwrap().contains(&serde_json::json!("problems")));
    assert!(podiatry["only_code_sets"].as_array().unwrap().contains(&serde_json::json!("feet-and-legs")));
    assert_eq!(podiatry["sensitive"], serde_json::json!([]));
    assert!(podiatry["objection"].as_str().unwrap().contains("podiatry service"));
    let orgs = json.body["organisations"].as_array().unwrap();
    let roles_of = |ods: &str| orgs.iter().find(|o| o["ods_code"] == ods).map(|o| o["roles"].clone());
    assert_eq!(roles_of("LBX02"), Some(serde_json::json!(["data-controller"])));
    assert_eq!(roles_of("YPOD1"), Some(serde_json::json!(["recipient"])));
    assert_eq!(roles_of("FPH01"), None, "the pharmacy takes part only once its agreement is in force");

    let html = app.get("/transparency.html", None).await;
    assert_eq!(html.status, 200);
    assert!(html.header("content-type").unwrap().starts_with("text/html"));
    let page = String::from_utf8_lossy(&html.raw).into_owned();
    assert!(!page.contains("<script"), "no script needed");
    assert!(page.contains("How to object") && page.contains("Community podiatry"));
    assert!(!page.contains("Community pharmacy"));

    let approved = app.post_text("/agreements/pharmacy/1/approve", Some(&controller), "").await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.body["state"], "in-force");
    let json = app.get("/transparency", None).await;
    assert_eq!(in_force_versions(&json.body, "pharmacy"), [1]);
    let page = String::from_utf8_lossy(&app.get("/transparency.html", None).await.raw).into_owned();
    assert!(page.contains("Community pharmacy &lt;b&gt;medicines &amp; allergies&lt;/b&gt;"), "{page}");
    assert!(!page.contains("<b>"), "agreement text is escaped");

    // Nothing about any patient: no NHS number, no patient id, no clinical resource.
    let everything = format!("{}{}", json.body, page);
    for i in 0..app.population.patient_count() {
        let nhs = app.population.nhs_number(i).unwrap();
        assert!(!everything.contains(nhs.as_str()), "an NHS number on the transparency notice");
    }
    assert!(!everything.contains("resourceType"), "{everything}");
    let patient_id_like = everything
        .as_bytes()
        .windows(33)
        .any(|w| w[0] == b'p' && w[1..].iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
    assert!(!patient_id_like, "a patient id on the transparency notice");
    // Public: no token needed, none asked for, nothing else offered there.
    assert!(app.get("/transparency", None).await.header("www-authenticate").is_none());
    let post = app.post_text("/transparency", None, "").await;
    assert_eq!(post.status, 405);
    app.stop().await;
}
