//! Source health: a cheap probe of each active source, its last result kept for the admin API.
//!
//! The probe is one GET that names no patient: a FHIR source's (or a council's) `metadata`, and
//! the base URL of any other system. A source is up when it answers with a status below 500
//! within its own timeout; what it answers is never read beyond the status.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use tideway_adapters::{SourceConfig, SystemKind};

/// The last probe of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// When it was made (microseconds since the epoch).
    pub checked_at_us: i64,
    /// Whether the source answered (below 500) in time.
    pub up: bool,
    /// How long the answer (or the failure) took.
    pub latency_ms: u64,
}

/// The last probe of every source probed.
pub struct Health {
    probes: RwLock<HashMap<String, Probe>>,
    client: Option<reqwest::Client>,
}

impl Default for Health {
    fn default() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| tracing::error!(error = %e, "the health probe's HTTP client could not be built"))
            .ok();
        Self { probes: RwLock::new(HashMap::new()), client }
    }
}

/// What is asked of a source to see that it is up.
pub fn probe_url(config: &SourceConfig) -> url::Url {
    match config.kind {
        SystemKind::FhirR4 | SystemKind::SocialCare => {
            let mut base = config.base_url.clone();
            if !base.path().ends_with('/') {
                base.set_path(&format!("{}/", base.path()));
            }
            base.join("metadata").unwrap_or_else(|_| config.base_url.clone())
        }
        _ => config.base_url.clone(),
    }
}

impl Health {
    /// The last probe of `source`, if any.
    pub fn get(&self, source: &str) -> Option<Probe> {
        self.probes.read().unwrap_or_else(PoisonError::into_inner).get(source).copied()
    }

    /// Forgets `source`'s probes (its registration changed or ended).
    pub fn forget(&self, source: &str) {
        self.probes.write().unwrap_or_else(PoisonError::into_inner).remove(source);
        crate::telemetry::metrics::source_health_forgotten(source);
    }

    /// Probes every source in `configs` at once and keeps the results.
    pub async fn probe_all(&self, configs: &[SourceConfig]) {
        let results = futures::future::join_all(configs.iter().map(|c| self.probe(c))).await;
        let mut probes = self.probes.write().unwrap_or_else(PoisonError::into_inner);
        for (c, p) in configs.iter().zip(results) {
            crate::telemetry::metrics::source_health(c.id.as_str(), p.up);
            probes.insert(c.id.to_string(), p);
        }
    }

    async fn probe(&self, config: &SourceConfig) -> Probe {
        let checked_at_us = crate::epoch_us::now();
        let started = Instant::now();
        let up = match &self.client {
            Some(client) => {
                let call = client.get(probe_url(config)).timeout(config.timeout()).send();
                matches!(
                    tokio::time::timeout(config.timeout() + Duration::from_millis(100), call).await,
                    Ok(Ok(r)) if r.status().as_u16() < 500
                )
            }
            None => false,
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if !up {
            tracing::warn!(source = %config.id, latency_ms, "source health probe failed");
        }
        Probe { checked_at_us, up, latency_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: SystemKind, base: &str) -> SourceConfig {
        SourceConfig {
            id: tideway_adapters::SourceId::parse("camden").unwrap(),
            name: "Camden".into(),
            kind,
            ods_code: tideway_profiles::OdsCode::parse("LBX01").unwrap(),
            base_url: url::Url::parse(base).unwrap(),
            timeout_ms: 200,
            max_body_bytes: 1024,
            attestation: None,
            tls: None,
        }
    }

    #[test]
    fn fhir_sources_are_probed_at_their_metadata_others_at_their_base() {
        assert_eq!(
            probe_url(&config(SystemKind::FhirR4, "http://x.example/fhir")).as_str(),
            "http://x.example/fhir/metadata"
        );
        assert_eq!(
            probe_url(&config(SystemKind::SocialCare, "http://x.example/fhir/")).as_str(),
            "http://x.example/fhir/metadata"
        );
        assert_eq!(
            probe_url(&config(SystemKind::Emis, "http://x.example/emis")).as_str(),
            "http://x.example/emis"
        );
    }

    #[tokio::test]
    async fn an_unreachable_source_is_down_and_remembered() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let health = Health::default();
        // Port 9 (discard) on loopback: nothing listens in the test environment.
        let c = config(SystemKind::FhirR4, "http://127.0.0.1:9/fhir");
        health.probe_all(std::slice::from_ref(&c)).await;
        let p = health.get("camden").unwrap();
        assert!(!p.up);
        assert!(p.checked_at_us > 0);
        health.forget("camden");
        assert!(health.get("camden").is_none());
    }
}
