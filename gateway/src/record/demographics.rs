//! Demographic matching for `Patient/$match`: what a Patient says about who they are,
//! normalised, how well it agrees with what was asked, and where sources disagree. Pure.
//!
//! A candidate's score is the weighted share of the fields asked that some source's Patient
//! agrees with (NHS number 0.40, birth date 0.20, family name 0.15, given name 0.10, postcode
//! 0.10, gender 0.05); a field some source holds but none agrees on is a disagreement. Grades:
//! `certain` needs the NHS number, birth date and family name to agree and nothing to disagree;
//! `probable` the birth date, family name and either the given name or the NHS number, with
//! nothing disagreeing; `possible` the birth date and one name, with at most one disagreement;
//! anything else is `certainly-not`. Without an NHS number no match is certain. A restricted
//! patient's address is never compared, so a score cannot confirm where they live.

use serde_json::Value;
use tideway_profiles::{NhsNumber, systems};

/// The match-grade extension's URL.
pub const MATCH_GRADE_URL: &str = "http://hl7.org/fhir/StructureDefinition/match-grade";

/// What a `$match` asks for, normalised at the edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchQuery {
    /// The NHS number, when given (Mod 11 checked).
    pub nhs: Option<NhsNumber>,
    /// Family name, normalised.
    pub family: Option<String>,
    /// Given names, normalised.
    pub given: Vec<String>,
    /// Birth date as written (`YYYY-MM-DD`).
    pub birth_date: Option<String>,
    /// Administrative gender code.
    pub gender: Option<String>,
    /// Postcode, normalised.
    pub postcode: Option<String>,
    /// Only `certain` matches are returned.
    pub only_certain: bool,
    /// At most this many candidates.
    pub count: usize,
}

impl MatchQuery {
    /// The query a Patient resource asks. `Err` names what is wrong (never a value).
    pub fn of_patient(patient: &Value, only_certain: bool, count: usize) -> Result<Self, &'static str> {
        let mut nhs = None;
        for id in patient.get("identifier").and_then(Value::as_array).into_iter().flatten() {
            if id.get("system").and_then(Value::as_str) != Some(systems::NHS_NUMBER) {
                continue;
            }
            let value = id.get("value").and_then(Value::as_str).unwrap_or_default();
            let parsed = NhsNumber::parse(value).map_err(|_| "the NHS number is not valid")?;
            if nhs.as_ref().is_some_and(|n| n != &parsed) {
                return Err("the resource gives two different NHS numbers");
            }
            nhs = Some(parsed);
        }
        let seen = Demographics::of(patient);
        let query = Self {
            nhs,
            family: seen.family.into_iter().next(),
            given: seen.given,
            birth_date: seen.birth_date,
            gender: seen.gender,
            postcode: seen.postcodes.into_iter().next(),
            only_certain,
            count,
        };
        if let Some(d) = &query.birth_date
            && !is_date(d)
        {
            return Err("birthDate must be a full date (YYYY-MM-DD)");
        }
        if query.nhs.is_none() && (query.birth_date.is_none() || query.family.is_none()) {
            return Err("the resource needs an NHS number, or a family name and a birth date");
        }
        Ok(query)
    }
}

fn is_date(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// What one Patient says about who they are, normalised for comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demographics {
    /// NHS numbers.
    pub nhs: Vec<String>,
    /// Family names.
    pub family: Vec<String>,
    /// Given names.
    pub given: Vec<String>,
    /// Birth date.
    pub birth_date: Option<String>,
    /// Gender.
    pub gender: Option<String>,
    /// Postcodes.
    pub postcodes: Vec<String>,
}

/// A name compared as letters and digits only, case-insensitively: `O'Brien` is `obrien`.
pub fn normalise_name(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// A postcode compared without spaces, in capitals.
pub fn normalise_postcode(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect()
}

impl Demographics {
    /// Reads a Patient.
    pub fn of(patient: &Value) -> Self {
        let list = |key: &str| patient.get(key).and_then(Value::as_array).into_iter().flatten();
        let mut out = Self::default();
        for id in list("identifier") {
            if id.get("system").and_then(Value::as_str) == Some(systems::NHS_NUMBER)
                && let Some(v) = id.get("value").and_then(Value::as_str)
            {
                out.nhs.push(v.to_owned());
            }
        }
        for name in list("name") {
            if let Some(f) = name.get("family").and_then(Value::as_str) {
                push_new(&mut out.family, normalise_name(f));
            }
            for g in
                name.get("given").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
            {
                push_new(&mut out.given, normalise_name(g));
            }
        }
        for a in list("address") {
            if let Some(p) = a.get("postalCode").and_then(Value::as_str) {
                push_new(&mut out.postcodes, normalise_postcode(p));
            }
        }
        out.birth_date = patient.get("birthDate").and_then(Value::as_str).map(str::to_owned);
        out.gender = patient.get("gender").and_then(Value::as_str).map(str::to_owned);
        out
    }
}

fn push_new(list: &mut Vec<String>, value: String) {
    if !value.is_empty() && !list.contains(&value) {
        list.push(value);
    }
}

/// How sure a match is (the `match-grade` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grade {
    /// The same person.
    Certain,
    /// Very likely the same person.
    Probable,
    /// Perhaps the same person.
    Possible,
    /// Not the same person.
    CertainlyNot,
}

impl Grade {
    /// The match-grade code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Certain => "certain",
            Self::Probable => "probable",
            Self::Possible => "possible",
            Self::CertainlyNot => "certainly-not",
        }
    }
}

/// Agreement of one field: `None` when the query or every source is silent on it.
fn agreement(asked: &[String], held: &[&Vec<String>]) -> Option<bool> {
    let held: Vec<&String> = held.iter().flat_map(|v| v.iter()).collect();
    if asked.is_empty() || held.is_empty() {
        return None;
    }
    Some(asked.iter().any(|a| held.contains(&a)))
}

/// The score (0 to 1, two decimals) and grade of a candidate whose sources' Patients say
/// `seen`. A restricted patient's postcode is not compared.
pub fn score(q: &MatchQuery, seen: &[Demographics], restricted: bool) -> (f64, Grade) {
    let one = |o: &Option<String>| o.iter().cloned().collect::<Vec<String>>();
    let field =
        |pick: fn(&Demographics) -> Vec<String>| -> Vec<Vec<String>> { seen.iter().map(pick).collect() };
    let compare =
        |asked: Vec<String>, held: Vec<Vec<String>>| agreement(&asked, &held.iter().collect::<Vec<_>>());
    let nhs = compare(one(&q.nhs.as_ref().map(|n| n.as_str().to_owned())), field(|d| d.nhs.clone()));
    let birth = compare(one(&q.birth_date), field(|d| d.birth_date.iter().cloned().collect()));
    let family = compare(one(&q.family), field(|d| d.family.clone()));
    let given = compare(q.given.clone(), field(|d| d.given.clone()));
    let postcode = if restricted { None } else { compare(one(&q.postcode), field(|d| d.postcodes.clone())) };
    let gender = compare(one(&q.gender), field(|d| d.gender.iter().cloned().collect()));
    let weighted = [(nhs, 40), (birth, 20), (family, 15), (given, 10), (postcode, 10), (gender, 5)];
    let points: u32 = weighted.iter().filter(|(a, _)| *a == Some(true)).map(|(_, w)| w).sum();
    let against = weighted.iter().filter(|(a, _)| *a == Some(false)).count();
    let yes = |a: Option<bool>| a == Some(true);
    let grade = if nhs == Some(false) {
        Grade::CertainlyNot
    } else if yes(nhs) && yes(birth) && yes(family) && against == 0 {
        Grade::Certain
    } else if yes(birth) && yes(family) && (yes(given) || yes(nhs)) && against == 0 {
        Grade::Probable
    } else if yes(birth) && (yes(family) || yes(given)) && against <= 1 {
        Grade::Possible
    } else {
        Grade::CertainlyNot
    };
    (f64::from(points) / 100.0, grade)
}

/// The fields on which the sources' Patients of one patient disagree (`family`, `given`,
/// `birthDate`, `gender`, `address`), never their values.
pub fn conflicts(seen: &[Demographics]) -> Vec<&'static str> {
    let differ = |pick: fn(&Demographics) -> Option<String>| {
        let mut values: Vec<String> = seen.iter().filter_map(pick).collect();
        values.sort();
        values.dedup();
        values.len() > 1
    };
    let mut out = Vec::new();
    if differ(|d| d.family.first().cloned()) {
        out.push("family");
    }
    if differ(|d| d.given.first().cloned()) {
        out.push("given");
    }
    if differ(|d| d.birth_date.clone()) {
        out.push("birthDate");
    }
    if differ(|d| d.gender.clone()) {
        out.push("gender");
    }
    if differ(|d| d.postcodes.first().cloned()) {
        out.push("address");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NHS: &str = "9434765919";

    fn patient(family: &str, given: &str, birth: &str, gender: &str, postcode: &str) -> Value {
        json!({"resourceType": "Patient",
            "identifier": [{"system": systems::NHS_NUMBER, "value": NHS}],
            "name": [{"family": family, "given": [given]}], "birthDate": birth, "gender": gender,
            "address": [{"postalCode": postcode}]})
    }

    fn ask(p: &Value) -> MatchQuery {
        MatchQuery::of_patient(p, true, 10).unwrap()
    }

    #[test]
    fn the_same_person_by_number_and_demographics_is_certain_whatever_the_spelling_case() {
        let held = [Demographics::of(&patient("O'Brien", "Ada", "1950-01-02", "female", "NW1 1AA"))];
        let q = ask(&patient("OBRIEN", "ada", "1950-01-02", "female", "nw11aa"));
        assert_eq!(score(&q, &held, false), (1.0, Grade::Certain));
    }

    #[test]
    fn without_a_number_the_best_is_probable_and_disagreement_lowers_the_grade() {
        let held = [Demographics::of(&patient("Smith", "Ada", "1950-01-02", "female", "NW1 1AA"))];
        let mut asked = patient("Smith", "Ada", "1950-01-02", "female", "NW1 1AA");
        asked.as_object_mut().unwrap().remove("identifier");
        assert_eq!(score(&ask(&asked), &held, false), (0.6, Grade::Probable));
        asked["gender"] = json!("male");
        assert_eq!(score(&ask(&asked), &held, false).1, Grade::Possible);
        asked["birthDate"] = json!("1951-01-02");
        assert_eq!(score(&ask(&asked), &held, false).1, Grade::CertainlyNot);
    }

    #[test]
    fn a_number_with_the_wrong_birth_date_is_not_certain() {
        let held = [Demographics::of(&patient("Smith", "Ada", "1950-01-02", "female", "NW1 1AA"))];
        let q = ask(&patient("Smith", "Ada", "1960-01-02", "female", "NW1 1AA"));
        let (points, grade) = score(&q, &held, false);
        assert_eq!(points, 0.8);
        assert_ne!(grade, Grade::Certain);
    }

    #[test]
    fn a_restricted_patients_postcode_is_never_compared() {
        let held = [Demographics::of(&patient("Smith", "Ada", "1950-01-02", "female", "NW1 1AA"))];
        let right = ask(&patient("Smith", "Ada", "1950-01-02", "female", "NW1 1AA"));
        let wrong = ask(&patient("Smith", "Ada", "1950-01-02", "female", "E1 6AN"));
        assert_eq!(
            score(&right, &held, true),
            score(&wrong, &held, true),
            "the score says nothing of where they live"
        );
        assert_eq!(score(&right, &held, true), (0.9, Grade::Certain));
    }

    #[test]
    fn sources_that_disagree_are_named_by_field_only() {
        let a = Demographics::of(&patient("Smith", "Ada", "1950-01-02", "female", "NW1 1AA"));
        let b = Demographics::of(&patient("SMITH", "Ada", "1950-02-01", "female", "E1 6AN"));
        assert_eq!(conflicts(&[a.clone(), b]), ["birthDate", "address"]);
        assert!(conflicts(&[a.clone(), a]).is_empty());
    }

    #[test]
    fn bad_input_is_named_without_its_value() {
        let mut p = patient("Smith", "Ada", "1950-01-02", "female", "NW1 1AA");
        p["identifier"][0]["value"] = json!("9434765918");
        assert_eq!(MatchQuery::of_patient(&p, true, 1), Err("the NHS number is not valid"));
        let bare = json!({"resourceType": "Patient", "name": [{"family": "Smith"}]});
        assert!(MatchQuery::of_patient(&bare, true, 1).is_err(), "too little to match on");
        let partial = json!({"resourceType": "Patient", "name": [{"family": "Smith"}], "birthDate": "1950"});
        assert!(MatchQuery::of_patient(&partial, true, 1).is_err());
    }
}
