//! One simulated server for every GP system that serves record extracts (SystmOne-, EMIS- and
//! Vision-style): a patient search by NHS number in the body, a record extract by the system's
//! own id, and the practice by its id. A [`Render`] says only how its system's paths and
//! documents look; the population, the faults and the counting are the same for all.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::ServiceRequest;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use async_trait::async_trait;
use bytes::Bytes;
use tideway_profiles::NhsNumber;

use crate::faults::{Fault, FaultConfig};
use crate::population::{PatientRecord, Population};
use crate::server::{self, FaultAnswers, Hit, RunningSimulator, Serve};

/// Where a GP system's three interactions live, under its base path.
#[derive(Debug, Clone, Copy)]
pub struct Paths {
    /// The base path, starting and ending in `/` (e.g. `/systmone/`).
    pub base: &'static str,
    /// The patient search (POST), relative to the base.
    pub search: &'static str,
    /// The record extract: `{base}{prefix}/{id}/{suffix}`.
    pub record: (&'static str, &'static str),
    /// The practice: `{base}{prefix}/{id}`.
    pub practice: &'static str,
}

/// One GP system's documents, rendered from the population's facts.
pub trait Render: Send + Sync + 'static {
    /// Its paths.
    fn paths(&self) -> Paths;
    /// The media type of its documents.
    fn media_type(&self) -> &'static str;
    /// The NHS number a search request asks for; `None` when the request is not one.
    fn search_request(&self, body: &[u8]) -> Option<NhsNumber>;
    /// The answer to a search: the record's patient, or nobody.
    fn search_answer(&self, found: Option<&PatientRecord>) -> Vec<u8>;
    /// The record extract; `stray` entries (another patient's) are mixed in when given.
    fn record(&self, record: &PatientRecord, stray: Option<&PatientRecord>) -> Vec<u8>;
    /// The practice of `record`'s patient.
    fn practice(&self, record: &PatientRecord) -> Vec<u8>;
    /// The system's error document.
    fn error(&self, status: StatusCode, text: &str) -> Vec<u8>;
    /// The start of a record, cut off mid-element.
    fn truncated(&self) -> Vec<u8>;
    /// Head, repeated filler and tail of a 64 MiB answer.
    fn oversized(&self) -> (Bytes, Bytes, Bytes);
    /// The record extract saying it continues at another origin (the foreign-link fault), for
    /// formats that can say so; `None` (the default) for those without links.
    fn continued_elsewhere(&self, _record: &PatientRecord) -> Option<Vec<u8>> {
        None
    }
}

struct State<R> {
    render: Arc<R>,
    population: Population,
    borough: usize,
}

impl<R: Render> State<R> {
    fn by_local_id(&self, id: &str) -> Option<PatientRecord> {
        let index = self.population.index_from_local_id(self.borough, id)?;
        self.population.record(self.borough, index)
    }

    /// Another patient of the borough, for the wrong-patient fault.
    fn someone_else(&self, than: &PatientRecord) -> Option<PatientRecord> {
        self.population
            .patients_in_borough(self.borough)
            .into_iter()
            .filter_map(|i| self.population.record(self.borough, i))
            .find(|r| r.local_id != than.local_id && !r.problems.is_empty())
    }

    fn answer(&self, status: StatusCode, body: Vec<u8>) -> HttpResponse {
        HttpResponse::build(status).content_type(self.render.media_type()).body(body)
    }

    fn error(&self, status: StatusCode, text: &str) -> HttpResponse {
        self.answer(status, self.render.error(status, text))
    }
}

/// The record with nothing but the patient: the empty-record fault.
fn emptied(record: &PatientRecord) -> PatientRecord {
    PatientRecord {
        encounters: Vec::new(),
        problems: Vec::new(),
        medications: Vec::new(),
        prescriptions: Vec::new(),
        allergies: Vec::new(),
        observations: Vec::new(),
        immunisations: Vec::new(),
        procedures: Vec::new(),
        referrals: Vec::new(),
        ..record.clone()
    }
}

async fn search<R: Render>(state: web::Data<State<R>>, body: Bytes) -> HttpResponse {
    let Some(nhs) = state.render.search_request(&body) else {
        return state.error(StatusCode::BAD_REQUEST, "the search names no valid NHS number");
    };
    let found = state.population.patient_index(&nhs).and_then(|i| state.population.record(state.borough, i));
    state.answer(StatusCode::OK, state.render.search_answer(found.as_ref()))
}

async fn record<R: Render>(
    state: web::Data<State<R>>,
    path: web::Path<String>,
    req: HttpRequest,
) -> HttpResponse {
    let Some(record) = state.by_local_id(&path) else {
        return state.error(StatusCode::NOT_FOUND, "no such patient");
    };
    let body = match server::fault_of(&req) {
        Fault::EmptyRecord => state.render.record(&emptied(&record), None),
        Fault::WrongPatient => state.render.record(&record, state.someone_else(&record).as_ref()),
        Fault::ForeignLink => {
            state.render.continued_elsewhere(&record).unwrap_or_else(|| state.render.record(&record, None))
        }
        _ => state.render.record(&record, None),
    };
    state.answer(StatusCode::OK, body)
}

async fn practice<R: Render>(state: web::Data<State<R>>, path: web::Path<String>) -> HttpResponse {
    let held = state
        .population
        .patients_in_borough(state.borough)
        .into_iter()
        .filter_map(|i| state.population.record(state.borough, i))
        .find(|r| r.demographics.practice.ods_code == *path);
    match held {
        Some(r) => state.answer(StatusCode::OK, state.render.practice(&r)),
        None => state.error(StatusCode::NOT_FOUND, "no such unit"),
    }
}

struct Answers<R> {
    /// The state the handlers serve, to render the record a faulted fetch asked for.
    state: web::Data<State<R>>,
    /// Where the external entity points: this simulator, so a reader resolving it would show up
    /// in the request count.
    entity_url: String,
}

impl<R: Render> Answers<R> {
    /// The record `path` asks for (`{base}{prefix}/{id}/{suffix}`), if it is a held record.
    fn record_at(&self, path: &str) -> Option<PatientRecord> {
        let paths = self.state.render.paths();
        let id = path
            .strip_prefix(paths.base)?
            .strip_prefix(paths.record.0)?
            .strip_prefix('/')?
            .strip_suffix(paths.record.1)?
            .strip_suffix('/')?;
        self.state.by_local_id(id)
    }
}

#[async_trait]
impl<R: Render> FaultAnswers for Answers<R> {
    async fn answer(&self, fault: Fault, path: &str) -> HttpResponse {
        let render = &self.state.render;
        let media = render.media_type();
        let body =
            |status: StatusCode, bytes: Vec<u8>| HttpResponse::build(status).content_type(media).body(bytes);
        match fault {
            Fault::Hang => {
                server::hang().await;
                body(StatusCode::GATEWAY_TIMEOUT, render.error(StatusCode::GATEWAY_TIMEOUT, "simulated hang"))
            }
            Fault::Malformed => body(StatusCode::OK, render.truncated()),
            Fault::Oversized => {
                let (head, filler, tail) = render.oversized();
                server::oversized(media, head, filler, tail)
            }
            Fault::Redirect => server::redirect(path),
            // The very record asked for, with a DOCTYPE before it: a reader that ignored the
            // DOCTYPE would read the record, so only refusing it makes the fetch fail.
            Fault::ExternalEntity => match self.record_at(path) {
                Some(record) => body(
                    StatusCode::OK,
                    server::with_doctype(&render.record(&record, None), &self.entity_url),
                ),
                None => body(StatusCode::OK, server::xxe_document(&self.entity_url).into_bytes()),
            },
            Fault::Fail | Fault::None | Fault::ForeignLink | Fault::WrongPatient | Fault::EmptyRecord => {
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    render.error(StatusCode::INTERNAL_SERVER_ERROR, "simulated failure"),
                )
            }
        }
    }
}

/// Starts a simulated GP system playing `borough` of `population`. The port is bound before
/// this returns, so port 0 works.
pub fn start<R: Render>(
    bind: SocketAddr,
    render: R,
    population: Population,
    borough: usize,
    faults: FaultConfig,
) -> std::io::Result<RunningSimulator> {
    if borough >= population.borough_count() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "borough out of range"));
    }
    let listener = TcpListener::bind(bind)?;
    let port = listener.local_addr()?.port();
    let paths = render.paths();
    let render = Arc::new(render);
    let state = web::Data::new(State { render, population, borough });
    let entity_url = format!("http://127.0.0.1:{port}{}entity", paths.base);
    let base = paths.base;
    let record_suffix = format!("/{}", paths.record.1);
    let (search_path, record_path, practice_path) = (
        format!("{base}{}", paths.search),
        format!("{base}{}/{{id}}/{}", paths.record.0, paths.record.1),
        format!("{base}{}/{{id}}", paths.practice),
    );
    server::serve(Serve {
        listener,
        base_path: base,
        faults,
        classify: Arc::new(move |req: &ServiceRequest| match req.method().as_str() {
            "POST" => Hit::Search,
            "GET" if req.path().ends_with(&record_suffix) => Hit::Fetch,
            _ => Hit::Other,
        }),
        answers: Arc::new(Answers { state: state.clone(), entity_url }),
        routes: move |app: &mut web::ServiceConfig| {
            let missing = state.clone();
            app.app_data(state.clone())
                .route(&search_path, web::post().to(search::<R>))
                .route(&record_path, web::get().to(record::<R>))
                .route(&practice_path, web::get().to(practice::<R>))
                .default_service(web::to(move || {
                    let s = missing.clone();
                    async move { s.error(StatusCode::NOT_FOUND, "unknown interaction") }
                }));
        },
        tls: None,
    })
}

/// What a GP extract hands on besides the Patient: one resource per fact with the row's
/// `lastUpdated`, and the practice, of which the extracts say no `lastUpdated`.
pub fn expected_entries(record: &PatientRecord) -> Vec<(&'static str, String, Option<String>)> {
    let mut out = crate::conformance::expected_entries(record);
    for entry in out.iter_mut().filter(|(ty, _, _)| *ty == "Organization") {
        entry.2 = None;
    }
    out
}

/// A GP system under the conformance suite: the kind its adapter is registered as, and the
/// renderer its simulator serves, playing borough [`crate::conformance::BOROUGH`] of
/// [`crate::conformance::population()`].
#[derive(Debug, Clone, Copy)]
pub struct Target<R> {
    /// The kind.
    pub kind: tideway_adapters::SystemKind,
    /// The renderer.
    pub render: R,
    /// Whether its documents are markup, so the external-entity case is sent.
    pub markup: bool,
    /// What its documents can say of a next page ([`Render::continued_elsewhere`]).
    pub next_links: crate::conformance::NextLinks,
}

#[async_trait]
impl<R: Render + Clone> crate::conformance::Target for Target<R> {
    fn kind(&self) -> tideway_adapters::SystemKind {
        self.kind
    }

    async fn start(&self, faults: FaultConfig) -> std::io::Result<Box<dyn crate::conformance::Simulated>> {
        let bind = SocketAddr::from(([127, 0, 0, 1], 0));
        let population = crate::conformance::population();
        Ok(Box::new(start(bind, self.render.clone(), population, crate::conformance::BOROUGH, faults)?))
    }

    fn external_entity_faults(&self) -> Option<FaultConfig> {
        self.markup.then(|| FaultConfig { external_entity_rate: 1.0, ..FaultConfig::default() })
    }

    fn expected_entries(&self, record: &PatientRecord) -> Vec<(&'static str, String, Option<String>)> {
        expected_entries(record)
    }

    /// A GP extract answers whole: `Refused` for a format that can say it continues elsewhere
    /// (EMIS's `links.next`), `Absent` for the XML extracts, which have no links.
    fn next_links(&self) -> crate::conformance::NextLinks {
        self.next_links
    }
}

/// What the GP dialects' tests share: their golden fixtures (the adapters' input files, written
/// from the simulator's rendering) and the check that a dialect tells the population's story.
#[cfg(test)]
#[allow(clippy::expect_used, reason = "test helpers fail by panicking")]
pub(crate) mod testing {
    use std::path::PathBuf;

    use serde_json::Value;
    use tideway_adapters::fhir_r4::mapping::Normaliser;
    use tideway_adapters::gp_record::{model::Extract, r4};
    use tideway_adapters::{SourceId, SourceRecord};

    use crate::conformance::{self, BOROUGH};
    use crate::population::{PatientRecord, Scenario};

    /// The golden fixtures of a dialect: its rendering of the conformance population's first
    /// Sensitive and PodiatryDiabetic patients (7 and 3, at home in borough 0), as
    /// `{dialect}/sensitive.{ext}` and `{dialect}/podiatry-diabetic.{ext}`.
    pub(crate) fn scenario_fixtures(dialect: &str, ext: &str, render: impl Fn(&PatientRecord) -> String) {
        for (index, scenario, name) in
            [(7, Scenario::Sensitive, "sensitive"), (3, Scenario::PodiatryDiabetic, "podiatry-diabetic")]
        {
            assert_eq!(Scenario::of(index), Some(scenario));
            let record = conformance::population().record(BOROUGH, index).expect("held");
            fixture(dialect, &format!("{name}.{ext}"), &render(&record));
        }
    }

    /// Every record of the conformance borough, read by the dialect (`read`: render and parse)
    /// and normalised, tells the population's story.
    pub(crate) fn borough_tells_the_population_story(read: impl Fn(&PatientRecord) -> Extract) {
        let pop = conformance::population();
        for index in pop.patients_in_borough(BOROUGH) {
            let record = pop.record(BOROUGH, index).expect("held");
            let out = normalise(&record, read(&record));
            assert_tells_the_population_story(&record, &out);
        }
    }

    /// Compares `rendered` with the adapters' committed fixture `{dialect}/{name}`, or writes it
    /// under `UPDATE_GOLDEN=1`: the fixture the adapter's golden test reads is what the simulator
    /// serves.
    fn fixture(dialect: &str, name: &str, rendered: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../adapters/tests/golden").join(dialect);
        let path = dir.join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&dir).expect("the golden folder");
            std::fs::write(&path, rendered).expect("the fixture is written");
        }
        let committed = std::fs::read_to_string(&path).expect("the fixture is committed");
        assert!(
            committed == rendered,
            "{} differs from the rendering (UPDATE_GOLDEN=1 rewrites it)",
            path.display()
        );
    }

    /// Normalises `extract` as the adapter would for `record`'s patient, checking that every
    /// entry is accounted for.
    pub(crate) fn normalise(record: &PatientRecord, extract: Extract) -> SourceRecord {
        let source = SourceId::parse("camden").expect("id");
        let base = url::Url::parse("http://camden.example/gp/").expect("url");
        let n = Normaliser {
            source: &source,
            base_url: &base,
            patient_local_id: &record.local_id,
            gateway_patient_id: "gw-0001",
        };
        let entries =
            1 + usize::from(extract.practice.is_some()) + extract.entries.len() + extract.unreadable.len();
        let mut out = SourceRecord::default();
        r4::normalise(&n, extract, &mut out);
        assert_eq!(out.resources.len() + out.rejected.len(), entries, "{}", record.local_id);
        out
    }

    /// Every clinical fact of `record` came through under its id, carrying the population's own
    /// SNOMED CT or dm+d code (given by the source or added by a map), and nothing was rejected.
    fn assert_tells_the_population_story(record: &PatientRecord, out: &SourceRecord) {
        assert!(out.rejected.is_empty(), "{}: {:?}", record.local_id, out.rejected);
        let mut facts: Vec<(&str, &str)> = Vec::new();
        facts.extend(record.encounters.iter().map(|e| (e.id.as_str(), e.kind.code)));
        facts.extend(record.problems.iter().map(|e| (e.id.as_str(), e.snomed.code)));
        facts.extend(record.medications.iter().map(|e| (e.id.as_str(), e.medicine.code)));
        facts.extend(record.prescriptions.iter().map(|e| (e.id.as_str(), e.medicine.code)));
        facts.extend(record.allergies.iter().map(|e| (e.id.as_str(), e.code.code)));
        facts.extend(record.observations.iter().map(|e| (e.id.as_str(), e.code.code)));
        facts.extend(record.immunisations.iter().map(|e| (e.id.as_str(), e.vaccine.code)));
        facts.extend(record.procedures.iter().map(|e| (e.id.as_str(), e.code.code)));
        facts.extend(record.referrals.iter().map(|e| (e.id.as_str(), e.reason.code)));
        for (id, code) in facts {
            let gateway_id = format!("camden.{id}");
            let r =
                out.resources.iter().find(|r| r.id == gateway_id).unwrap_or_else(|| panic!("{id} missing"));
            assert!(
                r.facts.codings.iter().any(|c| c.code == code),
                "{id} lost its concept {code}: {:?}",
                serde_json::from_slice::<Value>(&r.json).ok()
            );
        }
    }
}
