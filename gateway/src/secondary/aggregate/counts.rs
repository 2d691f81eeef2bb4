//! Counting while the figures' walk goes: each patient's stratum and measures, summed per
//! borough, then suppressed into the published tables. Raw counts never leave this module
//! unsuppressed.

use serde_json::Value;
use tideway_adapters::NormalisedResource;
use tideway_policy::Terminology;

use super::{Figures, MEASURES, Published, SEXES, age_band_count, age_bands};

/// Raw counts while walking; never stored or served.
pub(super) struct Counts {
    boroughs: Vec<String>,
    names: Vec<String>,
    strata: usize,
    denominators: Vec<u64>,
    numerators: Vec<Vec<u64>>,
}

impl Counts {
    pub(super) fn new(boroughs: Vec<(String, String)>) -> Self {
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

    pub(super) fn add(
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

    pub(super) fn publish(&self, threshold: u64, generated: String) -> Figures {
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
pub(super) fn stratum_of(record: &[NormalisedResource], on: time::Date) -> Option<usize> {
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
pub(super) fn measures_held(record: &[NormalisedResource], terminology: &Terminology) -> Vec<bool> {
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
