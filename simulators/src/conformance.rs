//! The conformance suite: what every adapter must do against its own system's simulator.
//!
//! The suite is written once, over the [`SourceAdapter`] trait, and knows no dialect. A system
//! plugs in with a [`Target`] (which kind it is, how to start its simulator with given
//! [`FaultConfig`]) and one line in its tests:
//!
//! ```text
//! tideway_simulators::conformance_suite!(MyTarget);
//! ```
//!
//! which generates one `#[tokio::test]` per case, named after the case. The adapter under test
//! is always built through [`tideway_adapters::registry::build`] from a source whose `kind` is
//! the target's, so the suite also proves the registry wires the kind to the right adapter.
//!
//! The cases: a normal record, an empty record, an unknown patient, an unreachable source, a
//! hang (the deadline is honoured), a 5xx, a malformed body, an oversized body (refused at the
//! cap, without reading it all), entries about another patient (withheld as
//! [`RejectionKind::OtherPatient`]), a redirect and a `next` link to another origin (never
//! followed: [`AdapterError::ForeignLink`]), and markup entities (a DOCTYPE with an external
//! entity), which only dialects with markup can be sent: XML targets return the faults that
//! make their simulator send one from [`Target::external_entity_faults`]; for JSON dialects the
//! case has nothing to send and checks nothing.

#![allow(
    clippy::expect_used,
    reason = "the cases are tests run by other crates: a case fails by panicking, with its message"
)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use tideway_adapters::{
    AdapterError, CallContext, PatientLink, RejectionKind, SourceAdapter, SourceConfig, SourceId,
    SourceRecord, SystemKind,
};
use tideway_profiles::{NhsNumber, OdsCode};

use crate::SimulatorHits;
use crate::faults::FaultConfig;
use crate::population::{PatientRecord, Population};

/// Seed of the population every target's simulator serves.
pub const SEED: u64 = 42;
/// Boroughs in that population.
pub const BOROUGHS: usize = 3;
/// Home patients per borough.
pub const PER_BOROUGH: usize = 50;
/// The source id the adapter under test is registered as.
pub const SOURCE_ID: &str = "camden";
/// Which borough of the population the simulator plays.
pub const BOROUGH: usize = 0;

/// The population the suite expects the simulator to serve (borough [`BOROUGH`] of it).
pub fn population() -> Population {
    Population::new(SEED, BOROUGHS, PER_BOROUGH)
}

/// A running simulator, as the suite needs to see it.
#[async_trait]
pub trait Simulated: Send + Sync {
    /// The base URL its adapter is configured with.
    fn base_url(&self) -> url::Url;
    /// Requests served so far.
    fn hits(&self) -> SimulatorHits;
    /// Stops it at once (hanging requests are dropped).
    async fn stop(self: Box<Self>);
}

/// What a dialect does with a `next` link to another origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextLinks {
    /// It pages with `next` links (FHIR R4): one to another origin is refused as
    /// [`AdapterError::ForeignLink`].
    Followed,
    /// It answers whole: an answer saying it continues elsewhere (EMIS `links.next`) is refused
    /// as malformed, and the rest is never fetched.
    Refused,
    /// Its answers may carry links the adapter never reads (GP Connect's `Bundle.link`): the
    /// fetch succeeds and nothing else is asked.
    Ignored,
    /// Its documents have no links at all (the SystmOne and Vision XML extracts): the case has
    /// nothing to send.
    Absent,
}

/// One source system under test: its kind and its simulator.
#[async_trait]
pub trait Target: Send + Sync {
    /// The kind the registry builds the adapter for.
    fn kind(&self) -> SystemKind;

    /// Starts the system's simulator on `127.0.0.1:0`, playing borough [`BOROUGH`] of
    /// [`population()`], with `faults` injected.
    async fn start(&self, faults: FaultConfig) -> std::io::Result<Box<dyn Simulated>>;

    /// Faults that make the simulator answer a record fetch with a document declaring a DOCTYPE
    /// with an external entity. `None` (the default) for dialects without markup entities.
    fn external_entity_faults(&self) -> Option<FaultConfig> {
        None
    }

    /// `(R4 type, local id, lastUpdated)` of every entry the adapter should hand on, besides
    /// the Patient, for a record with these facts. The default is the plain R4 rendering: one
    /// resource per fact and the practice. Dialects that organise a record differently (GP
    /// Connect's Lists, medication authorisations and Medications, its usual GP) say so here.
    fn expected_entries(&self, record: &PatientRecord) -> Vec<(&'static str, String, Option<String>)> {
        expected_entries(record)
    }

    /// What the dialect does with a `next` link to another origin (default: it pages, and
    /// refuses such a link).
    fn next_links(&self) -> NextLinks {
        NextLinks::Followed
    }

    /// The population indices of the patients the simulator holds, in a stable order (the
    /// cases pick the first few). By default those borough [`BOROUGH`]'s GP exchange holds.
    fn held_patients(&self) -> Vec<usize> {
        population().patients_in_borough(BOROUGH)
    }

    /// The source's id for patient `index` and every entry of the record it serves for them but
    /// the Patient; `None` when it holds no record of them. By default borough [`BOROUGH`]'s GP
    /// record, its entries as [`Target::expected_entries`] says. A source that holds another
    /// kind of record (a council's social care) says what it holds here.
    fn expected(&self, index: usize) -> Option<(String, Vec<Entry>)> {
        let record = population().record(BOROUGH, index)?;
        let entries = self.expected_entries(&record);
        Some((record.local_id, entries))
    }
}

/// Generates one `#[tokio::test]` per conformance case for a [`Target`] expression.
#[macro_export]
macro_rules! conformance_suite {
    ($target:expr) => {
        $crate::conformance_suite!(@cases $target;
            normal_record, empty_record, unknown_patient, unreachable_source, hang_times_out_at_the_deadline,
            server_error_gives_its_status, malformed_body_is_refused, oversized_body_is_cut_off_at_the_cap,
            wrong_patient_entries_are_withheld, foreign_next_link_is_never_followed,
            redirect_is_never_followed, external_entities_are_never_resolved,
            shared_resources_are_read_by_their_own_id);
    };
    (@cases $target:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::conformance::$case(&$target).await;
            }
        )*
    };
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The registry entry of the source under test.
pub fn source_config(kind: SystemKind, base_url: url::Url) -> SourceConfig {
    SourceConfig {
        id: SourceId::parse(SOURCE_ID).expect("a valid source id"),
        name: "Camden exchange (conformance)".into(),
        kind,
        ods_code: OdsCode::parse("LBX01").expect("a valid ODS code"),
        base_url,
        timeout_ms: 5_000,
        max_body_bytes: 32 * 1024 * 1024,
        tls: None,
        attestation: None,
    }
}

fn adapter(kind: SystemKind, base_url: url::Url) -> std::sync::Arc<dyn SourceAdapter> {
    tideway_adapters::registry::build(source_config(kind, base_url))
        .expect("the registry builds an adapter for the target's kind")
}

async fn start(
    target: &dyn Target,
    faults: FaultConfig,
) -> (Box<dyn Simulated>, std::sync::Arc<dyn SourceAdapter>) {
    let sim = target.start(faults).await.expect("the simulator starts");
    let adapter = adapter(target.kind(), sim.base_url());
    (sim, adapter)
}

/// A call context with room to spare: 10 s, 32 MiB.
pub fn ctx() -> CallContext {
    CallContext::with_timeout(Duration::from_secs(10), 32 * 1024 * 1024, "req-conformance")
}

/// The gateway id the suite links the source's patient to.
pub const GATEWAY_ID: &str = "gw-0001";

/// The link from [`GATEWAY_ID`] to the source's `local` patient id, for the patient with NHS
/// number `nhs`.
pub fn link(nhs: &NhsNumber, local: &str) -> PatientLink {
    PatientLink { gateway_id: GATEWAY_ID.into(), local_id: local.into(), nhs_number: nhs.clone() }
}

/// An NHS number (valid, in the test range) that no borough of the population holds.
pub fn stranger() -> NhsNumber {
    NhsNumber::parse("9434765919").expect("a valid NHS number")
}

/// One entry of a record as the suite expects it: `(R4 type, local id, lastUpdated)`.
pub type Entry = (&'static str, String, Option<String>);

/// A patient the simulator holds: the NHS number, the source's id for them, and every entry of
/// their record but the Patient.
#[derive(Debug, Clone)]
pub struct Held {
    /// NHS number.
    pub nhs: NhsNumber,
    /// The source's own id for the patient.
    pub local_id: String,
    /// The record's entries besides the Patient.
    pub entries: Vec<Entry>,
}

/// The `nth` patient `target`'s simulator holds.
fn held_patient(target: &dyn Target, nth: usize) -> Held {
    let index = target.held_patients()[nth];
    let (local_id, entries) = target.expected(index).expect("the simulator holds its own patients");
    Held { nhs: population().nhs_number(index).expect("in range"), local_id, entries }
}

/// Errors say what went wrong in kind, never whose record it was.
fn assert_names_no_patient(err: &AdapterError, nhs: &NhsNumber, local_id: &str) {
    let text = format!("{err} {err:?}");
    assert!(!text.contains(nhs.as_str()) && !text.contains(local_id), "{text}");
}

/// `(R4 type, local id, lastUpdated)` of every entry the facts hold, the practice included, as a
/// plain R4 exchange renders them (the default of [`Target::expected_entries`]).
pub fn expected_entries(record: &PatientRecord) -> Vec<(&'static str, String, Option<String>)> {
    let practice_updated = Some(crate::fhir_r4::render::PRACTICE_UPDATED.to_owned());
    let mut out = vec![("Organization", record.demographics.practice.ods_code.clone(), practice_updated)];
    let mut add = |ty: &'static str, items: Vec<(&String, &String)>| {
        out.extend(items.into_iter().map(|(id, at)| (ty, id.clone(), Some(at.clone()))));
    };
    add("Encounter", record.encounters.iter().map(|e| (&e.id, &e.last_updated)).collect());
    add("Condition", record.problems.iter().map(|e| (&e.id, &e.last_updated)).collect());
    add("MedicationStatement", record.medications.iter().map(|e| (&e.id, &e.last_updated)).collect());
    add("MedicationRequest", record.prescriptions.iter().map(|e| (&e.id, &e.last_updated)).collect());
    add("AllergyIntolerance", record.allergies.iter().map(|e| (&e.id, &e.last_updated)).collect());
    add("Observation", record.observations.iter().map(|e| (&e.id, &e.last_updated)).collect());
    add("Immunization", record.immunisations.iter().map(|e| (&e.id, &e.last_updated)).collect());
    add("Procedure", record.procedures.iter().map(|e| (&e.id, &e.last_updated)).collect());
    add("ServiceRequest", record.referrals.iter().map(|e| (&e.id, &e.last_updated)).collect());
    out
}

fn parse(json: &[u8]) -> Value {
    serde_json::from_slice(json).expect("adapters hand on JSON")
}

/// Every `reference` in `value` that is not a contained (`#x`) one.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("reference", Value::String(s)) if !s.starts_with('#') => out.push(s.clone()),
                    _ => references(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// Checks every reference in the record points at a returned resource, and every reference to
/// a patient at the gateway's patient.
pub fn assert_references_resolve(record: &SourceRecord, gateway_id: &str) {
    let present: HashSet<String> =
        record.resources.iter().map(|r| format!("{}/{}", r.resource_type, r.id)).collect();
    assert!(present.contains(&format!("Patient/{gateway_id}")));
    for r in &record.resources {
        let mut refs = Vec::new();
        references(&parse(&r.json), &mut refs);
        for reference in refs {
            assert!(
                present.contains(&reference),
                "{} {} has dangling reference {reference}",
                r.resource_type,
                r.id
            );
            if reference.starts_with("Patient/") {
                assert_eq!(reference, format!("Patient/{gateway_id}"));
            }
        }
    }
}

/// A held patient is found by NHS number and their whole record comes back normalised: the
/// Patient first with the gateway's id, every fact once under `{source}.{local id}` with the
/// source's `lastUpdated` (and none where the source sends none), `meta.source` naming the source, references resolving, nothing
/// rejected, one search and one fetch.
pub async fn normal_record(target: &dyn Target) {
    let (sim, a) = start(target, FaultConfig::default()).await;
    let facts = held_patient(target, 7);
    let nhs = facts.nhs.clone();
    let found = a.find_patient(&nhs, GATEWAY_ID, &ctx()).await.expect("found").expect("held");
    assert_eq!(found.local_id, facts.local_id);
    assert_eq!(found.resource.id, GATEWAY_ID);
    let patient = parse(&found.resource.json);
    assert_eq!(patient["meta"]["source"], format!("urn:tideway:source:{SOURCE_ID}"));
    let identifiers = patient["identifier"].as_array().expect("identifiers");
    assert!(identifiers.iter().any(|i| i["value"] == nhs.as_str()));

    let record = a.fetch_record(&link(&nhs, &found.local_id), &ctx()).await.expect("fetched");
    assert!(record.rejected.is_empty(), "{:?}", record.rejected);
    assert_eq!(record.resources[0].resource_type, "Patient");
    assert_eq!(record.resources[0].id, GATEWAY_ID);
    let expected = facts.entries.clone();
    assert_eq!(record.resources.len(), 1 + expected.len());
    for (ty, local, last_updated) in expected {
        let id = format!("{SOURCE_ID}.{local}");
        let got = record.resources.iter().find(|r| r.resource_type == ty && r.id == id);
        let got = got.unwrap_or_else(|| panic!("{ty} {id} missing"));
        // The source's own `lastUpdated`, or none when it sends none: nothing claims a
        // recency the source did not give.
        assert_eq!(got.last_updated(), last_updated.as_deref(), "{ty} {id}");
        assert_eq!(parse(&got.json)["meta"]["source"], format!("urn:tideway:source:{SOURCE_ID}"));
    }
    assert_references_resolve(&record, GATEWAY_ID);
    assert_eq!(sim.hits().patient_searches, 1);
    assert_eq!(sim.hits().record_fetches, 1);
    // Every resource of the first records the source holds meets UK Core's concrete rules, not
    // only its profile stamp.
    let held = target.held_patients().len();
    for nth in 0..held.min(12) {
        let facts = held_patient(target, nth);
        let record = a.fetch_record(&link(&facts.nhs, &facts.local_id), &ctx()).await.expect("fetched");
        for r in &record.resources {
            let broken = tideway_profiles::uk_core::check(&parse(&r.json));
            assert!(broken.is_empty(), "{} {}: {broken:?}", r.resource_type, r.id);
        }
    }
    sim.stop().await;
}

/// A resource the record points at but that belongs to no patient (the practice Organization)
/// reads by the source's own id, normalised to the same id the record gave it; an id the source
/// does not have is `None`; an id that is not a FHIR id is never sent; a failing source fails.
pub async fn shared_resources_are_read_by_their_own_id(target: &dyn Target) {
    let (sim, a) = start(target, FaultConfig::default()).await;
    let nhs = held_patient(target, 7).nhs;
    let found = a.find_patient(&nhs, GATEWAY_ID, &ctx()).await.expect("found").expect("held");
    let record = a.fetch_record(&link(&nhs, &found.local_id), &ctx()).await.expect("fetched");
    let org = record.resources.iter().find(|r| r.resource_type == "Organization").expect("a practice");
    let local = org.id.strip_prefix(&format!("{SOURCE_ID}.")).expect("a source-namespaced id");
    let read = a.read_shared("Organization", local, &ctx()).await.expect("read").expect("present");
    assert_eq!(read.id, org.id);
    assert_eq!(parse(&read.json)["meta"]["source"], format!("urn:tideway:source:{SOURCE_ID}"));
    assert!(a.read_shared("Organization", "not-there-1", &ctx()).await.expect("read").is_none());
    let before = sim.hits().total;
    assert!(a.read_shared("Organization", "../Patient/x", &ctx()).await.expect("refused").is_none());
    assert!(a.read_shared("../x", "a", &ctx()).await.expect("refused").is_none());
    for dots in [".", ".."] {
        assert!(a.read_shared("Organization", dots, &ctx()).await.expect("refused").is_none(), "{dots}");
    }
    assert_eq!(sim.hits().total, before, "an id that is not a FHIR id is never sent");
    sim.stop().await;
    let (sim, a) = start(target, FaultConfig { fail_rate: 1.0, ..FaultConfig::default() }).await;
    assert!(a.read_shared("Organization", local, &ctx()).await.is_err());
    sim.stop().await;
}

/// A patient the source knows but holds nothing else for: the Patient alone, nothing rejected.
pub async fn empty_record(target: &dyn Target) {
    let (sim, a) = start(target, FaultConfig { empty_record_rate: 1.0, ..FaultConfig::default() }).await;
    let facts = held_patient(target, 1);
    let nhs = facts.nhs.clone();
    let found = a.find_patient(&nhs, GATEWAY_ID, &ctx()).await.expect("found").expect("held");
    let record = a.fetch_record(&link(&nhs, &found.local_id), &ctx()).await.expect("fetched");
    // Who and where (the practice a GP extract always names) may come with the patient;
    // nothing clinical may.
    let got: Vec<(&str, &str)> = record
        .resources
        .iter()
        .filter(|r| r.facts.section != Some(tideway_profiles::Section::Administrative))
        .map(|r| (r.resource_type.as_str(), r.id.as_str()))
        .collect();
    assert_eq!(got, [("Patient", GATEWAY_ID)]);
    assert!(record.rejected.is_empty(), "{:?}", record.rejected);
    assert_eq!(found.local_id, facts.local_id);
    sim.stop().await;
}

/// A number the source has never seen, and one of the population's held only by another
/// borough, are not found (no error); fetching a local id the source does not have fails
/// without hope of a retry.
pub async fn unknown_patient(target: &dyn Target) {
    let (sim, a) = start(target, FaultConfig::default()).await;
    assert!(a.find_patient(&stranger(), "gw-x", &ctx()).await.expect("answered").is_none());
    let pop = population();
    let held = target.held_patients();
    let elsewhere = (0..pop.patient_count()).find(|i| !held.contains(i)).expect("a visitor");
    let nhs = pop.nhs_number(elsewhere).expect("in range");
    assert!(a.find_patient(&nhs, "gw-x", &ctx()).await.expect("answered").is_none());
    assert_eq!(sim.hits().patient_searches, 2);
    let err = a.fetch_record(&link(&stranger(), "nobody"), &ctx()).await.expect_err("no such record");
    assert!(!err.is_transient(), "{err:?}");
    sim.stop().await;
}

/// Nothing listening: unreachable, which a retry may cure.
pub async fn unreachable_source(target: &dyn Target) {
    let port =
        std::net::TcpListener::bind(any_port()).and_then(|l| l.local_addr()).expect("a free port").port();
    let base = url::Url::parse(&format!("http://127.0.0.1:{port}/fhir/")).expect("a URL");
    let a = adapter(target.kind(), base);
    let err = a.fetch_record(&link(&stranger(), "p"), &ctx()).await.expect_err("nothing listens");
    assert_eq!(err, AdapterError::Unreachable);
    assert!(err.is_transient());
}

/// A source that never answers is given up on at the call's deadline, not later, and the
/// simulator still stops promptly.
pub async fn hang_times_out_at_the_deadline(target: &dyn Target) {
    let (sim, a) = start(target, FaultConfig { hang_rate: 1.0, ..FaultConfig::default() }).await;
    let facts = held_patient(target, 0);
    let nhs = facts.nhs.clone();
    let short = || CallContext::with_timeout(Duration::from_millis(300), 1024 * 1024, "req-hang");
    for fetch in [true, false] {
        let started = Instant::now();
        let err = if fetch {
            a.fetch_record(&link(&facts.nhs, &facts.local_id), &short()).await.expect_err("hangs")
        } else {
            a.find_patient(&nhs, GATEWAY_ID, &short()).await.expect_err("hangs")
        };
        assert_eq!(err, AdapterError::Timeout);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(290) && took < Duration::from_millis(1500), "{took:?}");
    }
    let stopping = Instant::now();
    sim.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(3));
}

/// A 5xx is reported with its status and counts as transient; its body is not echoed.
pub async fn server_error_gives_its_status(target: &dyn Target) {
    let (sim, a) = start(target, FaultConfig { fail_rate: 1.0, ..FaultConfig::default() }).await;
    let facts = held_patient(target, 0);
    let nhs = facts.nhs.clone();
    let err = a.fetch_record(&link(&facts.nhs, &facts.local_id), &ctx()).await.expect_err("fails");
    assert_eq!(err, AdapterError::Status(500));
    assert!(err.is_transient());
    let err = a.find_patient(&nhs, GATEWAY_ID, &ctx()).await.expect_err("fails");
    assert_eq!(err, AdapterError::Status(500));
    assert_names_no_patient(&err, &nhs, &facts.local_id);
    sim.stop().await;
}

/// A truncated body is malformed, for a search and a fetch alike.
pub async fn malformed_body_is_refused(target: &dyn Target) {
    let (sim, a) = start(target, FaultConfig { malformed_rate: 1.0, ..FaultConfig::default() }).await;
    let facts = held_patient(target, 0);
    let nhs = facts.nhs.clone();
    let err = a.fetch_record(&link(&facts.nhs, &facts.local_id), &ctx()).await.expect_err("malformed");
    assert!(matches!(err, AdapterError::Malformed(_)), "{err:?}");
    assert!(!err.is_transient());
    let err = a.find_patient(&nhs, GATEWAY_ID, &ctx()).await.expect_err("malformed");
    assert!(matches!(err, AdapterError::Malformed(_)), "{err:?}");
    assert_names_no_patient(&err, &nhs, &facts.local_id);
    sim.stop().await;
}

/// A 64 MiB answer is refused at a 1 MiB cap, quickly: the adapter stops reading at the cap
/// instead of buffering the body.
pub async fn oversized_body_is_cut_off_at_the_cap(target: &dyn Target) {
    let (sim, a) = start(target, FaultConfig { oversized_rate: 1.0, ..FaultConfig::default() }).await;
    let facts = held_patient(target, 0);
    let small = CallContext::with_timeout(Duration::from_secs(10), 1024 * 1024, "req-big");
    let started = Instant::now();
    let err = a.fetch_record(&link(&facts.nhs, &facts.local_id), &small).await.expect_err("too large");
    assert_eq!(err, AdapterError::TooLarge(1024 * 1024));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    sim.stop().await;
}

/// Entries about another patient in a patient's record are withheld as `OtherPatient`, without
/// their content in the reason; everything else still comes through.
pub async fn wrong_patient_entries_are_withheld(target: &dyn Target) {
    let (sim, a) = start(target, FaultConfig { wrong_patient_rate: 1.0, ..FaultConfig::default() }).await;
    let facts = held_patient(target, 2);
    let nhs = facts.nhs.clone();
    let record = a.fetch_record(&link(&facts.nhs, &facts.local_id), &ctx()).await.expect("fetched");
    assert!(!record.rejected.is_empty(), "the stray entries are reported");
    for r in &record.rejected {
        assert_eq!(r.kind, RejectionKind::OtherPatient, "{r:?}");
        assert!(!r.reason.contains(&facts.local_id) && !r.reason.contains(nhs.as_str()), "{r:?}");
    }
    assert!(record.resources.iter().all(|r| r.facts.is_about(GATEWAY_ID)));
    assert_eq!(record.resources.len(), 1 + facts.entries.len());
    assert_references_resolve(&record, GATEWAY_ID);
    sim.stop().await;
}

/// A `next` link to another origin is never followed: a dialect that pages refuses it, one
/// that answers whole refuses an answer saying it continues elsewhere, one whose links the
/// adapter never reads succeeds without asking anything more ([`NextLinks`]).
pub async fn foreign_next_link_is_never_followed(target: &dyn Target) {
    let links = target.next_links();
    if links == NextLinks::Absent {
        return;
    }
    let (sim, a) = start(target, FaultConfig { foreign_link_rate: 1.0, ..FaultConfig::default() }).await;
    let facts = held_patient(target, 0);
    let fetched = a.fetch_record(&link(&facts.nhs, &facts.local_id), &ctx()).await;
    match links {
        NextLinks::Followed => assert_eq!(fetched.expect_err("foreign link"), AdapterError::ForeignLink),
        NextLinks::Refused => {
            let err = fetched.expect_err("an answer continued elsewhere");
            assert!(matches!(err, AdapterError::Malformed(_)), "{err:?}");
        }
        NextLinks::Ignored | NextLinks::Absent => {
            assert!(fetched.is_ok(), "{fetched:?}");
            assert_eq!(sim.hits().total, 1, "nothing is asked of anyone after the one fetch");
        }
    }
    assert_eq!(sim.hits().record_fetches, 1, "nothing is asked of the simulator after the link");
    sim.stop().await;
}

/// A redirect is refused, for a search and a fetch alike.
pub async fn redirect_is_never_followed(target: &dyn Target) {
    let (sim, a) = start(target, FaultConfig { redirect_rate: 1.0, ..FaultConfig::default() }).await;
    let facts = held_patient(target, 0);
    let nhs = facts.nhs.clone();
    assert_eq!(
        a.fetch_record(&link(&facts.nhs, &facts.local_id), &ctx()).await.expect_err("redirect"),
        AdapterError::ForeignLink
    );
    assert_eq!(
        a.find_patient(&nhs, GATEWAY_ID, &ctx()).await.expect_err("redirect"),
        AdapterError::ForeignLink
    );
    assert_eq!(sim.hits().total, 2, "one request per call: nothing is retried after the redirect");
    sim.stop().await;
}

/// For dialects with markup: a document declaring a DOCTYPE with an external entity is refused
/// as malformed, and the entity is never fetched. Dialects without markup entities (JSON) have
/// nothing to send ([`Target::external_entity_faults`] is `None`).
pub async fn external_entities_are_never_resolved(target: &dyn Target) {
    let Some(faults) = target.external_entity_faults() else {
        return;
    };
    let (sim, a) = start(target, faults).await;
    let facts = held_patient(target, 0);
    let err = a.fetch_record(&link(&facts.nhs, &facts.local_id), &ctx()).await.expect_err("refused");
    assert!(matches!(err, AdapterError::Malformed(_)), "{err:?}");
    assert_eq!(sim.hits().total, 1, "no entity was fetched from the simulator");
    sim.stop().await;
}
