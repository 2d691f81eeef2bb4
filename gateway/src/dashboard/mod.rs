//! The web dashboard: one page, served by the gateway itself, that operators look at.
//!
//! - `GET /dashboard/` is the page (`index.html`, `dashboard.js`, `dashboard.css`,
//!   `favicon.svg`, embedded in the binary; no CDN, no inline script or style, answered with
//!   `Content-Security-Policy: default-src 'self'`). It carries no data and is public on both
//!   listeners; `GET /dashboard` redirects to it.
//! - `GET /dashboard/api/operations` ([`operations::OperationsView`]) and
//!   `GET /dashboard/api/population` ([`population::PopulationView`]) are the figures the
//!   page draws, refetched every few seconds. On the operator listener (`server.admin_bind`)
//!   they are served without a token, as `/metrics` is; on the main listener only to an
//!   operator's token ([`access`]). Neither carries patient data, so neither is audited.
//!
//! What the gateway does not measure itself comes through [`DashboardFeeds`]: bulk export
//! jobs ([`exports::ExportProgress`]) and population figures
//! ([`population::PopulationFigures`]), each absent until some part of the gateway provides it.

mod access;
mod assets;
pub mod exports;
pub mod exposition;
pub mod operations;
pub mod population;
#[cfg(test)]
mod tests;

use std::sync::{Arc, PoisonError, RwLock};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::http::{ApiError, public, readable};
use crate::state::AppState;
use exports::ExportProgress;
use population::{PopulationFigures, PopulationView};

/// The figures the dashboard shows that other parts of the gateway provide. Each is set once
/// they exist (at start-up, or later); until then the page says there are none.
#[derive(Default)]
pub struct DashboardFeeds {
    exports: RwLock<Option<Arc<dyn ExportProgress>>>,
    population: RwLock<Option<Arc<dyn PopulationFigures>>>,
}

impl DashboardFeeds {
    /// Where the bulk export jobs' progress is read from.
    pub fn set_exports(&self, feed: Arc<dyn ExportProgress>) {
        *self.exports.write().unwrap_or_else(PoisonError::into_inner) = Some(feed);
    }

    /// Where the population figures are read from.
    pub fn set_population(&self, feed: Arc<dyn PopulationFigures>) {
        *self.population.write().unwrap_or_else(PoisonError::into_inner) = Some(feed);
    }

    /// The export jobs now (none without a feed).
    pub fn export_jobs(&self) -> Vec<exports::ExportSummary> {
        let feed = self.exports.read().unwrap_or_else(PoisonError::into_inner).clone();
        feed.map(|f| f.jobs()).unwrap_or_default()
    }

    /// The population figures now (the empty view without a feed), with the numbers of every
    /// suppressed cell removed whatever the feed put there.
    pub fn population_view(&self) -> PopulationView {
        let feed = self.population.read().unwrap_or_else(PoisonError::into_inner).clone();
        feed.map_or_else(PopulationView::empty, |f| f.view().without_suppressed_numbers())
    }
}

/// Which listener a dashboard route is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    /// The main listener: the figures need an operator's token.
    Main,
    /// The operator listener: on the internal network, no token.
    Operator,
}

/// The dashboard on the main listener (registered before the FHIR type routes, which would
/// match its paths).
pub fn routes(cfg: &mut web::ServiceConfig) {
    register(cfg, Listener::Main);
}

/// The dashboard on the operator listener.
pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    register(cfg, Listener::Operator);
}

fn register(cfg: &mut web::ServiceConfig, listener: Listener) {
    cfg.service(readable(public("/dashboard"), redirect))
        .service(readable(public("/dashboard/"), assets::index))
        .service(readable(public("/dashboard/{asset}"), assets::asset))
        .service(readable(public("/dashboard/api/operations").app_data(listener), operations))
        .service(readable(public("/dashboard/api/population").app_data(listener), population));
}

/// `GET /dashboard`: to the page, relative so it works behind a path prefix too.
async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "dashboard/")).finish()
}

/// Serves the figures only where the listener allows it.
fn allowed(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    match req.app_data::<Listener>().copied().unwrap_or(Listener::Main) {
        Listener::Operator => Ok(()),
        Listener::Main => access::operator(state, req),
    }
}

/// `GET /dashboard/api/operations`
async fn operations(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    allowed(&state, &req)?;
    let view = operations::OperationsView::now(&state).await;
    Ok(assets::json(&view))
}

/// `GET /dashboard/api/population`
async fn population(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    allowed(&state, &req)?;
    Ok(assets::json(&state.dashboard.population_view()))
}
