//! What every simulated system's HTTP server shares: request counting, the per-request fault
//! draw applied before the handler runs, and the [`RunningSimulator`] handle.
//!
//! A dialect brings its routes, says which requests are patient searches and record fetches,
//! and renders the faults that replace a whole answer in its own format ([`FaultAnswers`]); the
//! faults that only change a record's content reach its handlers as a request extension
//! ([`fault_of`]).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use async_trait::async_trait;
use bytes::Bytes;

use crate::SimulatorHits;
use crate::conformance::Simulated;
use crate::faults::{Fault, FaultConfig};

/// The settings of a simulator playing one borough of a seeded population.
#[derive(Debug, Clone)]
pub struct BoroughConfig {
    /// Address to bind; port 0 picks a free port.
    pub bind: std::net::SocketAddr,
    /// Population seed.
    pub seed: u64,
    /// Which borough this simulator plays.
    pub borough_index: usize,
    /// Boroughs in the population.
    pub borough_count: usize,
    /// Home patients per borough.
    pub patients_per_borough: usize,
    /// Faults to inject.
    pub faults: FaultConfig,
}

/// Where redirects and foreign links point: an origin that is never a simulator.
pub const ELSEWHERE: &str = "http://elsewhere.invalid";

#[derive(Default)]
struct Counters {
    total: AtomicU64,
    searches: AtomicU64,
    fetches: AtomicU64,
}

impl Counters {
    fn add(&self, hit: Hit) {
        match hit {
            Hit::Search => self.searches.fetch_add(1, Ordering::Relaxed),
            Hit::Fetch => self.fetches.fetch_add(1, Ordering::Relaxed),
            Hit::Other => 0,
        };
    }
}

/// What kind of request the counters see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// A patient search.
    Search,
    /// A record fetch (a page of one).
    Fetch,
    /// Anything else.
    Other,
}

/// A dialect's answers for the faults that replace a whole answer.
#[async_trait]
pub trait FaultAnswers: Send + Sync + 'static {
    /// The answer standing in for a normal one under `fault`, for a request to `path`.
    async fn answer(&self, fault: Fault, path: &str) -> HttpResponse;
}

/// Counts `hit` for a request the classifier left to its handler ([`Hit::Other`]), when only the
/// body tells a search from a fetch.
pub fn count(req: &HttpRequest, hit: Hit) {
    if let Some(counters) = req.extensions().get::<Arc<Counters>>() {
        counters.add(hit);
    }
}

/// The fault drawn for this request, for handlers that apply content faults.
pub fn fault_of(req: &HttpRequest) -> Fault {
    req.extensions().get::<Fault>().copied().unwrap_or(Fault::None)
}

/// Sleeps far longer than any client waits: the answer to [`Fault::Hang`]. Awaiting keeps the
/// worker free for other requests; the client's deadline ends it.
pub async fn hang() {
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
}

/// A streamed body of `head`, then `filler` repeated to about 64 MiB, then `tail`: the answer
/// to [`Fault::Oversized`], sent without ever holding it in memory.
pub fn oversized(content_type: &'static str, head: Bytes, filler: Bytes, tail: Bytes) -> HttpResponse {
    const TOTAL: usize = 64 * 1024 * 1024;
    let chunks = TOTAL / filler.len().max(1);
    let body = std::iter::once(head)
        .chain(std::iter::repeat_n(filler, chunks))
        .chain(std::iter::once(tail))
        .map(Ok::<_, std::convert::Infallible>);
    HttpResponse::Ok().content_type(content_type).streaming(futures::stream::iter(body))
}

/// A document whose DOCTYPE declares an external entity at `entity_url` and uses it: the answer
/// to [`Fault::ExternalEntity`]. A reader that resolved it would request `entity_url`.
pub fn xxe_document(entity_url: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE Record [<!ENTITY secret SYSTEM \"{entity_url}\">]>\n<Record>&secret;</Record>\n"
    )
}

/// `document` (XML) with a DOCTYPE inserted after its XML declaration: an external subset at
/// `{entity_url}.dtd` and an external entity at `entity_url`, neither used. A reader that
/// loaded either would request it; one that ignored the DOCTYPE would read the document.
pub fn with_doctype(document: &[u8], entity_url: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(document);
    let (declaration, rest) = match text.strip_prefix("<?xml").and_then(|_| text.find("?>")) {
        Some(end) => text.split_at(end + 2),
        None => ("", text.as_ref()),
    };
    let root: String = rest
        .trim_start()
        .trim_start_matches('<')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':' || *c == '-')
        .collect();
    format!(
        "{declaration}\n<!DOCTYPE {root} SYSTEM \"{entity_url}.dtd\" [<!ENTITY secret SYSTEM \"{entity_url}\">]>{rest}"
    )
    .into_bytes()
}

/// A redirect to the same path on [`ELSEWHERE`].
pub fn redirect(path: &str) -> HttpResponse {
    HttpResponse::Found().insert_header(("Location", format!("{ELSEWHERE}{path}"))).finish()
}

/// A running simulator. Dropping it leaves the server running until the runtime ends; call
/// [`RunningSimulator::stop`] to stop it.
pub struct RunningSimulator {
    base_url: url::Url,
    port: u16,
    counters: Arc<Counters>,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for RunningSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSimulator").field("base_url", &self.base_url.as_str()).finish()
    }
}

impl RunningSimulator {
    /// The base URL the adapter is configured with (ends in `/`).
    pub fn base_url(&self) -> url::Url {
        self.base_url.clone()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Request counts so far.
    pub fn hits(&self) -> SimulatorHits {
        SimulatorHits {
            total: self.counters.total.load(Ordering::Relaxed),
            patient_searches: self.counters.searches.load(Ordering::Relaxed),
            record_fetches: self.counters.fetches.load(Ordering::Relaxed),
        }
    }

    /// Stops the server at once (hanging requests are dropped) and waits for it to finish.
    pub async fn stop(self) {
        self.handle.stop(false).await;
        // The server's own result no longer matters once it has been told to stop.
        let _ = self.task.await;
    }
}

/// What the conformance suite sees of a running simulator.
#[async_trait]
impl Simulated for RunningSimulator {
    fn base_url(&self) -> url::Url {
        RunningSimulator::base_url(self)
    }

    fn hits(&self) -> SimulatorHits {
        RunningSimulator::hits(self)
    }

    async fn stop(self: Box<Self>) {
        RunningSimulator::stop(*self).await;
    }
}

/// How one simulated system is served.
pub struct Serve<R, A> {
    /// The bound listener.
    pub listener: TcpListener,
    /// The base path, e.g. `/fhir/` (starts and ends in `/`).
    pub base_path: &'static str,
    /// Faults to inject.
    pub faults: FaultConfig,
    /// Which requests are searches and fetches.
    pub classify: Arc<dyn Fn(&ServiceRequest) -> Hit + Send + Sync>,
    /// The dialect's fault answers.
    pub answers: Arc<A>,
    /// The dialect's routes (under the full path, base path included).
    pub routes: R,
    /// Serve HTTPS with this TLS configuration (e.g. one that demands a client certificate, as
    /// a borough exchange behind mutual TLS does) instead of plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Starts serving. The port is already bound, so port 0 works.
pub fn serve<R, A>(s: Serve<R, A>) -> std::io::Result<RunningSimulator>
where
    R: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    A: FaultAnswers,
{
    let port = s.listener.local_addr()?.port();
    let scheme = if s.tls.is_some() { "https" } else { "http" };
    let base_url = url::Url::parse(&format!("{scheme}://127.0.0.1:{port}{}", s.base_path))
        .map_err(std::io::Error::other)?;
    let counters = Arc::new(Counters::default());
    let shared = counters.clone();
    let faults = Arc::new(s.faults);
    let (classify, answers, routes, tls) = (s.classify, s.answers, s.routes, s.tls);
    let server = HttpServer::new(move || {
        let (counters, faults, answers, classify) =
            (shared.clone(), faults.clone(), answers.clone(), classify.clone());
        App::new()
            .wrap_fn(move |req, srv| {
                let n = counters.total.fetch_add(1, Ordering::Relaxed);
                counters.add(classify(&req));
                req.extensions_mut().insert(counters.clone());
                let fault = faults.draw(n);
                let latency = Duration::from_millis(faults.latency_ms);
                let answers = answers.clone();
                let (call, held) = if fault.replaces_answer() {
                    (None, Some(req))
                } else {
                    // Content faults are applied by the handlers.
                    req.extensions_mut().insert(fault);
                    (Some(srv.call(req)), None)
                };
                async move {
                    if !latency.is_zero() {
                        tokio::time::sleep(latency).await;
                    }
                    match (call, held) {
                        (Some(call), _) => call.await.map(ServiceResponse::map_into_left_body),
                        (None, Some(req)) => {
                            let resp = answers.answer(fault, req.path()).await;
                            Ok(req.into_response(resp).map_into_right_body())
                        }
                        (None, None) => Err(actix_web::error::ErrorInternalServerError("unreachable")),
                    }
                }
            })
            .configure(routes.clone())
    })
    .workers(1)
    .shutdown_timeout(1)
    .disable_signals();
    let server = match tls {
        Some(tls) => server.listen_rustls_0_23(s.listener, (*tls).clone())?,
        None => server.listen(s.listener)?,
    }
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(RunningSimulator { base_url, port, counters, handle, task })
}
