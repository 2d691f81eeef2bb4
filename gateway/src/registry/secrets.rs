//! Source secrets at rest: the private key of a source's client certificate, when an
//! administrator hands it over through the registration API (`tls.client_key_pem`), is sealed
//! before it is stored and opened only in memory, to build that source's HTTP client.
//!
//! - **Key.** `[registry] secrets_key_file`: 32 random bytes in base64 on one line (e.g.
//!   `head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE`), kept off the database's host.
//!   Without it, the API refuses key material (a path on the gateway's host still works).
//! - **Seal.** AES-256-GCM with a fresh 96-bit nonce per seal; the associated data binds the
//!   sealed key to its source id, so a sealed key copied into another source's row does not
//!   open. The sealed form is `v1.<key id>.<nonce>.<ciphertext>` (base64url, no padding); the
//!   key id (first 8 bytes of the key's SHA-256, hex) says which key sealed it, so a wrong key
//!   is named as such.
//! - **Never shown.** Registration answers say the key is held (`"client_key": "held
//!   encrypted"`), never the sealed or the open form; messages never carry key material.

use std::path::Path;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::SecretBox;
use sha2::{Digest as _, Sha256};
use tideway_adapters::{ClientKey, SourceConfig, SourceId};

/// What the associated data of every seal starts with.
const DOMAIN: &[u8] = b"tideway-source-key-v1\0";

/// Why a source secret could not be sealed or opened. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// The secrets key file could not be read or is not a key.
    #[error("registry.secrets_key_file {0}")]
    Key(String),
    /// Key material was handed over but the gateway has no secrets key to seal it with.
    #[error("the gateway has no [registry] secrets_key_file to hold a client key encrypted at rest")]
    NoKey,
    /// A sealed key could not be opened (another key sealed it, or it was altered or moved).
    #[error("the sealed client key of source '{0}' does not open with the gateway's secrets key")]
    Unopenable(String),
}

/// The gateway's secrets key, if configured.
pub struct SourceSecrets {
    key: Option<(Aes256Gcm, String)>,
}

impl std::fmt::Debug for SourceSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some((_, id)) => write!(f, "SourceSecrets({id})"),
            None => f.write_str("SourceSecrets(none)"),
        }
    }
}

impl SourceSecrets {
    /// No secrets key: key material cannot be taken in, and sealed keys do not open.
    pub fn none() -> Self {
        Self { key: None }
    }

    /// The key in `path` (base64 of 32 bytes).
    pub fn load(path: &Path) -> Result<Self, SecretsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SecretsError::Key(format!("{}: {e}", path.display())))?;
        let key: [u8; 32] =
            STANDARD.decode(text.trim()).ok().and_then(|bytes| bytes.try_into().ok()).ok_or_else(|| {
                SecretsError::Key(format!("{}: not a key (base64 of 32 bytes)", path.display()))
            })?;
        Ok(Self::from_key(&key))
    }

    fn from_key(key: &[u8; 32]) -> Self {
        let id = hex::encode(&Sha256::digest(key)[..8]);
        Self { key: Some((Aes256Gcm::new(key.into()), id)) }
    }

    /// Seals `pem` as `source`'s client key.
    pub fn seal(&self, source: &SourceId, pem: &[u8]) -> Result<String, SecretsError> {
        let (cipher, id) = self.key.as_ref().ok_or(SecretsError::NoKey)?;
        let mut nonce = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let aad = associated_data(source);
        let sealed = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: pem, aad: &aad })
            .map_err(|_| SecretsError::Key("could not seal".to_owned()))?;
        Ok(format!("v1.{id}.{}.{}", URL_SAFE_NO_PAD.encode(nonce), URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Opens what [`Self::seal`] sealed for `source`.
    pub fn open(&self, source: &SourceId, sealed: &str) -> Result<SecretBox<[u8]>, SecretsError> {
        let unopenable = || SecretsError::Unopenable(source.to_string());
        let (cipher, id) = self.key.as_ref().ok_or_else(unopenable)?;
        let mut parts = sealed.split('.');
        let (Some("v1"), Some(key_id), Some(nonce), Some(body), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(unopenable());
        };
        let nonce: [u8; 12] = URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .filter(|_| key_id == id)
            .ok_or_else(unopenable)?;
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| unopenable())?;
        let aad = associated_data(source);
        let pem = cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: &body, aad: &aad })
            .map_err(|_| unopenable())?;
        Ok(SecretBox::new(pem.into_boxed_slice()))
    }

    /// `config` with an opened client key sealed (what is stored).
    pub fn sealed(&self, mut config: SourceConfig) -> Result<SourceConfig, SecretsError> {
        if let Some(tls) = &mut config.tls
            && let ClientKey::Open(pem) = &tls.client_key
        {
            let sealed = self.seal(&config.id, secrecy::ExposeSecret::expose_secret(pem))?;
            tls.client_key = ClientKey::Sealed { sealed };
        }
        Ok(config)
    }

    /// `config` with a sealed client key opened (what an adapter is built from).
    pub fn opened(&self, config: &SourceConfig) -> Result<SourceConfig, SecretsError> {
        let mut config = config.clone();
        if let Some(tls) = &mut config.tls
            && let ClientKey::Sealed { sealed } = &tls.client_key
        {
            tls.client_key = ClientKey::Open(self.open(&config.id, sealed)?);
        }
        Ok(config)
    }
}

fn associated_data(source: &SourceId) -> Vec<u8> {
    [DOMAIN, source.as_str().as_bytes()].concat()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    const PEM: &[u8] = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";

    fn id(s: &str) -> SourceId {
        SourceId::parse(s).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_only_with_its_key_for_its_source() {
        let secrets = SourceSecrets::from_key(&[7; 32]);
        let sealed = secrets.seal(&id("camden"), PEM).unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("PRIVATE"), "{sealed}");
        assert_ne!(sealed, secrets.seal(&id("camden"), PEM).unwrap(), "a fresh nonce each time");
        assert_eq!(secrets.open(&id("camden"), &sealed).unwrap().expose_secret(), PEM);

        let moved = secrets.open(&id("hackney"), &sealed).unwrap_err();
        assert_eq!(moved, SecretsError::Unopenable("hackney".into()), "bound to its source");
        let other = SourceSecrets::from_key(&[8; 32]);
        assert!(other.open(&id("camden"), &sealed).is_err(), "another key does not open it");
        assert!(SourceSecrets::none().open(&id("camden"), &sealed).is_err());
        assert_eq!(SourceSecrets::none().seal(&id("camden"), PEM).unwrap_err(), SecretsError::NoKey);
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(secrets.open(&id("camden"), &String::from_utf8(altered).unwrap()).is_err());
        assert!(secrets.open(&id("camden"), "v1.x.y").is_err());
    }

    #[test]
    fn the_key_file_must_hold_32_bytes_and_its_errors_name_no_key() {
        let dir = std::env::temp_dir().join(format!("tideway-secrets-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, format!("{}\n", STANDARD.encode([3u8; 32]))).unwrap();
        let secrets = SourceSecrets::load(&path).unwrap();
        assert!(secrets.open(&id("a"), &secrets.seal(&id("a"), PEM).unwrap()).is_ok());
        std::fs::write(&path, STANDARD.encode([3u8; 16])).unwrap();
        let e = SourceSecrets::load(&path).unwrap_err().to_string();
        assert!(e.contains("not a key"), "{e}");
        assert!(SourceSecrets::load(&dir.join("absent")).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
