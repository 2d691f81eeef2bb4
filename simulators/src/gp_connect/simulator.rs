//! A simulated GP Connect provider over real HTTP, with injectable faults.
//!
//! It plays one borough of the seeded population as a GP system's GP Connect endpoint:
//! `POST {base}/Patient/$gpc.getstructuredrecord` and the Foundations reads
//! `GET {base}/{Organization|Practitioner|Location}/{id}`. Each request must carry the Spine
//! headers (`Ssp-TraceID`, `Ssp-From`, `Ssp-To` naming this provider's ASID,
//! `Ssp-InteractionID` naming the interaction asked) and an unsigned JWT with GP Connect's
//! claims (`exp` at most five minutes after `iat`, not expired, `requested_record` matching the
//! request); anything missing or wrong is `400 BAD_REQUEST`. A `Parameters` body that is not
//! one is `422 INVALID_RESOURCE`; no `patientNHSNumber`, or an include without its required
//! part, `422 INVALID_PARAMETER`; an NHS number that fails its check digit `400
//! INVALID_NHS_NUMBER`; a patient the practice does not hold `404 PATIENT_NOT_FOUND`; an
//! unrecognised parameter a warning OperationOutcome in the Bundle (as the GP Connect example
//! does). Errors are STU3 OperationOutcomes with Spine error codes. `GET {base}/_readers` lists
//! who each accepted request's JWT said asked (user, organisation, device, `Ssp-From`), as the
//! practice's own audit would, so tests can check who the provider was told looked.
//!
//! Faults ([`FaultConfig`]) are drawn per request as for every simulator: fail (500
//! `INTERNAL_SERVER_ERROR`), hang, malformed, oversized, redirect, wrong patient (a Condition
//! about someone else in the Bundle), empty record (the Patient alone), latency.
//! `foreign_link_rate` has no meaning here: GP Connect does not page, so there is no `next`
//! link to follow; the simulator then adds a `next` link to another origin that a client must
//! ignore.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::ServiceRequest;
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde_json::{Value, json};
use tideway_adapters::gp_connect::client::{
    GET_STRUCTURED_RECORD, JWT_LIFETIME_SECS, asid_for, read_interaction,
};
use tideway_profiles::{NhsNumber, systems};

use super::render::{self, Includes};
pub use crate::SimulatorHits;
use crate::conformance::Simulated;
use crate::faults::Fault;
pub use crate::faults::FaultConfig;
use crate::population::{PatientRecord, Population, Practice};
use crate::server::{self, ELSEWHERE, FaultAnswers, Hit, RunningSimulator, Serve};

const FHIR_JSON: &str = "application/fhir+json";

/// The simulator's settings: one borough of a seeded population.
pub use crate::server::BoroughConfig as SimulatorConfig;

/// A running GP Connect simulator: the shared running server and the ASID it answers to.
pub struct RunningGpConnect {
    running: RunningSimulator,
    asid: String,
}

impl std::fmt::Debug for RunningGpConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.running.fmt(f)
    }
}

impl RunningGpConnect {
    /// The GP Connect base, `http://127.0.0.1:PORT/gpc/` (ends in `/`).
    pub fn base_url(&self) -> url::Url {
        self.running.base_url()
    }

    /// The ASID this provider answers to (`Ssp-To`): the one derived from its borough's ODS code.
    pub fn asid(&self) -> &str {
        &self.asid
    }

    /// Request counts: `patient_searches` are structured-record requests asking for no clinical
    /// section, `record_fetches` those asking for at least one.
    pub fn hits(&self) -> SimulatorHits {
        self.running.hits()
    }

    /// Stops the server at once and waits for it to finish.
    pub async fn stop(self) {
        self.running.stop().await;
    }

    /// The shared running server, for callers that hold simulators of every kind alike.
    pub fn into_running(self) -> RunningSimulator {
        self.running
    }
}

#[async_trait]
impl Simulated for RunningGpConnect {
    fn base_url(&self) -> url::Url {
        self.running.base_url()
    }

    fn hits(&self) -> SimulatorHits {
        self.running.hits()
    }

    async fn stop(self: Box<Self>) {
        self.running.stop().await;
    }
}

struct State {
    population: Population,
    borough: usize,
    asid: String,
    /// Who asked, newest last, as a provider's own audit keeps it.
    readers: Mutex<VecDeque<Value>>,
}

/// Readers the simulator remembers (the oldest are forgotten first).
const READERS_KEPT: usize = 1000;

impl State {
    /// Notes who the JWT of an accepted request says asked: the user (`sub`), the requesting
    /// organisation's ODS code and the consumer's ASID (`Ssp-From`).
    fn note_reader(&self, req: &HttpRequest, interaction: &str, claims: &Value) {
        let organisation = claims["requesting_organization"]["identifier"]
            .as_array()
            .and_then(|ids| ids.iter().find(|i| i["system"] == systems::ODS_ORGANIZATION_CODE))
            .map(|i| i["value"].clone())
            .unwrap_or(Value::Null);
        let reader = json!({
            "interaction": interaction,
            "user": claims["sub"],
            "organisation": organisation,
            "device": claims["requesting_device"]["identifier"][0]["value"],
            "from": header(req, "Ssp-From")
        });
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() == READERS_KEPT {
            readers.pop_front();
        }
        readers.push_back(reader);
    }
}

/// `GET {base}/_readers`: who asked this provider, oldest first, as the provider's own audit
/// would show (a simulator's window for tests: no patient data, only who and how).
async fn readers(state: web::Data<State>) -> HttpResponse {
    let readers: Vec<Value> =
        state.readers.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect();
    HttpResponse::Ok().json(readers)
}

/// Starts a simulator. The port is bound before this returns, so port 0 works.
pub async fn start(cfg: SimulatorConfig) -> std::io::Result<RunningGpConnect> {
    let population = Population::new(cfg.seed, cfg.borough_count, cfg.patients_per_borough);
    let ods = population
        .borough_ods_code(cfg.borough_index)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "borough_index out of range"))?;
    let asid = asid_for(&ods);
    let listener = TcpListener::bind(cfg.bind)?;
    let state = web::Data::new(State {
        population,
        borough: cfg.borough_index,
        asid: asid.clone(),
        readers: Mutex::new(VecDeque::new()),
    });
    let running = server::serve(Serve {
        listener,
        base_path: "/gpc/",
        faults: cfg.faults,
        // Only the body tells a patient search (no clinical section) from a record fetch.
        classify: Arc::new(|_: &ServiceRequest| Hit::Other),
        answers: Arc::new(GpcFaults),
        routes: move |app: &mut web::ServiceConfig| {
            app.app_data(state.clone())
                .route("/gpc/Patient/$gpc.getstructuredrecord", web::post().to(structured_record))
                .route("/gpc/_readers", web::get().to(readers))
                .route("/gpc/{type}/{id}", web::get().to(read))
                .default_service(web::to(|| async {
                    error(
                        StatusCode::NOT_FOUND,
                        "not-supported",
                        "NOT_IMPLEMENTED",
                        "Not implemented",
                        "unknown interaction",
                    )
                }));
        },
        tls: None,
    })?;
    Ok(RunningGpConnect { running, asid })
}

/// GP Connect's answers for whole-answer faults.
struct GpcFaults;

#[async_trait]
impl FaultAnswers for GpcFaults {
    async fn answer(&self, fault: Fault, path: &str) -> HttpResponse {
        fault_response(fault, path).await
    }
}

async fn fault_response(fault: Fault, path: &str) -> HttpResponse {
    match fault {
        Fault::Hang => {
            server::hang().await;
            error(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "INTERNAL_SERVER_ERROR",
                "Internal server error",
                "hang",
            )
        }
        Fault::Malformed => HttpResponse::Ok()
            .content_type(FHIR_JSON)
            .body(r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceTy"#),
        Fault::Oversized => HttpResponse::Ok().content_type(FHIR_JSON).streaming(
            crate::faults::oversized_bundle(br#"{"resourceType":"Bundle","type":"collection","entry":["#),
        ),
        Fault::Redirect => server::redirect(path),
        // A JSON dialect cannot be sent an entity: the document is one it cannot read.
        Fault::ExternalEntity => HttpResponse::Ok()
            .content_type(FHIR_JSON)
            .body(server::xxe_document(&format!("{ELSEWHERE}/secret"))),
        Fault::Fail | Fault::None | Fault::ForeignLink | Fault::WrongPatient | Fault::EmptyRecord => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "INTERNAL_SERVER_ERROR",
            "Internal server error",
            "simulated failure",
        ),
    }
}

fn error(status: StatusCode, issue: &str, spine: &str, display: &str, diagnostics: &str) -> HttpResponse {
    let body = render::spine_outcome("error", issue, spine, display, diagnostics);
    HttpResponse::build(status).content_type(FHIR_JSON).body(body.to_string())
}

/// A refusal, as the Spine error it is answered with.
#[derive(Debug, Clone, Copy)]
struct SpineError {
    status: StatusCode,
    issue: &'static str,
    code: &'static str,
    display: &'static str,
    diagnostics: &'static str,
}

impl SpineError {
    fn response(self) -> HttpResponse {
        error(self.status, self.issue, self.code, self.display, self.diagnostics)
    }
}

fn bad_request(diagnostics: &'static str) -> SpineError {
    SpineError {
        status: StatusCode::BAD_REQUEST,
        issue: "invalid",
        code: "BAD_REQUEST",
        display: "Bad request",
        diagnostics,
    }
}

fn invalid_parameter(diagnostics: &'static str) -> SpineError {
    SpineError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        issue: "invalid",
        code: "INVALID_PARAMETER",
        display: "Submitted parameter is not valid.",
        diagnostics,
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty())
}

/// Checks the Spine headers and the JWT; returns the JWT's claims.
fn check_headers(
    req: &HttpRequest,
    state: &State,
    interaction: &str,
    scope: &str,
) -> Result<Value, SpineError> {
    if header(req, "Ssp-TraceID").is_none() {
        return Err(bad_request("Ssp-TraceID header missing"));
    }
    let from = header(req, "Ssp-From").ok_or_else(|| bad_request("Ssp-From header missing"))?;
    if from.len() != 12 || !from.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_request("Ssp-From is not an ASID"));
    }
    if header(req, "Ssp-To") != Some(state.asid.as_str()) {
        return Err(bad_request("Ssp-To does not name this provider"));
    }
    if header(req, "Ssp-InteractionID") != Some(interaction) {
        return Err(bad_request("Ssp-InteractionID does not match the interaction"));
    }
    let token = header(req, "Authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .ok_or_else(|| bad_request("Authorization bearer token missing"))?;
    let claims = jwt_claims(token).map_err(bad_request)?;
    if claims["requested_scope"] != scope {
        return Err(bad_request("JWT requested_scope does not match the interaction"));
    }
    Ok(claims)
}

/// The claims of GP Connect's unsigned JWT, checked.
fn jwt_claims(token: &str) -> Result<Value, &'static str> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else { return Err("JWT is not three parts") };
    if !signature.is_empty() {
        return Err("JWT must be unsigned");
    }
    let decode = |p: &str| -> Result<Value, &'static str> {
        let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|_| "JWT part is not base64url")?;
        serde_json::from_slice(&bytes).map_err(|_| "JWT part is not JSON")
    };
    if decode(header)?["alg"] != "none" {
        return Err("JWT alg must be none");
    }
    let claims = decode(payload)?;
    for claim in [
        "iss",
        "sub",
        "aud",
        "reason_for_request",
        "requested_record",
        "requested_scope",
        "requesting_device",
        "requesting_organization",
        "requesting_practitioner",
    ] {
        if claims.get(claim).is_none_or(Value::is_null) {
            return Err("JWT claim missing");
        }
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err("JWT iat or exp missing");
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    if exp <= iat || exp - iat > JWT_LIFETIME_SECS || exp < now || iat > now + 60 {
        return Err("JWT expiry is not within five minutes of issue");
    }
    if claims["reason_for_request"] != "directcare" {
        return Err("JWT reason_for_request must be directcare");
    }
    if claims["requesting_practitioner"]["id"] != claims["sub"] {
        return Err("JWT sub does not match requesting_practitioner");
    }
    Ok(claims)
}

/// The request's `Parameters`: the NHS number and the sections asked for, or the error.
fn parameters(body: &[u8]) -> Result<(NhsNumber, Includes, Vec<String>), SpineError> {
    let invalid_resource = || SpineError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        issue: "invalid",
        code: "INVALID_RESOURCE",
        display: "Submitted resource is not valid.",
        diagnostics: "the body is not a Parameters resource",
    };
    let value: Value = serde_json::from_slice(body).map_err(|_| invalid_resource())?;
    if value["resourceType"] != "Parameters" {
        return Err(invalid_resource());
    }
    let params = value["parameter"].as_array().ok_or_else(invalid_resource)?;
    let mut nhs = None;
    let mut includes = Includes::default();
    let mut unknown = Vec::new();
    let part = |p: &Value, name: &str| {
        p["part"]
            .as_array()
            .and_then(|parts| parts.iter().find(|x| x["name"] == name))
            .map(|x| x["valueBoolean"].clone())
    };
    for p in params {
        let name = p["name"].as_str().unwrap_or_default();
        match name {
            "patientNHSNumber" => {
                let id = &p["valueIdentifier"];
                if id["system"] != systems::NHS_NUMBER {
                    return Err(invalid_parameter("patientNHSNumber needs the NHS number system"));
                }
                let number =
                    NhsNumber::parse(id["value"].as_str().unwrap_or_default()).map_err(|_| SpineError {
                        status: StatusCode::BAD_REQUEST,
                        issue: "value",
                        code: "INVALID_NHS_NUMBER",
                        display: "NHS number invalid",
                        diagnostics: "patientNHSNumber is not a valid NHS number",
                    })?;
                nhs = Some(number);
            }
            "includeAllergies" => {
                if !part(p, "includeResolvedAllergies").is_some_and(|v| v.is_boolean()) {
                    return Err(invalid_parameter("includeAllergies needs includeResolvedAllergies"));
                }
                includes.allergies = true;
            }
            "includeMedication" => {
                let Some(issues) = part(p, "includePrescriptionIssues").and_then(|v| v.as_bool()) else {
                    return Err(invalid_parameter("includeMedication needs includePrescriptionIssues"));
                };
                includes.medication = true;
                includes.prescription_issues = issues;
            }
            "includeProblems" => includes.problems = true,
            "includeImmunisations" => includes.immunisations = true,
            "includeConsultations" => includes.consultations = true,
            "includeInvestigations" => includes.investigations = true,
            "includeReferrals" => includes.referrals = true,
            "includeUncategorisedData" => includes.uncategorised = true,
            other => {
                // Named in the warning: a parameter name, never patient data. Plain tokens only.
                let token = other.chars().take(64).filter(char::is_ascii_alphanumeric).collect();
                unknown.push(token);
            }
        }
    }
    let nhs = nhs.ok_or_else(|| invalid_parameter("patientNHSNumber is required"))?;
    Ok((nhs, includes, unknown))
}

async fn structured_record(state: web::Data<State>, req: HttpRequest, body: Bytes) -> HttpResponse {
    let claims = match check_headers(&req, &state, GET_STRUCTURED_RECORD, "patient/*.read") {
        Ok(c) => c,
        Err(e) => return e.response(),
    };
    let (nhs, includes, unknown) = match parameters(&body) {
        Ok(p) => p,
        Err(e) => return e.response(),
    };
    server::count(&req, if includes == Includes::default() { Hit::Search } else { Hit::Fetch });
    let asked = claims["requested_record"]["identifier"].as_array().is_some_and(|ids| {
        ids.iter().any(|i| i["system"] == systems::NHS_NUMBER && i["value"] == nhs.as_str())
    });
    if !asked {
        return bad_request("JWT requested_record does not name the patient asked for").response();
    }
    state.note_reader(&req, GET_STRUCTURED_RECORD, &claims);
    let record = state
        .population
        .patient_index(&nhs)
        .and_then(|index| Some((index, state.population.record(state.borough, index)?)));
    let Some((index, record)) = record else {
        return error(
            StatusCode::NOT_FOUND,
            "not-found",
            "PATIENT_NOT_FOUND",
            "Patient not found",
            "no record is held for the patient",
        );
    };
    let fault = req.extensions().get::<Fault>().copied().unwrap_or(Fault::None);
    let mut bundle = match fault {
        Fault::EmptyRecord if includes != Includes::default() => {
            render::bundle(vec![render::patient(&record)])
        }
        _ => render::structured_record(&record, index, includes),
    };
    let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) else {
        return bad_request("unreachable").response();
    };
    if fault == Fault::WrongPatient {
        entries.push(json!({"resource": someone_elses_problem(&record)}));
    }
    for name in unknown {
        let text = format!("{name} is an unrecognised parameter");
        let mut outcome =
            render::spine_outcome("warning", "not-supported", "NOT_IMPLEMENTED", "Not implemented", &name);
        outcome["issue"][0]["details"]["text"] = Value::String(text);
        entries.push(json!({"resource": outcome}));
    }
    if fault == Fault::ForeignLink
        && let Some(obj) = bundle.as_object_mut()
    {
        obj.insert(
            "link".into(),
            json!([{"relation": "next", "url": format!("{ELSEWHERE}/gpc/Patient/$gpc.getstructuredrecord")}]),
        );
    }
    HttpResponse::Ok().content_type(FHIR_JSON).body(bundle.to_string())
}

/// A valid STU3 problem about a patient other than the record's, as a system mixing up records
/// would send; no List names it.
fn someone_elses_problem(record: &PatientRecord) -> Value {
    json!({
        "resourceType": "Condition",
        "id": format!("{}-stray", record.local_id),
        "clinicalStatus": "active",
        "verificationStatus": "confirmed",
        "code": {"text": "Entry filed against the wrong patient"},
        "subject": {"reference": format!("Patient/{}-someone-else", record.local_id)}
    })
}

/// `GET /gpc/{type}/{id}`: a Foundations read of a practice, its usual GP or its surgery.
async fn read(state: web::Data<State>, req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (ty, id) = path.into_inner();
    let Some(interaction) = read_interaction(&ty) else {
        return error(
            StatusCode::NOT_FOUND,
            "not-supported",
            "NOT_IMPLEMENTED",
            "Not implemented",
            "unknown interaction",
        );
    };
    match check_headers(&req, &state, interaction, "organization/*.read") {
        Ok(claims) => state.note_reader(&req, interaction, &claims),
        Err(e) => return e.response(),
    }
    let found = practices(&state).into_iter().find_map(|p| {
        let r = match ty.as_str() {
            "Organization" => render::organization(&p),
            "Practitioner" => render::practitioner(&p),
            _ => render::location(&p),
        };
        (r["id"] == id.as_str()).then_some(r)
    });
    match found {
        Some(r) => HttpResponse::Ok().content_type(FHIR_JSON).body(r.to_string()),
        None => error(
            StatusCode::NOT_FOUND,
            "not-found",
            "NO_RECORD_FOUND",
            "No record found",
            "no such resource",
        ),
    }
}

/// The practices of the patients the borough holds.
fn practices(state: &State) -> Vec<Practice> {
    let mut out: Vec<Practice> = Vec::new();
    for i in state.population.patients_in_borough(state.borough) {
        if let Some(r) = state.population.record(state.borough, i)
            && !out.iter().any(|p| p.ods_code == r.demographics.practice.ods_code)
        {
            out.push(r.demographics.practice);
        }
    }
    out
}
