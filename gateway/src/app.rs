//! Building and running the application: `Application::build(settings)` binds the listener
//! (port 0 works, for tests), connects the store, registers sources, and returns a handle that
//! knows its port and can be stopped.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;
use tideway_auth::service::TokenService;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use crate::state::AppState;

use crate::audit::AuditTrail;
use crate::audit::checkpoint::Checkpointer;
use crate::audit::tally::RefusalTally;
use crate::config::Settings;
use crate::http::{self, middleware};
use crate::identity::PatientIds;
use crate::pages::PageStore;
use crate::record::{RecordService, ReplicaMemo};
use crate::registry::Registry;
use crate::sources::{Federation, SourceCache};
use crate::store::{Store, StoreReplayGuard};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The page store could not be reached.
    #[error("{0}")]
    Pages(String),
    /// Auth configuration was refused.
    #[error("auth: {0}")]
    Auth(String),
    /// The sharing agreements or code sets could not be loaded: nothing may be decided.
    #[error("policy: {0}")]
    Policy(String),
    /// The listener's TLS certificate, key or client authority could not be used.
    #[error("server.tls: {0}")]
    Tls(String),
    /// The audit checkpoint key or file could not be read.
    #[error("audit checkpoints: {0}")]
    Checkpoints(#[from] crate::audit::checkpoint::CheckpointError),
    /// The audit trail no longer holds what its last signed checkpoint covers (names the
    /// place and the kind of damage): the gateway does not start on a trail it cannot vouch for.
    #[error(
        "audit trail damaged since its last checkpoint: {0}; run `tideway audit verify` and resolve it \
         before starting (the checkpoint file is the evidence: archive it, never edit it)"
    )]
    AuditDamaged(String),
    /// The webhook client could not be built.
    #[error("alerts webhook: {0}")]
    Webhook(String),
    /// The source registry's settings were refused.
    #[error("registry: {0}")]
    Registry(String),
    /// The superseded NHS numbers feed could not be read (names the line, never a number).
    #[error("identity.superseded_nhs_numbers_file: {0}")]
    Supersessions(String),
    /// The registered population feed could not be read (names the line, never a number).
    #[error("identity.registrations_file: {0}")]
    Registrations(String),
    /// Secondary use's settings, opt-out feed or export folder could not be used.
    #[error("secondary: {0}")]
    Secondary(String),
    /// A source adapter could not be built.
    #[error("source {id}: {reason}")]
    Source {
        /// Source id.
        id: String,
        /// Why.
        reason: String,
    },
}

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
        let page_ttl = Duration::from_secs(settings.pages.ttl_secs);
        let pages = match &settings.pages.redis_url {
            Some(url) => PageStore::redis(
                url.expose_secret(),
                page_ttl,
                settings.pages.max_per_principal,
                settings.identity.pseudonym_key.expose_secret().as_bytes(),
            )
            .await
            .map_err(|e| StartError::Pages(e.to_string()))?,
            None => {
                PageStore::memory(page_ttl, settings.pages.max_resources, settings.pages.max_per_principal)
            }
        };
        let started = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
        let capability = crate::capability::capability_statement(&base_url, &started).to_string();
        let checkpointer = match (&settings.audit.checkpoint_key, &settings.audit.checkpoint_file) {
            (Some(key), Some(file)) => {
                let checkpointer = Arc::new(Checkpointer::new(key, file.clone(), Arc::new(store.clone()))?);
                if let Some(damage) = checkpointer.damage_since_last_checkpoint().await? {
                    return Err(StartError::AuditDamaged(damage.to_string()));
                }
                checkpointer.clone().spawn_every(settings.audit.checkpoint_interval_secs);
                if let Some(days) = settings.audit.retention_days {
                    checkpointer.clone().spawn_retention(days);
                }
                Some(checkpointer)
            }
            _ => {
                tracing::warn!(
                    "no audit checkpoints configured: a cut-off or rewritten audit trail cannot be detected"
                );
                None
            }
        };
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
            let text = std::fs::read_to_string(path).map_err(|e| StartError::Registrations(e.to_string()))?;
            let feed = crate::secondary::registrations::parse(&text).map_err(StartError::Registrations)?;
            crate::secondary::registrations::load(&store, &records.ids, &feed)
                .await
                .map_err(|e| StartError::Registrations(e.to_string()))?;
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
        let workers = state
            .settings
            .server
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let data = state.clone();
        let peers = http::peers::PeerConnections::new(state.settings.server.max_connections_per_peer);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(from_fn(http::peers::refuse_over_cap))
                .wrap(from_fn(middleware::request_id_and_log))
                .configure(http::routes)
        })
        .on_connect(move |connection, data| {
            http::tls::on_connect(connection, data);
            peers.on_connect(connection, data);
        })
        .workers(workers)
        .client_request_timeout(state.settings.request_timeout())
        .shutdown_timeout(5)
        .disable_signals();
        let bound = |source| StartError::Bind { addr: local.to_string(), source };
        let server = match &state.settings.server.tls {
            Some(tls) => server
                .listen_rustls_0_23(listener, http::tls::server_config(tls).map_err(StartError::Tls)?)
                .map_err(bound)?,
            None => server.listen(listener).map_err(bound)?,
        }
        .run();
        let mut admin_port = None;
        let admin = match state.settings.server.admin_bind {
            Some(addr) => {
                let admin_listener = TcpListener::bind(addr)
                    .map_err(|source| StartError::Bind { addr: addr.to_string(), source })?;
                admin_port = admin_listener.local_addr().ok().map(|a| a.port());
                let data = state.clone();
                Some(
                    HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .wrap(from_fn(middleware::request_id_and_log))
                            .configure(http::admin_routes)
                    })
                    .workers(1)
                    .shutdown_timeout(1)
                    .disable_signals()
                    .listen(admin_listener)
                    .map_err(|source| StartError::Bind { addr: addr.to_string(), source })?
                    .run(),
                )
            }
            None => None,
        };
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
