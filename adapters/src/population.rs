//! A deterministic synthetic population, generated from a seed without any files.
//!
//! Patients are numbered `0..borough_count * patients_per_borough`; patient `p` lives in borough
//! `p / patients_per_borough` (its home). Every 5th patient is also held by the next borough, and
//! every 10th by the one after that too, so the demo always has people whose record is spread
//! over several sources. Demographics depend only on the seed and the patient number, so the same
//! NHS number looks the same everywhere; clinical entries depend on the patient and the borough,
//! so each borough holds a different part of the story.
//!
//! Nothing is stored: a record is generated on request in microseconds, which is what lets a
//! simulated borough hold a thousand or several hundred thousand patients.

use serde_json::{Map, Value, json};
use tideway_profiles::{NhsNumber, OdsCode, systems};

/// The London boroughs the simulators play, with a postcode district used in addresses.
pub const BOROUGHS: [(&str, &str); 25] = [
    ("Camden", "NW1"),
    ("Islington", "N1"),
    ("Hackney", "E8"),
    ("Tower Hamlets", "E1"),
    ("Newham", "E15"),
    ("Southwark", "SE1"),
    ("Lambeth", "SE11"),
    ("Lewisham", "SE13"),
    ("Greenwich", "SE10"),
    ("Westminster", "W1"),
    ("Kensington and Chelsea", "SW3"),
    ("Hammersmith and Fulham", "W6"),
    ("Wandsworth", "SW18"),
    ("Haringey", "N17"),
    ("Barnet", "N3"),
    ("Brent", "NW10"),
    ("Ealing", "W5"),
    ("Enfield", "EN1"),
    ("Waltham Forest", "E17"),
    ("Redbridge", "IG1"),
    ("Croydon", "CR0"),
    ("Lewisham South", "SE6"),
    ("Merton", "SW19"),
    ("Hounslow", "TW3"),
    ("Richmond upon Thames", "TW9"),
];

/// Where the test-range NHS numbers start. Patient `p` gets stem `BASE + 2p` or, when that stem
/// has no Mod 11 check digit, `BASE + 2p + 1` (two neighbouring stems are never both invalid).
const NHS_STEM_BASE: u32 = 999_000_000;

/// The most patients a population can hold: the 999 test range has room for this many stems
/// at two per patient.
pub const MAX_PATIENTS: usize = 499_999;

/// Practices per borough; each patient is registered with one of them.
const PRACTICES_PER_BOROUGH: u64 = 5;

/// A seeded synthetic population spread over London boroughs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Population {
    seed: u64,
    borough_count: usize,
    patients_per_borough: usize,
}

/// One patient's record as one borough holds it.
#[derive(Debug, Clone)]
pub struct PatientRecord {
    /// The borough's own id for the patient.
    pub local_id: String,
    /// Patient first, then the practice Organization, then the clinical resources.
    pub resources: Vec<Value>,
}

impl Population {
    /// A population of `borough_count` boroughs (1 to 25) with `patients_per_borough` home
    /// patients each. Values out of range are clamped, so the total never leaves the test range.
    pub fn new(seed: u64, borough_count: usize, patients_per_borough: usize) -> Self {
        let borough_count = borough_count.clamp(1, BOROUGHS.len());
        let patients_per_borough = patients_per_borough.clamp(1, MAX_PATIENTS / borough_count);
        Self { seed, borough_count, patients_per_borough }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of boroughs.
    pub fn borough_count(&self) -> usize {
        self.borough_count
    }

    /// Home patients per borough.
    pub fn patients_per_borough(&self) -> usize {
        self.patients_per_borough
    }

    /// Total number of distinct patients.
    pub fn patient_count(&self) -> usize {
        self.borough_count * self.patients_per_borough
    }

    /// The borough's display name (`None` past the last borough).
    pub fn borough_name(&self, borough: usize) -> Option<&'static str> {
        (borough < self.borough_count).then(|| BOROUGHS[borough].0)
    }

    /// A lower-case source id for the borough, e.g. `camden`, `tower-hamlets`.
    pub fn borough_source_id(&self, borough: usize) -> Option<String> {
        let name = self.borough_name(borough)?;
        let id: String = name.to_ascii_lowercase().split_whitespace().collect::<Vec<_>>().join("-");
        Some(id.chars().take(24).collect())
    }

    /// The ODS-style code of the organisation running the borough's exchange, e.g. `LBX01`.
    pub fn borough_ods_code(&self, borough: usize) -> Option<OdsCode> {
        self.borough_name(borough)?;
        OdsCode::parse(&format!("LBX{:02}", borough + 1)).ok()
    }

    /// The ODS-style code of practice `practice` (0-based) in `borough`, e.g. `F80003`.
    pub fn practice_ods_code(&self, borough: usize, practice: u64) -> String {
        let letter = ["F", "E", "G"][(borough / 10) % 3];
        format!("{letter}{}{:03}", 80 + borough % 10, practice + 1)
    }

    /// The NHS number of patient `index` (`None` past the end of the population).
    pub fn nhs_number(&self, index: usize) -> Option<NhsNumber> {
        if index >= self.patient_count() {
            return None;
        }
        let stem = NHS_STEM_BASE + 2 * u32::try_from(index).ok()?;
        NhsNumber::from_stem(stem).or_else(|| NhsNumber::from_stem(stem + 1))
    }

    /// The patient index an NHS number belongs to, if it is one of this population's.
    pub fn patient_index(&self, nhs: &NhsNumber) -> Option<usize> {
        let stem: u32 = nhs.as_str().get(..9)?.parse().ok()?;
        let offset = stem.checked_sub(NHS_STEM_BASE)?;
        let index = usize::try_from(offset / 2).ok()?;
        (self.nhs_number(index).as_ref() == Some(nhs)).then_some(index)
    }

    /// The borough a patient is registered in.
    pub fn home_borough(&self, index: usize) -> usize {
        index / self.patients_per_borough
    }

    /// Every borough holding patient `index`, home first.
    pub fn boroughs_of(&self, index: usize) -> Vec<usize> {
        if index >= self.patient_count() {
            return Vec::new();
        }
        let home = self.home_borough(index);
        let mut out = vec![home];
        let extra = if index.is_multiple_of(10) {
            2
        } else if index.is_multiple_of(5) {
            1
        } else {
            0
        };
        for k in 1..=extra {
            let b = (home + k) % self.borough_count;
            if !out.contains(&b) {
                out.push(b);
            }
        }
        out
    }

    /// Whether `borough` holds patient `index`.
    pub fn holds(&self, borough: usize, index: usize) -> bool {
        self.boroughs_of(index).contains(&borough)
    }

    /// The indices of the patients borough `borough` holds: its own, then visitors from the two
    /// boroughs before it.
    pub fn patients_in_borough(&self, borough: usize) -> Vec<usize> {
        if borough >= self.borough_count {
            return Vec::new();
        }
        let ppb = self.patients_per_borough;
        let mut out: Vec<usize> = (borough * ppb..(borough + 1) * ppb).collect();
        for back in 1..=2 {
            if back >= self.borough_count {
                break;
            }
            let from = (borough + self.borough_count - back) % self.borough_count;
            out.extend(
                (from * ppb..(from + 1) * ppb).filter(|&p| p.is_multiple_of(5) && self.holds(borough, p)),
            );
        }
        out
    }

    /// NHS numbers of up to `limit` patients held by more than one borough (for the demo).
    pub fn patients_in_several_boroughs(&self, limit: usize) -> Vec<NhsNumber> {
        (0..self.patient_count())
            .step_by(5)
            .filter(|&p| self.boroughs_of(p).len() > 1)
            .filter_map(|p| self.nhs_number(p))
            .take(limit)
            .collect()
    }

    /// The id borough `borough` uses for patient `index`: it differs between boroughs, as real
    /// local ids do.
    pub fn local_id(&self, borough: usize, index: usize) -> String {
        format!("b{borough:02}-p{index:06}")
    }

    /// The patient index behind a local id of `borough`, if that borough holds them.
    pub fn index_from_local_id(&self, borough: usize, local_id: &str) -> Option<usize> {
        let rest = local_id.strip_prefix(&format!("b{borough:02}-p"))?;
        if rest.len() < 6 || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let index: usize = rest.parse().ok()?;
        self.holds(borough, index).then_some(index)
    }

    /// The whole record `borough` holds for patient `index`, or `None` if it holds no such
    /// patient.
    pub fn record(&self, borough: usize, index: usize) -> Option<PatientRecord> {
        if !self.holds(borough, index) {
            return None;
        }
        let nhs = self.nhs_number(index)?;
        let local_id = self.local_id(borough, index);
        let mut g = Gen::new(self.seed, index as u64, borough as u64);
        let mut resources = Vec::with_capacity(32);
        let (patient, practice) = self.patient_resource(&local_id, &nhs, index, borough);
        resources.push(patient);
        resources.push(practice);
        // Allergies are facts about the patient, recorded alike wherever the patient is held,
        // so the same allergy reaches the gateway from several boroughs.
        let mut shared = Gen::new(self.seed, index as u64, u64::MAX - 1);
        clinical(&mut g, &mut shared, &local_id, &mut resources);
        Some(PatientRecord { local_id, resources })
    }

    fn patient_resource(
        &self,
        local_id: &str,
        nhs: &NhsNumber,
        index: usize,
        borough: usize,
    ) -> (Value, Value) {
        // Demographics come from the patient alone so every borough agrees on them.
        let mut d = Gen::new(self.seed, index as u64, u64::MAX);
        let female = d.below(2) == 0;
        let given = if female { d.pick(&FEMALE_NAMES) } else { d.pick(&MALE_NAMES) };
        let family = d.pick(&FAMILY_NAMES);
        let year = 1930 + d.below(90);
        let birth = format!("{year}-{:02}-{:02}", 1 + d.below(12), 1 + d.below(28));
        let home = self.home_borough(index);
        let (borough_name, district) = BOROUGHS[home];
        let house = 1 + d.below(180);
        let street = d.pick(&STREETS);
        let postcode = format!("{district} {}{}{}", 1 + d.below(9), d.letter(), d.letter());
        let practice_no = d.below(PRACTICES_PER_BOROUGH);
        let ods = self.practice_ods_code(home, practice_no);
        let practice_name =
            format!("{} {} Medical Centre", borough_name, PRACTICE_WORDS[practice_no as usize]);
        let stamp = timestamp(&mut Gen::new(self.seed, index as u64, borough as u64 ^ 0xA5A5));
        let patient = json!({
            "resourceType": "Patient",
            "id": local_id,
            "meta": {"lastUpdated": stamp},
            "identifier": [{"system": systems::NHS_NUMBER, "value": nhs.as_str()}],
            "name": [{"use": "official", "family": family, "given": [given]}],
            "gender": if female { "female" } else { "male" },
            "birthDate": birth,
            "address": [{
                "use": "home",
                "line": [format!("{house} {street}")],
                "city": "London",
                "district": borough_name,
                "postalCode": postcode,
                "country": "GB"
            }],
            "generalPractitioner": [{"reference": format!("Organization/{ods}"), "display": practice_name}]
        });
        let organization = json!({
            "resourceType": "Organization",
            "id": ods,
            "meta": {"lastUpdated": "2024-01-01T09:00:00Z"},
            "identifier": [{"system": systems::ODS_ORGANIZATION_CODE, "value": ods}],
            "active": true,
            "type": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                "code": "prov",
                "display": "Healthcare Provider"
            }]}],
            "name": practice_name,
            "address": [{"city": "London", "district": borough_name, "country": "GB"}]
        });
        (patient, organization)
    }
}

/// A tiny splitmix64 stream: stable across platforms and crate versions, which a seeded
/// population must be (the same seed gives the same bytes forever).
struct Gen(u64);

impl Gen {
    fn new(seed: u64, a: u64, b: u64) -> Self {
        let mut g =
            Self(seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
        g.next();
        g
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn letter(&mut self) -> char {
        char::from(b'A' + self.below(26) as u8)
    }
}

fn timestamp(g: &mut Gen) -> String {
    format!(
        "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        18 + g.below(7),
        1 + g.below(12),
        1 + g.below(28),
        8 + g.below(10),
        g.below(60),
        g.below(60)
    )
}

fn date(g: &mut Gen) -> String {
    format!("20{:02}-{:02}-{:02}", 5 + g.below(20), 1 + g.below(12), 1 + g.below(28))
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

/// A JSON number kept exactly as written (the workspace's serde_json has
/// `arbitrary_precision`), so `1.50` stays `1.50`.
fn decimal(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn with_meta(mut resource: Value, g: &mut Gen) -> Value {
    if let Some(obj) = resource.as_object_mut() {
        let mut meta = Map::new();
        meta.insert("lastUpdated".into(), Value::String(timestamp(g)));
        obj.insert("meta".into(), Value::Object(meta));
    }
    resource
}

/// (SNOMED CT, display, Read v2, CTV3)
const CONDITIONS: [(&str, &str, &str, &str); 8] = [
    ("44054006", "Type 2 diabetes mellitus", "C10F.", "X40J5"),
    ("38341003", "Hypertensive disorder", "G20..", "XE0Ub"),
    ("195967001", "Asthma", "H33..", "H33.."),
    ("13645005", "Chronic obstructive lung disease", "H3...", "XaEIV"),
    ("35489007", "Depressive disorder", "E2B..", "X00SO"),
    ("49436004", "Atrial fibrillation", "G573.", "X2020"),
    ("709044004", "Chronic kidney disease", "1Z1..", "XaNbn"),
    ("69896004", "Rheumatoid arthritis", "N040.", "N040."),
];

/// (dm+d code, display)
const MEDICINES: [(&str, &str); 6] = [
    ("325278000", "Metformin 500mg tablets"),
    ("318858000", "Ramipril 5mg capsules"),
    ("320029001", "Salbutamol 100micrograms/dose inhaler"),
    ("321968002", "Sertraline 50mg tablets"),
    ("319740004", "Atorvastatin 20mg tablets"),
    ("317896006", "Amlodipine 5mg tablets"),
];

const ALLERGIES: [(&str, &str); 4] = [
    ("91936005", "Allergy to penicillin"),
    ("300913006", "Shellfish allergy"),
    ("418689008", "Allergy to grass pollen"),
    ("293586001", "Allergy to aspirin"),
];

const ENCOUNTER_TYPES: [(&str, &str); 4] = [
    ("185349003", "Encounter for check up"),
    ("185347001", "Encounter for problem"),
    ("390906007", "Follow-up encounter"),
    ("50849002", "Emergency room admission"),
];

/// (SNOMED, display, unit, whole part range start, range width)
const OBSERVATIONS: [(&str, &str, &str, u64, u64); 5] = [
    ("1000731000000107", "Serum potassium level", "mmol/L", 3, 3),
    ("1000981000000109", "Serum creatinine level", "umol/L", 60, 60),
    ("1107481000000106", "Haemoglobin A1c level", "mmol/mol", 38, 30),
    ("60621009", "Body mass index", "kg/m2", 19, 15),
    ("27113001", "Body weight", "kg", 50, 50),
];

const VACCINES: [(&str, &str); 3] = [
    ("39114911000001105", "Influenza vaccine (split virion, inactivated) suspension for injection"),
    ("39115611000001103", "Pneumococcal polysaccharide vaccine solution for injection"),
    ("39330711000001103", "COVID-19 mRNA Vaccine Comirnaty 30micrograms/0.3ml dose"),
];

const PROCEDURES: [(&str, &str); 4] = [
    ("80146002", "Appendicectomy"),
    ("73761001", "Colonoscopy"),
    ("232717009", "Coronary artery bypass grafting"),
    ("18286008", "Cataract extraction"),
];

fn clinical(g: &mut Gen, shared: &mut Gen, local: &str, out: &mut Vec<Value>) {
    let subject = json!({"reference": format!("Patient/{local}")});
    let encounters: Vec<String> = (0..1 + g.below(4)).map(|i| format!("{local}-enc{i}")).collect();
    for id in &encounters {
        let (code, display) = g.pick(&ENCOUNTER_TYPES);
        let day = date(g);
        let r = json!({
            "resourceType": "Encounter",
            "id": id,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
            "type": [{"coding": [coding(systems::SNOMED_CT, code, display)]}],
            "subject": subject,
            "period": {"start": format!("{day}T09:00:00Z"), "end": format!("{day}T09:20:00Z")}
        });
        out.push(with_meta(r, g));
    }
    let encounter_ref = |g: &mut Gen| json!({"reference": format!("Encounter/{}", encounters[g.below(encounters.len() as u64) as usize])});

    for i in 0..1 + g.below(4) {
        let (snomed, display, read2, ctv3) = g.pick(&CONDITIONS);
        let mut codings = vec![coding(systems::SNOMED_CT, snomed, display)];
        // Older entries were coded in Read v2 or CTV3 at the time and keep that coding.
        match g.below(3) {
            0 => codings.push(coding(systems::READ_V2, read2, display)),
            1 => codings.push(coding(systems::CTV3, ctv3, display)),
            _ => {}
        }
        let r = json!({
            "resourceType": "Condition",
            "id": format!("{local}-cond{i}"),
            "clinicalStatus": {"coding": [coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active")]},
            "verificationStatus": {"coding": [coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed")]},
            "category": [{"coding": [coding("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem List Item")]}],
            "code": {"coding": codings, "text": display},
            "subject": subject,
            "encounter": encounter_ref(g),
            "onsetDateTime": date(g),
            "recordedDate": date(g)
        });
        out.push(with_meta(r, g));
    }
    for i in 0..g.below(4) {
        let (code, display) = g.pick(&MEDICINES);
        let r = json!({
            "resourceType": "MedicationStatement",
            "id": format!("{local}-ms{i}"),
            "status": "active",
            "medicationCodeableConcept": {"coding": [coding(systems::DM_D, code, display)], "text": display},
            "subject": subject,
            "effectivePeriod": {"start": date(g)},
            "dateAsserted": date(g),
            "dosage": [{"text": "One tablet daily"}]
        });
        out.push(with_meta(r, g));
    }
    for i in 0..g.below(4) {
        let (code, display) = g.pick(&MEDICINES);
        let r = json!({
            "resourceType": "MedicationRequest",
            "id": format!("{local}-mr{i}"),
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"coding": [coding(systems::DM_D, code, display)], "text": display},
            "subject": subject,
            "encounter": encounter_ref(g),
            "authoredOn": date(g),
            "dosageInstruction": [{"text": "Take one daily"}],
            "dispenseRequest": {"quantity": {"value": decimal("28"), "unit": "tablet"}}
        });
        out.push(with_meta(r, g));
    }
    for i in 0..shared.below(3) {
        let (code, display) = shared.pick(&ALLERGIES);
        let r = json!({
            "resourceType": "AllergyIntolerance",
            "id": format!("{local}-al{i}"),
            "clinicalStatus": {"coding": [coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active")]},
            "verificationStatus": {"coding": [coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed")]},
            "type": "allergy",
            "category": ["medication"],
            "code": {"coding": [coding(systems::SNOMED_CT, code, display)]},
            "patient": subject,
            "recordedDate": date(shared)
        });
        out.push(with_meta(r, g));
    }
    // Always at least one observation with a trailing-zero decimal and an extension, so every
    // record can prove that values pass through unchanged.
    for i in 0..2 + g.below(5) {
        let (code, display, unit, lo, width) = if i == 0 { OBSERVATIONS[0] } else { g.pick(&OBSERVATIONS) };
        let value = if i == 0 {
            format!("{}.{}0", lo + g.below(width), 1 + g.below(9))
        } else {
            format!("{}.{:02}", lo + g.below(width), g.below(100))
        };
        let mut r = json!({
            "resourceType": "Observation",
            "id": format!("{local}-obs{i}"),
            "status": "final",
            "category": [{"coding": [coding("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")]}],
            "code": {"coding": [coding(systems::SNOMED_CT, code, display)], "text": display},
            "subject": subject,
            "encounter": encounter_ref(g),
            "effectiveDateTime": format!("{}T10:30:00Z", date(g)),
            "valueQuantity": {"value": decimal(&value), "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
        });
        if (i == 0 || g.below(3) == 0)
            && let Some(obj) = r.as_object_mut()
        {
            {
                obj.insert(
                    "extension".into(),
                    json!([{"url": "https://fhir.tideway.london/StructureDefinition/sample-condition", "extension": [
                        {"url": "fasting", "valueBoolean": g.below(2) == 0},
                        {"url": "haemolysis-index", "valueDecimal": decimal("0.10")}
                    ]}]),
                );
            }
        }
        out.push(with_meta(r, g));
    }
    for i in 0..g.below(4) {
        let (code, display) = g.pick(&VACCINES);
        let r = json!({
            "resourceType": "Immunization",
            "id": format!("{local}-imm{i}"),
            "status": "completed",
            "vaccineCode": {"coding": [coding(systems::DM_D, code, display)]},
            "patient": subject,
            "occurrenceDateTime": date(g),
            "primarySource": true,
            "doseQuantity": {"value": decimal("0.50"), "unit": "ml", "system": "http://unitsofmeasure.org", "code": "mL"}
        });
        out.push(with_meta(r, g));
    }
    for i in 0..g.below(3) {
        let (code, display) = g.pick(&PROCEDURES);
        let r = json!({
            "resourceType": "Procedure",
            "id": format!("{local}-proc{i}"),
            "status": "completed",
            "code": {"coding": [coding(systems::SNOMED_CT, code, display)]},
            "subject": subject,
            "encounter": encounter_ref(g),
            "performedDateTime": date(g)
        });
        out.push(with_meta(r, g));
    }
}

const FEMALE_NAMES: [&str; 12] = [
    "Amelia", "Olivia", "Aisha", "Fatima", "Chloe", "Grace", "Priya", "Zara", "Maya", "Sophie", "Ngozi",
    "Ewa",
];
const MALE_NAMES: [&str; 12] = [
    "Oliver", "Mohammed", "Jack", "Harry", "Kwame", "Arjun", "Noah", "Leo", "Tomasz", "Daniel", "Samuel",
    "Yusuf",
];
const FAMILY_NAMES: [&str; 16] = [
    "Smith", "Jones", "Khan", "Patel", "Williams", "Brown", "Ahmed", "Okafor", "Taylor", "Nowak", "Davies",
    "Ali", "Evans", "Mensah", "Singh", "Wilson",
];
const STREETS: [&str; 10] = [
    "High Street",
    "Church Road",
    "Station Road",
    "Park Lane",
    "Victoria Road",
    "Green Lanes",
    "Mill Lane",
    "King Street",
    "Queens Road",
    "Grove Terrace",
];
const PRACTICE_WORDS: [&str; 5] = ["Park", "Riverside", "Hill", "Central", "Market"];

#[cfg(test)]
mod tests {
    use super::*;

    fn pop() -> Population {
        Population::new(42, 6, 200)
    }

    #[test]
    fn same_seed_gives_same_bytes() {
        let a = serde_json::to_vec(&pop().record(2, 450).unwrap().resources).unwrap();
        let b = serde_json::to_vec(&Population::new(42, 6, 200).record(2, 450).unwrap().resources).unwrap();
        assert_eq!(a, b);
        let c = serde_json::to_vec(&Population::new(43, 6, 200).record(2, 450).unwrap().resources).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn nhs_numbers_are_valid_test_numbers_and_invert() {
        let p = pop();
        let mut seen = std::collections::HashSet::new();
        for i in 0..p.patient_count() {
            let n = p.nhs_number(i).unwrap();
            assert!(n.is_test_range());
            assert_eq!(NhsNumber::parse(n.as_str()).as_ref(), Ok(&n));
            assert_eq!(p.patient_index(&n), Some(i));
            assert!(seen.insert(n));
        }
        assert_eq!(p.nhs_number(p.patient_count()), None);
    }

    #[test]
    fn shared_patients_have_the_same_demographics_everywhere() {
        let p = pop();
        let several = p.patients_in_several_boroughs(10);
        assert_eq!(several.len(), 10);
        for nhs in several {
            let idx = p.patient_index(&nhs).unwrap();
            let boroughs = p.boroughs_of(idx);
            assert!(boroughs.len() > 1);
            let demographics: Vec<Value> = boroughs
                .iter()
                .map(|&b| {
                    assert!(p.patients_in_borough(b).contains(&idx));
                    let mut patient = p.record(b, idx).unwrap().resources[0].clone();
                    let obj = patient.as_object_mut().unwrap();
                    obj.remove("id");
                    obj.remove("meta");
                    patient
                })
                .collect();
            assert!(demographics.windows(2).all(|w| w[0] == w[1]));
            let records: Vec<Value> =
                boroughs.iter().map(|&b| json!(p.record(b, idx).unwrap().resources[2..])).collect();
            assert_ne!(records[0], records[1], "clinical entries differ by borough");
        }
    }

    #[test]
    fn boroughs_list_exactly_the_patients_they_hold() {
        let p = pop();
        for b in 0..p.borough_count() {
            let listed = p.patients_in_borough(b);
            for i in 0..p.patient_count() {
                assert_eq!(listed.contains(&i), p.holds(b, i), "borough {b} patient {i}");
            }
            assert!(p.record(b, listed[0]).is_some());
            let local = p.local_id(b, listed[3]);
            assert_eq!(p.index_from_local_id(b, &local), Some(listed[3]));
        }
        assert!(p.record(0, 399).is_none());
        assert_eq!(p.borough_source_id(3).as_deref(), Some("tower-hamlets"));
        assert_eq!(p.borough_ods_code(0).unwrap().as_str(), "LBX01");
    }

    #[test]
    fn every_generated_resource_is_valid_r4() {
        let p = Population::new(7, 3, 120);
        let mut count = 0;
        let mut systems_seen = std::collections::HashSet::new();
        for b in 0..p.borough_count() {
            for i in p.patients_in_borough(b) {
                for r in p.record(b, i).unwrap().resources {
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
        let rec = pop().record(0, 0).unwrap();
        let text = serde_json::to_string(&rec.resources).unwrap();
        assert!(text.contains("\"haemolysis-index\",\"valueDecimal\":0.10"));
        let obs = rec.resources.iter().find(|r| r["resourceType"] == "Observation").unwrap();
        assert!(obs["valueQuantity"]["value"].to_string().ends_with('0'));
    }

    #[test]
    fn a_thousand_patient_borough_generates_quickly() {
        let p = Population::new(1, 25, 1000);
        let start = std::time::Instant::now();
        let n: usize =
            p.patients_in_borough(4).iter().map(|&i| p.record(4, i).unwrap().resources.len()).sum();
        assert!(n > 10_000);
        // Generous for an unoptimised test build on a busy machine.
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{:?}", start.elapsed());
    }
}
