//! The population's facts as FHIR R4 resources, the way a plain R4 borough exchange serves them.
//!
//! Pure: the same record always renders to the same bytes (key order included: the workspace's
//! serde_json keeps insertion order), so a seed's R4 output never changes.

use serde_json::{Map, Value, json};
use tideway_profiles::systems;

use crate::population::{
    CITY, COUNTRY, Concept, Demographics, Gender, LegacyCode, PatientRecord, SampleCondition,
};

/// Extension on Observation carrying the sample's conditions.
pub const SAMPLE_CONDITION_URL: &str = "https://fhir.tideway.london/StructureDefinition/sample-condition";

/// The record as R4 resources: the Patient first, then the practice Organization, then the
/// clinical resources kind by kind (Encounter, Condition, MedicationStatement, MedicationRequest,
/// AllergyIntolerance, Observation, Immunization, Procedure).
pub fn resources(record: &PatientRecord) -> Vec<Value> {
    let subject = json!({"reference": format!("Patient/{}", record.local_id)});
    let encounter = |id: &str| json!({"reference": format!("Encounter/{id}")});
    let mut out = Vec::with_capacity(2 + record.clinical_entry_count());
    out.push(patient(record));
    out.push(organization(&record.demographics));
    for e in &record.encounters {
        let mut r = json!({
            "resourceType": "Encounter",
            "id": e.id,
            "status": if e.open_with.is_some() { "in-progress" } else { "finished" },
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
            "type": [{"coding": [snomed(e.kind)]}],
            "subject": subject,
            "period": if e.open_with.is_some() { json!({"start": e.start}) } else { json!({"start": e.start, "end": e.end}) }
        });
        if let (Some(ods), Some(obj)) = (e.open_with, r.as_object_mut()) {
            obj.insert("serviceProvider".into(), organisation_by_ods(ods));
        }
        if let (false, Some(obj)) = (e.reasons.is_empty(), r.as_object_mut()) {
            let reasons: Vec<Value> =
                e.reasons.iter().map(|c| json!({"reference": format!("Condition/{c}")})).collect();
            obj.insert("reasonReference".into(), Value::Array(reasons));
        }
        out.push(with_meta(r, &e.last_updated));
    }
    for p in &record.problems {
        let mut codings = vec![snomed(p.snomed)];
        match p.legacy {
            Some(LegacyCode::ReadV2(code)) => codings.push(coding(systems::READ_V2, code, p.snomed.display)),
            Some(LegacyCode::Ctv3(code)) => codings.push(coding(systems::CTV3, code, p.snomed.display)),
            None => {}
        }
        let r = json!({
            "resourceType": "Condition",
            "id": p.id,
            "clinicalStatus": {"coding": [coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active")]},
            "verificationStatus": {"coding": [coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed")]},
            "category": [{"coding": [coding("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem List Item")]}],
            "code": {"coding": codings, "text": p.snomed.display},
            "subject": subject,
            "encounter": encounter(&p.encounter),
            "onsetDateTime": p.onset,
            "recordedDate": p.recorded
        });
        out.push(with_meta(r, &p.last_updated));
    }
    for m in &record.medications {
        let r = json!({
            "resourceType": "MedicationStatement",
            "id": m.id,
            "status": "active",
            "medicationCodeableConcept": {"coding": [dmd(m.medicine)], "text": m.medicine.display},
            "subject": subject,
            "effectivePeriod": {"start": m.started},
            "dateAsserted": m.asserted,
            "dosage": [{"text": m.dosage}]
        });
        out.push(with_meta(r, &m.last_updated));
    }
    for m in &record.prescriptions {
        let r = json!({
            "resourceType": "MedicationRequest",
            "id": m.id,
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"coding": [dmd(m.medicine)], "text": m.medicine.display},
            "subject": subject,
            "encounter": encounter(&m.encounter),
            "authoredOn": m.authored,
            "dosageInstruction": [{"text": m.dosage}],
            "dispenseRequest": {"quantity": {"value": decimal(&m.quantity.to_string()), "unit": m.quantity_unit}}
        });
        out.push(with_meta(r, &m.last_updated));
    }
    for a in &record.allergies {
        let r = json!({
            "resourceType": "AllergyIntolerance",
            "id": a.id,
            "clinicalStatus": {"coding": [coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active")]},
            "verificationStatus": {"coding": [coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed")]},
            "type": "allergy",
            "category": ["medication"],
            "code": {"coding": [snomed(a.code)]},
            "patient": subject,
            "recordedDate": a.recorded
        });
        out.push(with_meta(r, &a.last_updated));
    }
    for o in &record.observations {
        let mut r = json!({
            "resourceType": "Observation",
            "id": o.id,
            "status": "final",
            "category": [{"coding": [coding("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")]}],
            "code": {"coding": [snomed(o.code)], "text": o.code.display},
            "subject": subject,
            "encounter": encounter(&o.encounter),
            "effectiveDateTime": o.effective,
            "valueQuantity": {"value": decimal(&o.value), "unit": o.unit, "system": "http://unitsofmeasure.org", "code": o.unit}
        });
        if let (Some(sample), Some(obj)) = (o.sample, r.as_object_mut()) {
            obj.insert("extension".into(), sample_extension(sample));
        }
        out.push(with_meta(r, &o.last_updated));
    }
    for i in &record.immunisations {
        let r = json!({
            "resourceType": "Immunization",
            "id": i.id,
            "status": "completed",
            "vaccineCode": {"coding": [dmd(i.vaccine)]},
            "patient": subject,
            "occurrenceDateTime": i.date,
            "primarySource": true,
            "doseQuantity": {"value": decimal(i.dose_ml), "unit": "ml", "system": "http://unitsofmeasure.org", "code": "mL"}
        });
        out.push(with_meta(r, &i.last_updated));
    }
    for p in &record.procedures {
        let r = json!({
            "resourceType": "Procedure",
            "id": p.id,
            "status": "completed",
            "code": {"coding": [snomed(p.code)]},
            "subject": subject,
            "encounter": encounter(&p.encounter),
            "performedDateTime": p.date
        });
        out.push(with_meta(r, &p.last_updated));
    }
    for f in &record.referrals {
        let r = json!({
            "resourceType": "ServiceRequest",
            "id": f.id,
            "status": "active",
            "intent": "order",
            "category": [{"coding": [snomed(REFERRAL)]}],
            "code": {"coding": [snomed(REFERRAL)]},
            "subject": subject,
            "authoredOn": f.authored,
            "performer": [organisation_by_ods(f.to)],
            "reasonCode": [{"coding": [snomed(f.reason)]}],
            "reasonReference": [{"reference": format!("Condition/{}", f.problem)}]
        });
        out.push(with_meta(r, &f.last_updated));
    }
    out
}

/// SNOMED CT 3457005 |Patient referral|: the code and category of every referral.
const REFERRAL: Concept = Concept { code: "3457005", display: "Patient referral" };

/// A logical reference to an organisation by its ODS code (as UK Core references services the
/// borough does not hold a resource for).
fn organisation_by_ods(ods: &str) -> Value {
    json!({"type": "Organization", "identifier": {"system": systems::ODS_ORGANIZATION_CODE, "value": ods}})
}

/// The record's Patient resource alone (what a search by NHS number answers).
pub fn patient(record: &PatientRecord) -> Value {
    patient_resource(&record.local_id, &record.demographics, &record.last_updated)
}

/// A Patient resource for `d` under a source's own id: every source renders the same person
/// the same way.
pub fn patient_resource(local_id: &str, d: &Demographics, last_updated: &str) -> Value {
    let mut patient = json!({
        "resourceType": "Patient",
        "id": local_id,
        "meta": {"lastUpdated": last_updated},
        "identifier": [{"system": systems::NHS_NUMBER, "value": d.nhs_number.as_str()}],
        "name": [{"use": "official", "family": d.family, "given": [d.given]}],
        "gender": match d.gender { Gender::Female => "female", Gender::Male => "male" },
        "birthDate": d.birth_date,
        "address": [{
            "use": "home",
            "line": [d.address.line],
            "city": CITY,
            "district": d.address.district,
            "postalCode": d.address.postcode,
            "country": COUNTRY
        }],
        "generalPractitioner": [{"reference": format!("Organization/{}", d.practice.ods_code), "display": d.practice.name}]
    });
    flag(&mut patient, d);
    patient
}

/// Marks a Patient (R4 or STU3) as `d` says: restricted as the PDS FHIR API labels an S-flagged
/// patient (`meta.security` v3-Confidentiality `R`), deceased on the recorded date, and with
/// the NHS number it superseded kept as an old identifier.
pub fn flag(patient: &mut Value, d: &Demographics) {
    let Some(obj) = patient.as_object_mut() else { return };
    if d.restricted
        && let Some(meta) = obj.entry("meta").or_insert_with(|| json!({})).as_object_mut()
    {
        meta.insert(
            "security".into(),
            json!([{"system": systems::CONFIDENTIALITY, "code": "R", "display": "restricted"}]),
        );
    }
    if let Some(date) = &d.deceased {
        obj.insert("deceasedDateTime".into(), Value::String(date.clone()));
    }
    if let (Some(former), Some(Value::Array(ids))) = (&d.former_nhs_number, obj.get_mut("identifier")) {
        ids.push(json!({"use": "old", "system": systems::NHS_NUMBER, "value": former.as_str()}));
    }
}

/// When a practice's Organization last changed, as every exchange reports it.
pub const PRACTICE_UPDATED: &str = "2024-01-01T09:00:00Z";

/// The registered practice's Organization, id'd by its ODS code.
pub fn organization(d: &Demographics) -> Value {
    let p = &d.practice;
    json!({
        "resourceType": "Organization",
        "id": p.ods_code,
        "meta": {"lastUpdated": PRACTICE_UPDATED},
        "identifier": [{"system": systems::ODS_ORGANIZATION_CODE, "value": p.ods_code}],
        "active": true,
        "type": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/organization-type",
            "code": "prov",
            "display": "Healthcare Provider"
        }]}],
        "name": p.name,
        "address": [{"city": CITY, "district": p.borough, "country": COUNTRY}]
    })
}

fn sample_extension(sample: SampleCondition) -> Value {
    json!([{"url": SAMPLE_CONDITION_URL, "extension": [
        {"url": "fasting", "valueBoolean": sample.fasting},
        {"url": "haemolysis-index", "valueDecimal": decimal(sample.haemolysis_index)}
    ]}])
}

pub(crate) fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

pub(crate) fn snomed(c: Concept) -> Value {
    coding(systems::SNOMED_CT, c.code, c.display)
}

fn dmd(c: Concept) -> Value {
    coding(systems::DM_D, c.code, c.display)
}

/// A JSON number kept exactly as written (the workspace's serde_json has
/// `arbitrary_precision`), so `1.50` stays `1.50`.
fn decimal(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// `meta` goes last on clinical resources, as the exchange has always written them.
pub(crate) fn with_meta(mut resource: Value, last_updated: &str) -> Value {
    if let Some(obj) = resource.as_object_mut() {
        let mut meta = Map::new();
        meta.insert("lastUpdated".into(), Value::String(last_updated.to_owned()));
        obj.insert("meta".into(), Value::Object(meta));
    }
    resource
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::population::Population;

    /// The digest of the drawn entries alone (scenario entries, the carried problem,
    /// restrictions, deaths and former numbers taken out again).
    const GOLDEN: (usize, u64) = (2_009_831, 17_127_478_703_908_412_282);
    /// The digest of whole records, scenario entries, the carried problem, restrictions, deaths
    /// and former numbers included.
    const GOLDEN_WITH_SCENARIOS: (usize, u64) = (2_244_682, 5_029_825_796_678_326_823);

    fn pop() -> Population {
        Population::new(42, 6, 200)
    }

    fn rendered(p: &Population, borough: usize, index: usize) -> Vec<Value> {
        resources(&p.record(borough, index).unwrap())
    }

    #[test]
    fn same_seed_gives_same_bytes() {
        let a = serde_json::to_vec(&rendered(&pop(), 2, 450)).unwrap();
        let b = serde_json::to_vec(&rendered(&Population::new(42, 6, 200), 2, 450)).unwrap();
        assert_eq!(a, b);
        let c = serde_json::to_vec(&rendered(&Population::new(43, 6, 200), 2, 450)).unwrap();
        assert_ne!(a, c);
    }

    /// FNV-1a, enough to notice any changed byte without a hashing dependency.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    }

    /// The R4 bytes of a seed are part of the contract: tests and demos assert on them. The
    /// digest was taken from the generator that wrote R4 directly, before the population became
    /// facts; a change here means every seeded record changed.
    /// Scenario entries are added beside the drawn ones: taking them out again must give the
    /// bytes the generator always wrote, so adding scenarios changed nothing else.
    #[test]
    fn a_seed_renders_the_same_bytes_as_it_always_has() {
        let p = Population::new(42, 3, 50);
        let (mut drawn, mut whole) = (Vec::new(), Vec::new());
        for b in 0..p.borough_count() {
            for i in p.patients_in_borough(b) {
                let mut record = p.record(b, i).unwrap();
                whole.extend(serde_json::to_vec(&resources(&record)).unwrap());
                let scenario = |id: &str| id.contains("-s");
                record.encounters.retain(|e| !scenario(&e.id));
                record.problems.retain(|e| !scenario(&e.id));
                record.procedures.retain(|e| !scenario(&e.id));
                record.observations.retain(|e| !scenario(&e.id));
                record.referrals.retain(|e| !scenario(&e.id));
                record.medications.retain(|e| !scenario(&e.id));
                // So did the long-term problem carried between practices.
                record.problems.retain(|e| !e.id.ends_with("-carried"));
                // Restrictions, deaths, former numbers and out-of-date names came later, like
                // the scenarios.
                record.demographics = Demographics { former_nhs_number: None, ..p.person(i).unwrap() };
                drawn.extend(serde_json::to_vec(&resources(&record)).unwrap());
            }
        }
        assert_eq!((drawn.len(), fnv1a(&drawn)), GOLDEN);
        assert_eq!((whole.len(), fnv1a(&whole)), GOLDEN_WITH_SCENARIOS);
    }

    #[test]
    fn shared_patients_have_the_same_patient_resource_everywhere() {
        let p = pop();
        for nhs in p.patients_in_several_boroughs(10) {
            let idx = p.patient_index(&nhs).unwrap();
            let boroughs = p.boroughs_of(idx);
            let demographics: Vec<Value> = boroughs
                .iter()
                .map(|&b| {
                    let mut patient = rendered(&p, b, idx)[0].clone();
                    let obj = patient.as_object_mut().unwrap();
                    obj.remove("id");
                    obj.remove("meta");
                    // Recorded by one borough only (see Population::flagged_by).
                    obj.remove("deceasedDateTime");
                    obj.remove("name");
                    patient
                })
                .collect();
            assert!(demographics.windows(2).all(|w| w[0] == w[1]));
            let records: Vec<Value> = boroughs.iter().map(|&b| json!(rendered(&p, b, idx)[2..])).collect();
            assert_ne!(records[0], records[1], "clinical entries differ by borough");
        }
    }

    #[test]
    fn every_generated_resource_is_valid_r4() {
        let p = Population::new(7, 3, 120);
        let mut count = 0;
        let mut systems_seen = std::collections::HashSet::new();
        for b in 0..p.borough_count() {
            for i in p.patients_in_borough(b) {
                for r in rendered(&p, b, i) {
                    let bytes = serde_json::to_vec(&r).unwrap();
                    if let Err(e) = tideway_profiles::validate::check_r4_resource(&bytes) {
                        panic!("{} invalid: {e}", r["resourceType"]);
                    }
                    assert!(r["meta"]["lastUpdated"].is_string());
                    for c in r["code"]["coding"].as_array().into_iter().flatten() {
                        systems_seen.insert(c["system"].as_str().unwrap().to_owned());
                    }
                    count += 1;
                }
            }
        }
        assert!(count > 5_000, "{count}");
        for s in [systems::SNOMED_CT, systems::READ_V2, systems::CTV3] {
            assert!(systems_seen.contains(s), "{s}");
        }
    }

    #[test]
    fn decimals_keep_their_trailing_zero() {
        let resources = rendered(&pop(), 0, 0);
        let text = serde_json::to_string(&resources).unwrap();
        assert!(text.contains("\"haemolysis-index\",\"valueDecimal\":0.10"));
        let obs = resources.iter().find(|r| r["resourceType"] == "Observation").unwrap();
        assert!(obs["valueQuantity"]["value"].to_string().ends_with('0'));
    }
}
