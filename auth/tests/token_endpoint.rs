//! End-to-end behaviour of the token endpoint and bearer authentication, driven the way the
//! gateway drives them: form bodies in, token responses, OAuth errors and principals out.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "tests")]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{Value, json};
use tideway_auth::client::{forge, token_form_for};
use tideway_auth::{
    AuthConfig, BackendClient, ClientConfig, InMemoryReplayGuard, OAuthError, PurposeOfUse, RateLimit,
    ReplayGuard, ReplayStoreError, RoleCode, TokenError, TokenService, UserClaims,
};
use tideway_profiles::OdsCode;
use time::OffsetDateTime;

const TOKEN_URL: &str = "https://tideway.test/auth/token";
const SECRET: &str = "test-only-token-signing-secret-not-for-production";
const RSA_PEM: &str = include_str!("fixtures/rsa-test-client.key.pem");
const RSA_JWKS: &str = include_str!("fixtures/rsa-test-client.jwks.json");
const RSA_KID: &str = "rs-test-1";
const LIFETIME: Duration = Duration::from_secs(120);

struct Harness {
    service: TokenService,
    es: BackendClient,
    rs: BackendClient,
    /// Registered with token_lifetime_secs = 3600 and a narrower scope list.
    demo: BackendClient,
}

fn user() -> UserClaims {
    UserClaims {
        user_id: "555021935107".to_owned(),
        role: RoleCode::parse("R8000").unwrap(),
        organisation: OdsCode::parse("F83004").unwrap(),
        purpose: PurposeOfUse::Treat,
        name: Some("Dr Ada Example".to_owned()),
        break_glass_reason: None,
    }
}

fn client_config(client: &BackendClient) -> ClientConfig {
    ClientConfig {
        client_id: client.client_id().to_owned(),
        name: format!("{} (test)", client.client_id()),
        jwks: Some(client.jwks_json()),
        jwks_file: None,
        allowed_scopes: vec!["system/*.read".to_owned(), "system/*.rs".to_owned()],
        token_lifetime_secs: 300,
        suspended: false,
        tls_client_certificate_sha256: None,
        patient_app: false,
    }
}

fn config(clients: Vec<ClientConfig>) -> AuthConfig {
    AuthConfig {
        token_signing_secret: SecretString::from(SECRET),
        token_signing_kid: "k1".to_owned(),
        accepted_signing_keys: Vec::new(),
        clients,
        assertion_max_lifetime_secs: 300,
        clock_skew_secs: 60,
        token_rate_limit: tideway_auth::config::DEFAULT_TOKEN_RATE_LIMIT,
        jwks_reload_secs: 60,
    }
}

fn harness_with_guard(replay: Arc<dyn ReplayGuard>) -> Harness {
    harness_with(replay, tideway_auth::config::DEFAULT_TOKEN_RATE_LIMIT)
}

fn harness_with(replay: Arc<dyn ReplayGuard>, token_rate_limit: RateLimit) -> Harness {
    let es = BackendClient::generate_es384("borough-ehr", "es-2025").unwrap();
    let rs = BackendClient::from_pem("hospital-pas", RSA_KID, Algorithm::RS384, RSA_PEM).unwrap();
    let demo = BackendClient::generate_es384("tideway-demo", "demo-1").unwrap();
    let mut rs_config = client_config(&rs);
    // The RSA client registers the committed fixture JWKS, not the one derived from its key.
    rs_config.jwks = Some(RSA_JWKS.to_owned());
    let mut demo_config = client_config(&demo);
    demo_config.token_lifetime_secs = 3600;
    demo_config.allowed_scopes = vec!["system/Patient.rs".to_owned()];
    let mut config = config(vec![client_config(&es), rs_config, demo_config]);
    config.token_rate_limit = token_rate_limit;
    let service = TokenService::new(&config, TOKEN_URL.to_owned(), replay).unwrap();
    Harness { service, es, rs, demo }
}

fn harness() -> Harness {
    harness_with_guard(Arc::new(InMemoryReplayGuard::new()))
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

async fn exchange_assertion(h: &Harness, assertion: &str) -> Result<tideway_auth::TokenGrant, OAuthError> {
    h.service.exchange(token_form_for(assertion, "system/*.read").unwrap().as_bytes()).await
}

/// Exchanges an assertion built by `tamper` over the ES384 client's defaults.
async fn exchange_tampered(
    h: &Harness,
    tamper: impl FnOnce(&mut Value, &mut Value),
) -> Result<tideway_auth::TokenGrant, OAuthError> {
    let assertion = h.es.assertion_with(TOKEN_URL, &user(), LIFETIME, tamper).unwrap();
    exchange_assertion(h, &assertion).await
}

#[track_caller]
fn assert_oauth_error(
    result: Result<tideway_auth::TokenGrant, OAuthError>,
    error: &str,
    status: u16,
) -> OAuthError {
    let err = result.expect_err("expected the token request to be refused");
    assert_eq!((err.error, err.status), (error, status), "{err}");
    err
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// ---- happy paths ----

#[tokio::test]
async fn es384_assertion_is_exchanged_for_a_token_that_authenticates_as_the_user() {
    let h = harness();
    let form = h.es.token_form(TOKEN_URL, "system/*.read", &user()).unwrap();
    let grant = h.service.exchange(form.as_bytes()).await.unwrap();
    assert_eq!(grant.client_id, "borough-ehr");
    let token_id = grant.token_id.clone();
    let response = grant.response;
    assert_eq!(response.token_type, "bearer");
    assert_eq!(response.expires_in, 300);
    assert_eq!(response.scope, "system/*.read");

    let principal = h.service.authenticate(Some(&bearer(&response.access_token))).unwrap();
    assert_eq!(principal.client_id, "borough-ehr");
    assert_eq!(principal.user_id, "555021935107");
    assert_eq!(principal.role, RoleCode::parse("R8000").unwrap());
    assert_eq!(principal.organisation, OdsCode::parse("F83004").unwrap());
    assert_eq!(principal.purpose, PurposeOfUse::Treat);
    assert_eq!(principal.scopes, ["system/*.read"]);
    assert!(principal.may_read("Condition"));
    assert_eq!(principal.token_id, token_id);

    let serialized: Value = serde_json::to_value(&response).unwrap();
    assert_eq!(serialized["token_type"], "bearer");
    assert_eq!(serialized["expires_in"], 300);
}

#[tokio::test]
async fn rs384_assertion_signed_with_the_fixture_key_is_accepted() {
    let h = harness();
    let form = h.rs.token_form(TOKEN_URL, "", &user()).unwrap();
    let grant = h.service.exchange(form.as_bytes()).await.unwrap();
    let response = grant.response;
    // No scope requested: every allowed scope is granted.
    assert_eq!(response.scope, "system/*.read system/*.rs");
    let principal = h.service.authenticate(Some(&bearer(&response.access_token))).unwrap();
    assert_eq!(principal.client_id, "hospital-pas");
    assert_eq!(principal.user_id, "555021935107");
    assert_eq!(principal.scopes, ["system/*.read", "system/*.rs"]);
}

#[test]
fn rsa_client_jwks_matches_the_committed_fixture() {
    let rs = BackendClient::from_pem("hospital-pas", RSA_KID, Algorithm::RS384, RSA_PEM).unwrap();
    let derived: Value = serde_json::from_str(&rs.jwks_json()).unwrap();
    let fixture: Value = serde_json::from_str(RSA_JWKS).unwrap();
    for member in ["kty", "kid", "alg", "use", "n", "e"] {
        assert_eq!(derived["keys"][0][member], fixture["keys"][0][member], "{member}");
    }
}

#[test]
fn es384_client_jwks_is_public_only_and_labelled() {
    let es = BackendClient::generate_es384("c", "k1").unwrap();
    let jwks: Value = serde_json::from_str(&es.jwks_json()).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-384");
    assert_eq!(key["alg"], "ES384");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], "k1");
    assert!(key.get("d").is_none());
}

#[tokio::test]
async fn access_token_lifetime_follows_the_client_registration() {
    let h = harness();
    let form = h.demo.token_form(TOKEN_URL, "system/Patient.rs", &user()).unwrap();
    let grant = h.service.exchange(form.as_bytes()).await.unwrap();
    let response = grant.response;
    assert_eq!(response.expires_in, 3600);
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(&response.access_token).unwrap();
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 3600);
    assert_eq!(claims["iss"], "tideway");
    assert_eq!(claims["aud"], "tideway-fhir-api");
    assert_eq!(claims["client_id"], "tideway-demo");
    assert!(claims.get("name").is_none() && !claims.to_string().contains("Ada"));
}

#[tokio::test]
async fn assertion_without_kid_is_verified_with_a_key_of_its_alg() {
    let h = harness();
    let result = exchange_tampered(&h, |header, _| {
        header.as_object_mut().unwrap().remove("kid");
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn audience_may_be_an_array_containing_the_token_url() {
    let h = harness();
    let result = exchange_tampered(&h, |_, claims| {
        claims["aud"] = json!(["https://elsewhere.test/token", TOKEN_URL]);
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn assertion_expired_within_the_clock_skew_is_accepted() {
    let h = harness();
    let result = exchange_tampered(&h, |_, claims| claims["exp"] = json!(now() - 30)).await;
    assert!(result.is_ok(), "{result:?}");
}

// ---- forged and bad assertions ----

#[tokio::test]
async fn alg_none_is_refused() {
    let h = harness();
    let mut header = h.es.header();
    header["alg"] = json!("none");
    let assertion = forge::unsigned(&header, &h.es.claims(TOKEN_URL, &user(), LIFETIME));
    let err = assert_oauth_error(exchange_assertion(&h, &assertion).await, "invalid_client", 401);
    assert!(err.description.contains("RS384 or ES384"), "{err}");
}

#[tokio::test]
async fn hs384_signed_with_the_clients_public_key_is_refused() {
    let h = harness();
    let claims = h.rs.claims(TOKEN_URL, &user(), LIFETIME);
    let jwks: Value = serde_json::from_str(RSA_JWKS).unwrap();
    let public_n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();
    for secret in [RSA_JWKS.as_bytes(), public_n.as_bytes()] {
        let mut header = h.rs.header();
        header["alg"] = json!("HS384");
        let assertion = forge::hmac_signed(Algorithm::HS384, secret, &header, &claims).unwrap();
        let err = assert_oauth_error(exchange_assertion(&h, &assertion).await, "invalid_client", 401);
        assert!(err.description.contains("RS384 or ES384"), "{err}");
    }
}

#[tokio::test]
async fn header_alg_that_does_not_match_the_registered_key_is_refused() {
    let h = harness();
    // ES384 key, but the header claims RS384 for the same kid.
    let result = exchange_tampered(&h, |header, _| header["alg"] = json!("RS384")).await;
    assert_oauth_error(result, "invalid_client", 401);
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let h = harness();
    for aud in [json!("https://tideway.test/auth/token/"), json!(["https://other.test/token"]), json!(42)] {
        let result = exchange_tampered(&h, |_, claims| claims["aud"] = aud).await;
        let err = assert_oauth_error(result, "invalid_client", 401);
        assert!(err.description.contains("aud"), "{err}");
    }
}

#[tokio::test]
async fn expired_assertion_is_refused() {
    let h = harness();
    let result = exchange_tampered(&h, |_, claims| claims["exp"] = json!(now() - 120)).await;
    let err = assert_oauth_error(result, "invalid_client", 401);
    assert!(err.description.contains("expired"), "{err}");
}

#[tokio::test]
async fn assertion_lifetime_over_300_seconds_is_refused() {
    let h = harness();
    for lifetime in [302, 360, 3600] {
        let assertion = h.es.assertion(TOKEN_URL, &user(), Duration::from_secs(lifetime)).unwrap();
        let err = assert_oauth_error(exchange_assertion(&h, &assertion).await, "invalid_client", 401);
        assert!(err.description.contains("300 seconds"), "{err}");
    }
}

#[tokio::test]
async fn assertion_without_exp_is_refused() {
    let h = harness();
    let result = exchange_tampered(&h, |_, claims| {
        claims.as_object_mut().unwrap().remove("exp");
    })
    .await;
    assert_oauth_error(result, "invalid_client", 401);
}

#[tokio::test]
async fn non_integer_exp_is_refused() {
    let h = harness();
    let result = exchange_tampered(&h, |_, claims| claims["exp"] = json!(format!("{}", now() + 60))).await;
    assert_oauth_error(result, "invalid_client", 401);
}

#[tokio::test]
async fn assertion_not_yet_valid_is_refused() {
    let h = harness();
    let result = exchange_tampered(&h, |_, claims| claims["nbf"] = json!(now() + 200)).await;
    assert_oauth_error(result, "invalid_client", 401);
    let result = exchange_tampered(&h, |_, claims| claims["iat"] = json!(now() + 200)).await;
    assert_oauth_error(result, "invalid_client", 401);
}

#[tokio::test]
async fn signature_by_another_key_is_refused() {
    let h = harness();
    // Same client id and kid, different private key.
    let impostor = BackendClient::generate_es384("borough-ehr", "es-2025").unwrap();
    let assertion = impostor.assertion(TOKEN_URL, &user(), LIFETIME).unwrap();
    let err = assert_oauth_error(exchange_assertion(&h, &assertion).await, "invalid_client", 401);
    assert!(err.description.contains("signature"), "{err}");
}

#[tokio::test]
async fn tampered_assertion_claims_break_the_signature() {
    let h = harness();
    let assertion = h.es.assertion(TOKEN_URL, &user(), LIFETIME).unwrap();
    let mut parts: Vec<String> = assertion.split('.').map(str::to_owned).collect();
    let other =
        h.es.assertion_with(TOKEN_URL, &user(), LIFETIME, |_, c| {
            c["extensions"]["ihe_iua"]["purpose_of_use"]["code"] = json!("ETREAT");
        })
        .unwrap();
    parts[1] = other.split('.').nth(1).unwrap().to_owned();
    let err = assert_oauth_error(exchange_assertion(&h, &parts.join(".")).await, "invalid_client", 401);
    assert!(err.description.contains("signature"), "{err}");
}

#[tokio::test]
async fn unknown_client_is_refused() {
    let h = harness();
    let stranger = BackendClient::generate_es384("not-registered", "k").unwrap();
    let assertion = stranger.assertion(TOKEN_URL, &user(), LIFETIME).unwrap();
    let err = assert_oauth_error(exchange_assertion(&h, &assertion).await, "invalid_client", 401);
    assert!(!err.description.contains("not-registered"), "{err}");
}

#[tokio::test]
async fn unknown_kid_is_refused() {
    let h = harness();
    let result = exchange_tampered(&h, |header, _| header["kid"] = json!("rotated-away")).await;
    let err = assert_oauth_error(result, "invalid_client", 401);
    assert!(err.description.contains("kid"), "{err}");
}

#[tokio::test]
async fn sub_different_from_iss_is_refused() {
    let h = harness();
    let result = exchange_tampered(&h, |_, claims| claims["sub"] = json!("someone-else")).await;
    assert_oauth_error(result, "invalid_client", 401);
}

#[tokio::test]
async fn assertion_without_jti_is_refused() {
    let h = harness();
    let result = exchange_tampered(&h, |_, claims| {
        claims.as_object_mut().unwrap().remove("jti");
    })
    .await;
    let err = assert_oauth_error(result, "invalid_client", 401);
    assert!(err.description.contains("jti"), "{err}");
}

#[tokio::test]
async fn replayed_jti_is_refused() {
    let h = harness();
    let assertion = h.es.assertion(TOKEN_URL, &user(), LIFETIME).unwrap();
    exchange_assertion(&h, &assertion).await.unwrap();
    let err = assert_oauth_error(exchange_assertion(&h, &assertion).await, "invalid_client", 401);
    assert!(err.description.contains("already been used"), "{err}");

    // A fresh assertion with the same jti is a replay too.
    let jti: Value = jsonwebtoken::dangerous::insecure_decode_claims(&assertion).unwrap();
    let result = exchange_tampered(&h, |_, claims| claims["jti"] = jti["jti"].clone()).await;
    assert_oauth_error(result, "invalid_client", 401);
}

#[tokio::test]
async fn refused_assertion_does_not_use_up_its_jti() {
    let h = harness();
    let claims = h.es.claims(TOKEN_URL, &user(), LIFETIME);
    let assertion = h.es.sign(&h.es.header(), &claims).unwrap();
    let bad_scope = token_form_for(&assertion, "system/*.write").unwrap();
    assert_oauth_error(h.service.exchange(bad_scope.as_bytes()).await, "invalid_scope", 400);
    exchange_assertion(&h, &assertion).await.unwrap();
}

struct BrokenStore;

#[async_trait]
impl ReplayGuard for BrokenStore {
    async fn first_use(&self, _: &str, _: &str, _: OffsetDateTime) -> Result<bool, ReplayStoreError> {
        Err(ReplayStoreError)
    }
}

#[tokio::test]
async fn replay_store_failure_fails_closed_with_503() {
    let h = harness_with_guard(Arc::new(BrokenStore));
    let form = h.es.token_form(TOKEN_URL, "system/*.read", &user()).unwrap();
    let err = assert_oauth_error(h.service.exchange(form.as_bytes()).await, "temporarily_unavailable", 503);
    assert!(!err.description.contains("database"), "{err}");
}

// ---- user claims ----

#[tokio::test]
async fn missing_or_invalid_user_claims_are_invalid_request() {
    let h = harness();
    type Tamper = fn(&mut Value);
    let cases: [(Tamper, &str); 8] = [
        (|c| c["extensions"] = json!({}), "extensions.ihe_iua"),
        (
            |c| {
                c.as_object_mut().unwrap().remove("extensions");
            },
            "extensions.ihe_iua",
        ),
        (
            |c| {
                c["extensions"]["ihe_iua"].as_object_mut().unwrap().remove("subject_id");
            },
            "subject_id",
        ),
        (|c| c["extensions"]["ihe_iua"]["subject_role"]["code"] = json!("X555021935107"), "subject_role"),
        (|c| c["extensions"]["ihe_iua"]["subject_role"] = json!("R8000"), "subject_role"),
        (
            |c| c["extensions"]["ihe_iua"]["subject_organization_id"] = json!("F83-004!"),
            "subject_organization_id",
        ),
        (|c| c["extensions"]["ihe_iua"]["purpose_of_use"]["code"] = json!("MARKETING"), "purpose_of_use"),
        (|c| c["extensions"]["ihe_iua"]["subject_name"] = json!(42), "subject_name"),
    ];
    for (tamper, names) in cases {
        let result = exchange_tampered(&h, |_, claims| tamper(claims)).await;
        let err = assert_oauth_error(result, "invalid_request", 400);
        assert!(err.description.contains(names), "{names}: {err}");
        for user_data in ["555021935107", "F83-004", "MARKETING", "Ada"] {
            assert!(!err.description.contains(user_data), "echoed user data: {err}");
        }
    }
}

// ---- request shape ----

#[tokio::test]
async fn scope_not_allowed_is_invalid_scope() {
    let h = harness();
    let form = h.demo.token_form(TOKEN_URL, "system/*.read", &user()).unwrap();
    assert_oauth_error(h.service.exchange(form.as_bytes()).await, "invalid_scope", 400);
}

#[tokio::test]
async fn a_client_asking_too_often_is_told_to_slow_down_and_when_to_retry() {
    let h = harness_with(Arc::new(InMemoryReplayGuard::new()), RateLimit::new(1, 2).unwrap());
    // Assertions nobody signed do not use up the client's allowance.
    for _ in 0..5 {
        let forged = forge::unsigned(&json!({"alg": "ES384"}), &h.es.claims(TOKEN_URL, &user(), LIFETIME));
        assert_oauth_error(exchange_assertion(&h, &forged).await, "invalid_client", 401);
    }
    for _ in 0..2 {
        assert!(exchange_for(&h, &user()).await.is_ok());
    }
    let err = assert_oauth_error(exchange_for(&h, &user()).await, "slow_down", 429);
    let wait = err.retry_after_secs.expect("Retry-After");
    // One a minute: the next is due within the minute.
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(
        err.description,
        format!("this client is asking for tokens too often; retry after {wait} seconds")
    );
    // Another client has its own allowance.
    let form = h.rs.token_form(TOKEN_URL, "system/*.read", &user()).unwrap();
    assert!(h.service.exchange(form.as_bytes()).await.is_ok());
}

#[tokio::test]
async fn unsupported_grant_type_is_refused() {
    let h = harness();
    let form = h.es.token_form(TOKEN_URL, "", &user()).unwrap();
    let form = form.replace("grant_type=client_credentials", "grant_type=password");
    assert_oauth_error(h.service.exchange(form.as_bytes()).await, "unsupported_grant_type", 400);
    let err = h.service.exchange(b"scope=system%2F*.read").await.unwrap_err();
    assert_eq!(err.error, "invalid_request");
}

#[tokio::test]
async fn missing_client_authentication_is_invalid_client() {
    let h = harness();
    let err = h.service.exchange(b"grant_type=client_credentials").await.unwrap_err();
    assert_eq!((err.error, err.status), ("invalid_client", 401));

    let form = h.es.token_form(TOKEN_URL, "", &user()).unwrap();
    let form = form.replace("jwt-bearer", "saml2-bearer");
    assert_oauth_error(h.service.exchange(form.as_bytes()).await, "invalid_client", 401);
}

#[tokio::test]
async fn garbage_assertion_is_invalid_client_and_not_echoed() {
    let h = harness();
    for garbage in ["not-a-jwt", "a.b.c", "eyJhbGciOiJFUzM4NCJ9.e30", "...."] {
        let err = exchange_assertion(&h, garbage).await.unwrap_err();
        assert_eq!((err.error, err.status), ("invalid_client", 401), "{garbage}");
        assert!(!err.description.contains(garbage), "{err}");
    }
}

#[tokio::test]
async fn error_bodies_are_rfc6749_json() {
    let h = harness();
    let err = h.service.exchange(b"grant_type=password").await.unwrap_err();
    let body: Value = serde_json::from_str(&err.to_json()).unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
    assert!(body["error_description"].is_string());
}

// ---- access tokens ----

async fn access_token(h: &Harness) -> String {
    let form = h.es.token_form(TOKEN_URL, "system/*.read", &user()).unwrap();
    h.service.exchange(form.as_bytes()).await.unwrap().response.access_token
}

fn sign_access_claims(claims: &Value, secret: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let h = harness();
    let token = access_token(&h).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        assert!(h.service.authenticate(Some(&format!("{scheme} {token}"))).is_ok(), "{scheme}");
    }
}

#[tokio::test]
async fn missing_or_malformed_authorization_is_refused() {
    let h = harness();
    let token = access_token(&h).await;
    assert_eq!(h.service.authenticate(None), Err(TokenError::Missing));
    for header in ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not-a-jwt", &token] {
        assert_eq!(h.service.authenticate(Some(header)), Err(TokenError::Malformed), "{header:?}");
    }
}

#[tokio::test]
async fn tampered_access_token_is_invalid() {
    let h = harness();
    let token = access_token(&h).await;
    let mut claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
    claims["purpose_of_use"] = json!("ETREAT");
    // Our header and signature, someone else's claims.
    let other = sign_access_claims(&claims, "some-other-secret-of-sufficient-length!!");
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[1] = other.split('.').nth(1).unwrap();
    assert_eq!(h.service.authenticate(Some(&bearer(&parts.join(".")))), Err(TokenError::Invalid));

    // Re-signed with another secret.
    let resigned = sign_access_claims(&claims, "some-other-secret-of-sufficient-length!!");
    assert_eq!(h.service.authenticate(Some(&bearer(&resigned))), Err(TokenError::Invalid));

    // alg none.
    let none = forge::unsigned(&json!({"alg": "none", "typ": "at+jwt"}), &claims);
    assert!(matches!(
        h.service.authenticate(Some(&bearer(&none))),
        Err(TokenError::Invalid | TokenError::Malformed)
    ));
}

#[tokio::test]
async fn expired_access_token_is_refused_as_expired() {
    let h = harness();
    let token = access_token(&h).await;
    let mut claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
    claims["iat"] = json!(now() - 400);
    claims["exp"] = json!(now() - 120);
    let expired = sign_access_claims(&claims, SECRET);
    assert_eq!(h.service.authenticate(Some(&bearer(&expired))), Err(TokenError::Expired));
    // The same lifetime, not yet expired, is accepted: the failure above is the expiry alone.
    claims["iat"] = json!(now() - 200);
    claims["exp"] = json!(now() + 80);
    assert!(h.service.authenticate(Some(&bearer(&sign_access_claims(&claims, SECRET)))).is_ok());
}

/// `token` with its claims changed by `edit`, signed again with the gateway's secret.
fn resigned(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap();
    edit(&mut claims);
    bearer(&sign_access_claims(&claims, SECRET))
}

#[tokio::test]
async fn access_token_not_yet_valid_issued_in_the_future_or_too_long_lived_is_invalid() {
    let h = harness();
    let token = access_token(&h).await;
    let auth = |edit: &dyn Fn(&mut Value)| h.service.authenticate(Some(&resigned(&token, edit)));
    // The clock skew (60 s) is tolerated, and not more.
    assert!(auth(&|c| c["nbf"] = json!(now() + 30)).is_ok());
    assert_eq!(auth(&|c| c["nbf"] = json!(now() + 600)), Err(TokenError::Invalid));
    let shifted = |secs: i64| {
        move |c: &mut Value| {
            c["iat"] = json!(now() + secs);
            c["exp"] = json!(now() + secs + 300);
        }
    };
    assert!(auth(&shifted(30)).is_ok());
    assert_eq!(auth(&shifted(600)), Err(TokenError::Invalid));
    // The client is registered for 300-second tokens: a longer one was not issued here.
    assert!(auth(&|c| c["exp"] = json!(c["iat"].as_i64().unwrap() + 300)).is_ok());
    assert_eq!(auth(&|c| c["exp"] = json!(c["iat"].as_i64().unwrap() + 301)), Err(TokenError::Invalid));
    assert_eq!(auth(&|c| c["exp"] = json!(c["iat"].as_i64().unwrap() - 1)), Err(TokenError::Invalid));
    assert!(
        matches!(auth(&|c| drop(c.as_object_mut().unwrap().remove("iat"))), Err(TokenError::Invalid)),
        "iat is required"
    );
}

#[tokio::test]
async fn a_suspended_or_removed_client_gets_no_token_and_loses_its_live_ones() {
    let h = harness();
    let token = access_token(&h).await;
    let header = bearer(&token);
    assert!(h.service.authenticate(Some(&header)).is_ok());

    assert!(h.service.clients().set_suspended("borough-ehr", true));
    assert_eq!(h.service.authenticate(Some(&header)), Err(TokenError::ClientInactive));
    let form = h.es.token_form(TOKEN_URL, "system/*.read", &user()).unwrap();
    let err = assert_oauth_error(h.service.exchange(form.as_bytes()).await, "invalid_client", 401);
    assert_eq!(err.description, "this client is suspended");

    assert!(h.service.clients().set_suspended("borough-ehr", false));
    assert!(h.service.authenticate(Some(&header)).is_ok(), "reinstated, the token is good again");

    assert!(h.service.clients().remove("borough-ehr"));
    assert_eq!(h.service.authenticate(Some(&header)), Err(TokenError::ClientInactive));
    let form = h.es.token_form(TOKEN_URL, "system/*.read", &user()).unwrap();
    assert_oauth_error(h.service.exchange(form.as_bytes()).await, "invalid_client", 401);
    assert!(!h.service.clients().remove("borough-ehr"));
    assert!(!h.service.clients().set_suspended("borough-ehr", true));
    // Another client's tokens are untouched.
    let rs = h.rs.token_form(TOKEN_URL, "system/*.read", &user()).unwrap();
    let rs_token = h.service.exchange(rs.as_bytes()).await.unwrap().response.access_token;
    assert!(h.service.authenticate(Some(&bearer(&rs_token))).is_ok());
}

#[tokio::test]
async fn a_client_registered_again_is_held_to_its_new_registration() {
    let h = harness();
    let token = access_token(&h).await;
    let mut shorter = client_config(&h.es);
    shorter.token_lifetime_secs = 60;
    h.service.clients().register(&shorter).unwrap();
    assert_eq!(h.service.authenticate(Some(&bearer(&token))), Err(TokenError::Invalid));
    let form = h.es.token_form(TOKEN_URL, "system/*.read", &user()).unwrap();
    let fresh = h.service.exchange(form.as_bytes()).await.unwrap().response;
    assert_eq!(fresh.expires_in, 60);
    assert!(h.service.authenticate(Some(&bearer(&fresh.access_token))).is_ok());

    // A registration that would not load leaves the one in force as it was.
    let mut broken = client_config(&h.es);
    broken.jwks = Some("not json".to_owned());
    assert!(h.service.clients().register(&broken).is_err());
    assert!(h.service.authenticate(Some(&bearer(&fresh.access_token))).is_ok());

    // A new client can be registered while the service runs.
    let newcomer = BackendClient::generate_es384("newcomer", "n-1").unwrap();
    h.service.clients().register(&client_config(&newcomer)).unwrap();
    let form = newcomer.token_form(TOKEN_URL, "system/Patient.r", &user()).unwrap();
    assert_eq!(h.service.exchange(form.as_bytes()).await.unwrap().response.scope, "system/Patient.r");
}

#[tokio::test]
async fn access_token_for_another_audience_or_issuer_is_invalid() {
    let h = harness();
    let token = access_token(&h).await;
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
    for (member, value) in [("aud", "another-api"), ("iss", "someone-else")] {
        let mut c = claims.clone();
        c[member] = json!(value);
        assert_eq!(
            h.service.authenticate(Some(&bearer(&sign_access_claims(&c, SECRET)))),
            Err(TokenError::Invalid),
            "{member}"
        );
    }
}

#[tokio::test]
async fn client_assertion_is_not_accepted_as_an_access_token() {
    let h = harness();
    let assertion = h.es.assertion(TOKEN_URL, &user(), LIFETIME).unwrap();
    assert_eq!(h.service.authenticate(Some(&bearer(&assertion))), Err(TokenError::Invalid));
}

#[test]
fn token_error_maps_to_invalid_token_challenge() {
    assert!(TokenError::Expired.www_authenticate().starts_with(r#"Bearer error="invalid_token""#));
}

// ---- construction ----

#[test]
fn token_service_refuses_a_relative_token_url() {
    let es = BackendClient::generate_es384("a", "k").unwrap();
    let err = TokenService::new(
        &config(vec![client_config(&es)]),
        "/token".to_owned(),
        Arc::new(InMemoryReplayGuard::new()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("token endpoint URL"), "{err}");
}

#[test]
fn token_service_refuses_an_invalid_config() {
    let es = BackendClient::generate_es384("a", "k").unwrap();
    let mut c = config(vec![client_config(&es), client_config(&es)]);
    let err = TokenService::new(&c, TOKEN_URL.to_owned(), Arc::new(InMemoryReplayGuard::new())).unwrap_err();
    assert!(matches!(err, tideway_auth::AuthConfigError::DuplicateClientId(_)), "{err}");
    c.clients.pop();
    c.token_signing_secret = SecretString::from("short");
    let err = TokenService::new(&c, TOKEN_URL.to_owned(), Arc::new(InMemoryReplayGuard::new())).unwrap_err();
    assert!(matches!(err, tideway_auth::AuthConfigError::SecretTooShort), "{err}");
}

#[test]
fn from_pem_refuses_other_algorithms_and_mismatched_keys() {
    assert!(BackendClient::from_pem("a", "k", Algorithm::RS256, RSA_PEM).is_err());
    assert!(BackendClient::from_pem("a", "k", Algorithm::ES384, RSA_PEM).is_err());
}

// ---- break-glass ----

fn breaking_glass(reason: Option<&str>) -> UserClaims {
    UserClaims {
        purpose: PurposeOfUse::EmergencyTreat,
        break_glass_reason: reason.map(str::to_owned),
        ..user()
    }
}

async fn exchange_for(h: &Harness, who: &UserClaims) -> Result<tideway_auth::TokenGrant, OAuthError> {
    let form = h.es.token_form(TOKEN_URL, "system/*.read", who).unwrap();
    h.service.exchange(form.as_bytes()).await
}

#[tokio::test]
async fn break_glass_needs_a_plain_reason_of_1_to_500_characters_and_only_with_etreat() {
    let h = harness();
    let too_long = "x".repeat(501);
    for reason in
        [None, Some(""), Some("   "), Some("line one\nline two"), Some("bell\u{7}"), Some(&*too_long)]
    {
        let err = assert_oauth_error(exchange_for(&h, &breaking_glass(reason)).await, "invalid_request", 400);
        assert!(err.description.contains("break_glass_reason"), "{reason:?}: {err}");
        assert!(!err.description.contains("line one") && !err.description.contains("xxxx"), "echoed: {err}");
    }
    // Not a string at all.
    let assertion = h
        .es
        .assertion_with(TOKEN_URL, &breaking_glass(Some("Collapsed in clinic")), LIFETIME, |_, claims| {
            claims["extensions"]["ihe_iua"]["break_glass_reason"] = json!(42);
        })
        .unwrap();
    assert_oauth_error(exchange_assertion(&h, &assertion).await, "invalid_request", 400);
    // A reason rides on no other purpose of use.
    for purpose in [PurposeOfUse::Treat, PurposeOfUse::CareCoordination, PurposeOfUse::Operations] {
        let who =
            UserClaims { purpose, break_glass_reason: Some("Collapsed in clinic".to_owned()), ..user() };
        let err = assert_oauth_error(exchange_for(&h, &who).await, "invalid_request", 400);
        assert!(err.description.contains("only for purpose of use ETREAT"), "{purpose:?}: {err}");
    }
}

#[tokio::test]
async fn control_characters_in_iua_claims_are_refused_naming_the_claim_not_its_value() {
    let h = harness();
    let cases: [(&str, Value, &str); 7] = [
        ("subject_id", json!("5550219\u{0}35107"), "extensions.ihe_iua.subject_id"),
        ("subject_name", json!("Dr Ada\nExample"), "extensions.ihe_iua.subject_name"),
        ("subject_name", json!("Dr Ada \u{202E}elpmaxE"), "extensions.ihe_iua.subject_name"),
        (
            "subject_role",
            json!({"system": "https://x\r.example", "code": "R8000"}),
            "extensions.ihe_iua.subject_role.system",
        ),
        (
            "purpose_of_use",
            json!({"system": "s", "code": "TREAT\u{1b}[2J"}),
            "extensions.ihe_iua.purpose_of_use.code",
        ),
        (
            "subject_organization",
            json!(["Guy's", "St\u{85}Thomas'"]),
            "extensions.ihe_iua.subject_organization[1]",
        ),
        ("bad\u{7}name", json!("x"), "extensions.ihe_iua.(unrecognised member)"),
    ];
    for (member, value, claim) in cases {
        let result =
            exchange_tampered(&h, |_, claims| claims["extensions"]["ihe_iua"][member] = value.clone()).await;
        let err = assert_oauth_error(result, "invalid_request", 400);
        assert_eq!(err.description, format!("{claim} must not contain control characters"));
        for user_data in ["5550219", "Ada", "Thomas", "TREAT", "x.example"] {
            assert!(!err.description.contains(user_data), "echoed user data: {err}");
        }
    }
    // A plain name with ordinary Unicode is fine.
    let who = UserClaims { name: Some("Dr Zoë O'Brien-Ng".to_owned()), ..user() };
    assert!(exchange_for(&h, &who).await.is_ok());
}

#[tokio::test]
async fn break_glass_with_a_reason_gives_a_token_carrying_it() {
    let h = harness();
    let longest = "é".repeat(500);
    for (given, kept) in [
        ("Unconscious, no one to consent", "Unconscious, no one to consent"),
        ("  trimmed reason \t", "trimmed reason"),
        (longest.as_str(), longest.as_str()),
    ] {
        let grant = exchange_for(&h, &breaking_glass(Some(given))).await.unwrap();
        let principal = h.service.authenticate(Some(&bearer(&grant.response.access_token))).unwrap();
        assert_eq!(principal.purpose, PurposeOfUse::EmergencyTreat);
        assert_eq!(principal.break_glass_reason.as_deref(), Some(kept));
        assert_eq!(principal.token_id, grant.token_id);
    }
    // Each token is its own break-glass session: the ids differ.
    let a = exchange_for(&h, &breaking_glass(Some("first"))).await.unwrap();
    let b = exchange_for(&h, &breaking_glass(Some("second"))).await.unwrap();
    assert_ne!(a.token_id, b.token_id);
    // An ordinary token carries no reason.
    let plain = h.service.authenticate(Some(&bearer(&access_token(&h).await))).unwrap();
    assert_eq!(plain.break_glass_reason, None);
}

#[tokio::test]
async fn an_access_token_claiming_etreat_without_a_reason_or_a_reason_without_etreat_is_invalid() {
    let h = harness();
    let token = access_token(&h).await;
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
    let mut no_reason = claims.clone();
    no_reason["purpose_of_use"] = json!("ETREAT");
    assert_eq!(
        h.service.authenticate(Some(&bearer(&sign_access_claims(&no_reason, SECRET)))),
        Err(TokenError::Invalid)
    );
    let mut stray = claims.clone();
    stray["break_glass_reason"] = json!("just looking");
    assert_eq!(
        h.service.authenticate(Some(&bearer(&sign_access_claims(&stray, SECRET)))),
        Err(TokenError::Invalid)
    );
    // Both together, signed by us, are accepted: the refusals above are the mismatch alone.
    no_reason["break_glass_reason"] = json!("Collapsed in clinic");
    let p = h.service.authenticate(Some(&bearer(&sign_access_claims(&no_reason, SECRET)))).unwrap();
    assert_eq!(p.break_glass_reason.as_deref(), Some("Collapsed in clinic"));
}

/// A service over the same clients as `h`, signing with `(kid, secret)` and accepting `others`.
fn service_with_keys(h: &Harness, kid: &str, secret: &str, others: &[(&str, &str)]) -> TokenService {
    let mut config = config(vec![client_config(&h.es)]);
    config.token_signing_secret = SecretString::from(secret);
    config.token_signing_kid = kid.to_owned();
    config.accepted_signing_keys = others
        .iter()
        .map(|(kid, secret)| tideway_auth::config::AcceptedSigningKey {
            kid: (*kid).to_owned(),
            secret: SecretString::from(*secret),
        })
        .collect();
    TokenService::new(&config, TOKEN_URL.to_owned(), Arc::new(InMemoryReplayGuard::new())).unwrap()
}

#[tokio::test]
async fn the_signing_key_rotates_without_ending_live_tokens() {
    const NEXT: &str = "the-next-token-signing-secret-for-this-test-only";
    let h = harness();
    let old = access_token(&h).await;
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid;
    assert_eq!(kid(&old).as_deref(), Some("k1"), "tokens name the key that signed them");

    // Step 1: every replica accepts the next key before any signs with it.
    let accepting = service_with_keys(&h, "k1", SECRET, &[("k2", NEXT)]);
    assert!(accepting.authenticate(Some(&bearer(&old))).is_ok());
    // Step 2: sign with the next key, still accepting the previous one.
    let rotated = service_with_keys(&h, "k2", NEXT, &[("k1", SECRET)]);
    assert!(rotated.authenticate(Some(&bearer(&old))).is_ok(), "live tokens survive the rotation");
    let form = h.es.token_form(TOKEN_URL, "system/*.read", &user()).unwrap();
    let new = rotated.exchange(form.as_bytes()).await.unwrap().response.access_token;
    assert_eq!(kid(&new).as_deref(), Some("k2"));
    assert!(accepting.authenticate(Some(&bearer(&new))).is_ok(), "a replica one step behind accepts it");
    // Step 3: the previous key retired, its tokens end.
    let retired = service_with_keys(&h, "k2", NEXT, &[]);
    assert_eq!(retired.authenticate(Some(&bearer(&old))), Err(TokenError::Invalid));
    assert!(retired.authenticate(Some(&bearer(&new))).is_ok());
    // A token naming a kid it does not know, or signed under a known kid with another key.
    let stranger = service_with_keys(&h, "k9", NEXT, &[]);
    assert_eq!(stranger.authenticate(Some(&bearer(&old))), Err(TokenError::Invalid));
    let swapped = service_with_keys(&h, "k1", NEXT, &[]);
    assert_eq!(swapped.authenticate(Some(&bearer(&old))), Err(TokenError::Invalid));
}

#[test]
fn signing_key_ids_and_accepted_keys_are_checked_at_start() {
    let h = harness();
    let mut config = config(vec![client_config(&h.es)]);
    let try_with = |config: &AuthConfig| {
        TokenService::new(config, TOKEN_URL.to_owned(), Arc::new(InMemoryReplayGuard::new()))
            .err()
            .map(|e| e.to_string())
    };
    config.accepted_signing_keys = vec![tideway_auth::config::AcceptedSigningKey {
        kid: "k1".into(),
        secret: SecretString::from(SECRET),
    }];
    assert!(try_with(&config).unwrap().contains("kid k1 is given twice"));
    config.accepted_signing_keys = vec![tideway_auth::config::AcceptedSigningKey {
        kid: "k0".into(),
        secret: SecretString::from("short"),
    }];
    let e = try_with(&config).unwrap();
    assert!(e.contains("kid k0") && !e.contains("short"), "{e}");
    config.accepted_signing_keys.clear();
    config.token_signing_kid = "has space".into();
    assert!(try_with(&config).is_some());
}
