//! Patient identity: NHS number to the gateway's opaque patient id.
//!
//! The id is an HMAC of the NHS number under a configured key, so every replica derives the same
//! id without coordination and the id itself reveals nothing. The reverse mapping lives in the
//! store's patient index, written the first time the gateway publishes an id.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use tideway_profiles::NhsNumber;

/// Derives opaque patient ids.
#[derive(Clone)]
pub struct PatientIds {
    key: SecretString,
}

impl std::fmt::Debug for PatientIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PatientIds(..)")
    }
}

impl PatientIds {
    /// Uses `key` (validated to be at least 32 bytes by config loading).
    pub fn new(key: SecretString) -> Self {
        Self { key }
    }

    /// The opaque id for an NHS number: `p` followed by 32 lower-case hex digits (128 bits of
    /// HMAC-SHA256), a valid FHIR id.
    pub fn id_for(&self, nhs: &NhsNumber) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.key.expose_secret().as_bytes()) {
            Ok(m) => m,
            // HMAC accepts keys of any length; this arm cannot be reached.
            Err(_) => return String::new(),
        };
        mac.update(b"tideway-patient-id\0");
        mac.update(nhs.as_str().as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(33);
        out.push('p');
        for b in &digest[..16] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// The `Patient/$match` index key of a birth date (`YYYY-MM-DD`): a keyed hash, so the
    /// index holds no date of birth, and only a replica with the same key can look one up.
    pub fn match_key(&self, birth_date: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.expose_secret().as_bytes()) else {
            return String::new();
        };
        mac.update(b"tideway-match-birth-date\0");
        mac.update(birth_date.as_bytes());
        mac.finalize().into_bytes().iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `id` has the shape of an id this gateway publishes.
    pub fn is_well_formed(id: &str) -> bool {
        id.len() == 33
            && id.starts_with('p')
            && id[1..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_keyed_and_opaque() {
        let n = NhsNumber::parse("9434765919").unwrap();
        let a = PatientIds::new(SecretString::from("k".repeat(32)));
        let b = PatientIds::new(SecretString::from("j".repeat(32)));
        assert_eq!(a.id_for(&n), a.id_for(&n));
        assert_ne!(a.id_for(&n), b.id_for(&n));
        assert!(!a.id_for(&n).contains("9434765919"));
        assert!(PatientIds::is_well_formed(&a.id_for(&n)));
        assert!(!PatientIds::is_well_formed("9434765919"));
    }
}
