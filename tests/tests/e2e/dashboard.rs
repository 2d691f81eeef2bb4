//! The web dashboard in a real browser: headless Chromium loads the page from the gateway's
//! operator listener, runs its script, and the figures it drew (read back from the rendered
//! DOM) are the ones `/dashboard/api/operations` answers; a screenshot of the page is decoded
//! and its pixels looked at (the bars in proportion to their values, the suppressed cell's
//! hatching, a styled page rather than a blank one). On the main listener the page is public
//! but its figures need an operator's token.
//!
//! Chromium must be installed (`/usr/bin/chromium`, Debian's `chromium`; `.ci/run` installs
//! it): without it these tests fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tideway_auth::PurposeOfUse;
use tideway_gateway::dashboard::exports::{ExportProgress, ExportSummary};
use tideway_gateway::dashboard::population::{Borough, Cell, Measure, PopulationFigures, PopulationView};
use tideway_tests::{Options, PRIVACY_OFFICE, REGISTRY_ADMIN, TestApp, user};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The first two measure colours of dashboard.js, and its suppressed cells' hatch background.
const MEASURE_A: [u8; 3] = [0x1f, 0x6f, 0xeb];
const MEASURE_B: [u8; 3] = [0xe3, 0x62, 0x09];
const HATCH: [u8; 3] = [0xd0, 0xd4, 0xd9];
/// The page header's background (dashboard.css) and the latency chart's p99 bars.
const HEADER: [u8; 3] = [0x0b, 0x3d, 0x5c];
const P99: [u8; 3] = [0x2f, 0x5f, 0x8a];

struct Jobs;

impl ExportProgress for Jobs {
    fn jobs(&self) -> Vec<ExportSummary> {
        vec![
            ExportSummary { id: "export-7".into(), state: "in-progress".into(), progress: 0.4 },
            ExportSummary { id: "export-6".into(), state: "completed".into(), progress: 1.0 },
        ]
    }
}

/// Two measures in four boroughs; diabetes in the fourth borough is a small number.
struct Figures;

fn figure(measure: &str, borough: usize, prevalence: Option<f64>) -> Cell {
    Cell {
        measure: measure.into(),
        borough: format!("dash-{borough:02}"),
        numerator: prevalence.map(|p| (p * 2.0) as u64),
        denominator: prevalence.map(|_| 2000),
        prevalence_per_1000: prevalence,
        suppressed: prevalence.is_none(),
    }
}

impl PopulationFigures for Figures {
    fn view(&self) -> PopulationView {
        let a = [Some(60.0), Some(40.0), Some(80.0), None];
        let b = [Some(30.0), Some(20.0), Some(40.0), Some(10.0)];
        let mut cells: Vec<Cell> = a.iter().enumerate().map(|(i, p)| figure("diabetes", i, *p)).collect();
        cells.extend(b.iter().enumerate().map(|(i, p)| figure("copd", i, *p)));
        PopulationView {
            generated: Some("2026-12-01T09:00:00Z".into()),
            threshold: 5,
            measures: vec![
                Measure { id: "diabetes".into(), title: "Diabetes".into() },
                Measure { id: "copd".into(), title: "COPD".into() },
            ],
            boroughs: ["Camden", "Hackney", "Islington", "Newham"]
                .iter()
                .enumerate()
                .map(|(i, name)| Borough { id: format!("dash-{i:02}"), name: (*name).into() })
                .collect(),
            cells,
        }
    }
}

/// Runs Chromium headless on `url` with `extra` arguments, in a fresh profile, and answers
/// its standard output. Fails the test if Chromium is missing, fails or hangs.
async fn chromium(url: &str, extra: Vec<String>) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the dashboard is tested in a real browser (apt-get install chromium)"
    );
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let profile =
            std::env::temp_dir().join(format!("tideway-chromium-{}", uuid::Uuid::new_v4().simple()));
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(&extra)
            .arg(&url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        let deadline = Instant::now() + Duration::from_secs(90);
        while child.try_wait().expect("chromium wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within 90 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("chromium output");
        let _ = std::fs::remove_dir_all(&profile);
        assert!(out.status.success(), "chromium failed: {}", out.status);
        String::from_utf8(out.stdout).expect("utf-8 DOM")
    })
    .await
    .expect("chromium task")
}

/// The DOM after the page's script ran for `budget_ms` of virtual time.
async fn rendered(url: &str, budget_ms: u32) -> String {
    let dom = chromium(url, vec![format!("--virtual-time-budget={budget_ms}"), "--dump-dom".into()]).await;
    assert!(dom.contains("id=\"sources-body\""), "not the dashboard: {dom}");
    dom
}

/// A screenshot of `url` at 1280x1600, decoded to RGB rows.
async fn screenshot(url: &str, path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let _ = std::fs::remove_file(path);
    chromium(
        url,
        vec![
            "--virtual-time-budget=6000".into(),
            "--window-size=1280,1600".into(),
            format!("--screenshot={}", path.display()),
        ],
    )
    .await;
    let decoder =
        png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).expect("screenshot written")));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    assert!(
        channels >= 3 && info.bit_depth == png::BitDepth::Eight,
        "{:?} {:?}",
        info.color_type,
        info.bit_depth
    );
    let pixels =
        buf[..info.buffer_size()].chunks(channels).map(|p| [p[0], p[1], p[2]]).collect::<Vec<[u8; 3]>>();
    (info.width, info.height, pixels)
}

/// The attributes of every start tag that has attribute `attr`, in document order.
fn tags_with(dom: &str, attr: &str) -> Vec<BTreeMap<String, String>> {
    let needle = format!(" {attr}=\"");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = dom[from..].find(&needle) {
        let at = from + i;
        let start = dom[..at].rfind('<').unwrap();
        let end = at + dom[at..].find('>').unwrap();
        out.push(attributes(&dom[start..end]));
        from = end;
    }
    out
}

fn attributes(tag: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = tag.trim_start_matches('<');
    rest = rest.split_once(char::is_whitespace).map_or("", |(_, r)| r);
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim().rsplit(char::is_whitespace).next().unwrap().to_owned();
        let after = &rest[eq + 2..];
        let close = after.find('"').unwrap();
        let value = after[..close]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        out.insert(name, value);
        rest = &after[close + 1..];
    }
    out
}

/// The start tag and text of the element with `id`.
fn by_id(dom: &str, id: &str) -> (BTreeMap<String, String>, String) {
    let at = dom.find(&format!(" id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    let text_end = end + dom[end..].find('<').unwrap();
    (attributes(&dom[start..end]), dom[end + 1..text_end].to_owned())
}

fn number(attrs: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    let v = attrs.get(key).unwrap_or_else(|| panic!("no {key} in {attrs:?}"));
    if v.is_empty() { None } else { Some(v.parse().unwrap()) }
}

fn assert_same(shown: Option<f64>, api: &Value, what: &str) {
    match (shown, api.as_f64()) {
        (None, None) => {}
        (Some(s), Some(a)) => assert!((s - a).abs() < 1e-9, "{what}: page {s}, API {a}"),
        _ => panic!("{what}: page {shown:?}, API {api}"),
    }
}

/// A figure that only grows: the page shows it between the API's answer before and after.
fn assert_bracketed(dom: &str, id: &str, before: &Value, after: &Value) -> u64 {
    let shown = number(&by_id(dom, id).0, "data-value").unwrap() as u64;
    let (lo, hi) = (before.as_u64().unwrap(), after.as_u64().unwrap());
    assert!(lo <= shown && shown <= hi, "#{id}: page {shown}, API {lo}..{hi}");
    shown
}

fn count(pixels: &[[u8; 3]], colour: [u8; 3]) -> usize {
    pixels.iter().filter(|p| **p == colour).count()
}

fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tideway_tests::workspace_root().join("target"));
    let dir = target.join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_dashboard_in_a_browser_shows_the_figures_the_api_answers() {
    let app = TestApp::spawn(Options { admin: true, source_prefix: "dash", ..Options::default() }).await;
    let admin = app.admin_url.clone().unwrap();
    let page = format!("{admin}/dashboard/");
    app.state.registry.probe().await;

    // Traffic: records read twice (the second time from the cache), a requester no agreement
    // grants, and a break-glass session.
    let token = app.token().await;
    for nhs in app.population.patients_in_several_boroughs(3) {
        let id = app.patient_id(&token, nhs.as_str()).await;
        for _ in 0..2 {
            assert_eq!(app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await.status, 200);
        }
    }
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&token, &nhs).await;
    let stranger = app.token_for(&user("YNONE", "R8000", PurposeOfUse::Treat)).await;
    assert_eq!(app.get(&format!("/Patient/{id}/$everything"), Some(&stranger)).await.status, 403);
    let glass = app.token_for(&user("YOOH1", "R8000", PurposeOfUse::EmergencyTreat)).await;
    assert_eq!(app.get(&format!("/Patient/{id}/$everything"), Some(&glass)).await.status, 200);

    // Before any population figures exist, the panel says so.
    let dom = rendered(&page, 3000).await;
    let (chart, _) = by_id(&dom, "population-chart");
    assert_eq!(chart.get("data-state").map(String::as_str), Some("empty"), "{dom}");
    assert!(by_id(&dom, "population-note").1.contains("No population figures yet"));
    assert!(by_id(&dom, "exports").1.is_empty() && dom.contains("No export jobs"));

    app.state.dashboard.set_exports(Arc::new(Jobs));
    app.state.dashboard.set_population(Arc::new(Figures));
    let operations = format!("{admin}/dashboard/api/operations");
    let before = app.get(&operations, None).await;
    assert_eq!(before.status, 200);
    // Long enough for the page to fetch its figures three times (every 5 s of virtual time).
    let dom = rendered(&page, 12_000).await;
    let after = app.get(&operations, None).await.body;
    let before = before.body;

    // Live: refreshed without a reload, and the operator listener asks for no token.
    let (updated, _) = by_id(&dom, "last-updated");
    assert!(number(&updated, "data-refreshes").unwrap() >= 2.0, "{updated:?}");
    assert!(!updated["data-generated"].is_empty());
    assert_eq!(by_id(&dom, "status").0["data-state"], "live");
    assert!(by_id(&dom, "token-panel").0.contains_key("hidden"));

    // Each source's row: nothing called a source between the two API answers, so the page
    // shows exactly what both say.
    let rows = tags_with(&dom, "data-source");
    let sources = after["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 3);
    assert_eq!(rows.len(), sources.len(), "{rows:?}");
    for (api, row) in sources.iter().zip(&rows) {
        let id = api["id"].as_str().unwrap();
        assert_eq!(
            api,
            &before["sources"].as_array().unwrap().iter().find(|s| s["id"] == id).cloned().unwrap()
        );
        assert_eq!(row["data-source"], id);
        assert_eq!(row["data-health"], "up", "{id}");
        assert_eq!(number(row, "data-calls"), api["calls"].as_f64(), "{id}");
        assert!(api["calls"].as_u64().unwrap() >= 1, "{id} was called");
        assert_same(number(row, "data-p50-ms"), &api["p50_ms"], "p50");
        assert_same(number(row, "data-p99-ms"), &api["p99_ms"], "p99");
        assert_same(number(row, "data-error-rate"), &api["error_rate"], "error rate");
        assert_same(number(row, "data-timeout-rate"), &api["timeout_rate"], "timeout rate");
    }
    assert_eq!(number(&by_id(&dom, "sources-up").0, "data-value"), Some(3.0));
    let (cache, _) = by_id(&dom, "cache-detail");
    assert_eq!(number(&cache, "data-hits"), after["cache"]["hits"].as_f64());
    assert_eq!(number(&cache, "data-misses"), after["cache"]["misses"].as_f64());
    assert!(after["cache"]["hits"].as_u64().unwrap() >= 3, "the second reads hit the cache: {after}");
    assert_same(
        number(&by_id(&dom, "cache-hit-rate").0, "data-value"),
        &after["cache"]["hit_rate"],
        "hit rate",
    );
    // Process-wide counters (other tests run beside this one): bracketed.
    let d = ("decisions", "agreement_denials");
    assert!(assert_bracketed(&dom, "agreement-denials", &before[d.0][d.1], &after[d.0][d.1]) >= 1);
    assert_bracketed(
        &dom,
        "consent-denials",
        &before[d.0]["consent_denials"],
        &after[d.0]["consent_denials"],
    );
    assert!(assert_bracketed(&dom, "break-glass", &before["break_glass"], &after["break_glass"]) >= 1);

    // The export jobs, from the feed, through the API, onto the page.
    assert_eq!(after["exports"], serde_json::to_value(Jobs.jobs()).unwrap());
    let jobs = tags_with(&dom, "data-progress");
    let shown: Vec<(&str, &str, &str)> = jobs
        .iter()
        .map(|j| (j["data-id"].as_str(), j["data-state"].as_str(), j["data-progress"].as_str()))
        .collect();
    assert_eq!(shown, [("export-7", "in-progress", "0.4"), ("export-6", "completed", "1")]);

    // Population: a bar per figure, its value the API's; the small number drawn as suppressed.
    let population = app.get(&format!("{admin}/dashboard/api/population"), None).await.body;
    let bars: Vec<_> =
        tags_with(&dom, "data-measure").into_iter().filter(|t| t.contains_key("data-value")).collect();
    let cells = population["cells"].as_array().unwrap();
    assert_eq!(bars.len(), cells.iter().filter(|c| c["suppressed"] == false).count());
    for bar in &bars {
        let cell = cells
            .iter()
            .find(|c| {
                c["measure"] == bar["data-measure"].as_str() && c["borough"] == bar["data-borough"].as_str()
            })
            .unwrap();
        assert_same(number(bar, "data-value"), &cell["prevalence_per_1000"], "prevalence");
    }
    let suppressed: Vec<_> =
        tags_with(&dom, "data-suppressed").into_iter().filter(|t| t["data-suppressed"] == "true").collect();
    assert_eq!(suppressed.len(), 1, "{suppressed:?}");
    assert_eq!(
        (suppressed[0]["data-measure"].as_str(), suppressed[0]["data-borough"].as_str()),
        ("diabetes", "dash-03")
    );
    assert!(
        population["cells"][3]["numerator"].is_null(),
        "a suppressed cell carries no number: {population}"
    );
    let at = dom.find("data-suppressed=\"true\"").unwrap();
    let cell: String = dom[at..].chars().take(800).collect();
    assert!(cell.contains(">suppressed<"), "labelled as suppressed: {cell}");

    // The screenshot: a styled page, the two measures' bars in proportion to their values
    // (diabetes 60 + 40 + 80 = 180, COPD 30 + 20 + 40 + 10 = 100, on one scale, bars of one
    // width; each legend swatch adds the same small area to both), and the hatching.
    let path = shots_dir().join("dashboard-operator.png");
    let (width, height, pixels) = screenshot(&page, &path).await;
    println!("dashboard screenshot: {}", path.display());
    assert_eq!((width, height), (1280, 1600));
    let white = count(&pixels, [0xff, 0xff, 0xff]) + count(&pixels, [0xf3, 0xf5, 0xf8]);
    // The page is mostly background and white cards; what is drawn on them is not nothing.
    assert!(
        pixels.len() - white > pixels.len() / 20,
        "the page is not blank: {white} of {} background",
        pixels.len()
    );
    let mut distinct: Vec<[u8; 3]> = pixels.iter().step_by(7).copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 40, "text and charts drawn: {} colours", distinct.len());
    assert!(count(&pixels, HEADER) > 1280 * 30, "the stylesheet is applied (header band)");
    assert!(count(&pixels, P99) > 100, "the latency chart is drawn");
    let (a, b) = (count(&pixels, MEASURE_A) as f64, count(&pixels, MEASURE_B) as f64);
    assert!(b > 2000.0, "COPD bars drawn: {b} pixels");
    let ratio = a / b;
    assert!(
        (ratio - 1.8).abs() < 0.15,
        "bars in proportion: diabetes/COPD pixels {a}/{b} = {ratio}, values 1.8"
    );
    assert!(count(&pixels, HATCH) > 300, "the suppressed cell is hatched: {} pixels", count(&pixels, HATCH));

    app.stop().await;
}

#[tokio::test]
async fn on_the_main_listener_the_page_is_public_and_the_figures_are_an_operators() {
    let app =
        TestApp::spawn(Options { boroughs: 1, patients: 5, source_prefix: "dashmain", ..Options::default() })
            .await;
    let page = app.get("/dashboard/", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type").as_deref(), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(String::from_utf8_lossy(&page.raw).contains("<script src=\"dashboard.js\" defer></script>"));
    let redirect = app.get("/dashboard", None).await;
    assert_eq!((redirect.status, redirect.header("location").as_deref()), (308, Some("dashboard/")));
    for (file, content_type) in [
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("dashboard.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let a = app.get(&format!("/dashboard/{file}"), None).await;
        assert_eq!((a.status, a.header("content-type").as_deref()), (200, Some(content_type)), "{file}");
        assert!(a.header("content-security-policy").is_some() && a.header("cache-control").is_some());
    }
    assert_eq!(app.get("/dashboard/nothing.js", None).await.status, 404);

    let clinician = app.token().await;
    let officer = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Operations)).await;
    let administrator = app.token_for(&user(REGISTRY_ADMIN, "R8000", PurposeOfUse::Operations)).await;
    let not_for_operations = app.token_for(&user(PRIVACY_OFFICE, "R8000", PurposeOfUse::Treat)).await;
    for api in ["/dashboard/api/operations", "/dashboard/api/population"] {
        let none = app.get(api, None).await;
        assert_eq!(
            (none.status, none.body["resourceType"].as_str()),
            (401, Some("OperationOutcome")),
            "{api}"
        );
        assert_eq!(app.get(api, Some("not-a-token")).await.status, 401, "{api}");
        for refused in [&clinician, &not_for_operations] {
            let a = app.get(api, Some(refused)).await;
            assert_eq!((a.status, a.body["resourceType"].as_str()), (403, Some("OperationOutcome")), "{api}");
        }
        for operator in [&officer, &administrator] {
            let a = app.get(api, Some(operator)).await;
            assert_eq!(a.status, 200, "{api}: {}", a.body);
            assert_eq!(a.header("content-type").as_deref(), Some("application/json"));
        }
    }
    let figures = app.get("/dashboard/api/operations", Some(&officer)).await.body;
    assert_eq!(figures["sources"][0]["id"], "dashmain-00");
    assert_eq!(figures["exports"], serde_json::json!([]));
    let population = app.get("/dashboard/api/population", Some(&officer)).await.body;
    assert_eq!(population["generated"], Value::Null);

    // In the browser without a token the page asks for one instead of showing figures.
    let dom = rendered(&format!("{}/dashboard/", app.base_url), 3000).await;
    assert!(!by_id(&dom, "token-panel").0.contains_key("hidden"), "{dom}");
    assert_eq!(by_id(&dom, "status").0["data-state"], "token");
    assert!(tags_with(&dom, "data-source").is_empty(), "no figures without a token");
    app.stop().await;
}
