//! The record service against in-memory fakes: no database, no network.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tideway_adapters::{
    AdapterError, CallContext, NormalisedResource, PatientLink, SourceAdapter, SourceConfig, SourceId,
    SourcePatient, SourceRecord, SystemKind,
};
use tideway_auth::{Principal, PurposeOfUse, RoleCode};
use tideway_policy::Ask;
use tideway_profiles::{NhsNumber, OdsCode};

use super::{RecordError, RecordService};
use crate::audit::AuditTrail;
use crate::identity::PatientIds;
use crate::pages::PageStore;
use crate::search::Criteria;
use crate::sources::{Federation, SourceCache};
use crate::store::PatientIndex;
use crate::store::memory::MemoryStore;

/// A source that holds one patient's record, or fails as told, and counts what it is asked.
struct FakeSource {
    config: SourceConfig,
    answer: Result<Vec<serde_json::Value>, AdapterError>,
    fetches: AtomicUsize,
}

impl FakeSource {
    fn new(id: &str, answer: Result<Vec<serde_json::Value>, AdapterError>) -> Arc<Self> {
        Arc::new(Self {
            config: SourceConfig {
                id: SourceId::parse(id).unwrap(),
                name: id.into(),
                kind: SystemKind::FhirR4,
                ods_code: OdsCode::parse("F80005").unwrap(),
                base_url: url::Url::parse("http://127.0.0.1:9/fhir/").unwrap(),
                timeout_ms: 1_000,
                max_body_bytes: 1 << 20,
                tls: None,
                attestation: None,
            },
            answer,
            fetches: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl SourceAdapter for FakeSource {
    fn config(&self) -> &SourceConfig {
        &self.config
    }

    async fn find(
        &self,
        _nhs: &NhsNumber,
        gateway_id: &str,
        _ctx: &CallContext,
    ) -> Result<Option<SourcePatient>, AdapterError> {
        self.answer.as_ref().map_err(Clone::clone)?;
        let patient = json!({"resourceType": "Patient", "id": gateway_id});
        Ok(Some(SourcePatient { local_id: "local-1".into(), resource: resource(&patient) }))
    }

    async fn read_one(
        &self,
        _resource_type: &str,
        _local_id: &str,
        _ctx: &CallContext,
    ) -> Result<Option<NormalisedResource>, AdapterError> {
        Ok(None)
    }

    async fn fetch(&self, link: &PatientLink, _ctx: &CallContext) -> Result<SourceRecord, AdapterError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let values = self.answer.clone()?;
        let mut resources = vec![resource(&json!({"resourceType": "Patient", "id": link.gateway_id}))];
        resources.extend(values.iter().map(resource));
        Ok(SourceRecord { resources, rejected: Vec::new(), warnings: Vec::new() })
    }
}

fn resource(v: &serde_json::Value) -> NormalisedResource {
    NormalisedResource::from_value(v).unwrap()
}

fn principal(scopes: &[&str]) -> Principal {
    Principal {
        client_id: "c".into(),
        user_id: "u".into(),
        role: RoleCode::parse("R8000").unwrap(),
        organisation: OdsCode::parse("RJ122").unwrap(),
        purpose: PurposeOfUse::Treat,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        token_id: "t".into(),
        break_glass_reason: None,
    }
}

struct Fixture {
    service: RecordService,
    store: Arc<MemoryStore>,
    trail: AuditTrail,
    id: String,
}

async fn fixture(sources: Vec<Arc<FakeSource>>) -> Fixture {
    let store = Arc::new(MemoryStore::default());
    let ids = PatientIds::new("k".repeat(40).into());
    let nhs = NhsNumber::parse("9434765919").unwrap();
    let id = ids.id_for(&nhs);
    store.remember_patient(&id, nhs.as_str()).await.unwrap();
    let adapters: Vec<Arc<dyn SourceAdapter>> =
        sources.into_iter().map(|s| s as Arc<dyn SourceAdapter>).collect();
    let cache = SourceCache::new(Duration::from_secs(60), 1 << 20, true);
    let service = RecordService {
        federation: Federation::new(adapters, Duration::from_secs(2), cache),
        store: store.clone(),
        ids,
        pages: PageStore::memory(Duration::from_secs(60), 10_000, 20),
        base_url: "http://gw".into(),
        locator_max_age_secs: 3600,
        memo: super::ReplicaMemo::new(Duration::from_secs(3600), true, Some(Duration::from_secs(60))),
        policy: Arc::new(crate::agreements::PolicyInForce::examples(Vec::new()).unwrap()),
        consents: store.clone(),
        alerts: store.clone(),
        break_glass_secs: 1800,
        privacy_officers: Vec::new(),
        oversight: Arc::new(crate::oversight::Oversight::new(
            store.clone(),
            store.clone(),
            crate::config::AlertSettings::default(),
        )),
    };
    Fixture { service, trail: AuditTrail::new(store.clone()), store, id }
}

fn condition(id: &str) -> serde_json::Value {
    json!({"resourceType": "Condition", "id": id, "subject": {"reference": "Patient/x"}})
}

#[tokio::test]
async fn the_record_is_what_the_decision_releases_and_the_intent_comes_first() {
    let a = FakeSource::new(
        "a",
        Ok(vec![condition("a.c1"), json!({"resourceType": "Observation", "id": "a.o1"})]),
    );
    let f = fixture(vec![a.clone()]).await;
    let mut call = f.trail.begin("r1", "patient-everything", None);
    let p = principal(&["system/Patient.rs", "system/Condition.rs"]);
    let answer =
        f.service.record(&mut call, &p, &f.id, &Ask::everything(), &Criteria::default()).await.unwrap();
    let types: Vec<&str> = answer.resources.iter().map(|r| r.resource_type.as_str()).collect();
    assert_eq!(types, ["Patient", "Condition"], "the Observation is outside the scopes");
    let detail: serde_json::Value = serde_json::from_str(&answer.report.to_detail()).unwrap();
    assert_eq!(detail["withheld"]["scope"], 1);
    let rows = f.store.audit_rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].phase, "intent");
    assert_eq!(rows[0].patient_id.as_deref(), Some(f.id.as_str()));
}

#[tokio::test]
async fn nothing_is_asked_of_a_source_when_the_intent_cannot_be_written() {
    let a = FakeSource::new("a", Ok(vec![condition("a.c1")]));
    let f = fixture(vec![a.clone()]).await;
    f.store.fail_audit.store(true, Ordering::SeqCst);
    let mut call = f.trail.begin("r1", "patient-everything", None);
    let got = f
        .service
        .record(&mut call, &principal(&["system/*.read"]), &f.id, &Ask::everything(), &Criteria::default())
        .await;
    assert!(matches!(got, Err(RecordError::Audit(_))), "{got:?}");
    assert_eq!(a.fetches.load(Ordering::SeqCst), 0);
}

/// A replica that could not confirm the agreements in force against the store for too long
/// releases nothing, and asks no source; once the store answers again, it reads as before.
#[tokio::test]
async fn nothing_leaves_while_the_agreements_in_force_cannot_be_confirmed() {
    let a = FakeSource::new("a", Ok(vec![condition("a.c1")]));
    let f = fixture(vec![a.clone()]).await;
    let p = principal(&["system/*.read"]);
    f.service.policy.confirm(Some(Duration::ZERO));
    tokio::time::sleep(Duration::from_millis(2)).await;
    let mut call = f.trail.begin("r1", "patient-everything", None);
    let got = f.service.record(&mut call, &p, &f.id, &Ask::everything(), &Criteria::default()).await;
    assert!(matches!(got, Err(RecordError::PolicyUnconfirmed)), "{got:?}");
    assert_eq!(a.fetches.load(Ordering::SeqCst), 0);
    f.service.policy.confirm(Some(Duration::from_secs(3600)));
    let mut call = f.trail.begin("r2", "patient-everything", None);
    assert!(f.service.record(&mut call, &p, &f.id, &Ask::everything(), &Criteria::default()).await.is_ok());
}

#[tokio::test]
async fn an_unknown_id_is_refused_before_any_audit_intent_or_source_call() {
    let a = FakeSource::new("a", Ok(vec![]));
    let f = fixture(vec![a.clone()]).await;
    let mut call = f.trail.begin("r1", "patient-everything", None);
    let unknown = format!("p{}", "0".repeat(32));
    let got = f
        .service
        .record(&mut call, &principal(&["system/*.read"]), &unknown, &Ask::everything(), &Criteria::default())
        .await;
    assert!(matches!(got, Err(RecordError::UnknownPatient)), "{got:?}");
    assert!(f.store.audit_rows().is_empty());
    assert_eq!(a.fetches.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn every_source_failing_is_an_error_and_timeouts_alone_are_a_timeout() {
    let f = fixture(vec![
        FakeSource::new("a", Err(AdapterError::Status(500))),
        FakeSource::new("b", Err(AdapterError::Timeout)),
    ])
    .await;
    let mut call = f.trail.begin("r1", "patient-everything", None);
    let got = f
        .service
        .record(&mut call, &principal(&["system/*.read"]), &f.id, &Ask::everything(), &Criteria::default())
        .await;
    assert!(matches!(got, Err(RecordError::AllSourcesFailed)), "{got:?}");
    let f = fixture(vec![FakeSource::new("a", Err(AdapterError::Timeout))]).await;
    let mut call = f.trail.begin("r2", "patient-everything", None);
    let got = f
        .service
        .record(&mut call, &principal(&["system/*.read"]), &f.id, &Ask::everything(), &Criteria::default())
        .await;
    assert!(matches!(got, Err(RecordError::NoSourceInTime)), "{got:?}");
}

#[tokio::test]
async fn one_failing_source_leaves_a_partial_answer_naming_it() {
    let f = fixture(vec![
        FakeSource::new("a", Ok(vec![condition("a.c1")])),
        FakeSource::new("b", Err(AdapterError::Unreachable)),
    ])
    .await;
    let mut call = f.trail.begin("r1", "patient-everything", None);
    let answer = f
        .service
        .record(&mut call, &principal(&["system/*.read"]), &f.id, &Ask::everything(), &Criteria::default())
        .await
        .unwrap();
    assert!(answer.report.is_partial());
    assert_eq!(answer.notices.len(), 2, "the failed source and the notice every answer carries");
    assert!(matches!(answer.notices[0], crate::bundle::Notice::SourceFailed { .. }));
    assert_eq!(answer.resources.len(), 2);
}

#[tokio::test]
async fn later_pages_are_only_for_their_owner_and_follow_the_question_asked() {
    let many: Vec<_> = (0..5).map(|i| condition(&format!("a.c{i}"))).collect();
    let f = fixture(vec![FakeSource::new("a", Ok(many))]).await;
    let p = principal(&["system/*.read"]);
    let ask = Ask::everything().of_types(vec!["Condition".into()]);
    let mut call = f.trail.begin("r1", "patient-everything", None);
    let answer = f.service.record(&mut call, &p, &f.id, &ask, &Criteria::default()).await.unwrap();
    assert_eq!(answer.resources.len(), 5, "the Patient is not a Condition");
    let first = f.service.first_page(&call, &p, answer, &[], 2).await.unwrap();
    assert_eq!(first.entries.len(), 2);
    let link = first.next_link.unwrap();
    let token = link.split("id=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let mut call = f.trail.begin("r2", "page", Some(&p));
    let second = f.service.later_page(&mut call, &p, &token, 2).await.unwrap();
    assert_eq!(second.entries.len(), 2);
    assert_eq!(second.total, 5);
    assert_eq!(call.patient_id(), Some(f.id.as_str()));
    let other = principal(&["system/Condition.rs"]);
    let mut call = f.trail.begin("r3", "page", Some(&other));
    let got = f.service.later_page(&mut call, &other, &token, 2).await;
    assert!(matches!(got, Err(RecordError::PageOwner)), "{got:?}");
}

#[tokio::test]
async fn a_merged_fact_matches_a_search_when_any_copy_does_and_keeps_every_origin() {
    let fact = |id: &str, updated: &str| {
        json!({"resourceType": "Condition", "id": id, "subject": {"reference": "Patient/x"},
               "meta": {"lastUpdated": updated},
               "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
               "onsetDateTime": "2019-03-04"})
    };
    let a = FakeSource::new("a", Ok(vec![fact("a.c1", "2020-01-01T00:00:00Z")]));
    let b = FakeSource::new("b", Ok(vec![fact("b.c1", "2024-06-01T00:00:00Z")]));
    let f = fixture(vec![a, b]).await;
    let p = principal(&["system/*.read"]);
    let ask = Ask::everything().of_types(vec!["Condition".into(), "Provenance".into()]);
    let criteria = Criteria::parse("Condition", [("_lastUpdated", "ge2024")].into_iter()).unwrap();
    let mut call = f.trail.begin("r1", "search", None);
    let answer = f.service.record(&mut call, &p, &f.id, &ask, &criteria).await.unwrap();
    let conditions: Vec<&str> =
        answer.resources.iter().filter(|r| r.resource_type == "Condition").map(|r| r.id.as_str()).collect();
    assert_eq!(conditions, ["a.c1"], "the fact appears once, as the first source sent it");
    let provenance = answer.includes.iter().find(|r| r.resource_type == "Provenance").expect("a Provenance");
    let text = String::from_utf8(provenance.json.to_vec()).unwrap();
    assert!(text.contains("urn:tideway:source:b") || text.contains("reported by b"), "{text}");
}

#[tokio::test]
async fn a_number_some_source_holds_is_never_redirected_and_a_chain_stops_at_its_cycle() {
    let f = fixture(vec![]).await;
    let nhs = |s: &str| NhsNumber::parse(s).unwrap();
    let (held, a, b) = (nhs("9434765919"), nhs("9434765870"), nhs("9434765889"));
    let pair = |o: &NhsNumber, c: &NhsNumber| (o.as_str().to_owned(), c.as_str().to_owned());
    // A source that calls a living patient's number old takes nothing over.
    f.store.record_supersessions(&[pair(&held, &a)], "source:x").await.unwrap();
    assert_eq!(f.service.current_number(&held).await.unwrap(), (held.clone(), false));
    // An old number nobody holds follows its chain, and a cycle ends it.
    f.store.record_supersessions(&[pair(&a, &b), pair(&b, &a)], "feed").await.unwrap();
    assert_eq!(f.service.current_number(&a).await.unwrap(), (b.clone(), true));
    f.store.record_supersessions(&[pair(&b, &held)], "feed").await.unwrap();
    assert_eq!(f.service.current_number(&a).await.unwrap(), (held, true), "to the end of the chain");
}
