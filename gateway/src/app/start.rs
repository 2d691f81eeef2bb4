//! Steps of [`super::Application::build`] with a job of their own: the page store (memory or
//! Redis), the audit checkpointer (and the check that the trail is intact since its last
//! checkpoint), and the two HTTP listeners.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;

use super::{AppState, StartError};
use crate::audit::checkpoint::Checkpointer;
use crate::config::Settings;
use crate::http::{self, middleware};
use crate::pages::PageStore;
use crate::store::Store;

/// Where page links' snapshots are kept: Redis when configured (shared by replicas), else
/// memory.
pub(super) async fn page_store(settings: &Settings) -> Result<PageStore, StartError> {
    let page_ttl = Duration::from_secs(settings.pages.ttl_secs);
    Ok(match &settings.pages.redis_url {
        Some(url) => PageStore::redis(
            url.expose_secret(),
            page_ttl,
            settings.pages.max_per_principal,
            settings.identity.pseudonym_key.expose_secret().as_bytes(),
        )
        .await
        .map_err(|e| StartError::Pages(e.to_string()))?,
        None => PageStore::memory(page_ttl, settings.pages.max_resources, settings.pages.max_per_principal),
    })
}

/// The audit checkpointer, when a key and a file are configured: the trail is checked against
/// its last signed checkpoint first (a damaged trail stops the start), then checkpoints (and
/// retention) run on their period.
pub(super) async fn checkpointer(
    settings: &Settings,
    store: &Store,
) -> Result<Option<Arc<Checkpointer>>, StartError> {
    Ok(match (&settings.audit.checkpoint_key, &settings.audit.checkpoint_file) {
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
    })
}

/// The main listener (TLS when configured) and the operator listener (when configured), with
/// the operator listener's port.
pub(super) fn listeners(
    state: &web::Data<AppState>,
    listener: TcpListener,
    local: SocketAddr,
) -> Result<(Server, Option<Server>, Option<u16>), StartError> {
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
    Ok((server, admin, admin_port))
}
