//! Rebuilding the federation's sources from the registrations: which are asked (active, with
//! a current attestation, and an adapter that could be built, its client key opened in memory
//! if sealed), why the others are not, the attestation gauge, and the daily expiry warnings.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use tideway_adapters::{SourceAdapter, SourceConfig};
use time::Date;

use super::attestation::{self, Standing};
use super::{Inner, Origin, Registration, Registry, SourceState, today};
use crate::sources::Sources;

impl Registry {
    pub(super) fn standing(&self, r: &Registration, today: Date) -> Standing {
        let assumed = r.origin == Origin::Config && !self.settings.require_source_attestation;
        attestation::judge(
            r.config.attestation.as_ref(),
            assumed,
            today,
            self.settings.attestation_warning_days,
        )
    }

    /// Swaps in the sources `inner` says are asked, and logs attestations expiring soon or
    /// lapsed (once a day each).
    pub(super) fn rebuild(&self, inner: &mut Inner) {
        let today = today();
        let mut adapters = Vec::new();
        let mut not_asked = Vec::new();
        let mut built = HashMap::new();
        let mut warnings = Vec::new();
        for r in &inner.entries {
            let id = r.config.id.clone();
            let days_left = (r.config.attestation.as_ref())
                .filter(|_| r.state != SourceState::Deregistered)
                .map(|a| (a.expires - today).whole_days());
            crate::telemetry::metrics::attestation_days_left(id.as_str(), days_left);
            match r.state {
                SourceState::Deregistered => continue,
                SourceState::Suspended => {
                    not_asked.push((id, "its registration is suspended"));
                    continue;
                }
                SourceState::Active => {}
            }
            let standing = self.standing(r, today);
            if matches!(standing, Standing::Expiring(_)) || !standing.is_current() {
                warnings.push((id.clone(), standing));
            }
            if !standing.is_current() {
                not_asked.push((id, standing.why_not_current()));
                continue;
            }
            let key = serde_json::to_string(&r.config).unwrap_or_default();
            let adapter = match inner.built.remove(id.as_str()) {
                Some((k, a)) if k == key => a,
                _ => match self.build(&r.config) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::error!(source = %id, error = %e, "source adapter could not be built: not asked");
                        not_asked.push((id, "its adapter could not be set up"));
                        continue;
                    }
                },
            };
            built.insert(id.to_string(), (key, adapter.clone()));
            adapters.push(adapter);
        }
        for (id, standing) in warnings {
            if inner.warned.get(id.as_str()) == Some(&today) {
                continue;
            }
            inner.warned.insert(id.to_string(), today);
            match standing {
                Standing::Expiring(days_left) => tracing::warn!(
                    source = %id,
                    days_left,
                    "source information-governance attestation expires soon"
                ),
                s => {
                    tracing::warn!(source = %id, standing = s.code(), "source not asked: attestation not current")
                }
            }
        }
        inner.built = built;
        self.federation.replace(Sources::new(adapters, not_asked));
        let controllers = inner
            .entries
            .iter()
            .filter(|r| r.state != SourceState::Deregistered)
            .map(|r| (r.config.id.to_string(), r.config.ods_code.clone()))
            .collect();
        *self.controllers.write().unwrap_or_else(PoisonError::into_inner) = controllers;
    }

    /// The adapter of `config`, its client key opened in memory if sealed.
    fn build(&self, config: &SourceConfig) -> Result<Arc<dyn SourceAdapter>, String> {
        let opened = self.secrets.opened(config).map_err(|e| e.to_string())?;
        tideway_adapters::registry::build(opened).map_err(|e| e.to_string())
    }
}
