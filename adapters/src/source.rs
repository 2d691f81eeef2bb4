//! The source registry's types: who a source is and how to reach it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tideway_profiles::OdsCode;

/// A registered source's id: 1 to 24 lower-case letters, digits or `-`, unique in the registry.
/// It appears in `meta.source`, in resource ids the gateway mints (`{source}.{local id}`), in
/// metric labels and logs, so it is kept short and carries no patient data.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SourceId(String);

/// The string is not a valid source id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a source id is 1 to 24 lower-case letters, digits or '-', starting with a letter")]
pub struct SourceIdError;

impl SourceId {
    /// Parses a source id.
    pub fn parse(input: &str) -> Result<Self, SourceIdError> {
        // `merged` is reserved: the gateway's own Provenance ids are `merged.{hash}`.
        let ok = input != "merged"
            && (1..=24).contains(&input.len())
            && input.starts_with(|c: char| c.is_ascii_lowercase())
            && input.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok { Ok(Self(input.to_owned())) } else { Err(SourceIdError) }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceId({})", self.0)
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SourceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Which system dialect a source speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SystemKind {
    /// Plain FHIR R4 REST (JSON).
    FhirR4,
    /// GP Connect Access Record Structured (STU3).
    GpConnect,
    /// SystmOne-style XML record extracts (SNOMED CT, CTV3 on older entries).
    Systmone,
    /// EMIS-style JSON record exports (EMIS code ids, SNOMED CT, Read v2 on older entries).
    Emis,
    /// Vision-style XML journals (Read v2 with term ids on older entries, SNOMED CT; Gemscript or dm+d).
    Vision,
    /// Local-authority social care over FHIR R4 (care plans, episodes, referrals and tasks).
    SocialCare,
}

impl SystemKind {
    /// The kebab-case name used in config and telemetry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FhirR4 => "fhir-r4",
            Self::GpConnect => "gp-connect",
            Self::Systmone => "systmone",
            Self::Emis => "emis",
            Self::Vision => "vision",
            Self::SocialCare => "social-care",
        }
    }
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_max_body_bytes() -> usize {
    32 * 1024 * 1024
}

/// One `[[sources]]` entry of the gateway config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Registry id (see [`SourceId`]).
    pub id: SourceId,
    /// Human-readable name, e.g. "Camden exchange".
    pub name: String,
    /// The system dialect.
    pub kind: SystemKind,
    /// ODS code of the organisation operating the source.
    pub ods_code: OdsCode,
    /// Base URL of the source's API, e.g. `https://camden.example.nhs.uk/fhir/R4`.
    pub base_url: url::Url,
    /// Deadline for one call to this source, in milliseconds (default 5000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Largest response body accepted from this source, in bytes (default 32 MiB).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Mutual TLS towards this source: the client certificate the gateway presents, and the
    /// authority the source's own certificate must chain to, when not a public one.
    #[serde(default)]
    pub tls: Option<SourceTls>,
    /// The source's information-governance attestation (Data Security and Protection Toolkit
    /// status and expiry). The gateway asks only sources whose attestation is current; what a
    /// config entry without one means is the gateway's rule (see its README).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Attestation>,
}

/// `[sources.tls]`: how the gateway authenticates itself to a source over TLS.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SourceTls {
    /// PEM file of the client certificate (and its chain) the gateway presents.
    pub client_certificate: std::path::PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1 PEM): a file readable by the gateway only, or
    /// key material the gateway holds encrypted at rest (see [`ClientKey`]).
    pub client_key: ClientKey,
    /// PEM file of a certificate authority the source's certificate may chain to, besides the
    /// system's (e.g. the exchange's private CA).
    #[serde(default)]
    pub ca_certificate: Option<std::path::PathBuf>,
}

/// Where the private key of a source's client certificate is.
///
/// In a config file or a stored registration it is a path (`client_key = "/etc/…/key.pem"`) or
/// the sealed form the gateway keeps (`{"sealed": "…"}`: encrypted under the gateway's secrets
/// key, opened only in memory). [`ClientKey::Open`] is that key opened, for building the HTTP
/// client; it is never written anywhere (serialising it is an error).
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum ClientKey {
    /// A PEM file on the gateway's host.
    File(std::path::PathBuf),
    /// Key material held encrypted at rest, as stored.
    Sealed {
        /// The sealed form (the gateway's format; opaque here).
        sealed: String,
    },
    /// The PEM key in memory only.
    #[serde(skip)]
    Open(secrecy::SecretBox<[u8]>),
}

impl ClientKey {
    /// Where it is, for messages: the path, or that it is held by the gateway.
    pub fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Sealed { .. } | Self::Open(_) => "the client key held by the gateway".to_owned(),
        }
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Sealed { .. } => f.write_str("Sealed(..)"),
            Self::Open(_) => f.write_str("Open(..)"),
        }
    }
}

impl PartialEq for ClientKey {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret as _;
        match (self, other) {
            (Self::File(a), Self::File(b)) => a == b,
            (Self::Sealed { sealed: a }, Self::Sealed { sealed: b }) => a == b,
            (Self::Open(a), Self::Open(b)) => a.expose_secret() == b.expose_secret(),
            _ => false,
        }
    }
}

impl Eq for ClientKey {}

impl Serialize for ClientKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        match self {
            Self::File(path) => path.serialize(serializer),
            Self::Sealed { sealed } => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("sealed", sealed)?;
                map.end()
            }
            Self::Open(_) => Err(serde::ser::Error::custom("an opened client key is never written")),
        }
    }
}

/// What an organisation's information-governance assessment found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttestationStatus {
    /// Every mandatory standard met.
    StandardsMet,
    /// Not yet, with an agreed improvement plan.
    ApproachingStandards,
    /// Mandatory standards not met.
    StandardsNotMet,
}

impl AttestationStatus {
    /// The kebab-case name used in config and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StandardsMet => "standards-met",
            Self::ApproachingStandards => "approaching-standards",
            Self::StandardsNotMet => "standards-not-met",
        }
    }
}

/// An information-governance attestation: which scheme (e.g. `dspt`, the Data Security and
/// Protection Toolkit), what it found and the last day it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// The scheme, e.g. `dspt`: 1 to 32 lower-case letters, digits or `-`.
    #[serde(deserialize_with = "scheme")]
    pub scheme: String,
    /// What the assessment found.
    pub status: AttestationStatus,
    /// The last day the attestation holds (`YYYY-MM-DD`).
    #[serde(with = "day")]
    pub expires: time::Date,
}

fn scheme<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = (1..=32).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(s)
    } else {
        Err(serde::de::Error::custom("a scheme is 1 to 32 lower-case letters, digits or '-', e.g. dspt"))
    }
}

/// `YYYY-MM-DD` days.
mod day {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::macros::format_description;

    const FORMAT: &[time::format_description::FormatItem<'static>] =
        format_description!("[year]-[month]-[day]");

    pub fn serialize<S: Serializer>(d: &time::Date, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.format(FORMAT).map_err(serde::ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<time::Date, D::Error> {
        let s = String::deserialize(d)?;
        time::Date::parse(&s, FORMAT).map_err(|_| serde::de::Error::custom("a day is YYYY-MM-DD"))
    }
}

impl SourceConfig {
    /// The per-call deadline as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ids_are_short_and_plain() {
        assert!(SourceId::parse("camden").is_ok());
        assert!(SourceId::parse("tower-hamlets-2").is_ok());
        assert!(SourceId::parse("Camden").is_err());
        assert!(SourceId::parse("2camden").is_err());
        assert!(SourceId::parse("a.b").is_err());
        assert!(SourceId::parse("").is_err());
        assert!(SourceId::parse("merged").is_err(), "reserved for the gateway's Provenance ids");
    }

    #[test]
    fn attestations_read_and_write_as_config_spells_them() {
        let a: Attestation =
            serde_json::from_str(r#"{"scheme": "dspt", "status": "standards-met", "expires": "2027-06-30"}"#)
                .unwrap();
        assert_eq!(a.status, AttestationStatus::StandardsMet);
        assert_eq!(a.expires, time::Date::from_calendar_date(2027, time::Month::June, 30).unwrap());
        let back = serde_json::to_value(&a).unwrap();
        assert_eq!(back["expires"], "2027-06-30");
        assert_eq!(back["status"], "standards-met");
        for bad in [
            r#"{"scheme": "dspt", "status": "fine", "expires": "2027-06-30"}"#,
            r#"{"scheme": "dspt", "status": "standards-met", "expires": "30/06/2027"}"#,
            r#"{"scheme": "DSPT!", "status": "standards-met", "expires": "2027-06-30"}"#,
            r#"{"scheme": "dspt", "status": "standards-met"}"#,
        ] {
            assert!(serde_json::from_str::<Attestation>(bad).is_err(), "{bad}");
        }
    }
}
