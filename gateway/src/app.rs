//! Building and running the application: `Application::build(settings)` binds the listener
//! (port 0 works, for tests), connects the store, registers sources, and returns a handle that
//! knows its port and can be stopped.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::web;
use tideway_auth::service::TokenService;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use crate::state::AppState;
pub use error::StartError;

mod error;
mod start;

use crate::audit::AuditTrail;
use crate::audit::checkpoint::Checkpointer;
use crate::audit::tally::RefusalTally;
use crate::config::Settings;
use crate::identity::PatientIds;
use crate::record::{RecordService, ReplicaMemo};
use crate::registry::Registry;
use crate::sources::{Federation, SourceCache};
use crate::store::{Store, StoreReplayGuard};

/// A running gateway.
pub struct Application {
    port: u16,
    admin_port: Option<u16>,
    base_url: String,
    server: Server,
    admin: Option<Server>,
    state: web::Data<AppState>,
    checkpointer: Option<Arc<Checkpointer>>,
}

/// Stops a running [`Application`] (both listeners).
#[derive(Clone)]
pub struct AppHandle {
    main: ServerHandle,
    admin: Option<ServerHandle>,
    checkpointer: Option<Arc<Checkpointer>>,
    refusals: Arc<RefusalTally>,
    audit: AuditTrail,
    /// Stops export runners at their next page (their jobs resume at the next start).
    exports_stopping: Arc<std::sync::atomic::AtomicBool>,
}

/// Writes the tally of unauthenticated refusals every `secs` seconds until the runtime stops.
fn spawn_refusal_flush(refusals: Arc<RefusalTally>, audit: AuditTrail, secs: u64) {
    crate::periodic::every(secs, move || {
        let (refusals, audit) = (refusals.clone(), audit.clone());
        async move { refusals.flush(&audit).await }
    });
}

impl AppHandle {
    /// Stops accepting connections; with `graceful`, lets in-flight requests finish first.
    pub async fn stop(&self, graceful: bool) {
        if let Some(a) = &self.admin {
            a.stop(graceful).await;
        }
        self.main.stop(graceful).await;
        self.exports_stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        self.refusals.flush(&self.audit).await;
        // What was served is signed before the process ends (tried a few times: a store busy
        // with the last requests' commits may not answer the first time).
        if let Some(checkpointer) = &self.checkpointer {
            for attempt in 1..=3 {
                match checkpointer.checkpoint().await {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(attempt, error = %e, "the closing audit checkpoint could not be written");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    }
}

impl Application {
    /// Binds, connects and registers; the server starts serving when [`Self::run`] is awaited
    /// (or spawned).
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let listener = TcpListener::bind(settings.server.bind)
            .map_err(|source| StartError::Bind { addr: settings.server.bind.to_string(), source })?;
        let local = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr: settings.server.bind.to_string(), source })?;
        let base_url = settings.base_url(local);
        let store = Store::connect(
            &settings.store.url,
            settings.store.max_connections,
            Duration::from_millis(settings.store.acquire_timeout_ms),
        )
        .await?;
        let tokens = TokenService::new(
            &settings.auth,
            format!("{base_url}/token"),
            Arc::new(StoreReplayGuard(store.clone())),
        )
        .map_err(|e| StartError::Auth(e.to_string()))?;
        // Administrators' decisions about clients hold from the first request on.
        let clients = Arc::new(crate::clients::ClientAdmin::new(
            Arc::new(store.clone()),
            settings.auth.clients.clone(),
        ));
        clients.start(tokens.clients()).await?;
        // Every config source must build, as before: a config that cannot start fails at once.
        for s in &settings.sources {
            tideway_adapters::registry::build(s.clone())
                .map_err(|e| StartError::Source { id: s.id.to_string(), reason: e.to_string() })?;
        }
        let cache = SourceCache::new(
            Duration::from_secs(settings.cache.ttl_secs),
            settings.cache.max_bytes,
            settings.cache.enabled,
        );
        // With a shared store several replicas may serve the region: a read by id may reach one
        // that never fetched the record, so which patient a resource belongs to is shared too.
        if store.backend() != "sqlite" {
            crate::record::owners::StoreIndex::share(cache.index(), store.clone());
        }
        let deadline = Duration::from_millis(settings.federation.request_deadline_ms);
        let federation = Federation::new(Vec::new(), deadline, cache);
        // With SQLite this process is the store's only writer, so it may remember consents.
        let memo = ReplicaMemo::new(
            Duration::from_secs(settings.federation.locator_max_age_secs),
            store.backend() == "sqlite",
            settings.cache.enabled.then(|| Duration::from_secs(settings.cache.ttl_secs)),
        );
        let registry = Arc::new(
            Registry::start(
                Arc::new(store.clone()),
                federation.clone(),
                memo.clone(),
                settings.registry.clone(),
                settings.registry.admin_codes().map_err(StartError::Registry)?,
                &settings.sources,
                match &settings.registry.secrets_key_file {
                    Some(path) => crate::registry::secrets::SourceSecrets::load(path)
                        .map_err(|e| StartError::Registry(e.to_string()))?,
                    None => crate::registry::secrets::SourceSecrets::none(),
                },
            )
            .await?,
        );
        registry.spawn();
        let pages = start::page_store(&settings).await?;
        let started = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
        let capability = crate::capability::capability_statement(&base_url, &started).to_string();
        let checkpointer = start::checkpointer(&settings, &store).await?;
        // The agreements know each registered source's data controller as registered at start
        // (the config's and the API's alike).
        let registered = registry.configs().await;
        let policy = Arc::new(crate::agreements::load(&settings.policy, &registered, &store).await?);
        // From then on they follow the live registry: a source registered, moved to another
        // controller or deregistered while the gateway runs counts at the next refresh (at once
        // in the process that made the change).
        let live = registry.clone();
        policy.follow(Arc::new(move || live.controllers()));
        policy.spawn_refresh(Arc::new(store.clone()), Duration::from_secs(settings.policy.refresh_secs));
        let oversight = Arc::new(crate::oversight::Oversight::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            settings.alerts.clone(),
        ));
        if let Some(deliverer) =
            crate::oversight::Deliverer::of(&oversight).map_err(|e| StartError::Webhook(e.to_string()))?
        {
            deliverer.spawn();
        }
        crate::oversight::spawn_housekeeping(store.clone(), settings.alerts.clone());
        let records = RecordService {
            federation,
            store: Arc::new(store.clone()),
            ids: PatientIds::new(settings.identity.pseudonym_key.clone()),
            pages,
            base_url: base_url.clone(),
            locator_max_age_secs: settings.federation.locator_max_age_secs,
            memo,
            policy: policy.clone(),
            consents: Arc::new(store.clone()),
            alerts: Arc::new(store.clone()),
            break_glass_secs: settings.policy.break_glass_minutes.saturating_mul(60),
            privacy_officers: settings.policy.privacy_office_codes().map_err(StartError::Policy)?,
            oversight,
        };
        if let Some(path) = &settings.identity.superseded_nhs_numbers_file {
            let text = std::fs::read_to_string(path).map_err(|e| StartError::Supersessions(e.to_string()))?;
            let pairs = crate::record::parse_supersession_feed(&text).map_err(StartError::Supersessions)?;
            records.load_supersessions(&pairs).await.map_err(|e| StartError::Supersessions(e.to_string()))?;
        }
        if let Some(path) = &settings.identity.registrations_file {
            let feed = crate::secondary::registrations::RegistrationsFeed::new(
                path.clone(),
                Arc::new(store.clone()),
                records.ids.clone(),
            );
            feed.load().await.map_err(StartError::Registrations)?;
            feed.spawn_reload(settings.identity.registrations_reload_secs);
        }
        let secondary =
            crate::secondary::SecondaryUse::new(settings.secondary.clone(), Arc::new(store.clone()))
                .map_err(StartError::Secondary)?;
        if let Some(path) = &settings.secondary.opt_out_file {
            let feed = crate::secondary::opt_out::OptOutFeed::new(path.clone(), Arc::new(store.clone()));
            feed.load().await.map_err(|e| StartError::Secondary(e.to_string()))?;
            feed.spawn_reload(settings.secondary.opt_out_reload_secs);
        }
        tokio::fs::create_dir_all(&settings.secondary.export_directory)
            .await
            .map_err(|e| StartError::Secondary(format!("secondary.export_directory: {e}")))?;
        let audit = AuditTrail::new(Arc::new(store.clone()));
        let refusals = Arc::new(RefusalTally::default());
        spawn_refusal_flush(refusals.clone(), audit.clone(), settings.audit.refusal_interval_secs);
        let state = web::Data::new(AppState {
            audit,
            records,
            agreements: crate::governance::Governance::new(policy, Arc::new(store.clone())),
            base_url: base_url.clone(),
            store,
            tokens,
            unauthenticated: tideway_auth::KeyedLimiter::new(settings.server.unauthenticated_rate_limit),
            refusals: refusals.clone(),
            capability,
            registry,
            secondary,
            settings,
            dashboard: Default::default(),
            clients,
        });
        crate::clients::spawn_refresh(state.clone(), state.settings.registry.refresh_secs);
        state.dashboard.set_exports(state.secondary.exports.live());
        crate::secondary::export::spawn_unfinished(state.clone());
        crate::secondary::export::spawn_expiry(state.clone());
        crate::secondary::aggregate::spawn(state.clone());
        crate::client_keys::spawn_reload(state.clone(), state.settings.auth.jwks_reload_secs);
        crate::certificates::watch(state.settings.clone(), state.registry.clone()).await;
        let (server, admin, admin_port) = start::listeners(&state, listener, local)?;
        Ok(Self { port: local.port(), admin_port, base_url, server, admin, state, checkpointer })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The public base URL, no trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The shared state (for tests that inspect the store).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// The operator listener's port, when one is configured.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_port
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> AppHandle {
        AppHandle {
            main: self.server.handle(),
            admin: self.admin.as_ref().map(Server::handle),
            checkpointer: self.checkpointer.clone(),
            refusals: self.state.refusals.clone(),
            audit: self.state.audit.clone(),
            exports_stopping: self.state.secondary.exports.stop_flag(),
        }
    }

    /// Serves until stopped.
    pub async fn run(self) -> std::io::Result<()> {
        match self.admin {
            Some(admin) => futures::try_join!(self.server, admin).map(drop),
            None => self.server.await,
        }
    }
}
