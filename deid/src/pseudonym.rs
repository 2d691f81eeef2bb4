//! Keyed pseudonyms: HMAC-SHA256 under a key held per dashboard project.
//!
//! A pseudonym is `{kid}-{32 hex digits}`: the key id, then the first 128 bits of
//! HMAC-SHA256(key, message). The message is domain-separated (a tag saying whether it names a
//! patient or another resource, and a version) and includes the project id, every part
//! length-prefixed so no two different inputs write the same message. The same patient therefore
//! gets the same pseudonym within one project and key, and pseudonyms of different projects or
//! keys cannot be linked without the keys. Rotation is a new key with a new `kid`: it deliberately
//! breaks linkage between the epochs before and after, and the `kid` in every pseudonym says which
//! epoch it belongs to.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// The longest key id: with the `-` and 32 hex digits a pseudonym stays within the 64
/// characters of a FHIR id.
pub const MAX_KID_LEN: usize = 31;
/// The shortest secret accepted: HMAC-SHA256 gains nothing from keys longer than its block, but a
/// key shorter than its output weakens it.
pub const MIN_SECRET_LEN: usize = 32;

const PATIENT_TAG: &[u8] = b"tideway-deid/patient/v1";
const RESOURCE_TAG: &[u8] = b"tideway-deid/resource/v1";

/// Why a project key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The key id is empty, longer than [`MAX_KID_LEN`], or has a character outside
    /// `[A-Za-z0-9.]` (it becomes the start of FHIR ids; `-` is kept as the separator).
    #[error("a key id must be 1 to {MAX_KID_LEN} characters of A-Z, a-z, 0-9 and '.'")]
    Kid,
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("a project key's secret must be at least {MIN_SECRET_LEN} bytes")]
    Secret,
    /// The secret given as hex is not hex.
    #[error("a project key's secret is not valid hex")]
    Hex,
}

/// One dashboard project's pseudonymisation key: a key id (`kid`) naming the key's epoch, and the
/// secret. `Debug` never shows the secret.
pub struct ProjectKey {
    kid: String,
    secret: SecretSlice<u8>,
}

impl ProjectKey {
    /// A key from its id and secret bytes.
    pub fn new(kid: impl Into<String>, secret: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let kid = kid.into();
        let valid_kid = !kid.is_empty()
            && kid.len() <= MAX_KID_LEN
            && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
        if !valid_kid {
            return Err(KeyError::Kid);
        }
        let secret: Vec<u8> = secret.into();
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::Secret);
        }
        Ok(Self { kid, secret: secret.into() })
    }

    /// A key from its id and its secret written as hex (as a secret store or file holds it).
    pub fn from_hex(kid: impl Into<String>, secret_hex: &str) -> Result<Self, KeyError> {
        let secret = hex::decode(secret_hex.trim()).map_err(|_| KeyError::Hex)?;
        Self::new(kid, secret)
    }

    /// The key id: the first part of every pseudonym made under this key.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

impl fmt::Debug for ProjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectKey").field("kid", &self.kid).field("secret", &"[redacted]").finish()
    }
}

/// Makes the pseudonyms of one project under one key.
pub struct Pseudonymiser {
    project: String,
    kid: String,
    mac: HmacSha256,
}

impl Pseudonymiser {
    /// The pseudonymiser of `project` (the dashboard project's id) under `key`.
    pub fn new(project: &str, key: ProjectKey) -> Pseudonymiser {
        let mac = <HmacSha256 as KeyInit>::new(&key_block(key.secret.expose_secret()));
        Pseudonymiser { project: project.to_owned(), kid: key.kid, mac }
    }

    /// The pseudonym of the patient with this NHS number (ASCII whitespace ignored, so
    /// `943 476 5919` and `9434765919` are one patient). It is a valid FHIR id.
    pub fn patient(&self, nhs_number: &str) -> String {
        let compact: String = nhs_number.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        self.pseudonym(PATIENT_TAG, &[compact.as_bytes()])
    }

    /// The pseudonym of a non-patient resource, so references between exported resources stay
    /// linkable within the project. A different domain tag from [`Pseudonymiser::patient`], and the
    /// resource type is part of the message.
    pub fn resource(&self, resource_type: &str, id: &str) -> String {
        self.pseudonym(RESOURCE_TAG, &[resource_type.as_bytes(), id.as_bytes()])
    }

    /// The project this pseudonymiser serves.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The id of the key in use.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn pseudonym(&self, tag: &[u8], parts: &[&[u8]]) -> String {
        let mut mac = self.mac.clone();
        for part in [tag, self.project.as_bytes()].iter().chain(parts) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let digest = mac.finalize().into_bytes();
        format!("{}-{}", self.kid, hex::encode(&digest[..16]))
    }
}

/// The 64-byte HMAC key block of RFC 2104 section 2: a key longer than SHA-256's block is hashed
/// first, a shorter one padded with zeros. Building it here gives the same MAC as
/// `new_from_slice` through the infallible constructor.
fn key_block(secret: &[u8]) -> hmac::digest::Key<HmacSha256> {
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    if secret.len() > block.len() {
        let digest = <Sha256 as sha2::Digest>::digest(secret);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..secret.len()].copy_from_slice(secret);
    }
    block
}

impl fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pseudonymiser")
            .field("project", &self.project)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}
