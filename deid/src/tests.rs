//! Unit tests with real examples; the property tests are in `tests/properties.rs`.

use crate::suppress::{Group, Table, suppress, suppress_with, two_way};
use crate::*;
use hmac::Mac;
use serde_json::{Value, json};
use std::path::PathBuf;
use time::macros::date;

const SECRET: [u8; 32] = [7; 32];
const ON: time::Date = date!(2026 - 12 - 01);

fn pseudonymiser(project: &str, kid: &str, secret: &[u8]) -> Pseudonymiser {
    Pseudonymiser::new(project, ProjectKey::new(kid, secret.to_vec()).unwrap())
}

fn uk_core(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/uk-core-r4-examples/json-converted-by-fhirjs")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the shared UK Core examples are needed at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_hmac_key_block_gives_the_mac_of_the_secret_itself() {
    for len in [32, 64, 65, 100] {
        let secret: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let p = pseudonymiser("proj", "k1", &secret);
        let mut reference = hmac::Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
        for part in [&b"tideway-deid/patient/v1"[..], b"proj", b"9434765919"] {
            reference.update(&(part.len() as u64).to_be_bytes());
            reference.update(part);
        }
        let expected = hex::encode(&reference.finalize().into_bytes()[..16]);
        assert_eq!(p.patient("9434765919"), format!("k1-{expected}"), "secret of {len} bytes");
    }
}

#[test]
fn pseudonyms_are_stable_within_a_project_and_unlinkable_across() {
    let a = pseudonymiser("asthma-dashboard", "2026a", &SECRET);
    let same = pseudonymiser("asthma-dashboard", "2026a", &SECRET);
    let other_project = pseudonymiser("copd-dashboard", "2026a", &SECRET);
    let other_key = pseudonymiser("asthma-dashboard", "2026a", &[8; 32]);
    let rotated = pseudonymiser("asthma-dashboard", "2026b", &[9; 32]);
    let p = a.patient("9434765919");
    assert_eq!(p, same.patient("9434765919"));
    assert_eq!(p, a.patient("943 476 5919"));
    assert_ne!(p, a.patient("9434765900"));
    for other in [&other_project, &other_key, &rotated] {
        assert_ne!(p[p.len() - 32..], other.patient("9434765919")[p.len() - 32..]);
    }
    assert!(p.starts_with("2026a-") && rotated.patient("9434765919").starts_with("2026b-"));
    // Patients and other resources are in separate domains.
    assert_ne!(a.resource("Patient", "9434765919"), p);
    assert_eq!(a.resource("Condition", "c1"), same.resource("Condition", "c1"));
    assert_ne!(a.resource("Condition", "c1"), a.resource("Observation", "c1"));
}

#[test]
fn project_keys_refuse_bad_ids_and_short_secrets_and_never_print_the_secret() {
    assert_eq!(ProjectKey::new("", SECRET.to_vec()).unwrap_err(), KeyError::Kid);
    assert_eq!(ProjectKey::new("a-b", SECRET.to_vec()).unwrap_err(), KeyError::Kid);
    assert_eq!(ProjectKey::new("k".repeat(32), SECRET.to_vec()).unwrap_err(), KeyError::Kid);
    assert_eq!(ProjectKey::new("k1", vec![1; 31]).unwrap_err(), KeyError::Secret);
    assert_eq!(ProjectKey::from_hex("k1", "zz").unwrap_err(), KeyError::Hex);
    let key = ProjectKey::from_hex("k1", &"ab".repeat(32)).unwrap();
    let shown = format!("{key:?}");
    assert!(shown.contains("k1") && !shown.contains("ab") && !shown.contains("171"), "{shown}");
    let shown = format!("{:?}", Pseudonymiser::new("proj", key));
    assert!(shown.contains("proj") && !shown.contains("ab,"), "{shown}");
    // The longest key id still makes a valid FHIR id.
    let p = pseudonymiser("proj", &"k".repeat(31), &SECRET).patient("1");
    assert!(p.len() <= 64 && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
}

#[test]
fn age_bands_follow_birthdays() {
    assert_eq!(age_band(date!(1981 - 12 - 02), ON).label(), "40-44"); // 45 tomorrow
    assert_eq!(age_band(date!(1981 - 12 - 01), ON).label(), "45-49"); // 45 today
    assert_eq!(age_band(date!(2026 - 06 - 01), ON).label(), "0-4");
    assert_eq!(age_band(date!(2030 - 01 - 01), ON).label(), "0-4");
    assert_eq!(age_band(date!(1937 - 12 - 02), ON).label(), "85-89");
    assert_eq!(age_band(date!(1936 - 12 - 01), ON).label(), "90+");
    assert_eq!(age_band(date!(1900 - 01 - 01), ON).label(), "90+");
    // Born on 29 February: 18 on 1 March of a common year, not on 28 February.
    assert_eq!(age_band(date!(2004 - 02 - 29), date!(2024 - 02 - 28)).label(), "15-19");
    assert_eq!(age_band(date!(2004 - 02 - 29), date!(2024 - 02 - 29)).label(), "20-24");
    let labels: Vec<&str> = AgeBand::all().iter().map(AgeBand::label).collect();
    assert_eq!(labels.len(), 19);
    assert_eq!((labels[0], labels[8], labels[17], labels[18]), ("0-4", "40-44", "85-89", "90+"));
}

#[test]
fn postcodes_are_cut_to_their_district_or_dropped() {
    for (postcode, district) in [
        ("SE1 7PB", "SE1"),
        ("se17pb", "SE1"),
        ("EC1A 1BB", "EC1A"),
        ("W1A 0AX", "W1A"),
        ("N1 9GU", "N1"),
        ("LS17 7DF", "LS17"),
        ("CR2 6XH", "CR2"),
        ("  M1  1AE ", "M1"),
    ] {
        assert_eq!(postcode_district(postcode).as_deref(), Some(district), "{postcode}");
    }
    for bad in
        ["", "SE1", "LS17", "SE1 7P", "1SE 7PB", "SE1 7PC", "SE1-7PB", "ABC1 7PB", "9434765919", "SE1 7PB X"]
    {
        assert_eq!(postcode_district(bad), None, "{bad:?}");
    }
}

#[test]
fn profiles_read_from_configuration_in_kebab_case() {
    let p: Profile =
        serde_json::from_value(json!({ "birth": "age-band-5", "place": "drop", "event_dates": "day" }))
            .unwrap();
    assert_eq!(
        p,
        Profile { birth: BirthDetail::AgeBand5, place: PlaceDetail::Drop, event_dates: DatePrecision::Day }
    );
    let p: Profile = serde_json::from_value(json!({})).unwrap();
    assert_eq!(p, Profile::default());
    assert_eq!(
        p,
        Profile {
            birth: BirthDetail::YearOfBirth,
            place: PlaceDetail::District,
            event_dates: DatePrecision::Month
        }
    );
    assert!(serde_json::from_value::<Profile>(json!({ "birth": "exact" })).is_err());
    assert!(serde_json::from_value::<Profile>(json!({ "births": "age-band-5" })).is_err());
}

#[test]
fn uk_core_richard_smith_keeps_only_gender_year_of_birth_and_district() {
    let p = pseudonymiser("proj", "k1", &SECRET);
    let input = uk_core("UKCore-Patient-RichardSmith-Example.json");
    let out = deidentify(&input, &Profile::default(), &p, "9912003888", ON).unwrap();
    assert_eq!(
        out,
        json!({
            "resourceType": "Patient",
            "id": p.patient("9912003888"),
            "gender": "male",
            "birthDate": "1970",
            "address": [{ "postalCode": "LS17" }],
        })
    );
    let banded = Profile { birth: BirthDetail::AgeBand5, place: PlaceDetail::Drop, ..Profile::default() };
    let out = deidentify(&input, &banded, &p, "9912003888", ON).unwrap();
    assert_eq!(
        out,
        json!({
            "resourceType": "Patient",
            "id": p.patient("9912003888"),
            "extension": [{ "url": AGE_BAND_EXTENSION, "valueString": "55-59" }],
            "gender": "male",
        })
    );
}

#[test]
fn uk_core_condition_keeps_its_codes_and_points_at_the_pseudonym() {
    let p = pseudonymiser("proj", "k1", &SECRET);
    let input = uk_core("UKCore-Condition-BleedingFromEar-Example.json");
    let out = deidentify(&input, &Profile::default(), &p, "9912003888", ON).unwrap();
    let coding = |system: &str, code: &str, display: &str| json!({ "coding": [{ "system": system, "code": code, "display": display }] });
    assert_eq!(
        out,
        json!({
            "resourceType": "Condition",
            "id": p.resource("Condition", "UKCore-Condition-BleedingFromEar-Example"),
            "clinicalStatus": coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
            "verificationStatus": coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"),
            "category": [coding("http://terminology.hl7.org/CodeSystem/condition-category", "encounter-diagnosis", "Encounter Diagnosis")],
            "code": coding("http://snomed.info/sct", "26322001", "Bleeding from ear"),
            "subject": { "reference": format!("Patient/{}", p.patient("9912003888")) },
        })
    );
}

#[test]
fn uk_core_blood_pressure_keeps_components_and_cuts_the_date() {
    let p = pseudonymiser("proj", "k1", &SECRET);
    let input = uk_core("UKCore-Observation-VitalSigns-BloodPressure-Example.json");
    let out = deidentify(&input, &Profile::default(), &p, "9912003888", ON).unwrap();
    let components = out["component"].as_array().unwrap();
    assert_eq!(components.len(), 2, "{out:#}");
    assert!(
        components.iter().all(|c| c["valueQuantity"]["value"].is_number() && c["code"]["coding"].is_array())
    );
    let effective = out["effectiveDateTime"].as_str().unwrap();
    assert_eq!(effective.len(), 7, "{effective}");
    assert_eq!(&effective[..7], &input["effectiveDateTime"].as_str().unwrap()[..7]);
    assert!(out.get("performer").is_none() && out.get("text").is_none());
}

#[test]
fn references_are_rewritten_to_exported_types_and_dropped_otherwise() {
    let p = pseudonymiser("proj", "k1", &SECRET);
    let input = json!({
        "resourceType": "Observation",
        "id": "obs-1",
        "meta": { "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation"], "source": "emis#1" },
        "status": "final",
        "code": { "coding": [{ "system": "http://snomed.info/sct", "code": "271649006" }], "text": "BP typed by Dr Who" },
        "subject": { "reference": "Patient/p0123456789abcdef0123456789abcdef", "display": "Richard Smith" },
        "encounter": { "reference": "https://gp.example/fhir/Encounter/enc-9/_history/2", "display": "Visit" },
        "performer": [{ "reference": "Practitioner/dr-who" }],
        "derivedFrom": [{ "reference": "Location/l1" }, { "reference": "#contained" }, { "reference": "Observation/o2" }],
        "effectiveDateTime": "2024-03-15T10:20:30+00:00",
        "valueString": "free text result",
        "note": [{ "text": "called the patient at home" }],
    });
    let out = deidentify(&input, &Profile::default(), &p, "9434765919", ON).unwrap();
    assert_eq!(
        out,
        json!({
            "resourceType": "Observation",
            "id": p.resource("Observation", "obs-1"),
            "meta": { "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation"] },
            "status": "final",
            "code": { "coding": [{ "system": "http://snomed.info/sct", "code": "271649006" }] },
            "subject": { "reference": format!("Patient/{}", p.patient("9434765919")) },
            "encounter": { "reference": format!("Encounter/{}", p.resource("Encounter", "enc-9")) },
            "effectiveDateTime": "2024-03",
            "derivedFrom": [{ "reference": format!("Observation/{}", p.resource("Observation", "o2")) }],
        })
    );
}

#[test]
fn unknown_types_and_resources_missing_required_elements_are_not_exported() {
    let p = pseudonymiser("proj", "k1", &SECRET);
    let none = |r: Value| assert_eq!(deidentify(&r, &Profile::default(), &p, "9434765919", ON), None, "{r}");
    none(json!({ "resourceType": "Practitioner", "id": "dr", "name": [{ "family": "Who" }] }));
    none(json!({ "resourceType": "Provenance", "id": "x" }));
    none(json!({ "resourceType": "Observation", "status": "final", "code": { "text": "only free text" } }));
    none(
        json!({ "resourceType": "Observation", "status": "typed", "code": { "coding": [{ "code": "1" }] } }),
    );
    none(json!({
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "medicationReference": { "reference": "Medication/m1" }, "subject": { "reference": "Patient/x" },
    }));
    none(json!({ "resourceType": "Condition", "subject": { "reference": "Group/g1" } }));
    none(json!({
        "resourceType": "Immunization", "status": "completed", "vaccineCode": { "coding": [{ "code": "1" }] },
        "patient": { "reference": "Patient/x" }, "occurrenceString": "last spring",
    }));
    none(json!("not a resource"));
    // A modifier extension would change the meaning; without it the resource would mislead.
    none(json!({
        "resourceType": "Condition", "subject": { "reference": "Patient/x" },
        "modifierExtension": [{ "url": "https://gp.example/refuted", "valueBoolean": true }],
    }));
    none(json!({ "resourceType": "Patient", "modifierExtension": [{ "url": "u", "valueBoolean": true }] }));
}

#[test]
fn local_code_systems_lose_their_displays() {
    let p = pseudonymiser("proj", "k1", &SECRET);
    let input = json!({
        "resourceType": "Condition",
        "subject": { "reference": "Patient/x" },
        "code": { "coding": [
            { "system": "https://emis.example/local", "code": "EMIS123", "display": "Mr Smith's knee" },
            { "system": "http://snomed.info/sct", "code": "239873007", "display": "Osteoarthritis of knee", "extension": [{ "url": "u", "valueString": "x" }] },
        ] },
    });
    let out = deidentify(&input, &Profile::default(), &p, "9434765919", ON).unwrap();
    assert_eq!(
        out["code"],
        json!({ "coding": [
            { "system": "https://emis.example/local", "code": "EMIS123" },
            { "system": "http://snomed.info/sct", "code": "239873007", "display": "Osteoarthritis of knee" },
        ] })
    );
}

#[test]
fn the_very_old_get_a_band_not_a_year_of_birth_and_the_dead_a_flag() {
    let p = pseudonymiser("proj", "k1", &SECRET);
    let input = json!({ "resourceType": "Patient", "birthDate": "1930-05-01", "deceasedDateTime": "2026-11-03T10:00:00Z" });
    let out = deidentify(&input, &Profile::default(), &p, "9434765919", ON).unwrap();
    assert_eq!(
        out,
        json!({
            "resourceType": "Patient",
            "id": p.patient("9434765919"),
            "extension": [{ "url": AGE_BAND_EXTENSION, "valueString": "90+" }],
            "deceasedBoolean": true,
        })
    );
    // A year of birth alone gives a band only where the whole year falls in one.
    let banded = Profile { birth: BirthDetail::AgeBand5, ..Profile::default() };
    let year_only = |y: &str| {
        deidentify(&json!({ "resourceType": "Patient", "birthDate": y }), &banded, &p, "1", ON).unwrap()
    };
    assert_eq!(year_only("1983")["extension"][0]["valueString"], "40-44");
    assert!(year_only("1981").get("extension").is_none());
}

#[test]
fn event_dates_are_cut_to_the_profile_precision() {
    let p = pseudonymiser("proj", "k1", &SECRET);
    let input = json!({
        "resourceType": "Encounter", "status": "finished",
        "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory" },
        "period": { "start": "2024-03-15T09:00:00Z", "end": "2024-03-16" },
    });
    for (precision, start, end) in [
        (DatePrecision::Year, "2024", "2024"),
        (DatePrecision::Month, "2024-03", "2024-03"),
        (DatePrecision::Day, "2024-03-15", "2024-03-16"),
    ] {
        let profile = Profile { event_dates: precision, ..Profile::default() };
        let out = deidentify(&input, &profile, &p, "1", ON).unwrap();
        assert_eq!(out["period"], json!({ "start": start, "end": end }), "{precision:?}");
    }
}

#[test]
fn a_forced_cell_is_suppressed_with_a_complement_whatever_its_count() {
    // 2 x 2, every cell large: forcing one hides it, and complements keep it from being found.
    let table = two_way(2, 2, &[40, 50, 60, 70]);
    assert!(suppress(&table, 5).iter().all(Option::is_some));
    let out = suppress_with(&table, 5, &[0]);
    assert_eq!(out[0], None, "the forced cell");
    for g in &table.groups {
        let members: Vec<usize> = g.total.into_iter().chain(g.parts.iter().copied()).collect();
        assert_ne!(members.iter().filter(|m| out[**m].is_none()).count(), 1, "no lone suppressed member");
    }
    assert_eq!(suppress_with(&table, 5, &[99]), suppress(&table, 5), "an index outside the table is ignored");
}

#[test]
fn suppression_worked_example() {
    // Two boroughs by sex, with margins (the example of docs/deidentification.md).
    //            female male | total
    // borough A      12    3 |    15
    // borough B      20   30 |    50
    // total          32   33 |    65
    let table = two_way(2, 2, &[12, 3, 20, 30]);
    assert_eq!(table.cells, vec![12, 3, 20, 30, 15, 50, 32, 33, 65]);
    let published = suppress(&table, 5);
    // 3 is small; its row needs a second cell (12), then both columns do (20 and 30 are the only
    // published cells left in them); every row and column then holds two suppressed cells.
    assert_eq!(published, vec![None, None, None, None, Some(15), Some(50), Some(32), Some(33), Some(65)]);
}

#[test]
fn a_lone_suppressed_part_takes_the_smallest_published_part_with_it() {
    let table = Table {
        cells: vec![30, 2, 9, 7, 48],
        groups: vec![Group { total: Some(4), parts: vec![0, 1, 2, 3] }],
    };
    assert_eq!(suppress(&table, 5), vec![Some(30), None, Some(9), None, Some(48)]);
    // A part equal to its total takes the total with it.
    let table = Table { cells: vec![3, 3], groups: vec![Group { total: Some(1), parts: vec![0] }] };
    assert_eq!(suppress(&table, 5), vec![None, None]);
    // A total published elsewhere cannot be suppressed: two parts go.
    let table = Table { cells: vec![40, 4, 6], groups: vec![Group { total: None, parts: vec![0, 1, 2] }] };
    assert_eq!(suppress(&table, 5), vec![Some(40), None, None]);
    // Out-of-range indices are ignored, not a panic.
    let table = Table { cells: vec![1], groups: vec![Group { total: Some(9), parts: vec![0, 7] }] };
    assert_eq!(suppress(&table, 5), vec![None]);
}

#[test]
fn a_cell_bridging_two_suppressed_blocks_is_protected_too() {
    // 4 x 4 body: two 2 x 2 blocks of small cells (rows 0-1 x columns 0-1, rows 2-3 x columns
    // 2-3) and one small cell (row 0, column 2) joining them. Every row and column then holds two
    // or more suppressed cells, yet rows 0 and 1 together minus columns 0 and 1 give the joining
    // cell away: it needs a complement of its own.
    #[rustfmt::skip]
    let counts = [
        1, 2, 3, 50,
        4, 1, 60, 70,
        80, 90, 2, 3,
        95, 85, 4, 1,
    ];
    let published = suppress(&two_way(4, 4, &counts), 5);
    let small = counts.iter().filter(|c| **c < 5).count();
    let hidden = published.iter().filter(|p| p.is_none()).count();
    assert!(counts.iter().zip(&published).all(|(c, p)| *c >= 5 || p.is_none()));
    assert!(hidden > small, "only the small cells were suppressed: {published:?}");
}

#[test]
fn the_patient_level_export_carries_exactly_the_exported_types_of_the_patient_compartment() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/hl7-fhir-r4-examples/CompartmentDefinition-patient.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the shared R4 examples are needed at {}: {e}", path.display()));
    let compartment: Value = serde_json::from_str(&text).unwrap();
    let members: Vec<&str> = compartment["resource"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["param"].as_array().is_some_and(|p| !p.is_empty()))
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    for t in EXPORTED_TYPES {
        assert_eq!(in_patient_compartment(t), members.contains(&t), "{t}");
    }
    assert!(!in_patient_compartment("Task"), "the fixture tells Task apart");
    assert!(!in_patient_compartment("Provenance"), "a type that is not exported is in no export");
}
