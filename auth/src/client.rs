//! The client side of SMART Backend Services: what a registered backend system does to get an
//! access token. Used by the gateway's demo and by end-to-end tests, which also use the
//! lower-level [`BackendClient::assertion_with`], [`BackendClient::sign`] and [`forge`] to
//! build deliberately bad assertions.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};
use p384::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};
use tideway_profiles::OdsCode;
use time::OffsetDateTime;

use crate::principal::{PurposeOfUse, RoleCode};
use crate::{JWT_BEARER_ASSERTION_TYPE, PURPOSE_OF_USE_SYSTEM, ROLE_CODE_SYSTEM};

/// The assertion lifetime [`BackendClient::token_form`] uses: well inside the five minutes
/// servers allow, leaving room for clock skew.
pub const DEFAULT_ASSERTION_LIFETIME: Duration = Duration::from_secs(120);

/// The user a backend client acts for, sent as IHE IUA claims in the assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserClaims {
    /// The user's id (e.g. an SDS user id).
    pub user_id: String,
    /// The user's national RBAC role.
    pub role: RoleCode,
    /// The user's organisation.
    pub organisation: OdsCode,
    /// Why the user is asking.
    pub purpose: PurposeOfUse,
    /// The user's display name, if the client sends one.
    pub name: Option<String>,
    /// Why the user is breaking the glass: required with purpose of use `ETREAT`, refused
    /// otherwise. Sent as `extensions.ihe_iua.break_glass_reason`.
    pub break_glass_reason: Option<String>,
}

/// Why a backend client could not be built or could not sign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Only RS384 and ES384 are supported.
    #[error("only RS384 and ES384 are supported")]
    UnsupportedAlgorithm,
    /// The private key does not load for the algorithm.
    #[error("the private key cannot be used for this algorithm (expected PKCS#8 or PKCS#1 PEM)")]
    Key,
    /// Signing or encoding failed.
    #[error("the assertion could not be signed")]
    Signing,
}

/// A registered backend client holding its private key.
pub struct BackendClient {
    client_id: String,
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwks_json: String,
}

impl fmt::Debug for BackendClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendClient")
            .field("client_id", &self.client_id)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl BackendClient {
    /// A client with a freshly generated P-384 key (ES384).
    pub fn generate_es384(client_id: &str, kid: &str) -> Result<Self, ClientError> {
        let secret = p384::SecretKey::random(&mut rand::rngs::OsRng);
        let der = secret.to_pkcs8_der().map_err(|_| ClientError::Key)?;
        Self::with_key(client_id, kid, Algorithm::ES384, EncodingKey::from_ec_der(der.as_bytes()))
    }

    /// A client from a PEM private key: RSA (PKCS#1 or PKCS#8) for `RS384`, P-384 PKCS#8 for
    /// `ES384`.
    pub fn from_pem(
        client_id: &str,
        kid: &str,
        alg: Algorithm,
        private_key_pem: &str,
    ) -> Result<Self, ClientError> {
        let key = match alg {
            Algorithm::RS384 => EncodingKey::from_rsa_pem(private_key_pem.as_bytes()),
            Algorithm::ES384 => EncodingKey::from_ec_pem(private_key_pem.as_bytes()),
            _ => return Err(ClientError::UnsupportedAlgorithm),
        }
        .map_err(|_| ClientError::Key)?;
        Self::with_key(client_id, kid, alg, key)
    }

    fn with_key(client_id: &str, kid: &str, alg: Algorithm, key: EncodingKey) -> Result<Self, ClientError> {
        // Deriving the public key here also proves the private key matches `alg`.
        let mut jwk = Jwk::from_encoding_key(&key, alg).map_err(|_| ClientError::Key)?;
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let jwks_json = serde_json::to_string(&JwkSet { keys: vec![jwk] }).map_err(|_| ClientError::Key)?;
        Ok(Self { client_id: client_id.to_owned(), kid: kid.to_owned(), alg, key, jwks_json })
    }

    /// The client id (`iss` and `sub` of its assertions).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The key id sent in the assertion header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signing algorithm (RS384 or ES384).
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK Set to register with the gateway (one key, with `kid`, `alg`, `use=sig`).
    pub fn jwks_json(&self) -> String {
        self.jwks_json.clone()
    }

    /// The JOSE header this client signs with: `{"alg", "typ": "JWT", "kid"}`.
    pub fn header(&self) -> Value {
        json!({ "alg": alg_name(self.alg), "typ": "JWT", "kid": self.kid })
    }

    /// The claims of a fresh assertion for `token_url` acting for `user`, valid for `lifetime`
    /// from now, with a new random `jti`.
    pub fn claims(&self, token_url: &str, user: &UserClaims, lifetime: Duration) -> Value {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        let mut iua = json!({
            "subject_id": user.user_id,
            "subject_organization_id": user.organisation.as_str(),
            "subject_role": { "system": ROLE_CODE_SYSTEM, "code": user.role.as_str() },
            "purpose_of_use": { "system": PURPOSE_OF_USE_SYSTEM, "code": user.purpose.code() },
        });
        if let Some(obj) = iua.as_object_mut() {
            if let Some(name) = &user.name {
                obj.insert("subject_name".to_owned(), Value::String(name.clone()));
            }
            if let Some(reason) = &user.break_glass_reason {
                obj.insert("break_glass_reason".to_owned(), Value::String(reason.clone()));
            }
        }
        json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "exp": now.saturating_add(lifetime),
            "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(),
            "extensions": { "ihe_iua": iua },
        })
    }

    /// A signed client assertion for `token_url`, acting for `user`, valid for `lifetime`.
    pub fn assertion(
        &self,
        token_url: &str,
        user: &UserClaims,
        lifetime: Duration,
    ) -> Result<String, ClientError> {
        self.assertion_with(token_url, user, lifetime, |_, _| {})
    }

    /// Like [`BackendClient::assertion`], but `tamper` may change the header and claims
    /// before signing (for attack tests). The result is always signed with this client's key
    /// and algorithm, whatever `tamper` writes into the header's `alg`.
    pub fn assertion_with(
        &self,
        token_url: &str,
        user: &UserClaims,
        lifetime: Duration,
        tamper: impl FnOnce(&mut Value, &mut Value),
    ) -> Result<String, ClientError> {
        let mut header = self.header();
        let mut claims = self.claims(token_url, user, lifetime);
        tamper(&mut header, &mut claims);
        self.sign(&header, &claims)
    }

    /// Signs arbitrary header and claims JSON with this client's key and algorithm.
    pub fn sign(&self, header: &Value, claims: &Value) -> Result<String, ClientError> {
        let signing_input = signing_input(header, claims);
        let signature = jsonwebtoken::crypto::sign(signing_input.as_bytes(), &self.key, self.alg)
            .map_err(|_| ClientError::Signing)?;
        Ok(format!("{signing_input}.{signature}"))
    }

    /// The `application/x-www-form-urlencoded` body of `POST /token` with a fresh assertion.
    /// An empty `scope` is left out (the server then grants every allowed scope).
    pub fn token_form(&self, token_url: &str, scope: &str, user: &UserClaims) -> Result<String, ClientError> {
        let assertion = self.assertion(token_url, user, DEFAULT_ASSERTION_LIFETIME)?;
        token_form_for(&assertion, scope)
    }
}

/// The `POST /token` body for a given (possibly forged) assertion.
pub fn token_form_for(assertion: &str, scope: &str) -> Result<String, ClientError> {
    let mut params = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER_ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    if !scope.is_empty() {
        params.push(("scope", scope));
    }
    serde_urlencoded::to_string(&params).map_err(|_| ClientError::Signing)
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS384 => "RS384",
        Algorithm::ES384 => "ES384",
        // Only RS384 and ES384 clients can be built.
        _ => "unsupported",
    }
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// Builders for assertions no honest client would send, for attack tests.
pub mod forge {
    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::Value;

    use super::{ClientError, signing_input};

    /// An unsigned JWS (`header.claims.` with an empty signature), as used with `alg: none`.
    pub fn unsigned(header: &Value, claims: &Value) -> String {
        format!("{}.", signing_input(header, claims))
    }

    /// A JWS signed with HMAC (`alg` one of HS256/HS384/HS512) keyed by `secret`: e.g. a
    /// client's public key, to try the algorithm-confusion attack.
    pub fn hmac_signed(
        alg: Algorithm,
        secret: &[u8],
        header: &Value,
        claims: &Value,
    ) -> Result<String, ClientError> {
        if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(ClientError::UnsupportedAlgorithm);
        }
        let input = signing_input(header, claims);
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), alg)
            .map_err(|_| ClientError::Signing)?;
        Ok(format!("{input}.{signature}"))
    }
}
