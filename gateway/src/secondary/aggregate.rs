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
use serde_json::{Value, json};
use tideway_adapters::NormalisedResource;
use tideway_policy::{Ask, Terminology};
use tideway_profiles::NhsNumber;

use crate::state::AppState;
use crate::store::Cohort;

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

/// Raw counts while walking; never stored or served.
struct Counts {
    boroughs: Vec<String>,
    names: Vec<String>,
    strata: usize,
    denominators: Vec<u64>,
    numerators: Vec<Vec<u64>>,
}

impl Counts {
    fn new(boroughs: Vec<(String, String)>) -> Self {
        let strata = age_band_count() * SEXES.len();
        let n = boroughs.len() * strata;
        let (boroughs, names) = boroughs.into_iter().unzip();
        Self {
            boroughs,
            names,
            strata,
            denominators: vec![0; n],
            numerators: vec![vec![0; n]; MEASURES.len()],
        }
    }

    fn add(
        &mut self,
        record: &[NormalisedResource],
        sources: &[String],
        terminology: &Terminology,
        on: time::Date,
    ) {
        let Some(stratum) = stratum_of(record, on) else { return };
        let has = measures_held(record, terminology);
        for source in sources {
            let Some(b) = self.boroughs.iter().position(|x| x == source) else { continue };
            let cell = b * self.strata + stratum;
            self.denominators[cell] += 1;
            for (m, yes) in has.iter().enumerate() {
                if *yes {
                    self.numerators[m][cell] += 1;
                }
            }
        }
    }

    fn publish(&self, threshold: u64, generated: String) -> Figures {
        let rows = self.boroughs.len();
        let denominators = tideway_deid::suppress::two_way(rows, self.strata, &self.denominators);
        let published_denominators = tideway_deid::suppress::suppress(&denominators, threshold);
        let publish = |counts: &[u64]| {
            let numerators = tideway_deid::suppress::two_way(rows, self.strata, counts);
            // Beside a published denominator, a numerator within the threshold of it gives away
            // how few do not have the condition (all seven patients of a cell have it, say): it
            // is suppressed too, with complements, until no such pair is left.
            let mut forced: Vec<usize> = Vec::new();
            loop {
                let out = tideway_deid::suppress::suppress_with(&numerators, threshold, &forced);
                let more: Vec<usize> = (0..out.len())
                    .filter(|&i| {
                        out[i].is_some()
                            && published_denominators.get(i).copied().flatten().is_some()
                            && denominators.cells[i].saturating_sub(numerators.cells[i]) < threshold
                    })
                    .collect();
                if more.is_empty() {
                    return layout(rows, self.strata, &out);
                }
                forced.extend(more);
            }
        };
        let strata =
            age_bands().flat_map(|band| SEXES.iter().map(move |sex| format!("{band}|{sex}"))).collect();
        Figures {
            generated,
            threshold,
            boroughs: self.boroughs.clone(),
            borough_names: self.names.clone(),
            strata,
            denominators: layout(rows, self.strata, &published_denominators),
            numerators: MEASURES
                .iter()
                .zip(&self.numerators)
                .map(|((set, _), counts)| ((*set).to_owned(), publish(counts)))
                .collect(),
        }
    }
}

/// One suppressed borough-by-stratum table ([`tideway_deid::suppress::two_way`]'s layout) as
/// rows, columns and totals.
fn layout(rows: usize, cols: usize, out: &[Option<u64>]) -> Published {
    let at = |i: usize| out.get(i).copied().flatten();
    let cells = (0..rows).map(|r| (0..cols).map(|c| at(r * cols + c)).collect()).collect();
    let borough_totals = (0..rows).map(|r| at(rows * cols + r)).collect();
    let stratum_totals = (0..cols).map(|c| at(rows * cols + rows + c)).collect();
    Published { cells, borough_totals, stratum_totals, total: at(rows * cols + rows + cols) }
}

/// The patient's stratum (age band at `on`, sex) from their released Patient; `None` when the
/// Patient was withheld (such a patient is not counted at all).
fn stratum_of(record: &[NormalisedResource], on: time::Date) -> Option<usize> {
    let patient = record.iter().find(|r| r.resource_type == "Patient")?;
    let value: Value = serde_json::from_slice(&patient.json).ok()?;
    let sex = match value.get("gender").and_then(Value::as_str) {
        Some("female") => 0,
        Some("male") => 1,
        _ => 2,
    };
    let band = value
        .get("birthDate")
        .and_then(Value::as_str)
        .and_then(|d| time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]")).ok())
        .map_or(age_band_count() - 1, |birth| tideway_deid::age_band(birth, on).index());
    Some(band * SEXES.len() + sex)
}

/// Which measures' conditions the record holds: the code sets of every released Condition
/// that is neither over (resolved, inactive, in remission) nor void (refuted, entered in
/// error), each Condition read and classified once for all the measures.
fn measures_held(record: &[NormalisedResource], terminology: &Terminology) -> Vec<bool> {
    let over = |r: &NormalisedResource| {
        r.facts
            .clinical_status
            .iter()
            .any(|c| matches!(c.code.as_str(), "resolved" | "inactive" | "remission"))
    };
    let held = record
        .iter()
        .filter(|r| r.resource_type == "Condition" && !over(r) && !void(r))
        .fold(0, |mask, r| mask | terminology.classify(&r.facts));
    MEASURES.iter().map(|(set, _)| terminology.bit(set).is_some_and(|bit| held & bit != 0)).collect()
}

/// Whether a Condition's verification status says it is not a real one.
fn void(r: &NormalisedResource) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(&r.json) else { return true };
    v["verificationStatus"]["coding"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| matches!(c["code"].as_str(), Some("refuted" | "entered-in-error"))))
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

impl Figures {
    /// The `MeasureReport`s: one per measure and borough, plus one for all boroughs, each with
    /// its denominator, numerator, score per 1,000 and the age band and sex strata. A
    /// suppressed count has no value, only the data-absent reason `masked`.
    pub fn measure_reports(&self, only: Option<&str>) -> Vec<Value> {
        let mut out = Vec::new();
        for (set, title) in MEASURES {
            if only.is_some_and(|m| m != set) {
                continue;
            }
            let Some(num) = self.numerators.get(set) else { continue };
            let den = &self.denominators;
            for (b, borough) in self.boroughs.iter().enumerate() {
                let strata: Vec<(Option<u64>, Option<u64>)> = (0..self.strata.len())
                    .map(|s| (cell(&num.cells, b, s), cell(&den.cells, b, s)))
                    .collect();
                let total = (at(&num.borough_totals, b), at(&den.borough_totals, b));
                out.push(self.report(set, title, Some(borough), total, &strata));
            }
            let strata: Vec<(Option<u64>, Option<u64>)> = (0..self.strata.len())
                .map(|s| (at(&num.stratum_totals, s), at(&den.stratum_totals, s)))
                .collect();
            out.push(self.report(set, title, None, (num.total, den.total), &strata));
        }
        out
    }

    fn report(
        &self,
        set: &str,
        title: &str,
        borough: Option<&String>,
        (num, den): (Option<u64>, Option<u64>),
        strata: &[(Option<u64>, Option<u64>)],
    ) -> Value {
        let id = format!("{set}.{}", borough.map_or("all", String::as_str));
        let stratum: Vec<Value> = self
            .strata
            .iter()
            .zip(strata)
            .map(|(label, (n, d))| {
                let (band, sex) = label.split_once('|').unwrap_or((label, ""));
                json!({
                    "component": [
                        {"code": {"text": "age band"}, "value": {"text": band}},
                        {"code": {"text": "sex"}, "value": {"text": sex}},
                    ],
                    "population": populations(*n, *d),
                })
            })
            .collect();
        let mut group = json!({
            "population": populations(num, den),
            "stratifier": [{"code": [{"text": "age band and sex"}], "stratum": stratum}],
        });
        if let (Some(n), Some(d)) = (num, den)
            && d > 0
        {
            group["measureScore"] = json!({"value": per_thousand(n, d), "unit": "per 1000"});
        }
        let mut report = json!({
            "resourceType": "MeasureReport",
            "id": id,
            "status": "complete",
            "type": "summary",
            "measure": measure_url(set),
            "date": self.generated,
            "period": {"start": self.generated, "end": self.generated},
            "group": [group],
        });
        report["subject"] = match borough {
            Some(b) => json!({"reference": format!("Group/source.{b}"), "display": b}),
            None => json!({"display": format!("all boroughs ({title})")}),
        };
        report
    }
}

/// Prevalence per 1,000, to one decimal place.
pub fn per_thousand(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        return 0.0;
    }
    (numerator as f64 * 10_000.0 / denominator as f64).round() / 10.0
}

fn at(v: &[Option<u64>], i: usize) -> Option<u64> {
    v.get(i).copied().flatten()
}

fn cell(cells: &[Vec<Option<u64>>], b: usize, s: usize) -> Option<u64> {
    cells.get(b).and_then(|r| at(r, s))
}

/// A group's initial population (the denominator) and numerator, suppressed ones masked.
fn populations(numerator: Option<u64>, denominator: Option<u64>) -> Value {
    let one = |code: &str, count: Option<u64>| {
        let mut p = json!({"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": code}]}});
        match count {
            Some(n) => p["count"] = json!(n),
            None => {
                p["_count"] = json!({"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked"}]})
            }
        }
        p
    };
    json!([one("initial-population", denominator), one("numerator", numerator)])
}
