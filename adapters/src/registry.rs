//! Builds a source's adapter from its registry entry, by the system it speaks.
//!
//! This is the one place that knows which adapter serves which [`SystemKind`]: the gateway asks
//! it for every configured source and never names an adapter type, so a new system plugs in
//! here (and in [`SUPPORTED`]) and nowhere else.

use std::sync::Arc;

use crate::adapter::SourceAdapter;
use crate::emis::{Emis, EmisAdapter};
use crate::fhir_r4::FhirR4Adapter;
use crate::gp_connect::GpConnectAdapter;
use crate::social_care;
use crate::source::{SourceConfig, SystemKind};
use crate::systmone::{SystmOne, SystmOneAdapter};
use crate::vision::{Vision, VisionAdapter};

/// The kinds an adapter is built for today, in the order they were added.
pub const SUPPORTED: &[SystemKind] = &[
    SystemKind::FhirR4,
    SystemKind::GpConnect,
    SystemKind::Systmone,
    SystemKind::SocialCare,
    SystemKind::Emis,
    SystemKind::Vision,
];

/// Why no adapter could be built for a source. Names the kind, never the source's data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterBuildError {
    /// The kind is known to the config but no adapter speaks it yet.
    #[error("no adapter is built yet for kind '{}' (built: {})", .0.as_str(), supported_list())]
    Unsupported(SystemKind),
    /// The adapter's HTTP client could not be set up (TLS).
    #[error("the HTTP client could not be built")]
    Client,
}

/// Whether [`build`] has an adapter for `kind`.
pub fn is_supported(kind: SystemKind) -> bool {
    SUPPORTED.contains(&kind)
}

/// The supported kinds as they are spelled in config, e.g. `fhir-r4`.
pub fn supported_list() -> String {
    SUPPORTED.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
}

/// The adapter for `config`, chosen by `config.kind`.
pub fn build(config: SourceConfig) -> Result<Arc<dyn SourceAdapter>, AdapterBuildError> {
    match config.kind {
        SystemKind::FhirR4 => {
            Ok(Arc::new(FhirR4Adapter::new(config).map_err(|_| AdapterBuildError::Client)?))
        }
        SystemKind::GpConnect => {
            Ok(Arc::new(GpConnectAdapter::new(config).map_err(|_| AdapterBuildError::Client)?))
        }
        SystemKind::Systmone => {
            Ok(Arc::new(SystmOneAdapter::new(config, SystmOne).map_err(|_| AdapterBuildError::Client)?))
        }
        SystemKind::SocialCare => {
            Ok(Arc::new(social_care::client::adapter(config).map_err(|_| AdapterBuildError::Client)?))
        }
        SystemKind::Emis => {
            Ok(Arc::new(EmisAdapter::new(config, Emis).map_err(|_| AdapterBuildError::Client)?))
        }
        SystemKind::Vision => {
            Ok(Arc::new(VisionAdapter::new(config, Vision).map_err(|_| AdapterBuildError::Client)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use tideway_profiles::OdsCode;

    use super::*;
    use crate::source::SourceId;

    fn config(kind: SystemKind) -> SourceConfig {
        SourceConfig {
            id: SourceId::parse("camden").unwrap(),
            name: "Camden exchange".into(),
            kind,
            ods_code: OdsCode::parse("LBX01").unwrap(),
            base_url: url::Url::parse("http://127.0.0.1:9/fhir").unwrap(),
            timeout_ms: 1_000,
            max_body_bytes: 1024,
            tls: None,
            attestation: None,
        }
    }

    #[test]
    fn a_fhir_r4_source_gets_the_fhir_r4_adapter() {
        let adapter = build(config(SystemKind::FhirR4)).unwrap();
        assert_eq!(adapter.id().as_str(), "camden");
        assert_eq!(adapter.config().kind, SystemKind::FhirR4);
        assert!(is_supported(SystemKind::FhirR4));
    }

    #[test]
    fn every_supported_kind_gets_an_adapter_of_its_kind() {
        for kind in SUPPORTED {
            let adapter = build(config(*kind)).unwrap();
            assert_eq!(adapter.config().kind, *kind);
            assert!(is_supported(*kind));
            assert!(supported_list().contains(kind.as_str()));
        }
    }

    #[test]
    fn every_kind_the_config_knows_has_an_adapter() {
        let all = [
            SystemKind::FhirR4,
            SystemKind::Systmone,
            SystemKind::Emis,
            SystemKind::Vision,
            SystemKind::GpConnect,
            SystemKind::SocialCare,
        ];
        for kind in all {
            assert!(is_supported(kind), "{}", kind.as_str());
        }
        assert_eq!(SUPPORTED.len(), all.len());
    }

    #[test]
    fn config_spellings_of_kinds_are_stable() {
        let spelled: Vec<String> = [
            SystemKind::FhirR4,
            SystemKind::Systmone,
            SystemKind::Emis,
            SystemKind::Vision,
            SystemKind::GpConnect,
            SystemKind::SocialCare,
        ]
        .iter()
        .map(|k| {
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<SystemKind>(&json).unwrap(), *k);
            k.as_str().to_owned()
        })
        .collect();
        assert_eq!(spelled, ["fhir-r4", "systmone", "emis", "vision", "gp-connect", "social-care"]);
    }
}
