//! End to end through the GP dialects: an entry coded only in a system's own or legacy codes
//! (an EMIS code id, a Vision Read v2 code with its term id) is read by its adapter, normalised
//! (the terminology maps add its SNOMED CT coding) and then decided by the region's agreements
//! exactly as the same entry coded in SNOMED CT is: classified into the same sets, withheld or
//! released alike. The policy's code sets hold no EMIS code ids (see
//! `policy/terminology/README.md`), so this is what keeps an EMIS-coded HIV entry from reaching
//! someone the SNOMED CT one would not.

use tideway_adapters::fhir_r4::mapping::Normaliser;
use tideway_adapters::gp_record::{model::Extract, r4};
use tideway_adapters::{SourceId, SourceRecord, emis, vision};
use tideway_auth::{Principal, PurposeOfUse};
use tideway_profiles::{OdsCode, ResourceFacts};

use super::{TODAY, person};
use crate::{Ask, Policy, Reason, Verdict};

fn normalise(extract: Extract) -> SourceRecord {
    let source = SourceId::parse("borough-00").unwrap();
    let base = url::Url::parse("http://borough.example/gp/").unwrap();
    let local = extract.patient.local_id.clone();
    let n =
        Normaliser { source: &source, base_url: &base, patient_local_id: &local, gateway_patient_id: "gw-1" };
    let mut out = SourceRecord::default();
    r4::normalise(&n, extract, &mut out);
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    out
}

/// `(dialect-coded entry, its SNOMED CT twin)` in the EMIS-style record.
const EMIS_TWINS: [(&str, &str); 2] = [("hiv-emis", "hiv-snomed"), ("dep-emis", "dep-snomed")];
/// The same in the Vision-style record.
const VISION_TWINS: [(&str, &str); 2] = [("hiv-read", "hiv-snomed"), ("dep-read", "dep-snomed")];

fn emis_record() -> SourceRecord {
    let problem = |guid: &str, code: &str| {
        format!(
            r#"{{"guid": "{guid}", "patientGuid": "p1", "eventType": "Problem", "code": {code},
               "effectiveDate": {{"value": "2019-03-04", "datePart": "YMD"}}, "problem": {{"status": "Active"}}}}"#
        )
    };
    let events = [
        // EMIS code ids from the CPRD Aurum lists, with no SNOMED CT beside them.
        problem("hiv-emis", r#"{"codeId": "143288017", "term": "Human immunodeficiency virus infection"}"#),
        problem("dep-emis", r#"{"codeId": "295535012", "term": "Depressive disorder NEC"}"#),
        problem(
            "hiv-snomed",
            r#"{"snomedConceptId": "86406008", "term": "Human immunodeficiency virus infection"}"#,
        ),
        problem("dep-snomed", r#"{"snomedConceptId": "35489007", "term": "Depressive disorder"}"#),
        problem("asthma-emis", r#"{"codeId": "301485011", "term": "Asthma"}"#),
    ];
    let body = format!(
        r#"{{"exportVersion": "{}", "patient": {{"patientGuid": "p1", "nhsNumber": "999 000 0018"}}, "events": [{}]}}"#,
        emis::mapping::EXPORT_VERSION,
        events.join(",")
    );
    normalise(emis::mapping::read_record(body.as_bytes()).unwrap())
}

fn vision_record() -> SourceRecord {
    // A788.11 is a Read v2 HIV synonym; the policy's HIV set holds no Read v2 codes.
    let body = format!(
        r#"<VisionRecord xmlns="{}"><Patient id="p1"><NhsNumber status="01">9990000018</NhsNumber></Patient><Journal>
           <Clinical id="hiv-read" patient="p1" date="2010-01-01" category="problem"><Read code="A788.11">HIV infection</Read></Clinical>
           <Clinical id="hiv-snomed" patient="p1" date="2020-01-01" category="problem"><Snomed concept="86406008">HIV infection</Snomed></Clinical>
           <Clinical id="dep-read" patient="p1" date="2010-01-01" category="problem"><Read code="E11..12">Depressive psychoses</Read></Clinical>
           <Clinical id="dep-snomed" patient="p1" date="2020-01-01" category="problem"><Snomed concept="35489007">Depressive disorder</Snomed></Clinical>
        </Journal></VisionRecord>"#,
        vision::NAMESPACE
    );
    normalise(vision::mapping::record(body.as_bytes()).unwrap())
}

fn facts<'a>(record: &'a SourceRecord, local: &str) -> &'a ResourceFacts {
    let id = format!("borough-00.{local}");
    &record.resources.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("{id}")).facts
}

fn verdicts(policy: &Policy, who: &Principal, record: &SourceRecord) -> Vec<(String, Verdict)> {
    let all: Vec<&ResourceFacts> = record.resources.iter().map(|r| r.facts.as_ref()).collect();
    let decision = policy.decide(who, &Ask::everything(), TODAY, &[], &all);
    record.resources.iter().map(|r| r.id.clone()).zip(decision.verdicts().iter().copied()).collect()
}

fn verdict_of(v: &[(String, Verdict)], local: &str) -> Verdict {
    let id = format!("borough-00.{local}");
    v.iter().find(|(i, _)| *i == id).map(|(_, v)| *v).unwrap_or_else(|| panic!("{id}"))
}

#[test]
fn entries_in_emis_code_ids_and_read_v2_are_classified_and_decided_as_their_snomed_twins() {
    let policy = Policy::examples([("borough-00".to_owned(), OdsCode::parse("LBX01").unwrap())]).unwrap();
    let requesters = [
        person("YOOH1", "R8000", PurposeOfUse::Treat),
        person("YPOD1", "R8003", PurposeOfUse::Treat),
        person("YMH01", "R8003", PurposeOfUse::Treat),
        person("RJ122", "R8000", PurposeOfUse::Treat),
    ];
    for (record, twins) in [(emis_record(), EMIS_TWINS), (vision_record(), VISION_TWINS)] {
        for (coded, twin) in twins {
            let (a, b) = (facts(&record, coded), facts(&record, twin));
            let class = policy.terminology().classify(a);
            assert_ne!(class, 0, "{coded} is classified");
            assert_eq!(class, policy.terminology().classify(b), "{coded} and {twin} fall in the same sets");
        }
        for who in &requesters {
            let v = verdicts(&policy, who, &record);
            for (coded, twin) in twins {
                assert_eq!(verdict_of(&v, coded), verdict_of(&v, twin), "{coded} for {:?}", who.organisation);
            }
        }
        // And what the agreements say of them: HIV never reaches the out-of-hours GP, depression
        // never reaches podiatry.
        let ooh = verdicts(&policy, &requesters[0], &record);
        assert_eq!(verdict_of(&ooh, "hiv-snomed"), Verdict::Withhold(Reason::Sensitive));
        let podiatry = verdicts(&policy, &requesters[1], &record);
        assert_eq!(verdict_of(&podiatry, "dep-snomed"), Verdict::Withhold(Reason::NotIncluded));
    }
}

/// A termination of pregnancy recorded in Read v2 (`7E070`, no map holds it, and the
/// termination set holds SNOMED CT only) cannot be checked against the sensitive sets: it is
/// withheld from everyone whose agreements withhold any sensitive set, never guessed harmless;
/// an entry whose code a map translated is decided on its SNOMED CT coding.
#[test]
fn an_entry_no_map_translates_is_withheld_wherever_sensitive_codes_are_withheld() {
    let policy = Policy::examples([("borough-00".to_owned(), OdsCode::parse("LBX01").unwrap())]).unwrap();
    let body = format!(
        r#"<VisionRecord xmlns="{}"><Patient id="p1"><NhsNumber status="01">9990000018</NhsNumber></Patient><Journal>
           <Clinical id="top-read" patient="p1" date="2010-01-01" category="problem"><Read code="7E07000">Termination of pregnancy</Read></Clinical>
           <Clinical id="dep-read" patient="p1" date="2010-01-01" category="problem"><Read code="E11..12">Depressive psychoses</Read></Clinical>
        </Journal></VisionRecord>"#,
        vision::NAMESPACE
    );
    let record = normalise(vision::mapping::record(body.as_bytes()).unwrap());
    assert!(facts(&record, "top-read").unmapped, "no map translates 7E070");
    assert!(!facts(&record, "dep-read").unmapped);
    for who in [
        person("YOOH1", "R8000", PurposeOfUse::Treat),
        person("RJ122", "R8000", PurposeOfUse::Treat),
        person("YPOD1", "R8003", PurposeOfUse::Treat),
    ] {
        let v = verdicts(&policy, &who, &record);
        assert!(
            matches!(verdict_of(&v, "top-read"), Verdict::Withhold(_)),
            "{:?} must not see an entry it cannot be checked for",
            who.organisation
        );
    }
    let ooh = verdicts(&policy, &person("YOOH1", "R8000", PurposeOfUse::Treat), &record);
    assert_eq!(verdict_of(&ooh, "top-read"), Verdict::Withhold(Reason::Unclassified));
}
