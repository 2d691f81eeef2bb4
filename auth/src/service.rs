//! The token endpoint and bearer-token authentication.
//!
//! [`TokenService::exchange`] implements the SMART Backend Services `client_credentials` grant:
//! it authenticates the client by its signed JWT assertion (RFC 7523), reads the requesting
//! user from the assertion's IHE IUA claims, and issues the gateway's own access token (an
//! HS256 JWT that only the gateway verifies). [`TokenService::authenticate`] turns that token
//! back into a [`Principal`].

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tideway_profiles::OdsCode;
use time::OffsetDateTime;

use crate::JWT_BEARER_ASSERTION_TYPE;
use crate::config::{AuthConfig, AuthConfigError, VerificationKey};
use crate::limit::{KeyedLimiter, RetryAfter};
use crate::principal::{Principal, PurposeOfUse, RoleCode};
use crate::registry::{ClientRegistry, RegisteredClient};
use crate::replay::ReplayGuard;
use crate::scope::Scope;

/// `iss` of the gateway's access tokens.
pub const ACCESS_TOKEN_ISSUER: &str = "tideway";
/// `aud` of the gateway's access tokens.
pub const ACCESS_TOKEN_AUDIENCE: &str = "tideway-fhir-api";
/// JOSE `typ` of the gateway's access tokens (RFC 9068), so no other JWT signed with the same
/// secret could pass as one.
const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Larger assertions are refused before any parsing.
const MAX_ASSERTION_BYTES: usize = 16 * 1024;
/// Longest accepted `jti` and user id: bounds what the replay store and tokens hold.
const MAX_ID_CHARS: usize = 256;

/// Issues access tokens for client assertions and authenticates bearer tokens.
pub struct TokenService {
    clients: ClientRegistry,
    token_endpoint_url: String,
    assertion_max_lifetime_secs: i64,
    clock_skew_secs: i64,
    signing_key: EncodingKey,
    /// The `kid` the signing key's tokens carry.
    signing_kid: String,
    /// Every key a token may be signed with, by `kid` (the signing key first).
    verifying_keys: Vec<(String, DecodingKey)>,
    access_validation: Validation,
    replay: Arc<dyn ReplayGuard>,
    /// `/token` calls per client.
    token_calls: KeyedLimiter<String>,
}

impl fmt::Debug for TokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenService")
            .field("token_endpoint_url", &self.token_endpoint_url)
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

/// A successful token response (RFC 6749 §5.1). Serve it as JSON with
/// `Cache-Control: no-store`.
#[derive(Clone, Serialize)]
pub struct TokenResponse {
    /// The access token (a JWT only the gateway verifies; opaque to clients).
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// What [`TokenService::exchange`] grants: the response for the client and, for the
/// gateway's audit record, who it was issued to.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// The authenticated client.
    pub client_id: String,
    /// The new access token's id (`jti`), the same as [`Principal::token_id`] later.
    pub token_id: String,
    /// Who the token is for, as it will authenticate (for the audit record of the grant).
    pub principal: Principal,
    /// The body to send (RFC 6749 §5.1).
    pub response: TokenResponse,
}

/// A token-endpoint error (RFC 6749 §5.2). The description is safe to send and to log: it never
/// contains the assertion, its claims' values or user data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    /// HTTP status: 401 for `invalid_client`, 429 for `slow_down`, 503 for
    /// `temporarily_unavailable`, 500 for `server_error`, 400 otherwise.
    pub status: u16,
    /// The RFC 6749 error code: `invalid_request`, `invalid_client`, `invalid_grant`,
    /// `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`, `slow_down`,
    /// `temporarily_unavailable` or `server_error`.
    pub error: &'static str,
    /// Human-readable detail for the client developer.
    pub description: String,
    /// For a 429: whole seconds to wait before asking again (the `Retry-After` header).
    pub retry_after_secs: Option<u64>,
    /// The client whose assertion's signature verified, when the refusal came after that:
    /// such a refusal names a client (a replay, a missing certificate, a suspension), and the
    /// gateway audits it as that client's, not as an anonymous one.
    pub verified_client: Option<String>,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into(), retry_after_secs: None, verified_client: None }
    }

    /// A 429 `slow_down` (the error code RFC 8628 registers for a token endpoint asked too
    /// often; RFC 6749 has none of its own) with the wait in `Retry-After`.
    pub fn slow_down(retry_after: RetryAfter) -> Self {
        let secs = retry_after.secs();
        Self {
            retry_after_secs: Some(secs),
            ..Self::new(
                429,
                "slow_down",
                format!("this client is asking for tokens too often; retry after {secs} seconds"),
            )
        }
    }

    /// A 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", description)
    }

    /// A 401 `invalid_client`.
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(401, "invalid_client", description)
    }

    /// The RFC 6749 §5.2 JSON body: `{"error": ..., "error_description": ...}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({ "error": self.error, "error_description": self.description }).to_string()
    }
}

/// Why a bearer token was not accepted. The gateway answers every variant with 401 and
/// `WWW-Authenticate: Bearer error="invalid_token"` (see [`TokenError::www_authenticate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization` header.
    #[error("no bearer token was presented")]
    Missing,
    /// The header is not `Bearer <token>` or the token is not a JWT.
    #[error("the bearer token is malformed")]
    Malformed,
    /// Bad signature, issuer, audience, algorithm or claims.
    #[error("the bearer token is invalid")]
    Invalid,
    /// The token has expired.
    #[error("the bearer token has expired")]
    Expired,
    /// The token's client has been removed from the registry or suspended.
    #[error("the bearer token's client is no longer registered or is suspended")]
    ClientInactive,
}

impl TokenError {
    /// The `WWW-Authenticate` header value to answer with (RFC 6750 §3).
    pub fn www_authenticate(&self) -> String {
        format!(r#"Bearer error="invalid_token", error_description="{self}""#)
    }
}

/// The claims of the gateway's access token.
#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    iss: String,
    aud: String,
    /// The user the client acts for.
    sub: String,
    client_id: String,
    scope: String,
    role: String,
    organisation: String,
    purpose_of_use: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    break_glass_reason: Option<String>,
    jti: String,
    iat: i64,
    /// Never written by this gateway; honoured if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    exp: i64,
    /// The certificate the token is bound to (RFC 8705), for a client registered with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation>,
}

/// RFC 8705's confirmation: the base64url SHA-256 of the certificate (DER).
#[derive(Debug, Serialize, Deserialize)]
struct Confirmation {
    #[serde(rename = "x5t#S256")]
    x5t_s256: String,
}

/// The RFC 8705 thumbprint of a certificate whose SHA-256 is `hex` (lower-case hex).
fn thumbprint(sha256_hex: &str) -> Option<String> {
    hex::decode(sha256_hex).ok().map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
}

/// The header members of a client assertion we look at. Parsed by hand rather than with
/// `jsonwebtoken::decode_header` so that `alg: none` and unknown algorithms get a clear answer.
#[derive(Deserialize)]
struct AssertionHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// Registered claims of a client assertion. Times are integers: a float `exp` is refused.
#[derive(Deserialize)]
struct AssertionClaims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Value>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    extensions: Option<Value>,
}

/// The user a client asserts it acts for.
struct AssertedUser {
    user_id: String,
    role: RoleCode,
    organisation: OdsCode,
    purpose: PurposeOfUse,
    break_glass_reason: Option<String>,
}

/// The `POST /token` form parameters we use.
#[derive(Default)]
struct TokenForm {
    grant_type: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
}

impl TokenForm {
    fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"))?;
        let mut form = Self::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "grant_type" => &mut form.grant_type,
                "client_assertion_type" => &mut form.client_assertion_type,
                "client_assertion" => &mut form.client_assertion,
                "client_id" => &mut form.client_id,
                "scope" => &mut form.scope,
                // RFC 6749 §3.2: unrecognised parameters are ignored.
                _ => continue,
            };
            if slot.replace(value).is_some() {
                // RFC 6749 §3.2: parameters must not be repeated; which one would win is
                // exactly what an attacker would like to choose.
                return Err(OAuthError::invalid_request(format!(
                    "parameter {} is repeated",
                    param_name(&name)
                )));
            }
        }
        Ok(form)
    }
}

/// The static name of a known form parameter, so that descriptions never echo request input.
fn param_name(name: &str) -> &'static str {
    match name {
        "grant_type" => "grant_type",
        "client_assertion_type" => "client_assertion_type",
        "client_assertion" => "client_assertion",
        "client_id" => "client_id",
        "scope" => "scope",
        _ => "(unknown)",
    }
}

impl TokenService {
    /// Validates `config` (reading any `jwks_file`) and builds the service.
    /// `token_endpoint_url` is the absolute URL of `POST /token` as clients address it: each
    /// assertion's `aud` must equal it exactly.
    pub fn new(
        config: &AuthConfig,
        token_endpoint_url: String,
        replay: Arc<dyn ReplayGuard>,
    ) -> Result<Self, AuthConfigError> {
        config.validate_globals()?;
        let url_ok = ["https://", "http://"]
            .iter()
            .any(|p| token_endpoint_url.len() > p.len() && token_endpoint_url.starts_with(p))
            && !token_endpoint_url.chars().any(char::is_whitespace);
        if !url_ok {
            return Err(AuthConfigError::TokenEndpointUrl);
        }
        let clients = ClientRegistry::of(&config.clients)?;
        let secret = config.token_signing_secret.expose_secret().as_bytes();
        let clock_skew_secs = i64::try_from(config.clock_skew_secs)
            .map_err(|_| AuthConfigError::ClockSkew(config.clock_skew_secs))?;
        let assertion_max_lifetime_secs = i64::try_from(config.assertion_max_lifetime_secs)
            .map_err(|_| AuthConfigError::AssertionLifetime(config.assertion_max_lifetime_secs))?;

        let mut access_validation = Validation::new(Algorithm::HS256);
        access_validation.set_issuer(&[ACCESS_TOKEN_ISSUER]);
        access_validation.set_audience(&[ACCESS_TOKEN_AUDIENCE]);
        access_validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        access_validation.leeway = config.clock_skew_secs;

        Ok(Self {
            clients,
            token_endpoint_url,
            assertion_max_lifetime_secs,
            clock_skew_secs,
            signing_key: EncodingKey::from_secret(secret),
            signing_kid: config.token_signing_kid.clone(),
            verifying_keys: std::iter::once((
                config.token_signing_kid.clone(),
                DecodingKey::from_secret(secret),
            ))
            .chain(
                config
                    .accepted_signing_keys
                    .iter()
                    .map(|k| (k.kid.clone(), DecodingKey::from_secret(k.secret.expose_secret().as_bytes()))),
            )
            .collect(),
            access_validation,
            replay,
            token_calls: KeyedLimiter::new(config.token_rate_limit),
        })
    }

    /// Handles a `POST /token` body (`application/x-www-form-urlencoded`): the SMART Backend
    /// Services `client_credentials` grant with a JWT client assertion.
    pub async fn exchange(&self, form_body: &[u8]) -> Result<TokenGrant, OAuthError> {
        self.exchange_over(form_body, None).await
    }

    /// [`Self::exchange`] of a request that came over a TLS connection presenting the client
    /// certificate whose SHA-256 (lower-case hex) is `certificate`: a client registered with a
    /// certificate gets a token only over a connection presenting it, bound to it.
    pub async fn exchange_over(
        &self,
        form_body: &[u8],
        certificate: Option<&str>,
    ) -> Result<TokenGrant, OAuthError> {
        let form = TokenForm::parse(form_body)?;
        match form.grant_type.as_deref() {
            None => return Err(OAuthError::invalid_request("grant_type is required")),
            Some("client_credentials") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    400,
                    "unsupported_grant_type",
                    "only grant_type=client_credentials is supported",
                ));
            }
        }
        let (Some(assertion_type), Some(assertion)) =
            (form.client_assertion_type.as_deref(), form.client_assertion.as_deref())
        else {
            return Err(OAuthError::invalid_client(
                "client authentication is required: send client_assertion_type and client_assertion",
            ));
        };
        if assertion_type != JWT_BEARER_ASSERTION_TYPE {
            return Err(OAuthError::invalid_client(format!(
                "client_assertion_type must be {JWT_BEARER_ASSERTION_TYPE}"
            )));
        }

        let now = OffsetDateTime::now_utc().unix_timestamp();
        let (client_id, client, claims) = self.verify_assertion(assertion)?;
        let granted = self.grant_verified(&form, &client_id, &client, &claims, certificate, now).await;
        granted.map_err(|mut e| {
            e.verified_client = Some(client_id.clone());
            e
        })
    }

    /// What follows a verified signature: the client is known, so every refusal is its own.
    async fn grant_verified(
        &self,
        form: &TokenForm,
        client_id: &str,
        client: &RegisteredClient,
        claims: &AssertionClaims,
        certificate: Option<&str>,
        now: i64,
    ) -> Result<TokenGrant, OAuthError> {
        // Counted once the signature proves which client asks, so that no one else can use up
        // a client's allowance; and before the replay store is written.
        self.token_calls.check(&client_id.to_owned()).map_err(OAuthError::slow_down)?;
        if client.certificate.as_deref().is_some_and(|registered| certificate != Some(registered)) {
            return Err(OAuthError::invalid_client(
                "this client authenticates over mutual TLS with its registered certificate (RFC 8705)",
            ));
        }
        if form.client_id.as_deref().is_some_and(|id| id != client_id) {
            return Err(OAuthError::invalid_client("client_id does not match the assertion's iss"));
        }
        let (exp, jti) = self.check_assertion_claims(claims, now)?;
        let user = asserted_user(claims.extensions.as_ref())?;
        match (user.purpose == PurposeOfUse::PatientRequest, client.patient_app) {
            (true, false) => {
                return Err(OAuthError::invalid_request(
                    "purpose of use PATRQT is for patient-facing apps only (a client registered with patient_app = true)",
                ));
            }
            (false, true) => {
                return Err(OAuthError::invalid_request(
                    "a patient-facing app's users act for themselves: purpose of use PATRQT",
                ));
            }
            _ => {}
        }
        let scopes = grant_scopes(form.scope.as_deref(), &client.allowed_scopes)?;

        // Last, so that an assertion refused for another reason does not use up its jti.
        // Remembered past exp by the skew we allow on exp, or it could be replayed then.
        let remember_until = OffsetDateTime::from_unix_timestamp(exp.saturating_add(self.clock_skew_secs))
            .map_err(|_| OAuthError::invalid_client("client assertion exp is out of range"))?;
        match self.replay.first_use(client_id, jti, remember_until).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(OAuthError::invalid_client("client assertion jti has already been used"));
            }
            Err(_) => {
                return Err(OAuthError::new(
                    503,
                    "temporarily_unavailable",
                    "replay protection is unavailable; retry later",
                ));
            }
        }

        self.issue(client_id, client, &user, scopes, now)
    }

    /// Finds the client and verifies the assertion's signature with one of its keys.
    fn verify_assertion(
        &self,
        assertion: &str,
    ) -> Result<(String, Arc<RegisteredClient>, AssertionClaims), OAuthError> {
        if assertion.len() > MAX_ASSERTION_BYTES {
            return Err(OAuthError::invalid_client("client assertion is too large"));
        }
        let mut parts = assertion.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OAuthError::invalid_client("client assertion is not a compact JWS"));
        };
        let header: AssertionHeader = decode_part(header_b64)
            .ok_or_else(|| OAuthError::invalid_client("client assertion header is malformed"))?;
        // The algorithm is fixed by policy, never chosen by the token: this is what keeps
        // `none`, and an HMAC keyed with a public key, out.
        let alg = match header.alg.as_str() {
            "RS384" => Algorithm::RS384,
            "ES384" => Algorithm::ES384,
            _ => {
                return Err(OAuthError::invalid_client(
                    "client assertion must be signed with RS384 or ES384",
                ));
            }
        };
        if header.crit.is_some() {
            return Err(OAuthError::invalid_client(
                "client assertion header `crit` extensions are not supported",
            ));
        }
        let claims: AssertionClaims = decode_part(payload_b64)
            .ok_or_else(|| OAuthError::invalid_client("client assertion claims are malformed"))?;
        let Some((client_id, client)) =
            claims.iss.as_deref().and_then(|iss| Some((iss.to_owned(), self.clients.get(iss)?)))
        else {
            return Err(OAuthError::invalid_client("client assertion iss is not a registered client"));
        };

        let candidates: Vec<&VerificationKey> = match &header.kid {
            Some(kid) => {
                let Some(key) = client.keys.iter().find(|k| k.kid.as_deref() == Some(kid.as_str())) else {
                    return Err(OAuthError::invalid_client(
                        "no key with the assertion's kid is registered for this client",
                    ));
                };
                if key.alg != alg {
                    return Err(OAuthError::invalid_client(
                        "the key named by kid is not registered for the assertion's alg",
                    ));
                }
                vec![key]
            }
            None => client.keys.iter().filter(|k| k.alg == alg).collect(),
        };
        if candidates.is_empty() {
            return Err(OAuthError::invalid_client("no key is registered for the assertion's alg"));
        }
        let signed = &assertion[..header_b64.len() + 1 + payload_b64.len()];
        let verified = candidates.iter().any(|k| {
            // A signature that does not decode is just another bad signature.
            jsonwebtoken::crypto::verify(signature_b64, signed.as_bytes(), &k.key, alg).unwrap_or(false)
        });
        if !verified {
            return Err(OAuthError::invalid_client("client assertion signature is invalid"));
        }
        // Said only to the client itself, once its signature proves who it is.
        if client.suspended {
            let mut e = OAuthError::invalid_client("this client is suspended");
            e.verified_client = Some(client_id);
            return Err(e);
        }
        Ok((client_id, client, claims))
    }

    /// Checks sub, aud and the times; returns `exp` and `jti`.
    fn check_assertion_claims<'c>(
        &self,
        claims: &'c AssertionClaims,
        now: i64,
    ) -> Result<(i64, &'c str), OAuthError> {
        if claims.sub != claims.iss {
            return Err(OAuthError::invalid_client("client assertion sub must equal iss (the client_id)"));
        }
        let aud_ok = match &claims.aud {
            Some(Value::String(aud)) => *aud == self.token_endpoint_url,
            Some(Value::Array(auds)) => {
                auds.iter().any(|a| a.as_str() == Some(self.token_endpoint_url.as_str()))
            }
            _ => false,
        };
        if !aud_ok {
            return Err(OAuthError::invalid_client("client assertion aud must be this token endpoint's URL"));
        }
        let Some(exp) = claims.exp else {
            return Err(OAuthError::invalid_client("client assertion exp is required"));
        };
        if exp.saturating_add(self.clock_skew_secs) < now {
            return Err(OAuthError::invalid_client("client assertion has expired"));
        }
        if exp.saturating_sub(now) > self.assertion_max_lifetime_secs {
            return Err(OAuthError::invalid_client(format!(
                "client assertion exp must be at most {} seconds in the future",
                self.assertion_max_lifetime_secs
            )));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(self.clock_skew_secs)) {
            return Err(OAuthError::invalid_client("client assertion is not yet valid (nbf)"));
        }
        if claims.iat.is_some_and(|iat| iat > now.saturating_add(self.clock_skew_secs)) {
            return Err(OAuthError::invalid_client("client assertion iat is in the future"));
        }
        let jti = match claims.jti.as_deref() {
            None | Some("") => {
                return Err(OAuthError::invalid_client("client assertion jti is required"));
            }
            Some(jti) if jti.chars().count() > MAX_ID_CHARS => {
                return Err(OAuthError::invalid_client("client assertion jti is too long"));
            }
            Some(jti) => jti,
        };
        Ok((exp, jti))
    }

    fn issue(
        &self,
        client_id: &str,
        client: &RegisteredClient,
        user: &AssertedUser,
        scopes: Vec<String>,
        now: i64,
    ) -> Result<TokenGrant, OAuthError> {
        let lifetime = client.token_lifetime_secs;
        let scope = scopes.join(" ");
        let token_id = uuid::Uuid::new_v4().to_string();
        let claims = AccessClaims {
            iss: ACCESS_TOKEN_ISSUER.to_owned(),
            aud: ACCESS_TOKEN_AUDIENCE.to_owned(),
            sub: user.user_id.clone(),
            client_id: client_id.to_owned(),
            scope: scope.clone(),
            role: user.role.as_str().to_owned(),
            organisation: user.organisation.as_str().to_owned(),
            purpose_of_use: user.purpose.code().to_owned(),
            break_glass_reason: user.break_glass_reason.clone(),
            jti: token_id.clone(),
            iat: now,
            nbf: None,
            cnf: client.certificate.as_deref().and_then(thumbprint).map(|x5t_s256| Confirmation { x5t_s256 }),
            // Lifetimes are validated to at most 3600, so this cannot wrap.
            exp: now.saturating_add_unsigned(lifetime),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(self.signing_kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &self.signing_key)
            .map_err(|_| OAuthError::new(500, "server_error", "the access token could not be issued"))?;
        let principal = Principal {
            client_id: client_id.to_owned(),
            user_id: user.user_id.clone(),
            role: user.role.clone(),
            organisation: user.organisation.clone(),
            purpose: user.purpose,
            scopes,
            token_id: token_id.clone(),
            break_glass_reason: user.break_glass_reason.clone(),
        };
        Ok(TokenGrant {
            client_id: client_id.to_owned(),
            token_id,
            principal,
            response: TokenResponse { access_token, token_type: "bearer", expires_in: lifetime, scope },
        })
    }

    /// Authenticates an `Authorization` header value (`Bearer <access token>`, scheme matched
    /// case-insensitively) and returns who is asking.
    pub fn authenticate(&self, authorization_header: Option<&str>) -> Result<Principal, TokenError> {
        self.authenticate_over(authorization_header, None)
    }

    /// [`Self::authenticate`] of a request over a connection presenting the client certificate
    /// whose SHA-256 (lower-case hex) is `certificate`: a token bound to a certificate is good
    /// only over a connection presenting that very certificate.
    pub fn authenticate_over(
        &self,
        authorization_header: Option<&str>,
        certificate: Option<&str>,
    ) -> Result<Principal, TokenError> {
        let header = authorization_header.ok_or(TokenError::Missing)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(TokenError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::Malformed);
        }
        let token = token.trim_start();
        if token.is_empty() || token.contains(char::is_whitespace) || token.split('.').count() != 3 {
            return Err(TokenError::Malformed);
        }
        // The key the token names (a token without a kid predates kids: the signing key).
        let named = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?.kid;
        let key = match named {
            None => &self.verifying_keys[0].1,
            Some(kid) => &self.verifying_keys.iter().find(|(k, _)| *k == kid).ok_or(TokenError::Invalid)?.1,
        };
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, key, &self.access_validation).map_err(|e| match e
                .kind()
            {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => TokenError::Malformed,
                _ => TokenError::Invalid,
            })?;
        if data.header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
            return Err(TokenError::Invalid);
        }
        let c = data.claims;
        if let Some(bound) = &c.cnf
            && certificate.and_then(thumbprint).as_deref() != Some(bound.x5t_s256.as_str())
        {
            return Err(TokenError::Invalid);
        }
        self.check_access_times(&c)?;
        let purpose = PurposeOfUse::parse(&c.purpose_of_use).ok_or(TokenError::Invalid)?;
        // Break-glass is never without its reason, and a reason never rides on another purpose.
        if (purpose == PurposeOfUse::EmergencyTreat) != c.break_glass_reason.is_some() {
            return Err(TokenError::Invalid);
        }
        Ok(Principal {
            role: RoleCode::parse(&c.role).ok_or(TokenError::Invalid)?,
            organisation: OdsCode::parse(&c.organisation).map_err(|_| TokenError::Invalid)?,
            purpose,
            scopes: c.scope.split_ascii_whitespace().map(str::to_owned).collect(),
            client_id: c.client_id,
            user_id: c.sub,
            token_id: c.jti,
            break_glass_reason: c.break_glass_reason,
        })
    }

    /// What the signature alone does not settle: the token is in its validity window (`nbf`,
    /// `iat` not in the future beyond the clock skew), no longer-lived than its client may
    /// be given now, and its client is still registered and not suspended.
    fn check_access_times(&self, c: &AccessClaims) -> Result<(), TokenError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let latest = now.saturating_add(self.clock_skew_secs);
        if c.nbf.is_some_and(|nbf| nbf > latest) || c.iat > latest {
            return Err(TokenError::Invalid);
        }
        let client = self.clients.get(&c.client_id).filter(|client| !client.suspended);
        let Some(client) = client else {
            return Err(TokenError::ClientInactive);
        };
        let lifetime = c.exp.saturating_sub(c.iat);
        if u64::try_from(lifetime).map_or(true, |l| l > client.token_lifetime_secs) {
            return Err(TokenError::Invalid);
        }
        Ok(())
    }

    /// The live client registry, to replace, suspend or remove clients while the gateway runs.
    pub fn clients(&self) -> &ClientRegistry {
        &self.clients
    }
}

fn decode_part<T: serde::de::DeserializeOwned>(b64: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(b64).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Reads the IHE IUA user claims. Descriptions name the claim at fault, never its value.
fn asserted_user(extensions: Option<&Value>) -> Result<AssertedUser, OAuthError> {
    let Some(iua) = extensions.and_then(|e| e.get("ihe_iua")).filter(|v| v.is_object()) else {
        return Err(OAuthError::invalid_request(
            "the client assertion must carry the requesting user in extensions.ihe_iua",
        ));
    };
    // The break-glass reason is trimmed before its own check (`break_glass_reason`), so
    // surrounding white space such as a tab is dropped rather than refused.
    let mut checked = iua.clone();
    if let Some(members) = checked.as_object_mut() {
        members.remove("break_glass_reason");
    }
    if let Some(claim) = claim_with_control_characters(&checked, "extensions.ihe_iua") {
        return Err(OAuthError::invalid_request(format!("{claim} must not contain control characters")));
    }
    let user_id = iua
        .get("subject_id")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty() && s.chars().count() <= MAX_ID_CHARS)
        .ok_or_else(|| {
            OAuthError::invalid_request("extensions.ihe_iua.subject_id must be a non-empty string")
        })?;
    let role_code = coded(iua, "subject_role")?;
    let role = RoleCode::parse(role_code).ok_or_else(|| {
        OAuthError::invalid_request(
            "extensions.ihe_iua.subject_role.code must be a national RBAC role code (e.g. R8000)",
        )
    })?;
    let organisation = iua
        .get("subject_organization_id")
        .and_then(Value::as_str)
        .and_then(|s| OdsCode::parse(s).ok())
        .ok_or_else(|| {
            OAuthError::invalid_request("extensions.ihe_iua.subject_organization_id must be an ODS code")
        })?;
    let purpose_code = coded(iua, "purpose_of_use")?;
    let purpose = PurposeOfUse::parse(purpose_code).ok_or_else(|| {
        OAuthError::invalid_request(
            "extensions.ihe_iua.purpose_of_use.code must be one of TREAT, ETREAT, COC, PATRQT, HOPERAT, HRESCH, PUBHLTH",
        )
    })?;
    if iua.get("subject_name").is_some_and(|n| !n.is_string()) {
        return Err(OAuthError::invalid_request("extensions.ihe_iua.subject_name must be a string"));
    }
    let break_glass_reason = break_glass_reason(iua, purpose)?;
    Ok(AssertedUser { user_id: user_id.to_owned(), role, organisation, purpose, break_glass_reason })
}

/// Characters no IUA claim may hold: C0 and C1 controls, and the line separators and
/// bidirectional overrides that make a log line, an audit record or an export read other than
/// it is. The claims end up in all three.
fn is_control_character(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The path (`extensions.ihe_iua.subject_role.code`) of the first string under `value` that
/// holds a control character, or of the member whose name does. A member name goes into the
/// path only when it is a short plain name; another is called `(unrecognised member)`.
fn claim_with_control_characters(value: &Value, path: &str) -> Option<String> {
    let named = |name: &str| {
        let plain = name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        format!("{path}.{}", if plain { name } else { "(unrecognised member)" })
    };
    match value {
        Value::String(text) => text.chars().any(is_control_character).then(|| path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| claim_with_control_characters(item, &format!("{path}[{i}]"))),
        Value::Object(members) => members.iter().find_map(|(name, member)| {
            if name.chars().any(is_control_character) {
                return Some(named(name));
            }
            claim_with_control_characters(member, &named(name))
        }),
        _ => None,
    }
}

/// The most a break-glass reason may say.
const MAX_REASON_CHARS: usize = 500;

/// `break_glass_reason`: mandatory with `ETREAT`, refused with any other purpose, plain text of
/// at most [`MAX_REASON_CHARS`] characters without control characters (it goes to the audit
/// trail and to the privacy officer).
fn break_glass_reason(iua: &Value, purpose: PurposeOfUse) -> Result<Option<String>, OAuthError> {
    let given = iua.get("break_glass_reason");
    if purpose != PurposeOfUse::EmergencyTreat {
        return match given {
            None => Ok(None),
            Some(_) => Err(OAuthError::invalid_request(
                "extensions.ihe_iua.break_glass_reason is only for purpose of use ETREAT",
            )),
        };
    }
    given
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| {
            !r.is_empty() && r.chars().count() <= MAX_REASON_CHARS && !r.chars().any(is_control_character)
        })
        .map(|r| Some(r.to_owned()))
        .ok_or_else(|| {
            OAuthError::invalid_request(
                "break-glass (purpose of use ETREAT) needs extensions.ihe_iua.break_glass_reason: \
                 a reason of 1 to 500 characters without control characters",
            )
        })
}

/// The `code` of a `{system, code}` member; both must be non-empty strings.
fn coded<'v>(iua: &'v Value, member: &'static str) -> Result<&'v str, OAuthError> {
    let field = iua.get(member);
    let system = field.and_then(|f| f.get("system")).and_then(Value::as_str);
    let code = field.and_then(|f| f.get("code")).and_then(Value::as_str);
    match (system, code) {
        (Some(system), Some(code)) if !system.is_empty() && !code.is_empty() => Ok(code),
        _ => Err(OAuthError::invalid_request(format!(
            "extensions.ihe_iua.{member} must be an object with string system and code"
        ))),
    }
}

/// Grants exactly the requested scopes (each once), or every allowed scope if none are
/// requested. A requested scope is granted when the allowed scopes cover it (see
/// [`Scope::is_covered_by`]), so a client may ask for less than it is allowed.
fn grant_scopes(requested: Option<&str>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    let allowed_scopes: Vec<Scope> = allowed.iter().filter_map(|a| Scope::parse(a)).collect();
    let mut granted: Vec<String> = Vec::new();
    for scope in requested.unwrap_or_default().split_ascii_whitespace() {
        if !Scope::parse(scope).is_some_and(|s| s.is_covered_by(&allowed_scopes)) {
            return Err(OAuthError::new(
                400,
                "invalid_scope",
                "a requested scope is not allowed for this client",
            ));
        }
        if !granted.iter().any(|g| g == scope) {
            granted.push(scope.to_owned());
        }
    }
    if granted.is_empty() {
        granted = allowed.to_vec();
    }
    Ok(granted)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    #[test]
    fn oauth_error_body_is_rfc6749_json() {
        let e = OAuthError::invalid_client("client assertion has expired");
        let body: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "invalid_client", "error_description": "client assertion has expired"})
        );
        assert_eq!(e.status, 401);
    }

    #[test]
    fn repeated_form_parameters_are_refused() {
        let err = TokenForm::parse(b"grant_type=client_credentials&grant_type=password").err().unwrap();
        assert_eq!(err.error, "invalid_request");
        assert_eq!(err.description, "parameter grant_type is repeated");
    }

    #[test]
    fn scopes_granted_are_the_requested_ones_or_all_allowed() {
        let allowed = vec!["system/*.read".to_owned(), "system/*.rs".to_owned()];
        assert_eq!(grant_scopes(Some("system/*.rs system/*.rs"), &allowed).unwrap(), ["system/*.rs"]);
        assert_eq!(grant_scopes(None, &allowed).unwrap(), allowed);
        assert_eq!(grant_scopes(Some("  "), &allowed).unwrap(), allowed);
        assert_eq!(
            grant_scopes(Some("system/*.read system/*.write"), &allowed).unwrap_err().error,
            "invalid_scope"
        );
    }

    #[test]
    fn a_subset_of_the_allowed_scopes_is_granted_as_asked() {
        let allowed = vec!["system/*.read".to_owned()];
        assert_eq!(grant_scopes(Some("system/Patient.read"), &allowed).unwrap(), ["system/Patient.read"]);
        assert_eq!(
            grant_scopes(Some("system/Patient.r system/Condition.s system/Patient.r"), &allowed).unwrap(),
            ["system/Patient.r", "system/Condition.s"]
        );
        let narrow = vec!["system/Patient.rs".to_owned()];
        for refused in ["system/*.read", "system/Condition.r", "system/Patient.cruds", "user/Patient.r", "x"]
        {
            assert_eq!(grant_scopes(Some(refused), &narrow).unwrap_err().error, "invalid_scope", "{refused}");
        }
    }

    #[test]
    fn token_response_debug_hides_the_token() {
        let r = TokenResponse {
            access_token: "secret.token.value".to_owned(),
            token_type: "bearer",
            expires_in: 300,
            scope: "system/*.read".to_owned(),
        };
        assert!(!format!("{r:?}").contains("secret.token.value"));
    }
}
