//! The Vision-style simulator and adapter together: the shared conformance suite (the XML
//! external-entity case included), the golden fixtures the adapter's snapshot tests read, and
//! that every record tells the population's story once normalised.

use tideway_adapters::vision::mapping;
use tideway_profiles::systems;

use super::render;
use crate::conformance::{self, BOROUGH};
use crate::gp_system::testing::{borough_tells_the_population_story, scenario_fixtures};
use crate::population::{CO_CODAMOL, LegacyCode};

mod suite {
    use tideway_adapters::SystemKind;

    crate::conformance_suite!(crate::gp_system::Target {
        kind: SystemKind::Vision,
        render: crate::vision::VisionRender,
        markup: true,
        next_links: crate::conformance::NextLinks::Absent
    });
}

#[test]
fn the_golden_fixtures_are_the_simulators_rendering_of_the_scenario_patients() {
    scenario_fixtures("vision", "vision.xml", |r| render::record(r, None));
}

#[test]
fn every_record_of_the_borough_tells_the_population_story() {
    borough_tells_the_population_story(|r| {
        mapping::record(render::record(r, None).as_bytes()).expect("reads")
    });
}

#[test]
fn older_problems_carry_a_read_code_with_its_term_id_and_co_codamol_its_gemscript_code_alone() {
    let pop = conformance::population();
    let (mut older, mut gemscript) = (0, 0);
    for index in pop.patients_in_borough(BOROUGH) {
        let record = pop.record(BOROUGH, index).expect("held");
        let extract = mapping::record(render::record(&record, None).as_bytes()).expect("reads");
        for p in record.problems.iter().filter(|p| matches!(p.legacy, Some(LegacyCode::ReadV2(_)))) {
            let entry = extract.entries.iter().find(|e| e.local_id == p.id).expect("the problem");
            assert_eq!(entry.codes.len(), 1);
            assert_eq!(entry.codes[0].scheme.system(), systems::READ_V2);
            assert_eq!(entry.codes[0].term_id.as_deref().map(str::len), Some(2));
            older += 1;
        }
        for m in record.medications.iter().filter(|m| m.medicine == CO_CODAMOL) {
            let entry = extract.entries.iter().find(|e| e.local_id == m.id).expect("the co-codamol");
            let schemes: Vec<_> = entry.codes.iter().map(|c| c.scheme.system()).collect();
            assert_eq!(schemes, [systems::GEMSCRIPT]);
            gemscript += 1;
        }
    }
    assert!(older > 0 && gemscript > 0, "{older} older problems, {gemscript} Gemscript rows");
}

#[test]
fn a_search_answer_names_the_patient_and_their_practice() {
    let record = conformance::population().record(BOROUGH, 7).expect("held");
    let found = mapping::search(render::search_answer(Some(&record)).as_bytes()).unwrap();
    assert_eq!(found[0].patient.nhs_number.as_deref(), Some(record.demographics.nhs_number.as_str()));
    assert!(found[0].patient.nhs_number_verified);
    assert_eq!(found[0].practice.as_ref().unwrap().ods_code, record.demographics.practice.ods_code);
    assert!(mapping::search(render::search_answer(None).as_bytes()).unwrap().is_empty());
    let practice = mapping::practice_document(render::practice_document(&record).as_bytes()).unwrap();
    assert_eq!(practice.local_id, record.demographics.practice.ods_code);
}
