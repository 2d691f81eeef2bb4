//! Unit tests of `merge`.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

/// The gateway id every source gives the requested patient in these tests.
const PID: &str = "p0";

fn res(source: &str, ty: &str, n: u32, key: Option<u32>) -> NormalisedResource {
    // Patient n = 0 is the requested patient; other Patients are someone else.
    let id = if ty == "Patient" && n == 0 { PID.to_owned() } else { format!("{source}.{ty}-{n}") };
    let facts = ResourceFacts {
        resource_type: ty.to_owned(),
        merge_key: key.map(|k| format!("{ty}|fact-{k}")),
        ..ResourceFacts::default()
    };
    NormalisedResource {
        resource_type: ty.to_owned(),
        json: Arc::from(json!({"resourceType": ty, "id": id}).to_string().into_bytes()),
        id,
        facts: Arc::new(facts),
    }
}

fn sid(s: &str) -> SourceId {
    SourceId::parse(s).unwrap()
}

#[test]
fn the_same_fact_from_two_sources_appears_once_with_provenance() {
    let a = SourceResources {
        source: sid("a"),
        resources: vec![res("a", "Patient", 0, None), res("a", "AllergyIntolerance", 1, Some(7))],
    };
    let b = SourceResources {
        source: sid("b"),
        resources: vec![
            res("b", "Patient", 0, None),
            res("b", "AllergyIntolerance", 1, Some(7)),
            res("b", "Condition", 2, Some(8)),
        ],
    };
    let m = merge(&[a, b], PID, "2026-01-01T00:00:00Z");
    let ids: Vec<&str> = m.resources.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids[..3], [PID, "a.AllergyIntolerance-1", "b.Condition-2"]);
    assert_eq!(m.resources.len(), 4);
    assert_eq!(m.folded, 1);
    let prov: Value = serde_json::from_slice(&m.resources[3].json).unwrap();
    assert_eq!(prov["target"][0]["reference"], "AllergyIntolerance/a.AllergyIntolerance-1");
    assert_eq!(prov["entity"][1]["what"]["identifier"]["value"], "b.AllergyIntolerance-1");
    assert_eq!(tideway_profiles::validate::check_r4_value(&prov), Ok(()));
}

/// Real resources, facts read from them as adapters do: the same medicine on the same day
/// with a different dose is two facts, shown twice; the same dose is one fact, shown once.
#[test]
fn a_change_of_dose_reported_by_another_source_is_never_merged_away() {
    let statement = |source: &str, dose: &str| {
        let v = json!({"resourceType": "MedicationStatement", "id": format!("{source}.ms1"), "status": "active",
            "medicationCodeableConcept": {"coding": [{"system": "https://dmd.nhs.uk", "code": "318858000"}]},
            "subject": {"reference": format!("Patient/{PID}")}, "effectivePeriod": {"start": "2024-01-01"},
            "dosage": [{"text": dose}]});
        NormalisedResource::from_value(&v).unwrap()
    };
    let of = |source: &str, dose: &str| SourceResources {
        source: sid(source),
        resources: vec![res(source, "Patient", 0, None), statement(source, dose)],
    };
    let changed =
        merge(&[of("a", "One capsule daily"), of("b", "Two capsules daily")], PID, "2026-01-01T00:00:00Z");
    let statements = changed.resources.iter().filter(|r| r.resource_type == "MedicationStatement").count();
    assert_eq!((statements, changed.folded), (2, 0), "both doses reach the clinician");
    let same =
        merge(&[of("a", "One capsule daily"), of("b", "One capsule daily")], PID, "2026-01-01T00:00:00Z");
    let statements = same.resources.iter().filter(|r| r.resource_type == "MedicationStatement").count();
    assert_eq!((statements, same.folded), (1, 1));
}

/// One allergy from three systems, each with its own codes beside the one SNOMED CT code:
/// shown once, carrying every original code, each added one marked with the copy it came
/// from; a coding a map added to a copy is not carried over.
#[test]
fn a_folded_copys_own_codes_are_kept_on_the_entry_shown() {
    let allergy = |source: &str, extra: Value| {
        let mut coding = vec![
            json!({"system": "http://snomed.info/sct", "code": "91936005", "display": "Penicillin allergy"}),
        ];
        coding.extend(extra.as_array().cloned().unwrap_or_default());
        let v = json!({"resourceType": "AllergyIntolerance", "id": format!("{source}.al1"),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "code": {"coding": coding}, "patient": {"reference": format!("Patient/{PID}")}, "recordedDate": "2019-05-01"});
        SourceResources {
            source: sid(source),
            resources: vec![res(source, "Patient", 0, None), NormalisedResource::from_value(&v).unwrap()],
        }
    };
    let mapped = json!({"system": "http://snomed.info/sct", "code": "294505008",
        "extension": [{"url": tideway_profiles::maps::MAPPED_BY_URL, "valueString": "v"}]});
    let m = merge(
        &[
            allergy("r4", json!([])),
            allergy("s1", json!([{"system": "http://read.info/ctv3", "code": "XaBL2"}])),
            allergy(
                "emis",
                json!([{"system": "https://fhir.tideway.london/CodeSystem/emis-code-id", "code": "1234"}, mapped]),
            ),
        ],
        PID,
        "2026-01-01T00:00:00Z",
    );
    assert_eq!(m.folded, 2);
    let shown: Vec<&NormalisedResource> =
        m.resources.iter().filter(|r| r.resource_type == "AllergyIntolerance").collect();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].id, "r4.al1", "the first source's copy is the one shown");
    let v: Value = serde_json::from_slice(&shown[0].json).unwrap();
    let codes: Vec<(&str, &str)> = v["code"]["coding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["system"].as_str().unwrap(), c["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [
            ("http://snomed.info/sct", "91936005"),
            ("http://read.info/ctv3", "XaBL2"),
            ("https://fhir.tideway.london/CodeSystem/emis-code-id", "1234")
        ]
    );
    assert_eq!(v["code"]["coding"][1]["extension"][0]["url"], CODING_FROM_URL);
    assert_eq!(v["code"]["coding"][1]["extension"][0]["valueIdentifier"]["system"], "urn:tideway:source:s1");
    assert_eq!(v["code"]["coding"][2]["extension"][0]["valueIdentifier"]["value"], "emis.al1");
    assert!(shown[0].facts.codes.iter().any(|c| c.code == "XaBL2"), "the facts see the added codes");
    let before = allergy("r4", json!([])).resources[1].merge_key().map(str::to_owned);
    assert_eq!(shown[0].merge_key(), before.as_deref(), "widening keeps the fact's key");
    assert_eq!(tideway_profiles::validate::check_r4_value(&v), Ok(()));
    let prov = m.resources.iter().find(|r| r.resource_type == "Provenance").unwrap();
    let prov: Value = serde_json::from_slice(&prov.json).unwrap();
    assert_eq!(prov["entity"].as_array().unwrap().len(), 3, "every origin is named");
}

#[test]
fn the_requested_patient_represents_the_record_even_after_another_patient() {
    // A source lists a linked person (a mother, say) before the patient asked about.
    let a = SourceResources {
        source: sid("a"),
        resources: vec![
            res("a", "Patient", 5, None),
            res("a", "Patient", 0, None),
            res("a", "Condition", 1, None),
        ],
    };
    let m = merge(&[a], PID, "2026-01-01T00:00:00Z");
    let ids: Vec<&str> = m.resources.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [PID, "a.Patient-5", "a.Condition-1"]);
}

fn arb_sources() -> impl Strategy<Value = Vec<SourceResources>> {
    let names = ["a", "b", "c", "d"];
    prop::collection::vec(prop::collection::vec((0u32..5, prop::option::of(0u32..6)), 0..8), 1..4).prop_map(
        move |per| {
            per.into_iter()
                .enumerate()
                .map(|(i, rs)| SourceResources {
                    source: sid(names[i]),
                    resources: rs
                        .into_iter()
                        .enumerate()
                        .map(|(n, (t, k))| {
                            let ty =
                                ["Condition", "Observation", "AllergyIntolerance", "Patient", "Encounter"]
                                    [t as usize];
                            res(names[i], ty, n as u32, if ty == "Patient" { None } else { k })
                        })
                        .collect(),
                })
                .collect()
        },
    )
}

/// Every input resource is either in the output or named by a Provenance entity: merging
/// never silently drops a fact (the requested patient's Patients aside: one represents them).
fn accounted_for(input: &[SourceResources], m: &Merged) -> bool {
    let out: BTreeSet<String> = m.resources.iter().map(|r| r.id.clone()).collect();
    let named: BTreeSet<String> = m
        .resources
        .iter()
        .filter(|r| r.resource_type == "Provenance")
        .flat_map(|p| {
            let v: Value = serde_json::from_slice(&p.json).unwrap();
            v["entity"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["what"]["identifier"]["value"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    input
        .iter()
        .flat_map(|s| &s.resources)
        .filter(|r| r.id != PID)
        .all(|r| out.contains(&r.id) || named.contains(&r.id))
}

proptest! {
    #[test]
    fn merging_loses_nothing(input in arb_sources()) {
        let m = merge(&input, PID, "2026-01-01T00:00:00Z");
        prop_assert!(accounted_for(&input, &m));
        let patients = m.resources.iter().filter(|r| r.id == PID).count();
        let any_patient = input.iter().flat_map(|s| &s.resources).any(|r| r.id == PID);
        prop_assert_eq!(patients, usize::from(any_patient));
        if any_patient {
            prop_assert_eq!(m.resources[0].id.as_str(), PID, "the requested patient comes first");
        }
    }

    #[test]
    fn merging_is_idempotent(input in arb_sources()) {
        let once = merge(&input, PID, "2026-01-01T00:00:00Z");
        let non_prov: Vec<NormalisedResource> =
            once.resources.iter().filter(|r| r.resource_type != "Provenance").cloned().collect();
        let twice = merge(&[SourceResources { source: sid("z"), resources: non_prov.clone() }], PID, "2026-01-01T00:00:00Z");
        let ids = |v: &[NormalisedResource]| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        prop_assert_eq!(ids(&twice.resources), ids(&non_prov));
        prop_assert_eq!(twice.folded, 0);
    }

    #[test]
    fn one_sources_repeated_entries_are_never_folded(input in arb_sources()) {
        for s in &input {
            let m = merge(std::slice::from_ref(s), PID, "2026-01-01T00:00:00Z");
            prop_assert_eq!(m.folded, 0);
        }
    }

    #[test]
    fn the_set_of_facts_does_not_depend_on_source_order(input in arb_sources()) {
        let facts = |m: &Merged| m.resources.iter()
            .filter(|r| r.resource_type != "Provenance" && r.id != PID)
            .map(|r| r.merge_key().map_or_else(|| r.id.clone(), str::to_owned))
            .collect::<BTreeSet<_>>();
        let mut reversed = input.clone();
        reversed.reverse();
        let a = merge(&input, PID, "2026-01-01T00:00:00Z");
        let b = merge(&reversed, PID, "2026-01-01T00:00:00Z");
        prop_assert_eq!(facts(&a), facts(&b));
        prop_assert_eq!(a.resources.len(), b.resources.len());
    }
}
