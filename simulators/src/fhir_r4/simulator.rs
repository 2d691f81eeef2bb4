//! A simulated FHIR R4 borough exchange over real HTTP, with injectable faults.
//!
//! It serves either one borough of the seeded synthetic population or a directory of Synthea
//! bundles, answers the handful of interactions the adapter and the demo use, and can be told to
//! be slow, fail, hang, send garbage or far too much, redirect elsewhere, link its next page on
//! another origin, mix in another patient's entries or hold nothing, deterministically per
//! request (see [`FaultConfig`]).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tideway_profiles::{IssueSeverity, IssueType, NhsNumber, OperationOutcome, systems};

use super::from_dir::FromDir;
use super::render;
pub use crate::SimulatorHits;
use crate::conformance::Simulated;
use crate::faults::Fault;
pub use crate::faults::FaultConfig;
use crate::population::Population;

const FHIR_JSON: &str = "application/fhir+json";

/// What the simulator serves.
#[derive(Debug, Clone)]
pub enum PopulationSpec {
    /// One borough of a seeded synthetic population.
    Synthetic {
        /// Population seed.
        seed: u64,
        /// Which borough this simulator plays.
        borough_index: usize,
        /// Boroughs in the population.
        borough_count: usize,
        /// Home patients per borough.
        patients_per_borough: usize,
    },
    /// A directory of Synthea R4 transaction bundles (loaded at start).
    FromDir(PathBuf),
    /// An already loaded directory, so tests and the demo can share one load.
    Loaded(Arc<FromDir>),
}

/// The simulator's settings.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Address to bind; port 0 picks a free port.
    pub bind: SocketAddr,
    /// What to serve.
    pub population: PopulationSpec,
    /// Faults to inject.
    pub faults: FaultConfig,
}

#[derive(Default)]
struct Counters {
    total: AtomicU64,
    searches: AtomicU64,
    fetches: AtomicU64,
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
    /// The FHIR base, `http://127.0.0.1:PORT/fhir/` (ends in `/`).
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

/// What the conformance suite sees of a running R4 simulator.
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

/// What a FHIR R4 server built on this one serves: records found by NHS number, read whole by
/// the source's local id, and the shared resources they point at. The plain R4 exchange serves
/// the population's GP records or a directory of bundles; other dialects that speak FHIR R4
/// REST (a council's social care system) implement this and reuse the whole server, its
/// interactions and its faults, through [`serve`].
pub trait Records: Send + Sync + 'static {
    /// The Patient resource of the record held for this NHS number.
    fn find(&self, nhs: &NhsNumber) -> Option<Value>;

    /// A resource of `ty` with `id` from any record, the Patient excepted.
    fn shared(&self, ty: &str, id: &str) -> Option<Value>;

    /// Every resource of the record with this local patient id, the Patient first.
    fn everything(&self, local_id: &str) -> Option<Arc<Vec<Value>>>;

    /// The types `GET /{type}?patient=` answers (and the CapabilityStatement lists).
    fn searchable(&self) -> &'static [&'static str] {
        &SEARCHABLE
    }

    /// `CapabilityStatement.software.name`.
    fn software(&self) -> &'static str {
        "Tideway FHIR R4 borough simulator"
    }

    /// A valid entry resource about a patient other than `id`, as a source mixing up records
    /// would send (the `wrong patient` fault): by default a Condition.
    fn stray(&self, id: &str) -> Value {
        json!({
            "resourceType": "Condition",
            "id": format!("{id}-stray"),
            "code": {"text": "Entry filed against the wrong patient"},
            "subject": {"reference": format!("Patient/{id}-someone-else")}
        })
    }
}

enum Data {
    Synthetic { population: Population, borough: usize },
    Dir(Arc<FromDir>),
}

impl Records for Data {
    fn find(&self, nhs: &NhsNumber) -> Option<Value> {
        match self {
            Self::Synthetic { population, borough } => {
                let index = population.patient_index(nhs)?;
                Some(render::patient(&population.record(*borough, index)?))
            }
            Self::Dir(dir) => dir.by_nhs_number(nhs)?.resources.first().cloned(),
        }
    }

    fn shared(&self, ty: &str, id: &str) -> Option<Value> {
        let is = |r: &&Value| r["resourceType"] == ty && r["id"] == id && ty != "Patient";
        match self {
            Self::Synthetic { population, borough } => population
                .patients_in_borough(*borough)
                .into_iter()
                .find_map(|i| render::resources(&population.record(*borough, i)?).iter().find(is).cloned()),
            Self::Dir(dir) => dir.patients().iter().find_map(|p| p.resources.iter().find(is).cloned()),
        }
    }

    fn everything(&self, local_id: &str) -> Option<Arc<Vec<Value>>> {
        match self {
            Self::Synthetic { population, borough } => {
                let index = population.index_from_local_id(*borough, local_id)?;
                Some(Arc::new(render::resources(&population.record(*borough, index)?)))
            }
            Self::Dir(dir) => Some(dir.by_local_id(local_id)?.resources.clone()),
        }
    }
}

struct State {
    data: Box<dyn Records>,
    base: url::Url,
    faults: FaultConfig,
    counters: Arc<Counters>,
}

/// Starts a simulator. The port is bound before this returns, so port 0 works.
pub async fn start(cfg: SimulatorConfig) -> std::io::Result<RunningSimulator> {
    let data = match cfg.population {
        PopulationSpec::Synthetic { seed, borough_index, borough_count, patients_per_borough } => {
            let population = Population::new(seed, borough_count, patients_per_borough);
            if borough_index >= population.borough_count() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "borough_index out of range",
                ));
            }
            Data::Synthetic { population, borough: borough_index }
        }
        PopulationSpec::FromDir(dir) => {
            let loaded = tokio::task::spawn_blocking(move || FromDir::load(&dir))
                .await
                .map_err(std::io::Error::other)?
                .map_err(std::io::Error::other)?;
            Data::Dir(Arc::new(loaded))
        }
        PopulationSpec::Loaded(dir) => Data::Dir(dir),
    };
    serve(cfg.bind, cfg.faults, Box::new(data)).await
}

/// Serves `data` as a FHIR R4 exchange on `bind`, with `faults` injected: the interactions,
/// fault handling and counters every R4-speaking simulator shares.
pub async fn serve(
    bind: SocketAddr,
    faults: FaultConfig,
    data: Box<dyn Records>,
) -> std::io::Result<RunningSimulator> {
    let listener = TcpListener::bind(bind)?;
    let port = listener.local_addr()?.port();
    let base = url::Url::parse(&format!("http://127.0.0.1:{port}/fhir/")).map_err(std::io::Error::other)?;
    let counters = Arc::new(Counters::default());
    let state = web::Data::new(State { data, base: base.clone(), faults, counters: counters.clone() });

    let server = HttpServer::new(move || {
        let state = state.clone();
        let mw_state = state.clone();
        App::new()
            .app_data(state)
            .wrap_fn(move |req, srv| {
                let st = mw_state.clone();
                let n = st.counters.total.fetch_add(1, Ordering::Relaxed);
                let path = req.path();
                if path.ends_with("/$everything") {
                    st.counters.fetches.fetch_add(1, Ordering::Relaxed);
                } else if path.ends_with("/Patient/_search")
                    || (path.ends_with("/Patient") && req.query_string().contains("identifier"))
                {
                    st.counters.searches.fetch_add(1, Ordering::Relaxed);
                }
                let fault = st.faults.draw(n);
                let latency = Duration::from_millis(st.faults.latency_ms);
                let (call, held) = if fault.replaces_answer() {
                    (None, Some(req))
                } else {
                    // Content faults are applied by the record handler.
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
                            let resp = fault_response(fault, req.path()).await;
                            Ok(req.into_response(resp).map_into_right_body())
                        }
                        (None, None) => Err(actix_web::error::ErrorInternalServerError("unreachable")),
                    }
                }
            })
            .route("/fhir/metadata", web::get().to(metadata))
            .route("/fhir/Patient/_search", web::post().to(search_post))
            .route("/fhir/Patient", web::get().to(search_get))
            .route("/fhir/Patient/{id}", web::get().to(read_patient))
            .route("/fhir/Patient/{id}/{op}", web::get().to(everything))
            .route("/fhir/{type}/{id}", web::get().to(read_shared))
            .route("/fhir/{type}", web::get().to(type_search))
            .default_service(web::to(not_found))
    })
    .workers(1)
    .shutdown_timeout(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(RunningSimulator { base_url: base, port, counters, handle, task })
}

/// Where redirects and foreign links point: an origin that is never this simulator.
const ELSEWHERE: &str = "http://elsewhere.invalid";

async fn fault_response(fault: Fault, path: &str) -> HttpResponse {
    match fault {
        Fault::Fail => outcome(StatusCode::INTERNAL_SERVER_ERROR, IssueType::Exception, "simulated failure"),
        Fault::Hang => {
            // Awaiting keeps the worker free for other requests; the client's deadline ends it.
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
            outcome(StatusCode::GATEWAY_TIMEOUT, IssueType::Timeout, "simulated hang")
        }
        Fault::Malformed => HttpResponse::Ok()
            .content_type(FHIR_JSON)
            .body(r#"{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceTy"#),
        Fault::Oversized => {
            const TOTAL: usize = 64 * 1024 * 1024;
            let filler = Bytes::from(format!(
                r#"{{"resource":{{"resourceType":"Basic","code":{{"text":"{}"}}}}}},"#,
                "x".repeat(64 * 1024 - 60)
            ));
            let chunks = TOTAL / filler.len();
            let head = Bytes::from_static(br#"{"resourceType":"Bundle","type":"searchset","entry":["#);
            let tail =
                Bytes::from_static(br#"{"resource":{"resourceType":"Basic","code":{"text":"end"}}}]}"#);
            let body = std::iter::once(head)
                .chain(std::iter::repeat_n(filler, chunks))
                .chain(std::iter::once(tail))
                .map(Ok::<_, std::convert::Infallible>);
            HttpResponse::Ok().content_type(FHIR_JSON).streaming(futures::stream::iter(body))
        }
        Fault::Redirect => {
            HttpResponse::Found().insert_header(("Location", format!("{ELSEWHERE}{path}"))).finish()
        }
        Fault::None | Fault::ForeignLink | Fault::WrongPatient | Fault::EmptyRecord => {
            outcome(StatusCode::INTERNAL_SERVER_ERROR, IssueType::Exception, "no fault")
        }
    }
}

fn fhir(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status).content_type(FHIR_JSON).body(body.to_string())
}

fn outcome(status: StatusCode, code: IssueType, text: &str) -> HttpResponse {
    fhir(status, &OperationOutcome::new(IssueSeverity::Error, code, text).to_json())
}

async fn not_found() -> HttpResponse {
    outcome(StatusCode::NOT_FOUND, IssueType::NotSupported, "unknown interaction")
}

async fn metadata(state: web::Data<State>) -> HttpResponse {
    let resources: Vec<Value> = std::iter::once(&"Patient")
        .chain(state.data.searchable().iter())
        .map(|t| {
            let mut r = json!({"type": t, "interaction": [{"code": "search-type"}]});
            if *t == "Patient" {
                r["interaction"] = json!([{"code": "read"}, {"code": "search-type"}]);
                r["operation"] = json!([{"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]);
            }
            r
        })
        .collect();
    fhir(
        StatusCode::OK,
        &json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2024-01-01",
            "kind": "instance",
            "software": {"name": state.data.software()},
            "implementation": {"description": "Simulated borough exchange", "url": state.base.as_str()},
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json"],
            "rest": [{"mode": "server", "resource": resources}]
        }),
    )
}

/// Finds the NHS number in `identifier=system|value` pairs.
fn nhs_from_params(pairs: url::form_urlencoded::Parse<'_>) -> Result<NhsNumber, Box<HttpResponse>> {
    for (key, value) in pairs {
        if key == "identifier" {
            let Some((system, digits)) = value.split_once('|') else {
                break;
            };
            if system != systems::NHS_NUMBER {
                break;
            }
            return NhsNumber::parse(digits).map_err(|_| {
                Box::new(outcome(
                    StatusCode::BAD_REQUEST,
                    IssueType::Invalid,
                    "identifier is not a valid NHS number",
                ))
            });
        }
    }
    Err(Box::new(outcome(
        StatusCode::BAD_REQUEST,
        IssueType::Invalid,
        "search needs identifier=https://fhir.nhs.uk/Id/nhs-number|<number>",
    )))
}

fn search_answer(state: &State, nhs: &NhsNumber) -> HttpResponse {
    let entries: Vec<Value> = state
        .data
        .find(nhs)
        .into_iter()
        .map(|p| {
            let full = format!("{}Patient/{}", state.base, p["id"].as_str().unwrap_or_default());
            json!({"fullUrl": full, "resource": p, "search": {"mode": "match"}})
        })
        .collect();
    fhir(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
    )
}

async fn search_post(state: web::Data<State>, body: Bytes) -> HttpResponse {
    match nhs_from_params(url::form_urlencoded::parse(&body)) {
        Ok(nhs) => search_answer(&state, &nhs),
        Err(resp) => *resp,
    }
}

async fn search_get(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    match nhs_from_params(url::form_urlencoded::parse(req.query_string().as_bytes())) {
        Ok(nhs) => search_answer(&state, &nhs),
        Err(resp) => *resp,
    }
}

/// `GET /fhir/{type}/{id}`: a resource the records point at (the practice Organization, a
/// Practitioner...), found in whichever record carries it.
async fn read_shared(state: web::Data<State>, path: web::Path<(String, String)>) -> HttpResponse {
    let (ty, id) = path.into_inner();
    match state.data.shared(&ty, &id) {
        Some(r) => fhir(StatusCode::OK, &r),
        None => outcome(StatusCode::NOT_FOUND, IssueType::NotFound, "no such resource"),
    }
}

async fn read_patient(state: web::Data<State>, path: web::Path<String>) -> HttpResponse {
    match state.data.everything(&path).and_then(|all| all.first().cloned()) {
        Some(p) => fhir(StatusCode::OK, &p),
        None => outcome(StatusCode::NOT_FOUND, IssueType::NotFound, "no such patient"),
    }
}

#[derive(Deserialize)]
struct PageParams {
    #[serde(rename = "_count")]
    count: Option<usize>,
    #[serde(rename = "_offset")]
    offset: Option<usize>,
}

async fn everything(
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> HttpResponse {
    let (id, op) = path.into_inner();
    if op != "$everything" {
        return not_found().await;
    }
    let params: PageParams = match serde_urlencoded_query(&req) {
        Some(p) => p,
        None => {
            return outcome(StatusCode::BAD_REQUEST, IssueType::Invalid, "bad paging parameters");
        }
    };
    let Some(mut all) = state.data.everything(&id) else {
        return outcome(StatusCode::NOT_FOUND, IssueType::NotFound, "no such patient");
    };
    let fault = req.extensions().get::<Fault>().copied().unwrap_or(Fault::None);
    if fault == Fault::EmptyRecord {
        all = Arc::new(all.iter().take(1).cloned().collect());
    }
    let count = params.count.unwrap_or(100).clamp(1, 1000);
    let offset = params.offset.unwrap_or(0);
    let mut page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(count)
        .map(|r| {
            let ty = r["resourceType"].as_str().unwrap_or_default();
            let rid = r["id"].as_str().unwrap_or_default();
            json!({"fullUrl": format!("{}{ty}/{rid}", state.base), "resource": r, "search": {"mode": "match"}})
        })
        .collect();
    if fault == Fault::WrongPatient {
        let stray = state.data.stray(&id);
        let full = format!(
            "{}{}/{}",
            state.base,
            stray["resourceType"].as_str().unwrap_or_default(),
            stray["id"].as_str().unwrap_or_default()
        );
        page.push(json!({"fullUrl": full, "resource": stray, "search": {"mode": "match"}}));
    }
    let self_url = format!("{}Patient/{id}/$everything?_count={count}&_offset={offset}", state.base);
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if offset + count < all.len() || fault == Fault::ForeignLink {
        let base =
            if fault == Fault::ForeignLink { format!("{ELSEWHERE}/fhir/") } else { state.base.to_string() };
        let next = format!("{base}Patient/{id}/$everything?_count={count}&_offset={}", offset + count);
        links.push(json!({"relation": "next", "url": next}));
    }
    fhir(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "searchset", "total": all.len(), "link": links, "entry": page}),
    )
}

fn serde_urlencoded_query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Option<T> {
    web::Query::<T>::from_query(req.query_string()).ok().map(web::Query::into_inner)
}

const SEARCHABLE: [&str; 8] = tideway_profiles::PATIENT_SEARCH_TYPES;

async fn type_search(state: web::Data<State>, path: web::Path<String>, req: HttpRequest) -> HttpResponse {
    let ty = path.into_inner();
    if !state.data.searchable().contains(&ty.as_str()) {
        return not_found().await;
    }
    let patient = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "patient")
        .map(|(_, v)| v.trim_start_matches("Patient/").to_owned());
    let Some(patient) = patient else {
        return outcome(StatusCode::BAD_REQUEST, IssueType::Invalid, "search needs patient=<id>");
    };
    let entries: Vec<Value> = state
        .data
        .everything(&patient)
        .map(|all| {
            all.iter()
                .filter(|r| r["resourceType"] == ty.as_str())
                .map(|r| {
                    let full = format!("{}{ty}/{}", state.base, r["id"].as_str().unwrap_or_default());
                    json!({"fullUrl": full, "resource": r, "search": {"mode": "match"}})
                })
                .collect()
        })
        .unwrap_or_default();
    fhir(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
    )
}
