//! The EMIS-style simulator and adapter together: the shared conformance suite, the golden
//! fixtures the adapter's snapshot tests read, and that every record tells the population's
//! story once normalised.

use tideway_adapters::emis::mapping;
use tideway_profiles::systems;

use super::render;
use crate::conformance::{self, BOROUGH};
use crate::gp_system::testing::{borough_tells_the_population_story, normalise, scenario_fixtures};
use crate::population::{LegacyCode, PatientRecord};

mod suite {
    use tideway_adapters::SystemKind;

    crate::conformance_suite!(crate::gp_system::Target {
        kind: SystemKind::Emis,
        render: crate::emis::EmisRender,
        markup: false,
        next_links: crate::conformance::NextLinks::Refused
    });
}

fn held(index: usize) -> PatientRecord {
    conformance::population().record(BOROUGH, index).expect("held")
}

#[test]
fn the_golden_fixtures_are_the_simulators_rendering_of_the_scenario_patients() {
    scenario_fixtures("emis", "emis.json", |r| {
        format!("{}\n", serde_json::to_string_pretty(&render::record(r, None)).expect("JSON"))
    });
}

#[test]
fn every_record_of_the_borough_tells_the_population_story() {
    borough_tells_the_population_story(|r| {
        mapping::read_record(render::record(r, None).to_string().as_bytes()).expect("reads")
    });
}

#[test]
fn older_problems_carry_the_emis_code_id_and_read_code_alone_and_gain_snomed_from_the_maps() {
    let pop = conformance::population();
    let mut older = 0;
    for index in pop.patients_in_borough(BOROUGH) {
        let record = held(index);
        let export = render::record(&record, None);
        for p in record.problems.iter().filter(|p| matches!(p.legacy, Some(LegacyCode::ReadV2(_)))) {
            let event =
                export["events"].as_array().unwrap().iter().find(|e| e["guid"] == p.id.as_str()).unwrap();
            assert!(event["code"].get("snomedConceptId").is_none(), "{event}");
            assert!(event["code"]["codeId"].is_string() && event["code"]["readCode"].is_string(), "{event}");
            older += 1;
        }
        let out = normalise(&record, mapping::read_record(export.to_string().as_bytes()).unwrap());
        for r in out.resources.iter().filter(|r| r.resource_type == "Condition") {
            assert!(r.facts.codings.iter().any(|c| c.system == systems::SNOMED_CT), "{}", r.id);
        }
    }
    assert!(older > 0, "the borough has older entries");
}

#[test]
fn the_spaced_nhs_number_and_the_practice_come_through_a_search() {
    let record = held(7);
    let answer = render::search(Some(&record)).to_string();
    let found = mapping::read_search(answer.as_bytes()).unwrap();
    assert_eq!(found[0].patient.nhs_number.as_deref(), Some(record.demographics.nhs_number.as_str()));
    assert_eq!(found[0].practice.as_ref().unwrap().ods_code, record.demographics.practice.ods_code);
    assert!(mapping::read_search(render::search(None).to_string().as_bytes()).unwrap().is_empty());
}
