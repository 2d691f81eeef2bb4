//! Traces leave over OTLP/HTTP when configured: the real binary, a capture server standing in
//! for the collector, and a check that no patient data rides along.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "tests")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Captured {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 server that records every request and answers 200.
fn capture_server() -> (u16, Arc<Mutex<Vec<Captured>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let store = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    let (mut len, mut ct) = (0usize, String::new());
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap_or((h, ""));
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => len = v.trim().parse().unwrap_or(0),
                            "content-type" => ct = v.trim().to_owned(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    store.lock().unwrap().push(Captured { path, content_type: ct, body });
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (port, seen)
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn spans_are_exported_over_otlp_http_without_patient_data() {
    let (collector, seen) = capture_server();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("tideway-otlp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let jwks = root.join("auth/tests/fixtures/rsa-test-client.jwks.json");
    let config = format!(
        r#"
[server]
bind = "127.0.0.1:{port}"
[store]
url = "sqlite://{db}"
[identity]
pseudonym_key = "otlp-test-pseudonym-key-0123456789abcdef"
[auth]
token_signing_secret = "otlp-test-signing-secret-0123456789abcdef"
[[auth.clients]]
client_id = "test-rs"
name = "test"
jwks_file = "{jwks}"
[telemetry]
log_filter = "info"
otlp_endpoint = "http://127.0.0.1:{collector}/v1/traces"
service_name = "tideway-under-test"
"#,
        db = dir.join("t.db").display(),
        jwks = jwks.display()
    );
    let path = dir.join("tideway.toml");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tideway"))
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = std::net::TcpStream::connect_timeout;
    while client(&format!("127.0.0.1:{port}").parse().unwrap(), Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "the gateway did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A public request and a refused one carrying an NHS number in its query string.
    http_get(port, "/metadata");
    http_get(port, "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number%7C9434765919");
    let _ = base;
    // SIGTERM: the gateway stops gracefully and flushes its spans.
    let pid = guard.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let stop_deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < stop_deadline, "the gateway did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = seen.lock().unwrap();
    let traces: Vec<&Captured> = seen.iter().filter(|c| c.path == "/v1/traces").collect();
    assert!(!traces.is_empty(), "no OTLP export arrived");
    assert!(traces.iter().all(|c| c.content_type == "application/x-protobuf"));
    let all: Vec<u8> = traces.iter().flat_map(|c| c.body.clone()).collect();
    let has = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"http.request"), "the request span is exported");
    assert!(has(b"tideway-under-test"), "service.name is set");
    assert!(!has(b"9434765919"), "no NHS number in exported spans");
}

fn http_get(port: u16, path: &str) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1"), "{out}");
}
