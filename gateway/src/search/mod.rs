//! Search parameters on the clinical types, evaluated on each resource's cached facts (never by
//! asking sources again): tokens (`code`, `category`, `status`, `clinical-status`, `_id`), each
//! type's own date parameter, `_lastUpdated`, `_sort`, `_summary`, `_elements`, and `_include` /
//! `_revinclude` over the references the record holds ([`include`]). What each type supports is
//! one table, [`supported`], which the CapabilityStatement declares too.

pub mod date;
pub mod include;

use std::cmp::Ordering;

use tideway_profiles::elements::{Subset, Summary};
use tideway_profiles::{Coding, ResourceFacts};

use date::{DateQuery, Range, range_of};
use include::Include;

/// What a parameter searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The main code (`code`, `vaccine-code`, Encounter `type`): token over every coding.
    Code,
    /// `category` codings (or codes).
    Category,
    /// `status`.
    Status,
    /// `clinicalStatus`.
    ClinicalStatus,
    /// The type's clinically relevant date or period.
    ClinicalDate,
    /// When it was recorded.
    RecordedDate,
}

/// A search parameter the gateway evaluates: its name, its FHIR type, what it reads.
#[derive(Debug, Clone, Copy)]
pub struct SearchParam {
    /// The name in the query.
    pub name: &'static str,
    /// `token` or `date`.
    pub kind: &'static str,
    /// What it reads.
    pub field: Field,
}

const fn p(name: &'static str, kind: &'static str, field: Field) -> SearchParam {
    SearchParam { name, kind, field }
}

/// Parameters every searchable type takes besides its own.
pub const COMMON: &[&str] = &[
    "patient",
    "subject",
    "_count",
    "_id",
    "_lastUpdated",
    "_sort",
    "_summary",
    "_elements",
    "_total",
    "_include",
    "_revinclude",
];

/// `_include` and `_revinclude` values one search may carry (repeats count once).
const MAX_INCLUDES: usize = 16;

/// What `$everything` takes besides `_type`, `_since` and `_count`: how much of each resource.
pub const SHAPING: &[&str] = &["_summary", "_elements"];

use Field::{Category, ClinicalDate, ClinicalStatus, Code, RecordedDate, Status};

const CONDITION: &[SearchParam] = &[
    p("code", "token", Code),
    p("category", "token", Category),
    p("clinical-status", "token", ClinicalStatus),
    p("onset-date", "date", ClinicalDate),
    p("recorded-date", "date", RecordedDate),
];
const ALLERGY: &[SearchParam] = &[
    p("code", "token", Code),
    p("category", "token", Category),
    p("clinical-status", "token", ClinicalStatus),
    p("date", "date", RecordedDate),
];
const OBSERVATION_PROCEDURE: &[SearchParam] = &[
    p("code", "token", Code),
    p("category", "token", Category),
    p("status", "token", Status),
    p("date", "date", ClinicalDate),
];
const MEDICATION_STATEMENT: &[SearchParam] = &[
    p("code", "token", Code),
    p("category", "token", Category),
    p("status", "token", Status),
    p("effective", "date", ClinicalDate),
];
const MEDICATION_REQUEST: &[SearchParam] = &[
    p("code", "token", Code),
    p("category", "token", Category),
    p("status", "token", Status),
    p("authoredon", "date", ClinicalDate),
];
const IMMUNIZATION: &[SearchParam] =
    &[p("vaccine-code", "token", Code), p("status", "token", Status), p("date", "date", ClinicalDate)];
const ENCOUNTER: &[SearchParam] =
    &[p("type", "token", Code), p("status", "token", Status), p("date", "date", ClinicalDate)];

/// The parameters each type supports (R4 names; the first date parameter is what `_sort=date`
/// orders by).
pub fn supported(resource_type: &str) -> &'static [SearchParam] {
    match resource_type {
        "Condition" => CONDITION,
        "AllergyIntolerance" => ALLERGY,
        "Observation" | "Procedure" | "DiagnosticReport" => OBSERVATION_PROCEDURE,
        "MedicationStatement" => MEDICATION_STATEMENT,
        "MedicationRequest" => MEDICATION_REQUEST,
        "Immunization" => IMMUNIZATION,
        "Encounter" => ENCOUNTER,
        _ => &[],
    }
}

/// One `token` value: `code`, `system|code`, `|code` or `system|`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    system: Option<String>,
    code: Option<String>,
}

impl Token {
    fn parse(v: &str) -> Option<Self> {
        let t = match v.split_once('|') {
            None => Self { system: None, code: (!v.is_empty()).then(|| v.to_owned()) },
            Some((s, c)) => Self { system: Some(s.to_owned()), code: (!c.is_empty()).then(|| c.to_owned()) },
        };
        (t.code.is_some() || t.system.as_deref().is_some_and(|s| !s.is_empty())).then_some(t)
    }

    fn matches(&self, c: &Coding) -> bool {
        self.system.as_deref().is_none_or(|s| s == c.system)
            && self.code.as_deref().is_none_or(|code| code == c.code)
    }
}

/// How to order matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// The type's first date parameter.
    Date(Field),
    /// `meta.lastUpdated`.
    LastUpdated,
}

/// Why a search could not be read. Names the parameter; never repeats its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParam {
    /// The parameter.
    pub name: &'static str,
    /// What is wrong.
    pub problem: &'static str,
    /// Not supported (rather than malformed).
    pub unsupported: bool,
}

/// The filters, order and summary a search asked for.
#[derive(Debug, Clone, Default)]
pub struct Criteria {
    /// Each entry is one parameter occurrence: a field and its comma-separated OR list; all of
    /// them must hold (AND).
    tokens: Vec<(Field, Vec<Token>)>,
    dates: Vec<(Field, DateQuery)>,
    last_updated: Vec<DateQuery>,
    ids: Vec<Vec<String>>,
    /// Order and direction (`true` = descending).
    pub sort: Option<(SortKey, bool)>,
    /// `_summary=count`: the total only.
    pub count_only: bool,
    /// How much of each matching resource to send (`_summary`, `_elements`).
    pub subset: Subset,
    /// `_include` and `_revinclude`, in the order asked.
    pub includes: Vec<Include>,
}

impl Criteria {
    /// Reads the search parameters for `resource_type` from `(name, value)` pairs (the names
    /// were already checked against [`COMMON`] and [`supported`]).
    pub fn parse<'a>(
        resource_type: &str,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, BadParam> {
        Self::parse_in(Some(resource_type), pairs)
    }

    /// Only the resources with one of these ids (as `_id` asks).
    pub fn of_ids(ids: Vec<String>) -> Self {
        Self { ids: vec![ids], ..Self::default() }
    }

    /// Reads `_summary` and `_elements` for `$everything` (any resource type).
    pub fn parse_shaping<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Result<Self, BadParam> {
        Self::parse_in(None, pairs.filter(|(n, _)| SHAPING.contains(n)))
    }

    fn parse_in<'a>(
        resource_type: Option<&str>,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, BadParam> {
        let mut c = Self::default();
        let table = resource_type.map(supported).unwrap_or_default();
        let bad = |name: &'static str, problem| BadParam { name, problem, unsupported: false };
        let (mut summary_given, mut elements_given) = (false, false);
        for (name, value) in pairs {
            if let Some(sp) = table.iter().find(|sp| sp.name == name) {
                if sp.kind == "token" {
                    let tokens: Option<Vec<Token>> = value.split(',').map(Token::parse).collect();
                    c.tokens.push((
                        sp.field,
                        tokens.ok_or(bad(sp.name, "is not a token (code, system|code, |code or system|)"))?,
                    ));
                } else {
                    let q = DateQuery::parse(value)
                        .ok_or(bad(sp.name, "is not a FHIR date with an optional prefix"))?;
                    c.dates.push((sp.field, q));
                }
                continue;
            }
            match name {
                "_id" => c.ids.push(value.split(',').map(str::to_owned).collect()),
                "_lastUpdated" => c.last_updated.push(
                    DateQuery::parse(value)
                        .ok_or(bad("_lastUpdated", "is not a FHIR date with an optional prefix"))?,
                ),
                "_sort" if c.sort.is_some() => return Err(bad("_sort", "may be given only once")),
                "_sort" => c.sort = Some(sort_of(table, value)?),
                "_summary" if summary_given => return Err(bad("_summary", "may be given only once")),
                "_summary" => {
                    summary_given = true;
                    match Subset::of_summary(value) {
                        Some(Summary::Of(subset)) => c.subset = subset,
                        Some(Summary::Count) => c.count_only = true,
                        None => return Err(bad("_summary", "must be true, text, data, count or false")),
                    }
                }
                "_elements" if elements_given => return Err(bad("_elements", "may be given only once")),
                "_elements" => {
                    elements_given = true;
                    let types: &[&str] = match &resource_type {
                        Some(t) => std::slice::from_ref(t),
                        None => &[],
                    };
                    c.subset = Subset::of_elements(value, types).map_err(|e| BadParam {
                        name: "_elements",
                        problem: e.message(),
                        unsupported: e == tideway_profiles::elements::ElementsError::Nested,
                    })?;
                }
                "_include" | "_revinclude" => {
                    let searched = resource_type.unwrap_or_default();
                    let include = Include::parse(value, name == "_revinclude", searched)?;
                    if !c.includes.contains(&include) {
                        if c.includes.len() >= MAX_INCLUDES {
                            return Err(BadParam {
                                name: if name == "_include" { "_include" } else { "_revinclude" },
                                problem: "may be given at most 16 times in all",
                                unsupported: false,
                            });
                        }
                        c.includes.push(include);
                    }
                }
                "_total" if !matches!(value, "none" | "estimate" | "accurate") => {
                    return Err(bad("_total", "must be none, estimate or accurate"));
                }
                _ => {}
            }
        }
        // A count carries no resources, so nothing to include either.
        if c.count_only {
            c.includes.clear();
        }
        if elements_given && summary_given && !c.count_only {
            return Err(bad("_elements", "cannot be combined with _summary: ask for one or the other"));
        }
        Ok(c)
    }

    /// Whether any filter was asked for (without one, every resource matches).
    pub fn filters(&self) -> bool {
        !(self.tokens.is_empty()
            && self.dates.is_empty()
            && self.last_updated.is_empty()
            && self.ids.is_empty())
    }

    /// Whether a resource matches every filter.
    pub fn matches(&self, f: &ResourceFacts) -> bool {
        self.tokens.iter().all(|(field, any)| any.iter().any(|t| token_matches(t, *field, f)))
            && self.dates.iter().all(|(field, q)| range(f, *field).is_some_and(|r| q.matches(r)))
            && self
                .last_updated
                .iter()
                .all(|q| f.last_updated.as_deref().and_then(range_of).is_some_and(|r| q.matches(r)))
            && self.ids.iter().all(|any| any.contains(&f.id))
    }

    /// Orders `items` (stable) by the requested key; resources without the value go last.
    pub fn sort<T>(&self, items: &mut [T], facts: impl Fn(&T) -> &ResourceFacts) {
        let Some((key, descending)) = self.sort else { return };
        let value = |f: &ResourceFacts| match key {
            SortKey::Date(field) => range(f, field).map(|r| r.start),
            SortKey::LastUpdated => f.last_updated.as_deref().and_then(range_of).map(|r| r.start),
        };
        items.sort_by(|a, b| match (value(facts(a)), value(facts(b))) {
            (Some(x), Some(y)) if descending => y.cmp(&x),
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        });
    }
}

fn sort_of(table: &[SearchParam], value: &str) -> Result<(SortKey, bool), BadParam> {
    let (descending, name) = match value.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, value),
    };
    if name == "_lastUpdated" {
        return Ok((SortKey::LastUpdated, descending));
    }
    // `date` means the type's first date parameter; the type's own date parameters by name too.
    let by_name = table.iter().find(|sp| sp.kind == "date" && sp.name == name);
    let first_date = (name == "date").then(|| table.iter().find(|sp| sp.kind == "date")).flatten();
    match by_name.or(first_date) {
        Some(sp) => Ok((SortKey::Date(sp.field), descending)),
        None => Err(BadParam {
            name: "_sort",
            problem: "sorts by date, by one of this type's date parameters, or by _lastUpdated (prefix - for descending), one key only",
            unsupported: true,
        }),
    }
}

fn token_matches(t: &Token, field: Field, f: &ResourceFacts) -> bool {
    let plain = |v: &Option<String>| {
        t.code.is_some() && v.as_deref() == t.code.as_deref() && t.system.as_deref().is_none_or(str::is_empty)
    };
    match field {
        Field::Code => f.codes.iter().any(|c| t.matches(c)),
        Field::Category => f.categories.iter().any(|c| t.matches(c)),
        Field::Status => plain(&f.status),
        Field::ClinicalStatus => f.clinical_status.iter().any(|c| t.matches(c)),
        Field::ClinicalDate | Field::RecordedDate => false,
    }
}

/// The range a resource covers for a date field: a period from its start to its end (ongoing
/// when it has no end), or a single date or instant by its precision.
fn range(f: &ResourceFacts, field: Field) -> Option<Range> {
    match field {
        Field::ClinicalDate => {
            let start = range_of(f.clinical_date.as_deref()?)?;
            match f.clinical_end.as_deref().and_then(range_of) {
                Some(end) => Some(Range { start: start.start, end: end.end }),
                // A period without an end is ongoing.
                None if f.clinical_open => Some(Range { start: start.start, end: i64::MAX }),
                None => Some(start),
            }
        }
        Field::RecordedDate => range_of(f.recorded_date.as_deref()?),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
