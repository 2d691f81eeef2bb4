//! Headers on patient data and the bearer-token challenges (RFC 6750).

use secrecy::ExposeSecret;
use serde_json::json;
use tideway_tests::{Options, TestApp, clinician, nhs_search};

#[tokio::test]
async fn every_fhir_answer_is_no_store_and_nosniff_whatever_its_status() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0]);
    let id = app.patient_id(&token, nhs.as_str()).await;
    for (path, auth, status) in [
        (format!("/Patient/{id}/$everything"), true, 200),
        (format!("/Patient/{id}"), true, 200),
        ("/metadata".to_owned(), false, 200),
        ("/Condition?colour=blue".to_owned(), true, 400),
        (format!("/Patient/{id}"), false, 401),
        ("/NoSuchType?patient=x".to_owned(), true, 404),
    ] {
        let a = app.get(&path, auth.then_some(token.as_str())).await;
        assert_eq!(a.status, status, "{path}: {}", a.body);
        assert_eq!(a.header("cache-control").as_deref(), Some("no-store"), "{path}");
        assert_eq!(a.header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn challenges_say_what_was_wrong_with_the_credentials() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    // No credentials at all: a challenge without an error code.
    let none = app.get(&nhs_search("9434765919"), None).await;
    assert_eq!(none.status, 401);
    let challenge = none.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer") && !challenge.contains("error="), "{challenge}");
    let basic =
        app.get_with(&nhs_search("9434765919"), None, &[("authorization", "Basic dXNlcjpwYXNz")]).await;
    assert_eq!(basic.status, 401);
    assert!(
        !basic.header("www-authenticate").unwrap().contains("error="),
        "another scheme is no bearer token"
    );

    // An expired token (signed with the gateway's own key, expired well past the clock skew).
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "iss": "tideway", "aud": "tideway-fhir-api", "sub": "555021935107", "client_id": "test-es",
        "scope": "system/*.read", "role": "R8000", "organisation": "RJ122", "purpose_of_use": "TREAT",
        "jti": "expired-1", "iat": now - 3600, "exp": now - 1800,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    let key = jsonwebtoken::EncodingKey::from_secret(
        app.settings.auth.token_signing_secret.expose_secret().as_bytes(),
    );
    let expired = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let a = app.get(&nhs_search("9434765919"), Some(&expired)).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.issue_code(), "expired");
    assert!(a.header("www-authenticate").unwrap().contains(r#"error="invalid_token""#));

    // A token whose scopes do not cover the type asked for.
    let form = app.es_client.token_form(&app.token_url(), "system/Patient.rs", &clinician()).unwrap();
    let body: serde_json::Value = app.post_token(form).await.json().await.unwrap();
    let narrow = body["access_token"].as_str().unwrap().to_owned();
    let a = app.get("/Condition?patient=p00000000000000000000000000000000", Some(&narrow)).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.header("www-authenticate").unwrap().contains(r#"error="insufficient_scope""#));

    // Two Authorization headers: refused, whichever one is good.
    let token = app.token().await;
    let bearer = format!("Bearer {token}");
    let res = app
        .http
        .get(format!("{}{}", app.base_url, nhs_search("9434765919")))
        .header("authorization", bearer.as_str())
        .header("authorization", "Bearer garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn error_messages_do_not_repeat_long_or_odd_client_input() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let token = app.token().await;
    let long = "x".repeat(500);
    let a =
        app.get_with(&format!("/Condition?{long}=1"), Some(&token), &[("prefer", "handling=strict")]).await;
    assert_eq!(a.status, 400);
    assert!(!a.body.to_string().contains(&long[..100]), "{}", a.body);
    let a = app.get("/Condition?9434765919=1", Some(&token)).await;
    assert_eq!(a.status, 400);
    assert!(
        !a.body.to_string().contains("9434765919"),
        "an NHS-number-like name is not repeated: {}",
        a.body
    );
    let a = app.get("/%3Cscript%3E?patient=x", Some(&token)).await;
    assert_eq!(a.status, 404);
    assert!(!a.body.to_string().contains("script"), "{}", a.body);
    app.stop().await;
}

#[tokio::test]
async fn head_allow_batch_and_type_level_operations_answer_as_fhir_servers_do() {
    let app = TestApp::spawn(Options { boroughs: 1, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0]);
    let id = app.patient_id(&token, nhs.as_str()).await;
    // HEAD wherever GET works: the same status and headers, no body.
    for path in [format!("/Patient/{id}/$everything"), format!("/Patient/{id}"), "/metadata".to_owned()] {
        let res = app.http.head(format!("{}{path}", app.base_url)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers().get("x-request-id").is_some());
        assert!(res.bytes().await.unwrap().is_empty(), "{path}: HEAD has no body");
    }
    // 405 names what is allowed.
    for (method, path) in
        [(reqwest::Method::DELETE, format!("/Patient/{id}")), (reqwest::Method::PUT, "/metadata".to_owned())]
    {
        let res = app
            .http
            .request(method, format!("{}{path}", app.base_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{path}");
        assert_eq!(res.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET, HEAD"), "{path}");
    }
    // POST [base] (batch/transaction) is a 501 OperationOutcome.
    let res = app
        .http
        .post(format!("{}/", app.base_url))
        .bearer_auth(&token)
        .header("content-type", "application/fhir+json")
        .body(r#"{"resourceType":"Bundle","type":"batch"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 501);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    // A type-level operation is not a patient id.
    let a = app.get("/Patient/$everything", Some(&token)).await;
    assert_eq!(a.status, 501, "{}", a.body);
    assert_eq!(a.issue_code(), "not-supported");
    // `_format` with an unencoded `+` still means FHIR JSON.
    let a = app.get(&format!("/Patient/{id}?_format=application/fhir+json"), Some(&token)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_with_408_and_the_connection_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(Options { boroughs: 1, request_timeout_ms: 500, ..Options::default() }).await;
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(
        b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\ngrant_type=",
    )
    .await
    .unwrap();
    // Never send the rest. The gateway answers 408 and closes; reading to the end returns.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection must not stay open");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    app.stop().await;
}

/// Sends `GET /metadata` on `conn` and reads one whole answer (head and `Content-Length` body),
/// leaving the connection open if the gateway keeps it.
async fn metadata_on(conn: &mut tokio::net::TcpStream) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(b"GET /metadata HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            return String::from_utf8_lossy(&got).into_owned();
        }
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn one_peer_holds_at_most_its_cap_of_open_connections_and_gets_a_slot_back_when_one_closes() {
    use tokio::io::AsyncReadExt;
    let app =
        TestApp::spawn(Options { boroughs: 1, max_connections_per_peer: 3, ..Options::default() }).await;
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let answer = metadata_on(&mut conn).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(conn);
    }
    // The fourth is told why and closed.
    let mut fourth = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let answer = metadata_on(&mut fourth).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(
        answer.contains("\"code\":\"throttled\"") && answer.contains("too many open connections"),
        "{answer}"
    );
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(10), fourth.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection beyond the cap is closed");
    // The ones held still work.
    assert!(metadata_on(&mut held[0]).await.starts_with("HTTP/1.1 200"));
    // Closing one gives its slot back (as soon as the gateway sees the close).
    drop(held.pop());
    let mut reopened = None;
    for _ in 0..100 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if metadata_on(&mut conn).await.starts_with("HTTP/1.1 200") {
            reopened = Some(conn);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "a slot came back when a connection closed");
    app.stop().await;
}
