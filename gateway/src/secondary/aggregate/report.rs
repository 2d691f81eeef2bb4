//! The stored figures as FHIR `MeasureReport`s: one per measure and borough, and one for all
//! boroughs, with suppressed counts shown as `data-absent-reason: masked`.

use serde_json::{Value, json};

use super::{Figures, MEASURES, measure_url};

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

/// The count at `i`, if there and published.
pub(super) fn at(v: &[Option<u64>], i: usize) -> Option<u64> {
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
