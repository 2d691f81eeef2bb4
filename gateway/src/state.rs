//! What every request shares: settings, the store, tokens, the audit trail, the record
//! service and agreement governance.

use std::net::IpAddr;

use tideway_auth::KeyedLimiter;
use tideway_auth::service::TokenService;

use crate::audit::AuditTrail;
use crate::audit::tally::RefusalTally;
use crate::config::Settings;
use crate::governance::Governance;
use crate::record::RecordService;
use crate::store::Store;

/// Shared by every request.
pub struct AppState {
    /// The loaded settings.
    pub settings: Settings,
    /// Public base URL, no trailing slash.
    pub base_url: String,
    /// State store (readiness; tests inspect the audit trail through it).
    pub store: Store,
    /// Token issuing and checking.
    pub tokens: TokenService,
    /// Requests without a valid token, per peer (`server.unauthenticated_rate_limit`).
    pub unauthenticated: KeyedLimiter<IpAddr>,
    /// The one audit writer.
    pub audit: AuditTrail,
    /// Refusals of unauthenticated requests, counted and written per peer per interval.
    pub refusals: std::sync::Arc<RefusalTally>,
    /// The read pipeline.
    pub records: RecordService,
    /// Publishing and approving sharing-agreement versions.
    pub agreements: Governance,
    /// The serialised CapabilityStatement.
    pub capability: String,
    /// The source registry (and consuming organisations' attestations).
    pub registry: std::sync::Arc<crate::registry::Registry>,
    /// Secondary use: bulk export, opt-outs, population figures.
    pub secondary: crate::secondary::SecondaryUse,
    /// What the web dashboard shows that other services provide (export jobs, population).
    pub dashboard: crate::dashboard::DashboardFeeds,
    /// Backend clients suspended, reinstated or removed at run time.
    pub clients: std::sync::Arc<crate::clients::ClientAdmin>,
}
