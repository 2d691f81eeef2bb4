//! The dashboards' population figures: for each measure (a condition defined by a code set:
//! diabetes, hypertension, asthma, COPD), how many of each borough's registered patients have
//! it, by age band and sex, as `MeasureReport`s.
//!
//! The figures are computed by a walk of the registered population (the same walk, record
//! service and decision as a bulk export, as the configured `[secondary.aggregates]`
//! principal, opted-out patients left out), every `interval_secs`, and stored with small
//! cells already suppressed: a dashboard polling `GET /MeasureReport` reads the stored set and
//! costs one store read, never a walk.
//!
//! A patient counts in every borough whose source holds their record (so the all-boroughs
//! column is a sum over boroughs, not a count of distinct Londoners); a condition counts when
//! a released Condition carrying a coding of the measure's set is not recorded as resolved,
//! inactive or refuted. Every published table (per measure, the numerators and, separately,
//! the denominators, borough by age band and sex with every total) goes through
//! [`tideway_deid::suppress`], so no count below the threshold can be read or worked out by
//! differencing.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tideway_policy::Ask;
use tideway_profiles::NhsNumber;

use crate::state::AppState;
use crate::store::Cohort;

mod counts;
mod report;

use counts::Counts;
use report::at;
pub use report::per_thousand;

/// The measures the dashboards show: `(code set, title)`.
pub const MEASURES: [(&str, &str); 4] =
    [("diabetes", "Diabetes"), ("hypertension", "Hypertension"), ("asthma", "Asthma"), ("copd", "COPD")];

/// The sexes strata are split by (FHIR administrative gender, `other` and `unknown` together).
const SEXES: [&str; 3] = ["female", "male", "other-or-unknown"];

/// The age bands strata are split by: the five-year bands, then `unknown` (no full birth date).
fn age_bands() -> impl Iterator<Item = &'static str> {
    tideway_deid::AgeBand::all().iter().map(|b| b.label()).chain(["unknown"])
}

/// How many age bands [`age_bands`] gives.
fn age_band_count() -> usize {
    tideway_deid::AgeBand::all().len() + 1
}

/// The canonical URL of a measure.
pub fn measure_url(measure: &str) -> String {
    format!("https://fhir.tideway.london/Measure/{measure}")
}

/// One published table: borough rows, stratum columns, with totals; `None` is suppressed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// `[borough][stratum]`.
    pub cells: Vec<Vec<Option<u64>>>,
    /// Per borough, across strata.
    pub borough_totals: Vec<Option<u64>>,
    /// Per stratum, across boroughs.
    pub stratum_totals: Vec<Option<u64>>,
    /// Everything.
    pub total: Option<u64>,
}

/// The stored figures: everything a dashboard or `GET /MeasureReport` shows, suppressed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// When they were computed (RFC 3339).
    pub generated: String,
    /// The suppression threshold they were published under.
    pub threshold: u64,
    /// Source ids, the rows.
    pub boroughs: Vec<String>,
    /// The sources' names, in the same order.
    #[serde(default)]
    pub borough_names: Vec<String>,
    /// `"{age band}|{sex}"`, the columns.
    pub strata: Vec<String>,
    /// Registered patients (opted-out ones left out).
    pub denominators: Published,
    /// Per measure (code set name), patients with the condition.
    pub numerators: BTreeMap<String, Published>,
}

/// Why the figures could not be computed (no patient data).
#[derive(Debug, thiserror::Error)]
pub enum FiguresError {
    /// `[secondary.aggregates]` is not configured.
    #[error("no [secondary.aggregates] principal is configured")]
    NotConfigured,
    /// The configured principal is not admitted to secondary use.
    #[error("the aggregates' principal is refused: {0}")]
    Refused(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The audit trail could not be written.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

/// Walks the registered population and stores new figures. The walk is audited as one
/// `population-figures` request (intent before the first patient, outcome with counts).
pub async fn refresh(state: &AppState) -> Result<Figures, FiguresError> {
    let secondary = &state.secondary;
    let settings = secondary.settings.aggregates.as_ref().ok_or(FiguresError::NotConfigured)?;
    let principal = tideway_auth::Principal {
        client_id: "tideway-aggregates".into(),
        user_id: "tideway-aggregates".into(),
        role: tideway_auth::RoleCode::parse(&settings.role).ok_or(FiguresError::NotConfigured)?,
        organisation: tideway_profiles::OdsCode::parse(&settings.organisation)
            .map_err(|_| FiguresError::NotConfigured)?,
        purpose: tideway_auth::PurposeOfUse::parse(&settings.purpose).ok_or(FiguresError::NotConfigured)?,
        scopes: vec!["system/Patient.read".into(), "system/Condition.read".into()],
        token_id: "tideway-aggregates".into(),
        break_glass_reason: None,
    };
    state.records.admit_secondary(&principal).map_err(|e| FiguresError::Refused(e.reason()))?;
    let _one_walk = secondary.refreshing.lock().await;
    let request_id = format!("figures-{}", uuid::Uuid::new_v4().simple());
    let mut audit = state.audit.begin(&request_id, "population-figures", Some(&principal));
    audit.intent(state.records.source_ids()).await?;
    let policy = state.records.policy.current();
    let terminology = policy.terminology();
    let boroughs: Vec<(String, String)> = state
        .records
        .federation()
        .sources()
        .adapters()
        .iter()
        .map(|a| (a.id().to_string(), a.config().name.clone()))
        .collect();
    let mut counts = Counts::new(boroughs);
    let ask = Ask::everything().of_types(vec!["Patient".into(), "Condition".into()]);
    let on = time::OffsetDateTime::now_utc().date();
    let mut cursor: Option<String> = None;
    let mut patients = 0u64;
    loop {
        let page = secondary.store.cohort_page(&Cohort::Everyone, cursor.as_deref(), 200).await?;
        let Some((last, _)) = page.last() else { break };
        cursor = Some(last.clone());
        let reads = futures::stream::iter(page.into_iter().map(|(id, nhs)| {
            let (principal, ask, request_id) = (&principal, &ask, &request_id);
            read_one(state, principal, ask, request_id, id, nhs)
        }))
        .buffered(secondary.settings.concurrency);
        futures::pin_mut!(reads);
        while let Some(read) = reads.next().await {
            match read {
                Ok(record) => {
                    let sources: Vec<String> = record.sources.iter().map(ToString::to_string).collect();
                    counts.add(&record.resources, &sources, terminology, on);
                    patients += 1;
                }
                Err(e) => {
                    tracing::warn!(reason = e.reason(), "a patient was left out of the population figures")
                }
            }
        }
    }
    let generated = crate::epoch_us::rfc3339_seconds(crate::epoch_us::now());
    let figures = counts.publish(secondary.settings.suppression_threshold, generated);
    let body = serde_json::to_string(&figures)
        .map_err(|_| crate::store::StoreError::other("save population figures", "encode"))?;
    secondary.store.save_population_figures(&body).await?;
    secondary.figures.set(figures.clone());
    audit
        .outcome(
            200,
            0,
            crate::audit::AuditOutcome::Success,
            json!({"patients_counted": patients}).to_string(),
        )
        .await?;
    Ok(figures)
}

/// One patient's record for the figures, paced with every other walk.
async fn read_one(
    state: &AppState,
    principal: &tideway_auth::Principal,
    ask: &Ask,
    request_id: &str,
    id: String,
    nhs: String,
) -> Result<crate::record::PopulationRecord, crate::record::RecordError> {
    state.secondary.exports.pace().await;
    let nhs = NhsNumber::parse(&nhs).map_err(|_| crate::record::RecordError::UnknownPatient)?;
    state.records.population_record(principal, (&nhs, &id), ask, request_id).await
}

/// Shows the stored figures on the dashboard at once, then computes them now and every
/// `interval_secs` (when configured); failures are logged.
pub fn spawn(state: actix_web::web::Data<AppState>) {
    state.dashboard.set_population(state.secondary.figures.clone());
    let Some(settings) = &state.secondary.settings.aggregates else { return };
    let secs = settings.interval_secs;
    let run = move |state: actix_web::web::Data<AppState>| async move {
        if let Err(e) = refresh(&state).await {
            tracing::error!(error = %e, "the population figures could not be computed");
        }
    };
    let first = state.clone();
    tokio::spawn(async move {
        match latest(&first).await {
            Ok(Some(stored)) => first.secondary.figures.set(stored),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "the stored population figures could not be read"),
        }
        run(first).await;
    });
    crate::periodic::every(secs, move || run(state.clone()));
}

/// The latest figures in memory, for the dashboard's population panel.
#[derive(Default)]
pub struct LatestFigures(std::sync::RwLock<Option<Figures>>);

impl LatestFigures {
    fn set(&self, figures: Figures) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(figures);
    }
}

impl crate::dashboard::population::PopulationFigures for LatestFigures {
    fn view(&self) -> crate::dashboard::population::PopulationView {
        use crate::dashboard::population::{Borough, Cell, Measure, PopulationView};
        let guard = self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(f) = guard.as_ref() else { return PopulationView::empty() };
        let mut cells = Vec::new();
        for (set, _) in MEASURES {
            let Some(num) = f.numerators.get(set) else { continue };
            for (b, borough) in f.boroughs.iter().enumerate() {
                let (n, d) = (at(&num.borough_totals, b), at(&f.denominators.borough_totals, b));
                let prevalence = n.zip(d).filter(|(_, d)| *d > 0).map(|(n, d)| per_thousand(n, d));
                cells.push(Cell {
                    measure: set.to_owned(),
                    borough: borough.clone(),
                    numerator: n,
                    denominator: d,
                    prevalence_per_1000: prevalence,
                    suppressed: prevalence.is_none(),
                });
            }
        }
        PopulationView {
            generated: Some(f.generated.clone()),
            threshold: u32::try_from(f.threshold).unwrap_or(u32::MAX),
            measures: MEASURES
                .iter()
                .map(|(id, title)| Measure { id: (*id).to_owned(), title: (*title).to_owned() })
                .collect(),
            boroughs: f
                .boroughs
                .iter()
                .enumerate()
                .map(|(i, id)| Borough {
                    id: id.clone(),
                    name: f.borough_names.get(i).cloned().unwrap_or_else(|| id.clone()),
                })
                .collect(),
            cells,
        }
    }
}

/// The latest stored figures, if any have been computed.
pub async fn latest(state: &AppState) -> Result<Option<Figures>, crate::store::StoreError> {
    let Some((body, _)) = state.secondary.store.population_figures().await? else { return Ok(None) };
    serde_json::from_str(&body).map(Some).map_err(|_| {
        crate::store::StoreError::other("read population figures", "the stored figures no longer read")
    })
}
