//! The legacy and local codes the EMIS- and Vision-style simulators render beside the
//! population's SNOMED CT and dm+d concepts, each a real published pair, never made up.
//!
//! Every row is taken from the CPRD code lists in
//! `../shared/data/codelists/cprd-gold-read2_aurum-snomed_dmd` (MIT / CC BY 4.0, The Alan
//! Turing Institute; see that folder's `LICENSE.md`): the Aurum condition lists give an EMIS
//! code id (`MedCodeId`) with its SNOMED CT concept and the Read v2 code EMIS ties to it
//! (`CleansedReadCode`), the Aurum product lists an EMIS product code id (`ProdCodeId`) with
//! its dm+d id, the GOLD product lists a Gemscript code with its dm+d id. The tests check every
//! row against the terminology maps built from the same lists
//! (`tideway_profiles::maps::lookup`), so a row that is not a published pair fails the build.
//!
//! Where the lists hold no code for a concept (the allergies, encounters, results, procedures,
//! vaccines and most medicines of the population), the simulators render the SNOMED CT or dm+d
//! concept alone: a made-up EMIS or Gemscript id would teach the adapters nothing true.
//!
//! Two Read v2 codes differ from the population's own: the population records hypertension
//! as `G20..` and atrial fibrillation as `G573.`, whose published SNOMED CT maps are the narrower
//! 59621000 and 195080001; the rows below carry the codes the lists tie to the population's
//! concepts (`G2...`, `G5730`), so an EMIS- or Vision-style record maps back to the same SNOMED
//! CT concept the population holds.

/// One coded concept's EMIS code id and Read v2 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClinicalCode {
    /// SNOMED CT concept (the population's).
    pub snomed: &'static str,
    /// EMIS code id (CPRD Aurum `MedCodeId`).
    pub emis_code_id: &'static str,
    /// The Read v2 code EMIS ties to that code id: the 5-byte code and its 2-digit term id
    /// (CPRD `CleansedReadCode`, the form CPRD GOLD's `readcode` has).
    pub read_v2: &'static str,
}

const fn clinical(snomed: &'static str, emis_code_id: &'static str, read_v2: &'static str) -> ClinicalCode {
    ClinicalCode { snomed, emis_code_id, read_v2 }
}

/// From `AurumCharlson.txt`, `AurumElixhauser.txt` and `depressionAurum.txt`.
const CLINICAL: [ClinicalCode; 9] = [
    clinical("44054006", "197761014", "C10F.00"),
    clinical("38341003", "64168014", "G2...00"),
    clinical("195967001", "301485011", "H33..00"),
    clinical("13645005", "475431013", "H3...00"),
    clinical("35489007", "295535012", "E2B..00"),
    clinical("49436004", "82343012", "G573000"),
    clinical("709044004", "354409011", "1Z1..00"),
    clinical("69896004", "116082011", "N040.00"),
    clinical("86406008", "143288017", "A788.11"),
];

/// One medicine's EMIS product code id and Gemscript code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductCode {
    /// dm+d (the population's).
    pub dmd: &'static str,
    /// EMIS product code id (CPRD Aurum `ProdCodeId`).
    pub emis_product_id: &'static str,
    /// Gemscript product code (CPRD GOLD `gemscriptcode`).
    pub gemscript: &'static str,
}

/// From `opioidCodesA.txt` and `opioidCodesG.txt`.
const PRODUCTS: [ProductCode; 1] =
    [ProductCode { dmd: "322341003", emis_product_id: "370641000033114", gemscript: "80055020" }];

/// The EMIS code id and Read v2 code published for a SNOMED CT concept, if any.
pub fn clinical_code(snomed: &str) -> Option<&'static ClinicalCode> {
    CLINICAL.iter().find(|c| c.snomed == snomed)
}

/// The EMIS product code id and Gemscript code published for a dm+d product, if any.
pub fn product_code(dmd: &str) -> Option<&'static ProductCode> {
    PRODUCTS.iter().find(|p| p.dmd == dmd)
}

#[cfg(test)]
mod tests {
    use tideway_profiles::maps::{Lookup, lookup};
    use tideway_profiles::systems;

    use super::*;

    fn maps_to(system: &str, code: &str, term: Option<&str>) -> Option<&'static str> {
        match lookup(system, code, term) {
            Lookup::Mapped { code, .. } => Some(code),
            _ => None,
        }
    }

    #[test]
    fn every_emis_code_id_and_read_code_is_a_published_pair_for_its_concept() {
        for c in CLINICAL {
            assert_eq!(maps_to(systems::EMIS_CODE_ID, c.emis_code_id, None), Some(c.snomed), "{c:?}");
            let (code, term) = c.read_v2.split_at(5);
            assert_eq!(maps_to(systems::READ_V2, code, Some(term)), Some(c.snomed), "{c:?}");
        }
    }

    #[test]
    fn every_product_code_is_a_published_pair_for_its_medicine() {
        for p in PRODUCTS {
            assert_eq!(maps_to(systems::EMIS_PRODUCT_CODE_ID, p.emis_product_id, None), Some(p.dmd));
            assert_eq!(maps_to(systems::GEMSCRIPT, p.gemscript, None), Some(p.dmd));
        }
    }

    #[test]
    fn the_population_holds_a_medicine_with_a_gemscript_code_and_every_problem_has_codes() {
        use crate::population::{CO_CODAMOL, Population, Scenario};
        assert!(product_code(CO_CODAMOL.code).is_some());
        let pop = Population::new(42, 3, 50);
        let diabetic = pop.scenario_patients(Scenario::PodiatryDiabetic, 1)[0].clone();
        let index = pop.patient_index(&diabetic).unwrap();
        let record = pop.record(pop.home_borough(index), index).unwrap();
        assert!(record.medications.iter().any(|m| m.medicine == CO_CODAMOL));
        // Every problem the population draws with a Read v2 code has published EMIS and Read
        // codes here, so an older entry is never rendered without them.
        for b in 0..pop.borough_count() {
            for i in pop.patients_in_borough(b) {
                for p in pop.record(b, i).unwrap().problems {
                    if matches!(p.legacy, Some(crate::population::LegacyCode::ReadV2(_))) {
                        assert!(clinical_code(p.snomed.code).is_some(), "{}", p.snomed.code);
                    }
                }
            }
        }
    }
}
