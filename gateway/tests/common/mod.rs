//! What the tests of the real `tideway` binary share: scratch directories kept when a test
//! fails, children killed when dropped, a blocking HTTP facade, and starting the demo.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code, reason = "test helpers")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tideway");
pub const NHS_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A scratch directory under the target's tmp dir, removed when the test passes.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "demo_binary-{name}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for inspection: {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// A running child whose stdout and stderr go to files; killed (SIGKILL) when dropped while
/// still running, so a failing assertion never leaves a server behind.
pub struct Running {
    child: Child,
    what: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    pub fn spawn(what: &str, cmd: &mut Command, scratch: &Scratch) -> Self {
        let stdout = scratch.path(&format!("{what}.stdout"));
        let stderr = scratch.path(&format!("{what}.stderr"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        Self { child, what: what.to_owned(), stdout, stderr }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stdout).unwrap_or_default()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stderr).unwrap_or_default()).into_owned()
    }

    pub fn diagnostics(&self) -> String {
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- {} stdout (tail) ---\n{}\n--- {} stderr (tail) ---\n{}",
            self.what,
            tail(self.stdout()),
            self.what,
            tail(self.stderr())
        )
    }

    /// Polls `probe` until it gives a value; fails if the child exits first or on timeout.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = probe(self) {
                return v;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited ({status}) before {what}\n{}", self.what, self.diagnostics());
            }
            if start.elapsed() > timeout {
                panic!("{} gave no {what} within {timeout:?}\n{}", self.what, self.diagnostics());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the child with SIGKILL (no chance to finish anything) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit; SIGKILL and fail if it takes longer than `within`.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").arg("-TERM").arg(&pid).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        self.wait_exit("of SIGTERM", within)
    }

    /// Waits for the exit; SIGKILL and fail if it takes longer than `within`.
    pub fn wait_exit(&mut self, after: &str, within: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not exit within {within:?} {after}\n{}", self.what, self.diagnostics());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A blocking facade over the async reqwest client (the workspace builds reqwest without its
/// blocking feature).
pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self { rt, client }
    }

    /// GET `url` with a bearer token: the status and the `X-Request-ID` answered.
    pub fn get_request_id(&self, url: &str, token: Option<&str>) -> (u16, String) {
        self.try_get_request_id(url, token).unwrap_or_else(|| panic!("GET {url} got no whole answer"))
    }

    /// [`Self::get_request_id`], or `None` when no whole answer (head and body) arrived.
    pub fn try_get_request_id(&self, url: &str, token: Option<&str>) -> Option<(u16, String)> {
        self.rt.block_on(async {
            let mut req = self.client.get(url).header("accept", "application/fhir+json");
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let res = req.send().await.ok()?;
            let status = res.status().as_u16();
            let id = res
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            res.bytes().await.ok()?;
            Some((status, id))
        })
    }

    pub fn get(&self, url: &str, token: Option<&str>, query: &[(&str, &str)]) -> (u16, Value) {
        self.rt.block_on(async {
            let target = if query.is_empty() {
                reqwest::Url::parse(url)
            } else {
                reqwest::Url::parse_with_params(url, query)
            }
            .unwrap_or_else(|e| panic!("bad URL {url}: {e}"));
            let mut req = self.client.get(target).header("accept", "application/fhir+json");
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let res = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
            let status = res.status().as_u16();
            let body = res.bytes().await.unwrap();
            let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!("GET {url}: HTTP {status}, body is not JSON ({e}): {}", String::from_utf8_lossy(&body))
            });
            (status, json)
        })
    }
}

pub fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

pub fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

/// The JWT's payload, decoded without checking the signature (the gateway checks that).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .expect("JWT payload is base64url");
    serde_json::from_slice(&bytes).expect("JWT payload is JSON")
}

/// Starts `tideway demo` over 3 boroughs of 30 patients (plus `extra` arguments) with its
/// SQLite file inside the scratch dir, and waits for its ready file.
pub fn start_demo(scratch: &Scratch, extra: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> (Running, Value) {
    start_demo_of(scratch, "3", extra, env)
}

/// [`start_demo`] over `boroughs` boroughs.
pub fn start_demo_of(
    scratch: &Scratch,
    boroughs: &str,
    extra: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> (Running, Value) {
    let ready_path = scratch.path("ready.json");
    let mut cmd = Command::new(BIN);
    cmd.args(["demo", "--port", "0", "--boroughs", boroughs, "--patients", "30", "--ready-file"])
        .arg(&ready_path)
        .arg("--data-dir")
        .arg(scratch.path("data"))
        .args(extra)
        .envs(env.iter().copied());
    let mut demo = Running::spawn("demo", &mut cmd, scratch);
    let ready: Value = demo.wait_for("ready file", READY_TIMEOUT, |_| {
        let bytes = fs::read(&ready_path).ok()?;
        serde_json::from_slice(&bytes).ok()
    });
    (demo, ready)
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}
