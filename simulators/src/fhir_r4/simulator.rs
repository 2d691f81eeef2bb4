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

use actix_web::dev::ServiceRequest;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tideway_profiles::{IssueSeverity, IssueType, NhsNumber, OperationOutcome, systems};

use super::from_dir::FromDir;
use super::render;
pub use crate::SimulatorHits;
use crate::faults::Fault;
pub use crate::faults::FaultConfig;
use crate::population::Population;
pub use crate::server::RunningSimulator;
use crate::server::{self, ELSEWHERE, FaultAnswers, Hit, Serve};

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

    /// The Patient resources of every record held for someone born on `birth_date`
    /// (`YYYY-MM-DD`), for the demographic search; none by default.
    fn born_on(&self, _birth_date: &str) -> Vec<Value> {
        Vec::new()
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

    fn born_on(&self, birth_date: &str) -> Vec<Value> {
        let patients: Vec<Value> = match self {
            Self::Synthetic { population, borough } => population
                .patients_in_borough(*borough)
                .into_iter()
                .filter_map(|i| Some(render::patient(&population.record(*borough, i)?)))
                .collect(),
            Self::Dir(dir) => dir.patients().iter().filter_map(|p| p.resources.first().cloned()).collect(),
        };
        patients.into_iter().filter(|p| p["birthDate"] == birth_date).collect()
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
}

/// Starts a simulator. The port is bound before this returns, so port 0 works.
pub async fn start(cfg: SimulatorConfig) -> std::io::Result<RunningSimulator> {
    serve(cfg.bind, cfg.faults, data_of(cfg.population).await?).await
}

/// [`start`] over HTTPS with `tls` (which may demand a client certificate).
pub async fn start_tls(
    cfg: SimulatorConfig,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<RunningSimulator> {
    serve_with(cfg.bind, cfg.faults, data_of(cfg.population).await?, Some(tls)).await
}

/// The records `population` describes.
async fn data_of(population: PopulationSpec) -> std::io::Result<Box<dyn Records>> {
    let data = match population {
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
    Ok(Box::new(data))
}

/// Serves `data` as a FHIR R4 exchange on `bind`, with `faults` injected: the interactions and
/// fault answers every R4-speaking simulator shares.
pub async fn serve(
    bind: SocketAddr,
    faults: FaultConfig,
    data: Box<dyn Records>,
) -> std::io::Result<RunningSimulator> {
    serve_with(bind, faults, data, None).await
}

async fn serve_with(
    bind: SocketAddr,
    faults: FaultConfig,
    data: Box<dyn Records>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<RunningSimulator> {
    let listener = TcpListener::bind(bind)?;
    let port = listener.local_addr()?.port();
    let base = url::Url::parse(&format!("http://127.0.0.1:{port}/fhir/")).map_err(std::io::Error::other)?;
    let state = web::Data::new(State { data, base });
    server::serve(Serve {
        listener,
        base_path: "/fhir/",
        faults,
        classify: Arc::new(classify),
        answers: Arc::new(R4Faults),
        routes: move |app: &mut web::ServiceConfig| {
            app.app_data(state.clone())
                .route("/fhir/metadata", web::get().to(metadata))
                .route("/fhir/Patient/_search", web::post().to(search_post))
                .route("/fhir/Patient", web::get().to(search_get))
                .route("/fhir/Patient/{id}", web::get().to(read_patient))
                .route("/fhir/Patient/{id}/{op}", web::get().to(everything))
                .route("/fhir/{type}/{id}", web::get().to(read_shared))
                .route("/fhir/{type}", web::get().to(type_search))
                .default_service(web::to(not_found));
        },
        tls,
    })
}

fn classify(req: &ServiceRequest) -> Hit {
    let path = req.path();
    if path.ends_with("/$everything") {
        Hit::Fetch
    } else if path.ends_with("/Patient/_search")
        || (path.ends_with("/Patient") && req.query_string().contains("identifier"))
    {
        Hit::Search
    } else {
        Hit::Other
    }
}

/// The R4 dialect's answers for whole-answer faults.
struct R4Faults;

#[async_trait]
impl FaultAnswers for R4Faults {
    async fn answer(&self, fault: Fault, path: &str) -> HttpResponse {
        fault_response(fault, path).await
    }
}

async fn fault_response(fault: Fault, path: &str) -> HttpResponse {
    match fault {
        Fault::Fail => outcome(StatusCode::INTERNAL_SERVER_ERROR, IssueType::Exception, "simulated failure"),
        Fault::Hang => {
            server::hang().await;
            outcome(StatusCode::GATEWAY_TIMEOUT, IssueType::Timeout, "simulated hang")
        }
        Fault::Malformed => HttpResponse::Ok()
            .content_type(FHIR_JSON)
            .body(r#"{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceTy"#),
        Fault::Oversized => server::oversized(
            FHIR_JSON,
            Bytes::from_static(br#"{"resourceType":"Bundle","type":"searchset","entry":["#),
            Bytes::from(format!(
                r#"{{"resource":{{"resourceType":"Basic","code":{{"text":"{}"}}}}}},"#,
                "x".repeat(64 * 1024 - 60)
            )),
            Bytes::from_static(br#"{"resource":{"resourceType":"Basic","code":{"text":"end"}}}]}"#),
        ),
        Fault::Redirect => server::redirect(path),
        Fault::ExternalEntity => HttpResponse::Ok()
            .content_type("application/fhir+xml")
            .body(server::xxe_document(&format!("{ELSEWHERE}/secret"))),
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

/// A name compared as a FHIR string search compares it, roughly: letters and digits only,
/// case-insensitively, the value starting with what was asked.
fn name_starts_with(name: &str, asked: &str) -> bool {
    let plain =
        |s: &str| s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>();
    plain(name).starts_with(&plain(asked))
}

/// The demographic search: `birthdate` (required, a whole date), `family` and `gender`
/// narrowing it, at most `_count` Patients.
fn demographic_search(state: &State, pairs: &[(String, String)]) -> HttpResponse {
    let one = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let Some(birth_date) = one("birthdate").map(|d| d.strip_prefix("eq").unwrap_or(d)) else {
        return outcome(
            StatusCode::BAD_REQUEST,
            IssueType::Invalid,
            "search needs identifier=https://fhir.nhs.uk/Id/nhs-number|<number>, or birthdate with family",
        );
    };
    let count = one("_count").and_then(|c| c.parse::<usize>().ok()).unwrap_or(20);
    let found: Vec<Value> = state
        .data
        .born_on(birth_date)
        .into_iter()
        .filter(|p| {
            one("family").is_none_or(|f| {
                p["name"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|n| name_starts_with(n["family"].as_str().unwrap_or(""), f))
            })
        })
        .filter(|p| one("gender").is_none_or(|g| p["gender"] == g))
        .take(count)
        .collect();
    searchset(state, found)
}

/// A searchset of matching Patients.
fn searchset(state: &State, patients: Vec<Value>) -> HttpResponse {
    let entries: Vec<Value> = patients
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

fn search_answer(state: &State, nhs: &NhsNumber) -> HttpResponse {
    searchset(state, state.data.find(nhs).into_iter().collect())
}

async fn search_post(state: web::Data<State>, body: Bytes) -> HttpResponse {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    if !pairs.iter().any(|(k, _)| k == "identifier") {
        return demographic_search(&state, &pairs);
    }
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
    let fault = server::fault_of(&req);
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

const SEARCHABLE: [&str; tideway_profiles::PATIENT_SEARCH_TYPES.len()] =
    tideway_profiles::PATIENT_SEARCH_TYPES;

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
