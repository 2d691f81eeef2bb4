//! Property tests: nothing identifying survives de-identification, pseudonyms behave, dates are
//! cut, only allowed elements leave; suppression never publishes a small or derivable cell.

#![allow(clippy::unwrap_used, reason = "a panic is a test failure")]

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tideway_deid::suppress::{Group, Table, suppress, two_way};
use tideway_deid::{BirthDetail, DatePrecision, PlaceDetail, Profile, ProjectKey, Pseudonymiser, deidentify};
use time::macros::date;

const ON: time::Date = date!(2026 - 12 - 01);

/// The identifying strings one generated resource carries, which must not come out.
#[derive(Debug, Clone)]
struct Secrets {
    nhs: String,
    gateway_id: String,
    local_id: String,
    name: String,
    postcode: String,
    free_text: String,
}

impl Secrets {
    fn all(&self) -> Vec<String> {
        vec![
            self.nhs.clone(),
            self.gateway_id.clone(),
            self.local_id.clone(),
            self.name.clone(),
            self.postcode.clone(),
            self.postcode.replace(' ', ""),
            self.free_text.clone(),
        ]
    }
}

fn secrets() -> impl Strategy<Value = Secrets> {
    (
        "[1-9][0-9]{9}",
        "[0-9a-f]{32}",
        "LOC[0-9A-Z]{6,12}",
        "Nm[a-z]{8,12}",
        prop_oneof![Just("SE1"), Just("EC1A"), Just("N19"), Just("W1A"), Just("CR2")],
        "[0-9][ABDEFGHJLNPQRSTUWXYZ]{2}",
        "Free[a-z]{6,10} text",
    )
        .prop_map(|(nhs, hex, local_id, name, outward, inward, free_text)| Secrets {
            nhs,
            gateway_id: format!("p{hex}"),
            local_id,
            name,
            postcode: format!("{outward} {inward}"),
            free_text,
        })
}

/// A date or dateTime as sources write them, at any precision.
fn event_date() -> impl Strategy<Value = String> {
    (1990..2026i32, 1..=12u8, 1..=28u8, 0..4usize).prop_map(|(y, m, d, shape)| match shape {
        0 => format!("{y}"),
        1 => format!("{y}-{m:02}"),
        2 => format!("{y}-{m:02}-{d:02}"),
        _ => format!("{y}-{m:02}-{d:02}T13:45:12+01:00"),
    })
}

/// Every place a source may put identifying data, filled from `s`: elements the allow-list does
/// not name, and the free-text corners of elements it does.
fn identifying_elements(s: &Secrets, extra_key: &str) -> Map<String, Value> {
    let Value::Object(m) = json!({
        "text": { "status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{} {}</div>", s.name, s.free_text) },
        "identifier": [
            { "system": "https://fhir.nhs.uk/Id/nhs-number", "value": s.nhs },
            { "system": "https://tideway.london/Id/gateway", "value": s.gateway_id },
            { "system": "https://gp.example/Id/local", "value": s.local_id },
        ],
        "name": [{ "family": s.name, "text": s.name }],
        "telecom": [{ "system": "phone", "value": s.nhs }],
        "contact": [{ "name": { "family": s.name }, "address": { "postalCode": s.postcode } }],
        "note": [{ "text": s.free_text, "authorString": s.name }],
        "extension": [{ "url": "https://gp.example/ext", "valueString": s.local_id }],
        "performer": [{ "reference": format!("Practitioner/{}", s.local_id), "display": s.name }],
        "recorder": { "reference": format!("Practitioner/{}", s.local_id) },
        "asserter": { "reference": format!("RelatedPerson/{}", s.local_id) },
        "valueString": s.free_text,
        "comment": s.free_text,
        extra_key: { "nested": [s.nhs.clone(), s.gateway_id.clone(), s.postcode.clone()] },
    }) else {
        unreachable!()
    };
    m
}

fn codeable(code: &str, text: &str) -> Value {
    json!({ "coding": [{ "system": "http://snomed.info/sct", "code": code, "display": "Hypertension" }], "text": text })
}

/// A Patient, Condition or Observation of the patient, carrying the secrets everywhere.
fn resource() -> impl Strategy<Value = (Value, Secrets)> {
    (secrets(), 0..3usize, event_date(), event_date(), "[a-z]{3,10}").prop_map(|(s, kind, d1, d2, extra)| {
        let subject = json!({ "reference": format!("Patient/{}", s.gateway_id), "display": s.name });
        let mut r = identifying_elements(&s, &format!("x{extra}"));
        let own: Value = match kind {
            0 => json!({
                "resourceType": "Patient",
                "id": s.gateway_id,
                "gender": "female",
                "birthDate": d1,
                "address": [{ "use": "home", "line": [format!("1 {} Road", s.name)], "city": s.name, "postalCode": s.postcode }],
                "deceasedDateTime": d2,
                "generalPractitioner": [{ "reference": format!("Organization/{}", s.local_id) }],
            }),
            1 => json!({
                "resourceType": "Condition",
                "id": s.local_id,
                "meta": { "source": s.local_id, "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Condition"] },
                "clinicalStatus": codeable("active", &s.free_text),
                "code": codeable("38341003", &s.free_text),
                "subject": subject,
                "encounter": { "reference": format!("Encounter/{}", s.local_id), "display": s.free_text },
                "onsetDateTime": d1,
                "recordedDate": d2,
                "abatementString": s.free_text,
            }),
            _ => json!({
                "resourceType": "Observation",
                "id": s.local_id,
                "status": "final",
                "code": codeable("271649006", &s.free_text),
                "subject": subject,
                "effectivePeriod": { "start": d1, "end": d2 },
                "issued": "2024-01-02T03:04:05Z",
                "valueQuantity": { "value": 140, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]" },
                "derivedFrom": [{ "reference": format!("Observation/{}", s.local_id) }],
            }),
        };
        let Value::Object(own) = own else { unreachable!() };
        r.extend(own);
        (Value::Object(r), s)
    })
}

fn profile() -> impl Strategy<Value = Profile> {
    (
        prop_oneof![Just(BirthDetail::YearOfBirth), Just(BirthDetail::AgeBand5)],
        prop_oneof![Just(PlaceDetail::District), Just(PlaceDetail::Drop)],
        prop_oneof![Just(DatePrecision::Year), Just(DatePrecision::Month), Just(DatePrecision::Day)],
    )
        .prop_map(|(birth, place, event_dates)| Profile { birth, place, event_dates })
}

fn pseudonymiser(project: &str, kid: &str, seed: u8) -> Pseudonymiser {
    Pseudonymiser::new(project, ProjectKey::new(kid, vec![seed; 32]).unwrap())
}

/// The top-level elements each generated type may have after de-identification, written out
/// here independently of the crate's own tables.
fn allowed(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Patient" => {
            &["resourceType", "id", "meta", "extension", "gender", "birthDate", "deceasedBoolean", "address"]
        }
        "Condition" => &[
            "resourceType",
            "id",
            "meta",
            "clinicalStatus",
            "verificationStatus",
            "category",
            "severity",
            "code",
            "bodySite",
            "subject",
            "encounter",
            "onsetDateTime",
            "onsetPeriod",
            "abatementDateTime",
            "abatementPeriod",
            "abatementBoolean",
            "recordedDate",
        ],
        "Observation" => &[
            "resourceType",
            "id",
            "meta",
            "basedOn",
            "partOf",
            "status",
            "category",
            "code",
            "subject",
            "encounter",
            "effectiveDateTime",
            "effectivePeriod",
            "valueQuantity",
            "valueCodeableConcept",
            "valueBoolean",
            "valueInteger",
            "dataAbsentReason",
            "interpretation",
            "bodySite",
            "method",
            "hasMember",
            "derivedFrom",
            "component",
        ],
        _ => &[],
    }
}

/// Every string in `v`, with the key it was found under.
fn strings<'a>(v: &'a Value, key: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    match v {
        Value::String(s) => out.push((key, s)),
        Value::Array(items) => items.iter().for_each(|i| strings(i, key, out)),
        Value::Object(m) => m.iter().for_each(|(k, i)| strings(i, k, out)),
        _ => {}
    }
}

const DATE_KEYS: [&str; 6] =
    ["birthDate", "onsetDateTime", "recordedDate", "start", "end", "effectiveDateTime"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nothing_identifying_leaves((input, s) in resource(), profile in profile()) {
        let p = pseudonymiser("asthma-dashboard", "k1", 1);
        let out = deidentify(&input, &profile, &p, &s.nhs, ON).expect("these resources are exportable");
        let text = out.to_string();
        for secret in s.all() {
            prop_assert!(!text.contains(&secret), "{secret:?} leaked: {text}");
        }
        prop_assert!(!text.to_lowercase().contains(&s.name.to_lowercase()));
    }

    #[test]
    fn only_allowed_elements_leave((input, s) in resource(), profile in profile()) {
        let p = pseudonymiser("asthma-dashboard", "k1", 1);
        let out = deidentify(&input, &profile, &p, &s.nhs, ON).unwrap();
        let rt = out["resourceType"].as_str().unwrap();
        let allowed = allowed(rt);
        for key in out.as_object().unwrap().keys() {
            prop_assert!(allowed.contains(&key.as_str()), "{rt}.{key} left");
        }
        // No CodeableConcept keeps its free text, no reference its display.
        let mut found = Vec::new();
        strings(&out, "", &mut found);
        prop_assert!(found.iter().all(|(k, _)| *k != "text" && *k != "div"));
        if let Some(meta) = out.get("meta") {
            prop_assert_eq!(meta.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["profile"]);
        }
        if rt == "Patient" {
            if let Some(address) = out.get("address") {
                prop_assert_eq!(address, &json!([{ "postalCode": s.postcode.split(' ').next().unwrap() }]));
            }
            prop_assert_eq!(out.get("address").is_some(), profile.place == PlaceDetail::District);
        }
    }

    #[test]
    fn event_dates_are_no_finer_than_the_profile((input, s) in resource(), profile in profile()) {
        let p = pseudonymiser("asthma-dashboard", "k1", 1);
        let out = deidentify(&input, &profile, &p, &s.nhs, ON).unwrap();
        let mut found = Vec::new();
        strings(&out, "", &mut found);
        let longest = match profile.event_dates { DatePrecision::Year => 4, DatePrecision::Month => 7, DatePrecision::Day => 10 };
        for (key, value) in found.into_iter().filter(|(k, _)| DATE_KEYS.contains(k)) {
            prop_assert!(!value.contains('T'), "{key}: {value}");
            if key == "birthDate" {
                prop_assert_eq!(value.len(), 4, "birthDate: {}", value);
            } else {
                prop_assert!(value.len() <= longest, "{}: {} under {:?}", key, value, profile.event_dates);
            }
        }
    }

    #[test]
    fn subjects_and_ids_are_pseudonyms_stable_per_project((input, s) in resource(), profile in profile()) {
        let a = deidentify(&input, &profile, &pseudonymiser("asthma", "k1", 1), &s.nhs, ON).unwrap();
        let again = deidentify(&input, &profile, &pseudonymiser("asthma", "k1", 1), &s.nhs, ON).unwrap();
        let other_project = deidentify(&input, &profile, &pseudonymiser("copd", "k1", 1), &s.nhs, ON).unwrap();
        let other_key = deidentify(&input, &profile, &pseudonymiser("asthma", "k1", 2), &s.nhs, ON).unwrap();
        prop_assert_eq!(&a, &again);
        let patient = pseudonymiser("asthma", "k1", 1).patient(&s.nhs);
        let id = a["id"].as_str().unwrap();
        prop_assert!(id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
        if a["resourceType"] == "Patient" {
            prop_assert_eq!(id, patient.as_str());
        } else {
            prop_assert_eq!(&a["subject"], &json!({ "reference": format!("Patient/{patient}") }));
        }
        prop_assert_ne!(&a["id"], &other_project["id"]);
        prop_assert_ne!(&a["id"], &other_key["id"]);
    }

    #[test]
    fn pseudonyms_differ_between_patients_and_projects(
        a in "[0-9]{10}", b in "[0-9]{10}", project in "[a-z]{1,12}", other in "[a-z]{1,12}",
    ) {
        let p = pseudonymiser(&project, "k1", 3);
        prop_assert_eq!(p.patient(&a), pseudonymiser(&project, "k1", 3).patient(&a));
        prop_assert_eq!(a == b, p.patient(&a) == p.patient(&b));
        prop_assert_eq!(project == other, p.patient(&a) == pseudonymiser(&other, "k1", 3).patient(&a));
    }
}

/// A table of random groups over random cells: each group's total is the sum of its parts, as
/// published tables are (totals may be cells or known from elsewhere).
fn table() -> impl Strategy<Value = Table> {
    (
        prop::collection::vec(0..40u64, 2..12),
        prop::collection::vec(
            (any::<bool>(), prop::collection::vec(any::<prop::sample::Index>(), 2..5)),
            1..4,
        ),
    )
        .prop_map(|(base, groups)| {
            let mut cells = base;
            let groups = groups
                .into_iter()
                .map(|(as_cell, parts)| {
                    let mut parts: Vec<usize> = parts.iter().map(|i| i.index(cells.len())).collect();
                    parts.sort_unstable();
                    parts.dedup();
                    let sum = parts.iter().map(|i| cells[*i]).sum();
                    let total = (as_cell || parts.len() < 2).then(|| {
                        cells.push(sum);
                        cells.len() - 1
                    });
                    Group { total, parts }
                })
                .collect();
            Table { cells, groups }
        })
}

fn members(g: &Group) -> Vec<usize> {
    g.total.into_iter().chain(g.parts.iter().copied()).collect()
}

/// Whether suppressed cell `cell` of a two-way table lies on a cycle of suppressed cells.
///
/// In a [`two_way`] table every cell is in exactly two groups (a body cell in its row and its
/// column, a row total in its row and the grand group of row totals, ...), and after flipping the
/// sign of some groups' equations each cell has +1 in one group and -1 in the other: the sums are
/// flow conservation on a graph whose nodes are the groups and whose edges are the cells. The
/// suppressed cells' values can then be changed together, keeping every sum, exactly along cycles
/// of suppressed edges; a suppressed cell on no cycle (a bridge) is derivable.
fn on_a_cycle(table: &Table, hidden: &[usize], cell: usize) -> bool {
    let ends = |c: usize| -> Vec<usize> {
        (0..table.groups.len()).filter(|g| members(&table.groups[*g]).contains(&c)).collect()
    };
    let (from, to) = match ends(cell).as_slice() {
        [a, b] => (*a, *b),
        other => panic!("cell {cell} is in {} groups, not 2", other.len()),
    };
    let mut seen = vec![false; table.groups.len()];
    let mut stack = vec![from];
    seen[from] = true;
    while let Some(node) = stack.pop() {
        for edge in hidden.iter().copied().filter(|h| *h != cell) {
            let e = ends(edge);
            if e.contains(&node) {
                let next = if e[0] == node { e[1] } else { e[0] };
                if !seen[next] {
                    seen[next] = true;
                    stack.push(next);
                }
            }
        }
    }
    seen[to]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn small_cells_are_never_published(t in table(), threshold in 0..12u64) {
        let published = suppress(&t, threshold);
        for (cell, shown) in t.cells.iter().zip(&published) {
            if let Some(v) = shown {
                prop_assert!(*v >= threshold);
                prop_assert_eq!(v, cell);
            }
        }
    }

    #[test]
    fn no_group_gives_a_suppressed_member_away_by_subtraction(t in table(), threshold in 0..12u64) {
        let published = suppress(&t, threshold);
        for g in &t.groups {
            let hidden = members(g).into_iter().filter(|i| published[*i].is_none()).count();
            // With the total known from elsewhere, a one-part group gives its part away whatever
            // is done; the generator does not make those.
            prop_assert!(hidden != 1, "group {g:?}: {published:?}");
        }
    }

    #[test]
    fn suppression_is_idempotent(t in table(), threshold in 1..12u64) {
        // Suppressing the published table again, its suppressed cells written as 0, changes
        // nothing: the output is a fixed point.
        let once = suppress(&t, threshold);
        let as_published: Vec<u64> = t.cells.iter().zip(&once).map(|(c, s)| if s.is_some() { *c } else { 0 }).collect();
        let again = suppress(&Table { cells: as_published, groups: t.groups.clone() }, threshold);
        let hidden = |v: &[Option<u64>]| v.iter().map(Option::is_none).collect::<Vec<_>>();
        prop_assert_eq!(hidden(&again), hidden(&once));
        prop_assert_eq!(suppress(&t, threshold), once);
    }

    #[test]
    fn tables_without_small_cells_are_published_unchanged(t in table(), threshold in 0..12u64) {
        let t = Table { cells: t.cells.iter().map(|c| c + threshold).collect(), groups: vec![] };
        prop_assert_eq!(suppress(&t, threshold), t.cells.iter().map(|c| Some(*c)).collect::<Vec<_>>());
        let grid = two_way(3, 4, &[threshold + 3; 12]);
        prop_assert!(suppress(&grid, threshold).iter().all(Option::is_some));
    }

    #[test]
    fn two_way_tables_leave_no_suppressed_cell_derivable(
        (rows, cols, counts) in (1..7usize, 1..7usize).prop_flat_map(|(r, c)| (Just(r), Just(c), prop::collection::vec(prop_oneof![1 => 0..5u64, 4 => 5..60u64], r * c))),
    ) {
        let t = two_way(rows, cols, &counts);
        let published = suppress(&t, 5);
        let hidden: Vec<usize> = (0..published.len()).filter(|i| published[*i].is_none()).collect();
        for cell in &hidden {
            prop_assert!(on_a_cycle(&t, &hidden, *cell), "cell {cell} derivable: {published:?}");
        }
    }
}
