//! Configuration of the token endpoint: the gateway's signing secret and the registered
//! backend clients with their public keys. Validated once at start-up, so a gateway with a
//! weak secret or an unusable key never starts.

use std::collections::HashSet;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::limit::RateLimit;
use crate::scope::{self, Scope};

/// The shortest accepted `token_signing_secret`, in bytes (HS256 wants a key at least as long
/// as its 256-bit output).
pub const MIN_SECRET_BYTES: usize = 32;
/// The longest access-token lifetime a client may be given, in seconds.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 3600;
/// The longest client-assertion lifetime SMART Backend Services allows, in seconds.
pub const MAX_ASSERTION_LIFETIME_SECS: u64 = 300;
/// The largest accepted clock skew, in seconds.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// The smallest RSA modulus accepted in a client's JWK Set, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// The `auth` section of the gateway configuration.
///
/// ```toml
/// [auth]
/// token_signing_secret = "at least 32 bytes of randomness, from the environment in production"
/// assertion_max_lifetime_secs = 300
/// clock_skew_secs = 60
///
/// [[auth.clients]]
/// client_id = "borough-ehr"
/// name = "Borough EHR"
/// jwks_file = "/etc/tideway/clients/borough-ehr.jwks.json"
/// allowed_scopes = ["system/*.read"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The HMAC key (HS256) the gateway signs and verifies its own access tokens with: at
    /// least 32 bytes, random, and the same on every replica. Supply it through the environment
    /// or a secret store, never in a committed file. To rotate it without ending live tokens,
    /// see [`Self::accepted_signing_keys`].
    pub token_signing_secret: SecretString,
    /// The key id (`kid`) the tokens signed with `token_signing_secret` carry (default `k1`).
    #[serde(default = "default_token_signing_kid")]
    pub token_signing_kid: String,
    /// Other keys whose tokens are accepted but which sign nothing: during a rotation, the
    /// next key (added on every replica before any replica signs with it) and the previous
    /// one (kept until the longest token lifetime has passed). Each `{kid, secret}`; a token
    /// naming no `kid` (issued before kids were used) is checked against the signing key only.
    #[serde(default)]
    pub accepted_signing_keys: Vec<AcceptedSigningKey>,
    /// The registered backend clients. At least one is required.
    pub clients: Vec<ClientConfig>,
    /// How far in the future (seconds from now) a client assertion's `exp` may be. SMART
    /// Backend Services caps it at 300 (five minutes); lower values narrow the replay window.
    #[serde(default = "default_assertion_max_lifetime_secs")]
    pub assertion_max_lifetime_secs: u64,
    /// Tolerated difference between the clients' clocks and ours, in seconds, applied to the
    /// assertion's `exp`, `nbf` and `iat` and to access-token expiry. At most 300.
    #[serde(default = "default_clock_skew_secs")]
    pub clock_skew_secs: u64,
    /// How often one client may call `POST /token` (counted once its assertion's signature
    /// is verified, so no one else can use up its allowance); beyond it the answer is 429
    /// `slow_down` with `Retry-After`. Each replica counts its own. Default 600 a minute with a
    /// burst of 120: size it to the client's users, each of whom needs a token per
    /// `token_lifetime_secs`.
    #[serde(default = "default_token_rate_limit")]
    pub token_rate_limit: RateLimit,
    /// How often (seconds) each client's `jwks_file` is looked at again: when it changed, the
    /// client's keys are replaced by the file's, so a client rotates its keys by publishing a
    /// JWKS holding the old and the new key, then only the new (default 60; 0 never looks).
    #[serde(default = "default_jwks_reload_secs")]
    pub jwks_reload_secs: u64,
}

fn default_jwks_reload_secs() -> u64 {
    60
}

/// One registered backend client (a system allowed to call the gateway for its users).
///
/// Exactly one of `jwks` and `jwks_file` must be set. The JWK Set holds public keys only, with
/// algorithm RS384 (RSA, at least 2048 bits) or ES384 (EC, curve P-384); several keys with
/// distinct `kid`s allow rotation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The client id: the `iss` and `sub` of the client's assertions. Unique.
    pub client_id: String,
    /// A human-readable name, for operators and audit.
    pub name: String,
    /// The client's public JWK Set, inline, as JSON (`{"keys":[...]}`).
    #[serde(default)]
    pub jwks: Option<String>,
    /// A file holding the client's public JWK Set as JSON. Relative paths are resolved against
    /// the gateway's working directory. Read once, at start-up.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The scopes this client may be granted. A request naming no scope is granted all of
    /// them; a request may also name narrower scopes these cover (`system/Patient.r` under
    /// `system/*.read`) and is granted exactly those. Each must be a SMART `system/` resource
    /// scope, v1 (`system/*.read`) or v2 (`system/*.rs`, `system/Patient.r`).
    #[serde(default = "default_allowed_scopes")]
    pub allowed_scopes: Vec<String>,
    /// Lifetime of the access tokens issued to this client, in seconds (1 to 3600).
    /// Production clients keep the default 300; only the demo's own client uses 3600.
    #[serde(default = "default_token_lifetime_secs")]
    pub token_lifetime_secs: u64,
    /// A suspended client is registered but gets no token, and every token it holds is
    /// refused from the next request on (default `false`).
    #[serde(default)]
    pub suspended: bool,
    /// The SHA-256 of the client's TLS certificate (DER), in hex: when set, the client gets
    /// tokens only over a mutual-TLS connection presenting that certificate, and its tokens
    /// are bound to it (RFC 8705 `cnf.x5t#S256`): every request with them must come over a
    /// connection presenting the same certificate. Needs `[server.tls]` with `client_ca`.
    #[serde(default)]
    pub tls_client_certificate_sha256: Option<String>,
    /// A patient-facing app (NHS login): its users are patients acting for themselves. Only
    /// such a client's users may assert purpose of use `PATRQT`, and they may assert no other
    /// (default `false`), so a clinical system cannot pass its users off as patients.
    #[serde(default)]
    pub patient_app: bool,
}

fn default_assertion_max_lifetime_secs() -> u64 {
    300
}

fn default_clock_skew_secs() -> u64 {
    60
}

/// The default [`AuthConfig::token_rate_limit`].
pub const DEFAULT_TOKEN_RATE_LIMIT: RateLimit = RateLimit::constant(600, 120);

fn default_token_rate_limit() -> RateLimit {
    DEFAULT_TOKEN_RATE_LIMIT
}

/// A key whose access tokens are accepted but which does not sign (`auth.accepted_signing_keys`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedSigningKey {
    /// The key id tokens signed with it carry.
    pub kid: String,
    /// The HMAC key: at least 32 bytes.
    pub secret: SecretString,
}

impl std::fmt::Debug for AcceptedSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AcceptedSigningKey({})", self.kid)
    }
}

fn default_token_signing_kid() -> String {
    "k1".to_owned()
}

fn default_allowed_scopes() -> Vec<String> {
    vec!["system/*.read".to_owned(), "system/*.rs".to_owned()]
}

fn default_token_lifetime_secs() -> u64 {
    300
}

/// Why the auth configuration cannot be used. Messages name the client and key at fault but
/// never the signing secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    /// The token signing secret is too short.
    #[error("auth.token_signing_secret must be at least {MIN_SECRET_BYTES} bytes")]
    SecretTooShort,
    /// An accepted signing key is too short, or a key id is empty, too long or used twice.
    #[error("auth signing keys: {0}")]
    SigningKey(String),
    /// A client's certificate thumbprint is not 64 hex digits.
    #[error(
        "client \"{0}\": tls_client_certificate_sha256 must be the certificate's SHA-256 in hex (64 digits)"
    )]
    CertificateThumbprint(String),
    /// No client is registered.
    #[error("auth.clients is empty: register at least one backend client")]
    NoClients,
    /// `assertion_max_lifetime_secs` is out of range.
    #[error("auth.assertion_max_lifetime_secs must be between 1 and {MAX_ASSERTION_LIFETIME_SECS}, got {0}")]
    AssertionLifetime(u64),
    /// `clock_skew_secs` is out of range.
    #[error("auth.clock_skew_secs must be at most {MAX_CLOCK_SKEW_SECS}, got {0}")]
    ClockSkew(u64),
    /// The token endpoint URL is not an absolute http(s) URL.
    #[error("the token endpoint URL must be an absolute http(s) URL")]
    TokenEndpointUrl,
    /// A client id is empty or contains whitespace.
    #[error("a client_id is empty or contains whitespace")]
    BadClientId,
    /// Two clients share an id.
    #[error("client_id {0:?} is registered twice")]
    DuplicateClientId(String),
    /// Neither or both of `jwks` and `jwks_file` are set.
    #[error("client {client_id:?}: set exactly one of jwks and jwks_file")]
    KeySource {
        /// The client at fault.
        client_id: String,
    },
    /// The `jwks_file` cannot be read.
    #[error("client {client_id:?}: cannot read jwks_file {path:?}: {source}")]
    JwksFile {
        /// The client at fault.
        client_id: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The JWK Set is not valid JSON or not a JWK Set.
    #[error("client {client_id:?}: the JWK Set does not parse: {reason}")]
    JwksParse {
        /// The client at fault.
        client_id: String,
        /// What is wrong.
        reason: String,
    },
    /// The JWK Set has no key.
    #[error("client {client_id:?}: the JWK Set has no keys")]
    EmptyJwks {
        /// The client at fault.
        client_id: String,
    },
    /// A key cannot be used to verify client assertions.
    #[error("client {client_id:?}, key {kid:?}: {reason}")]
    UnsupportedKey {
        /// The client at fault.
        client_id: String,
        /// The key's `kid`, if it has one.
        kid: Option<String>,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two keys of one client share a `kid`.
    #[error("client {client_id:?}: kid {kid:?} appears twice")]
    DuplicateKid {
        /// The client at fault.
        client_id: String,
        /// The repeated kid.
        kid: String,
    },
    /// `token_lifetime_secs` is out of range.
    #[error(
        "client {client_id:?}: token_lifetime_secs must be between 1 and {MAX_TOKEN_LIFETIME_SECS}, got {secs}"
    )]
    TokenLifetime {
        /// The client at fault.
        client_id: String,
        /// The configured value.
        secs: u64,
    },
    /// `allowed_scopes` is empty or holds something that is not a SMART `system/` resource scope.
    #[error(
        "client {client_id:?}: allowed_scopes must be non-empty SMART `system/` resource scopes, e.g. system/*.read or system/Patient.rs"
    )]
    AllowedScopes {
        /// The client at fault.
        client_id: String,
    },
}

/// A public key ready to verify one client's assertions.
#[derive(Clone)]
pub(crate) struct VerificationKey {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

impl AuthConfig {
    /// Checks everything that can be checked before serving: secret length, ranges, unique
    /// client ids, and that every client's keys load and are RS384/ES384 public keys.
    /// `jwks_file`s are read.
    pub fn validate(&self) -> Result<(), AuthConfigError> {
        self.validate_globals()?;
        let mut seen = HashSet::new();
        for client in &self.clients {
            client.load_keys()?;
            if !seen.insert(client.client_id.as_str()) {
                return Err(AuthConfigError::DuplicateClientId(client.client_id.clone()));
            }
        }
        Ok(())
    }

    pub(crate) fn validate_globals(&self) -> Result<(), AuthConfigError> {
        if self.token_signing_secret.expose_secret().len() < MIN_SECRET_BYTES {
            return Err(AuthConfigError::SecretTooShort);
        }
        let kids: Vec<&str> = std::iter::once(self.token_signing_kid.as_str())
            .chain(self.accepted_signing_keys.iter().map(|k| k.kid.as_str()))
            .collect();
        for (i, kid) in kids.iter().enumerate() {
            if kid.is_empty()
                || kid.len() > 64
                || !kid.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(AuthConfigError::SigningKey(
                    "a kid is 1 to 64 letters, digits, '-', '_' or '.'".into(),
                ));
            }
            if kids[..i].contains(kid) {
                return Err(AuthConfigError::SigningKey(format!("kid {kid} is given twice")));
            }
        }
        if let Some(short) =
            self.accepted_signing_keys.iter().find(|k| k.secret.expose_secret().len() < MIN_SECRET_BYTES)
        {
            return Err(AuthConfigError::SigningKey(format!(
                "the secret of kid {} must be at least {MIN_SECRET_BYTES} bytes",
                short.kid
            )));
        }
        if self.clients.is_empty() {
            return Err(AuthConfigError::NoClients);
        }
        if !(1..=MAX_ASSERTION_LIFETIME_SECS).contains(&self.assertion_max_lifetime_secs) {
            return Err(AuthConfigError::AssertionLifetime(self.assertion_max_lifetime_secs));
        }
        if self.clock_skew_secs > MAX_CLOCK_SKEW_SECS {
            return Err(AuthConfigError::ClockSkew(self.clock_skew_secs));
        }
        Ok(())
    }
}

impl ClientConfig {
    /// Checks this client's settings and loads its verification keys (reading `jwks_file`).
    /// `tls_client_certificate_sha256` in lower case, refused unless it is 64 hex digits.
    pub(crate) fn certificate_sha256(&self) -> Result<Option<String>, AuthConfigError> {
        match &self.tls_client_certificate_sha256 {
            None => Ok(None),
            Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(Some(hex.to_ascii_lowercase()))
            }
            Some(_) => Err(AuthConfigError::CertificateThumbprint(self.client_id.clone())),
        }
    }

    pub(crate) fn load_keys(&self) -> Result<Vec<VerificationKey>, AuthConfigError> {
        let client_id = || self.client_id.clone();
        if self.client_id.is_empty() || self.client_id.chars().any(char::is_whitespace) {
            return Err(AuthConfigError::BadClientId);
        }
        if !(1..=MAX_TOKEN_LIFETIME_SECS).contains(&self.token_lifetime_secs) {
            return Err(AuthConfigError::TokenLifetime {
                client_id: client_id(),
                secs: self.token_lifetime_secs,
            });
        }
        // Constrained SMART v2 scopes do not parse: they would grant nothing.
        let scopes_ok = !self.allowed_scopes.is_empty()
            && self
                .allowed_scopes
                .iter()
                .all(|s| Scope::parse(s).is_some_and(|s| s.context == scope::Context::System));
        if !scopes_ok {
            return Err(AuthConfigError::AllowedScopes { client_id: client_id() });
        }
        let text = match (&self.jwks, &self.jwks_file) {
            (Some(inline), None) => inline.clone(),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|source| {
                AuthConfigError::JwksFile { client_id: client_id(), path: path.clone(), source }
            })?,
            _ => {
                return Err(AuthConfigError::KeySource { client_id: client_id() });
            }
        };
        parse_jwks(&self.client_id, &text)
    }
}

/// Members that only private or symmetric JWKs carry. A JWK Set holding them was exported
/// wrongly and leaks the client's secret, so it is refused rather than silently trimmed.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

fn parse_jwks(client_id: &str, text: &str) -> Result<Vec<VerificationKey>, AuthConfigError> {
    let parse_err = |reason: String| AuthConfigError::JwksParse { client_id: client_id.to_owned(), reason };
    let raw: serde_json::Value = serde_json::from_str(text).map_err(|e| parse_err(e.to_string()))?;
    let Some(raw_keys) = raw.get("keys").and_then(serde_json::Value::as_array) else {
        return Err(parse_err("expected an object with a `keys` array".to_owned()));
    };
    for raw_key in raw_keys {
        if PRIVATE_MEMBERS.iter().any(|m| raw_key.get(m).is_some()) {
            return Err(AuthConfigError::UnsupportedKey {
                client_id: client_id.to_owned(),
                kid: raw_key.get("kid").and_then(|k| k.as_str()).map(str::to_owned),
                reason: "the JWK Set must hold public keys only (found private or symmetric key material)",
            });
        }
    }
    let set: JwkSet = serde_json::from_value(raw).map_err(|e| parse_err(e.to_string()))?;
    if set.keys.is_empty() {
        return Err(AuthConfigError::EmptyJwks { client_id: client_id.to_owned() });
    }
    let mut kids = HashSet::new();
    let mut keys = Vec::with_capacity(set.keys.len());
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone();
        let unsupported = |reason: &'static str| AuthConfigError::UnsupportedKey {
            client_id: client_id.to_owned(),
            kid: kid.clone(),
            reason,
        };
        if let Some(k) = &kid
            && !kids.insert(k.clone())
        {
            return Err(AuthConfigError::DuplicateKid { client_id: client_id.to_owned(), kid: k.clone() });
        }
        if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
            return Err(unsupported("key `use` must be `sig`"));
        }
        let (alg, key) = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => {
                if !matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS384)) {
                    return Err(unsupported("only RS384 and ES384 keys are accepted"));
                }
                let n =
                    URL_SAFE_NO_PAD.decode(&rsa.n).map_err(|_| unsupported("RSA `n` is not base64url"))?;
                if modulus_bits(&n) < MIN_RSA_BITS {
                    return Err(unsupported("RSA keys must be at least 2048 bits"));
                }
                let key = DecodingKey::from_rsa_components(&rsa.n, &rsa.e)
                    .map_err(|_| unsupported("RSA `e` is not base64url"))?;
                (Algorithm::RS384, key)
            }
            AlgorithmParameters::EllipticCurve(ec) => {
                if !matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::ES384)) {
                    return Err(unsupported("only RS384 and ES384 keys are accepted"));
                }
                if ec.curve != EllipticCurve::P384 {
                    return Err(unsupported("EC keys must use curve P-384 (ES384)"));
                }
                let x = URL_SAFE_NO_PAD.decode(&ec.x);
                let y = URL_SAFE_NO_PAD.decode(&ec.y);
                let (Ok(x), Ok(y)) = (x, y) else {
                    return Err(unsupported("EC `x`/`y` are not base64url"));
                };
                // Checked here so that a bad point fails at start-up, not at each request.
                let mut sec1 = Vec::with_capacity(1 + x.len() + y.len());
                sec1.push(0x04);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                if p384::PublicKey::from_sec1_bytes(&sec1).is_err() {
                    return Err(unsupported("EC key is not a valid P-384 point"));
                }
                let key = DecodingKey::from_ec_components(&ec.x, &ec.y)
                    .map_err(|_| unsupported("EC `x`/`y` are not base64url"))?;
                (Algorithm::ES384, key)
            }
            _ => return Err(unsupported("only RS384 and ES384 keys are accepted")),
        };
        keys.push(VerificationKey { kid, alg, key });
    }
    Ok(keys)
}

fn modulus_bits(n: &[u8]) -> usize {
    let n = match n.iter().position(|b| *b != 0) {
        Some(first) => &n[first..],
        None => return 0,
    };
    n.len() * 8 - n[0].leading_zeros() as usize
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    const RSA_JWKS: &str = include_str!("../tests/fixtures/rsa-test-client.jwks.json");

    fn config(clients: Vec<ClientConfig>) -> AuthConfig {
        AuthConfig {
            token_signing_secret: SecretString::from("0123456789abcdef0123456789abcdef"),
            token_signing_kid: "k1".to_owned(),
            accepted_signing_keys: Vec::new(),
            clients,
            assertion_max_lifetime_secs: 300,
            clock_skew_secs: 60,
            token_rate_limit: DEFAULT_TOKEN_RATE_LIMIT,
            jwks_reload_secs: 60,
        }
    }

    fn client(id: &str, jwks: &str) -> ClientConfig {
        ClientConfig {
            client_id: id.to_owned(),
            name: "Test".to_owned(),
            jwks: Some(jwks.to_owned()),
            jwks_file: None,
            allowed_scopes: default_allowed_scopes(),
            token_lifetime_secs: 300,
            suspended: false,
            tls_client_certificate_sha256: None,
            patient_app: false,
        }
    }

    #[test]
    fn defaults_apply_and_unknown_fields_are_refused() {
        let parsed: AuthConfig = serde_json::from_value(serde_json::json!({
            "token_signing_secret": "0123456789abcdef0123456789abcdef",
            "clients": [{"client_id": "a", "name": "A", "jwks": RSA_JWKS}],
        }))
        .unwrap();
        assert_eq!(parsed.assertion_max_lifetime_secs, 300);
        assert_eq!(parsed.clock_skew_secs, 60);
        assert_eq!(parsed.token_rate_limit, RateLimit::new(600, 120).unwrap());
        assert_eq!(parsed.clients[0].token_lifetime_secs, 300);
        assert_eq!(parsed.clients[0].allowed_scopes, ["system/*.read", "system/*.rs"]);
        parsed.validate().unwrap();

        let typo = serde_json::from_value::<AuthConfig>(serde_json::json!({
            "token_signing_secret": "0123456789abcdef0123456789abcdef",
            "clients": [{"client_id": "a", "name": "A", "jwks": RSA_JWKS, "scopes": []}],
        }));
        assert!(typo.unwrap_err().to_string().contains("unknown field"));
    }

    #[test]
    fn short_secret_is_refused_without_echoing_it() {
        let mut c = config(vec![client("a", RSA_JWKS)]);
        c.token_signing_secret = SecretString::from("too-short-secret");
        let err = c.validate().unwrap_err();
        assert!(matches!(err, AuthConfigError::SecretTooShort));
        assert!(!err.to_string().contains("too-short-secret"));
        assert!(!format!("{c:?}").contains("too-short-secret"));
    }

    #[test]
    fn exactly_one_key_source_is_required() {
        let mut neither = client("a", RSA_JWKS);
        neither.jwks = None;
        assert!(matches!(config(vec![neither]).validate(), Err(AuthConfigError::KeySource { .. })));
        let mut both = client("a", RSA_JWKS);
        both.jwks_file = Some("x.json".into());
        assert!(matches!(config(vec![both]).validate(), Err(AuthConfigError::KeySource { .. })));
    }

    #[test]
    fn jwks_file_is_read_and_missing_file_is_reported() {
        let mut from_file = client("a", RSA_JWKS);
        from_file.jwks = None;
        from_file.jwks_file =
            Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rsa-test-client.jwks.json").into());
        assert_eq!(from_file.load_keys().unwrap().len(), 1);
        from_file.jwks_file = Some("/nonexistent/tideway.jwks.json".into());
        assert!(matches!(from_file.load_keys(), Err(AuthConfigError::JwksFile { .. })));
    }

    #[test]
    fn duplicate_client_ids_are_refused() {
        let c = config(vec![client("a", RSA_JWKS), client("a", RSA_JWKS)]);
        assert!(matches!(c.validate(), Err(AuthConfigError::DuplicateClientId(id)) if id == "a"));
    }

    #[test]
    fn token_lifetime_is_bounded() {
        let mut long = client("a", RSA_JWKS);
        long.token_lifetime_secs = 3601;
        assert!(matches!(config(vec![long]).validate(), Err(AuthConfigError::TokenLifetime { .. })));
        let mut demo = client("a", RSA_JWKS);
        demo.token_lifetime_secs = 3600;
        config(vec![demo]).validate().unwrap();
    }

    #[test]
    fn assertion_lifetime_and_skew_are_bounded() {
        let mut c = config(vec![client("a", RSA_JWKS)]);
        c.assertion_max_lifetime_secs = 301;
        assert!(matches!(c.validate(), Err(AuthConfigError::AssertionLifetime(301))));
        c.assertion_max_lifetime_secs = 300;
        c.clock_skew_secs = 301;
        assert!(matches!(c.validate(), Err(AuthConfigError::ClockSkew(301))));
    }

    #[test]
    fn unparseable_or_empty_jwks_is_refused() {
        for bad in ["not json", r#"{"nokeys": []}"#, r#"{"keys": [5]}"#] {
            assert!(
                matches!(config(vec![client("a", bad)]).validate(), Err(AuthConfigError::JwksParse { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            config(vec![client("a", r#"{"keys": []}"#)]).validate(),
            Err(AuthConfigError::EmptyJwks { .. })
        ));
    }

    #[test]
    fn only_rs384_and_es384_public_keys_are_accepted() {
        let hmac =
            r#"{"keys":[{"kty":"oct","kid":"h","alg":"HS256","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}"#;
        let rs256 = RSA_JWKS.replace("RS384", "RS256");
        let p256 = r#"{"keys":[{"kty":"EC","kid":"e","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        let enc = RSA_JWKS.replace("\"sig\"", "\"enc\"");
        // An RSA key without n/e parses as an unknown key type.
        let incomplete = r#"{"keys": [{"kty": "RSA"}]}"#;
        for bad in [hmac, rs256.as_str(), p256, enc.as_str(), incomplete] {
            let err = config(vec![client("a", bad)]).validate().unwrap_err();
            assert!(matches!(err, AuthConfigError::UnsupportedKey { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn private_key_material_in_jwks_is_refused() {
        let with_d = RSA_JWKS.replace("\"use\": \"sig\"", "\"use\": \"sig\", \"d\": \"AQAB\"");
        assert_ne!(with_d, RSA_JWKS);
        let err = config(vec![client("a", &with_d)]).validate().unwrap_err();
        assert!(matches!(err, AuthConfigError::UnsupportedKey { .. }));
    }

    #[test]
    fn short_rsa_keys_are_refused() {
        // A 1024-bit modulus (128 bytes with the top bit set).
        let n = URL_SAFE_NO_PAD.encode([0xC5u8; 128]);
        let jwks = format!(r#"{{"keys":[{{"kty":"RSA","kid":"s","alg":"RS384","n":"{n}","e":"AQAB"}}]}}"#);
        let err = config(vec![client("a", &jwks)]).validate().unwrap_err();
        assert!(matches!(err, AuthConfigError::UnsupportedKey { reason, .. } if reason.contains("2048")));
    }

    #[test]
    fn duplicate_kids_are_refused() {
        let set: serde_json::Value = serde_json::from_str(RSA_JWKS).unwrap();
        let key = set["keys"][0].clone();
        let jwks = serde_json::json!({"keys": [key.clone(), key]}).to_string();
        assert!(matches!(
            config(vec![client("a", &jwks)]).validate(),
            Err(AuthConfigError::DuplicateKid { .. })
        ));
    }

    #[test]
    fn allowed_scopes_must_be_system_scopes() {
        let mut c = client("a", RSA_JWKS);
        for bad in ["patient/*.read", "system/*.sr", "system/Observation.rs?category=laboratory", "openid"] {
            c.allowed_scopes = vec![bad.to_owned()];
            assert!(
                matches!(config(vec![c.clone()]).validate(), Err(AuthConfigError::AllowedScopes { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn no_clients_is_refused() {
        assert!(matches!(config(vec![]).validate(), Err(AuthConfigError::NoClients)));
    }
}
