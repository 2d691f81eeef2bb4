//! A deterministic synthetic population of clinical facts, generated from a seed without files.
//!
//! Patients are numbered `0..borough_count * patients_per_borough`; patient `p` lives in borough
//! `p / patients_per_borough` (its home). Every 5th patient is also held by the next borough, and
//! every 10th by the one after that too, so the demo always has people whose record is spread
//! over several sources. Demographics depend only on the seed and the patient number, so the same
//! NHS number looks the same everywhere; clinical entries depend on the patient and the borough,
//! so each borough holds a different part of the story, except what travels with the patient:
//! allergies, and for a patient held by several boroughs one long-term problem carried from
//! practice to practice, recorded alike in each.
//!
//! The population speaks no system's dialect: a [`PatientRecord`] is plain facts (a patient with
//! demographics and a registered practice, problems coded in SNOMED CT and, on older entries,
//! Read v2 or CTV3, medicines in dm+d, allergies, encounters, observations, immunisations,
//! procedures). Each simulator renders the same facts in its own format (FHIR R4 JSON in
//! [`crate::fhir_r4::render`]; SystmOne XML, EMIS, Vision and GP Connect STU3 later), so every
//! simulated system tells the same story about the same patient. A borough's council tells
//! another part of it: [`social_care`] holds the social-care records of some of its residents
//! (care plans, an episode of care, referrals from the GP practice and what became of them).
//!
//! Nothing is stored: a record is generated on request in microseconds, which is what lets a
//! simulated borough hold a thousand or several hundred thousand patients.

use tideway_profiles::{NhsNumber, OdsCode};

pub mod social_care;

pub use social_care::SocialCareRecord;

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

/// A coded concept as the record holds it: the code and its display text. Which terminology it
/// belongs to is said by the field that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concept {
    /// The code.
    pub code: &'static str,
    /// Its display text.
    pub display: &'static str,
}

const fn concept(code: &'static str, display: &'static str) -> Concept {
    Concept { code, display }
}

/// The coding a problem was recorded with at the time, kept beside its SNOMED CT code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyCode {
    /// A Read v2 code (EMIS, Vision).
    ReadV2(&'static str),
    /// A CTV3 code (SystmOne).
    Ctv3(&'static str),
}

/// Administrative gender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    /// Female.
    Female,
    /// Male.
    Male,
}

/// Every address in the population is in this city.
pub const CITY: &str = "London";
/// ISO 3166 code of the country of every address.
pub const COUNTRY: &str = "GB";

/// A home address (in [`CITY`], [`COUNTRY`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// House number and street.
    pub line: String,
    /// The borough.
    pub district: &'static str,
    /// Postcode.
    pub postcode: String,
}

/// The general practice a patient is registered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Practice {
    /// ODS-style code, e.g. `F80003`.
    pub ods_code: String,
    /// Name, e.g. `Camden Hill Medical Centre`.
    pub name: String,
    /// The borough it is in.
    pub borough: &'static str,
}

/// Who the patient is: the same in every borough holding the patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demographics {
    /// NHS number (test range).
    pub nhs_number: NhsNumber,
    /// Given name.
    pub given: &'static str,
    /// Family name.
    pub family: &'static str,
    /// Gender.
    pub gender: Gender,
    /// Date of birth, `YYYY-MM-DD`.
    pub birth_date: String,
    /// Home address.
    pub address: Address,
    /// Registered practice.
    pub practice: Practice,
    /// The record is flagged restricted (the Spine "S" flag): see [`Population::is_restricted`].
    pub restricted: bool,
    /// The date of death this borough records, if it records one: see
    /// [`Population::date_of_death`].
    pub deceased: Option<String>,
    /// The NHS number the patient had before this one, if any: see
    /// [`Population::former_nhs_number`].
    pub former_nhs_number: Option<NhsNumber>,
}

/// A contact with a clinician (an ambulatory appointment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encounter {
    /// The borough's id for the entry.
    pub id: String,
    /// What kind of encounter (SNOMED CT).
    pub kind: Concept,
    /// Start, RFC 3339.
    pub start: String,
    /// End, RFC 3339.
    pub end: String,
    /// Ids of the problems it was for (its `reasonReference`), when recorded.
    pub reasons: Vec<String>,
    /// When the encounter is still open with another service: that service's ODS code (its
    /// `serviceProvider`; the encounter is then `in-progress` and has no end).
    pub open_with: Option<&'static str>,
    /// When the borough last changed the entry, RFC 3339.
    pub last_updated: String,
}

/// A referral to another service, still open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    /// The borough's id for the entry.
    pub id: String,
    /// The service referred to, by ODS code (its `performer`).
    pub to: &'static str,
    /// Why (SNOMED CT), with the problem it is for.
    pub reason: Concept,
    /// Id of the problem it is for (its `reasonReference`).
    pub problem: String,
    /// Made, `YYYY-MM-DD`.
    pub authored: String,
    /// When the borough last changed the entry, RFC 3339.
    pub last_updated: String,
}

/// ODS code of the region's out-of-hours GP service (the demo's `ooh-gp` persona).
pub const OUT_OF_HOURS_SERVICE: &str = "YOOH1";
/// ODS code of the region's podiatry service.
pub const PODIATRY_SERVICE: &str = "YPOD1";
/// ODS code of the region's mental-health service.
pub const MENTAL_HEALTH_SERVICE: &str = "YMH01";

/// An active, confirmed problem-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The borough's id for the entry.
    pub id: String,
    /// SNOMED CT.
    pub snomed: Concept,
    /// The Read v2 or CTV3 code it was first recorded with, on older entries.
    pub legacy: Option<LegacyCode>,
    /// Id of the encounter it was recorded in.
    pub encounter: String,
    /// Onset, `YYYY-MM-DD`.
    pub onset: String,
    /// Recorded, `YYYY-MM-DD`.
    pub recorded: String,
    /// When the borough last changed the entry, RFC 3339.
    pub last_updated: String,
}

/// A medicine the patient takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Medication {
    /// The borough's id for the entry.
    pub id: String,
    /// dm+d.
    pub medicine: Concept,
    /// Started, `YYYY-MM-DD`.
    pub started: String,
    /// When it was asserted, `YYYY-MM-DD`.
    pub asserted: String,
    /// Dosage text.
    pub dosage: &'static str,
    /// When the borough last changed the entry, RFC 3339.
    pub last_updated: String,
}

/// A prescription issued in an encounter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prescription {
    /// The borough's id for the entry.
    pub id: String,
    /// dm+d.
    pub medicine: Concept,
    /// Id of the encounter it was issued in.
    pub encounter: String,
    /// Authored, `YYYY-MM-DD`.
    pub authored: String,
    /// Dosage instruction text.
    pub dosage: &'static str,
    /// Quantity to dispense.
    pub quantity: u32,
    /// Unit of the quantity.
    pub quantity_unit: &'static str,
    /// When the borough last changed the entry, RFC 3339.
    pub last_updated: String,
}

/// An active, confirmed allergy. The same allergies are recorded in every borough holding the
/// patient (ids and `last_updated` differ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allergy {
    /// The borough's id for the entry.
    pub id: String,
    /// SNOMED CT.
    pub code: Concept,
    /// Recorded, `YYYY-MM-DD`.
    pub recorded: String,
    /// When the borough last changed the entry, RFC 3339.
    pub last_updated: String,
}

/// Conditions of a laboratory sample, which records keep beside the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleCondition {
    /// Whether the patient was fasting.
    pub fasting: bool,
    /// Haemolysis index, a decimal as written (e.g. `0.10`).
    pub haemolysis_index: &'static str,
}

/// A laboratory or measurement result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The borough's id for the entry.
    pub id: String,
    /// SNOMED CT.
    pub code: Concept,
    /// The value, a decimal exactly as written (trailing zeros kept, e.g. `4.50`).
    pub value: String,
    /// UCUM unit.
    pub unit: &'static str,
    /// Id of the encounter it was taken in.
    pub encounter: String,
    /// When it was taken, RFC 3339.
    pub effective: String,
    /// Sample conditions, when recorded.
    pub sample: Option<SampleCondition>,
    /// When the borough last changed the entry, RFC 3339.
    pub last_updated: String,
}

/// A vaccination given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Immunisation {
    /// The borough's id for the entry.
    pub id: String,
    /// dm+d.
    pub vaccine: Concept,
    /// Given, `YYYY-MM-DD`.
    pub date: String,
    /// Dose in millilitres, a decimal as written (e.g. `0.50`).
    pub dose_ml: &'static str,
    /// When the borough last changed the entry, RFC 3339.
    pub last_updated: String,
}

/// A procedure performed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procedure {
    /// The borough's id for the entry.
    pub id: String,
    /// SNOMED CT.
    pub code: Concept,
    /// Id of the encounter it was performed in.
    pub encounter: String,
    /// Performed, `YYYY-MM-DD`.
    pub date: String,
    /// When the borough last changed the entry, RFC 3339.
    pub last_updated: String,
}

/// One patient's record as one borough holds it: plain facts, in no system's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRecord {
    /// The borough's own id for the patient.
    pub local_id: String,
    /// Who the patient is.
    pub demographics: Demographics,
    /// When the borough last changed the patient's details, RFC 3339.
    pub last_updated: String,
    /// Encounters (at least one).
    pub encounters: Vec<Encounter>,
    /// Problems (at least one).
    pub problems: Vec<Problem>,
    /// Medicines taken.
    pub medications: Vec<Medication>,
    /// Prescriptions issued.
    pub prescriptions: Vec<Prescription>,
    /// Allergies.
    pub allergies: Vec<Allergy>,
    /// Observations (at least two; the first always has a trailing-zero value and sample
    /// conditions, so every record can show that decimals pass through unchanged).
    pub observations: Vec<Observation>,
    /// Immunisations.
    pub immunisations: Vec<Immunisation>,
    /// Procedures.
    pub procedures: Vec<Procedure>,
    /// Open referrals to other services.
    pub referrals: Vec<Referral>,
}

impl PatientRecord {
    /// Number of clinical entries (everything but the patient and the practice).
    pub fn clinical_entry_count(&self) -> usize {
        self.encounters.len()
            + self.problems.len()
            + self.medications.len()
            + self.prescriptions.len()
            + self.allergies.len()
            + self.observations.len()
            + self.immunisations.len()
            + self.procedures.len()
            + self.referrals.len()
    }
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
        let index = numbered(local_id, &format!("b{borough:02}-p"))?;
        self.holds(borough, index).then_some(index)
    }

    /// The whole record `borough` holds for patient `index`, or `None` if it holds no such
    /// patient.
    pub fn record(&self, borough: usize, index: usize) -> Option<PatientRecord> {
        if !self.holds(borough, index) {
            return None;
        }
        let nhs_number = self.nhs_number(index)?;
        let local_id = self.local_id(borough, index);
        let mut demographics = self.demographics(nhs_number, index);
        if self.flagged_by(index) == Some(borough) {
            demographics.restricted = self.is_restricted(index);
            demographics.deceased = self.date_of_death(index);
            if let Some(family) = self.outdated_family_name(index) {
                demographics.family = family;
            }
        }
        let last_updated = timestamp(&mut Gen::new(self.seed, index as u64, borough as u64 ^ 0xA5A5));
        let mut g = Gen::new(self.seed, index as u64, borough as u64);
        // Allergies are facts about the patient, recorded alike wherever the patient is held,
        // so the same allergy reaches the gateway from several boroughs.
        let mut shared = Gen::new(self.seed, index as u64, u64::MAX - 1);
        // The order of the draws is what keeps a seed's record the same forever: kind by kind,
        // each entry's fields in the order written, its `last_updated` last.
        let encounters: Vec<Encounter> = (0..1 + g.below(4))
            .map(|i| {
                let kind = g.pick(&ENCOUNTER_TYPES);
                let day = date(&mut g);
                Encounter {
                    id: format!("{local_id}-enc{i}"),
                    kind,
                    start: format!("{day}T09:00:00Z"),
                    end: format!("{day}T09:20:00Z"),
                    reasons: Vec::new(),
                    open_with: None,
                    last_updated: timestamp(&mut g),
                }
            })
            .collect();
        let ids: Vec<String> = encounters.iter().map(|e| e.id.clone()).collect();
        let encounter = |g: &mut Gen| ids[g.below(ids.len() as u64) as usize].clone();
        let mut problems: Vec<Problem> = (0..1 + g.below(4))
            .map(|i| {
                let (snomed, display, read2, ctv3) = g.pick(&CONDITIONS);
                // Older entries were coded in Read v2 or CTV3 at the time and keep that coding.
                let legacy = match g.below(3) {
                    0 => Some(LegacyCode::ReadV2(read2)),
                    1 => Some(LegacyCode::Ctv3(ctv3)),
                    _ => None,
                };
                Problem {
                    id: format!("{local_id}-cond{i}"),
                    snomed: concept(snomed, display),
                    legacy,
                    encounter: encounter(&mut g),
                    onset: date(&mut g),
                    recorded: date(&mut g),
                    last_updated: timestamp(&mut g),
                }
            })
            .collect();
        let medications = (0..g.below(4))
            .map(|i| Medication {
                id: format!("{local_id}-ms{i}"),
                medicine: g.pick(&MEDICINES),
                started: date(&mut g),
                asserted: date(&mut g),
                dosage: "One tablet daily",
                last_updated: timestamp(&mut g),
            })
            .collect();
        let prescriptions = (0..g.below(4))
            .map(|i| Prescription {
                id: format!("{local_id}-mr{i}"),
                medicine: g.pick(&MEDICINES),
                encounter: encounter(&mut g),
                authored: date(&mut g),
                dosage: "Take one daily",
                quantity: 28,
                quantity_unit: "tablet",
                last_updated: timestamp(&mut g),
            })
            .collect();
        let allergies = (0..shared.below(3))
            .map(|i| Allergy {
                id: format!("{local_id}-al{i}"),
                code: shared.pick(&ALLERGIES),
                recorded: date(&mut shared),
                last_updated: timestamp(&mut g),
            })
            .collect();
        // A long-term problem recorded since SNOMED CT came in travelled with the record of a
        // patient held by several practices (GP2GP): the same fact in every borough holding
        // them, coded alike, each system adding its own codes beside it. Drawn last from the
        // shared stream, so every other draw stays as it was.
        if self.boroughs_of(index).len() > 1 {
            let (snomed, display, _, _) = shared.pick(&CONDITIONS);
            problems.push(Problem {
                id: format!("{local_id}-carried"),
                snomed: concept(snomed, display),
                legacy: None,
                encounter: ids[0].clone(),
                onset: date(&mut shared),
                recorded: date(&mut shared),
                last_updated: timestamp(&mut shared),
            });
        }
        let observations = (0..2 + g.below(5))
            .map(|i| {
                let (code, display, unit, lo, width) =
                    if i == 0 { OBSERVATIONS[0] } else { g.pick(&OBSERVATIONS) };
                let whole = lo + g.below(width);
                let value = if i == 0 {
                    format!("{whole}.{}0", 1 + g.below(9))
                } else {
                    format!("{whole}.{:02}", g.below(100))
                };
                let encounter = encounter(&mut g);
                let effective = format!("{}T10:30:00Z", date(&mut g));
                let sample = (i == 0 || g.below(3) == 0)
                    .then(|| SampleCondition { fasting: g.below(2) == 0, haemolysis_index: "0.10" });
                Observation {
                    id: format!("{local_id}-obs{i}"),
                    code: concept(code, display),
                    value,
                    unit,
                    encounter,
                    effective,
                    sample,
                    last_updated: timestamp(&mut g),
                }
            })
            .collect();
        let immunisations = (0..g.below(4))
            .map(|i| Immunisation {
                id: format!("{local_id}-imm{i}"),
                vaccine: g.pick(&VACCINES),
                date: date(&mut g),
                dose_ml: "0.50",
                last_updated: timestamp(&mut g),
            })
            .collect();
        let procedures = (0..g.below(3))
            .map(|i| Procedure {
                id: format!("{local_id}-proc{i}"),
                code: g.pick(&PROCEDURES),
                encounter: encounter(&mut g),
                date: date(&mut g),
                last_updated: timestamp(&mut g),
            })
            .collect();
        let mut record = PatientRecord {
            local_id,
            demographics,
            last_updated,
            encounters,
            problems,
            medications,
            prescriptions,
            allergies,
            observations,
            immunisations,
            procedures,
            referrals: Vec::new(),
        };
        // Scenario entries are recorded by the home borough only, from their own stream, so
        // every other draw (and every other patient) stays exactly as it was.
        if borough == self.home_borough(index)
            && let Some(scenario) = Scenario::of(index)
        {
            let mut g = Gen::new(self.seed, index as u64, borough as u64 ^ 0x5CE7_A210);
            scenario.add_to(&mut record, &mut g);
        }
        Some(record)
    }

    /// The first `limit` patients of a scenario, by NHS number.
    pub fn scenario_patients(&self, scenario: Scenario, limit: usize) -> Vec<NhsNumber> {
        (0..self.patient_count())
            .filter(|i| Scenario::of(*i) == Some(scenario))
            .filter_map(|i| self.nhs_number(i))
            .take(limit)
            .collect()
    }

    /// Demographics come from the patient alone so every borough agrees on them.
    fn demographics(&self, nhs_number: NhsNumber, index: usize) -> Demographics {
        let mut d = Gen::new(self.seed, index as u64, u64::MAX);
        let female = d.below(2) == 0;
        let given = if female { d.pick(&FEMALE_NAMES) } else { d.pick(&MALE_NAMES) };
        let family = d.pick(&FAMILY_NAMES);
        let year = 1930 + d.below(90);
        let birth_date = format!("{year}-{:02}-{:02}", 1 + d.below(12), 1 + d.below(28));
        let home = self.home_borough(index);
        let (borough, district) = BOROUGHS[home];
        let house = 1 + d.below(180);
        let street = d.pick(&STREETS);
        let postcode = format!("{district} {}{}{}", 1 + d.below(9), d.letter(), d.letter());
        let practice_no = d.below(PRACTICES_PER_BOROUGH);
        Demographics {
            nhs_number,
            given,
            family,
            gender: if female { Gender::Female } else { Gender::Male },
            birth_date,
            address: Address { line: format!("{house} {street}"), district: borough, postcode },
            practice: Practice {
                ods_code: self.practice_ods_code(home, practice_no),
                name: format!("{borough} {} Medical Centre", PRACTICE_WORDS[practice_no as usize]),
                borough,
            },
            restricted: false,
            deceased: None,
            former_nhs_number: self.former_nhs_number(index),
        }
    }

    /// The NHS number patient `index` had before their current one, if they had one: one
    /// patient in fifty (`index % 50 == 35`, each held by two boroughs) whose pair of stems
    /// both give valid numbers, the second being the former one. Every borough whose system
    /// speaks FHIR keeps it as an `identifier` with `use = old`; the sources search only the
    /// current number.
    pub fn former_nhs_number(&self, index: usize) -> Option<NhsNumber> {
        if index >= self.patient_count() || index % 50 != 35 {
            return None;
        }
        let stem = NHS_STEM_BASE + 2 * u32::try_from(index).ok()?;
        NhsNumber::from_stem(stem)?;
        NhsNumber::from_stem(stem + 1)
    }

    /// Whether patient `index` is restricted (S-flagged): one patient in fifty, each held by two
    /// boroughs (`index % 50 == 25`).
    pub fn is_restricted(&self, index: usize) -> bool {
        index < self.patient_count() && index % 50 == 25
    }

    /// The date patient `index` died, if they did: one patient in fifty, each held by two
    /// boroughs (`index % 50 == 45`), in 2025.
    pub fn date_of_death(&self, index: usize) -> Option<String> {
        (index < self.patient_count() && index % 50 == 45)
            .then(|| format!("2025-{:02}-{:02}", 1 + (index / 50) % 12, 1 + (index / 50) % 28))
    }

    /// The one borough whose record carries patient `index`'s restriction and date of death:
    /// the last of those holding them, so the home borough's record (the one that represents
    /// the patient) lacks both, and only a gateway that merges its sources' Patients finds them.
    pub fn flagged_by(&self, index: usize) -> Option<usize> {
        self.boroughs_of(index).last().copied()
    }

    /// The family name patient `index` had before they changed it, which the last borough
    /// holding them still records (see [`Self::flagged_by`]): one patient in fifty
    /// (`index % 50 == 5`, each held by two boroughs), so their sources disagree.
    pub fn outdated_family_name(&self, index: usize) -> Option<&'static str> {
        if index >= self.patient_count() || index % 50 != 5 {
            return None;
        }
        let current = self.person(index)?.family;
        FAMILY_NAMES.iter().copied().cycle().skip(index / 50).find(|f| *f != current)
    }

    /// Who patient `index` is as their home borough records them (the record any borough
    /// holds, before the one that flags them adds its flags and its out-of-date name).
    pub fn person(&self, index: usize) -> Option<Demographics> {
        Some(self.demographics(self.nhs_number(index)?, index))
    }

    /// NHS numbers of up to `limit` patients whose sources disagree on their family name.
    pub fn conflicting_patients(&self, limit: usize) -> Vec<NhsNumber> {
        self.patients_where(limit, |i| self.outdated_family_name(i).is_some())
    }

    /// NHS numbers of the first `limit` patients for whom `holds` holds.
    fn patients_where(&self, limit: usize, holds: impl Fn(usize) -> bool) -> Vec<NhsNumber> {
        (0..self.patient_count())
            .filter(|i| holds(*i))
            .filter_map(|i| self.nhs_number(i))
            .take(limit)
            .collect()
    }

    /// NHS numbers of up to `limit` restricted patients.
    pub fn restricted_patients(&self, limit: usize) -> Vec<NhsNumber> {
        self.patients_where(limit, |i| self.is_restricted(i))
    }

    /// Up to `limit` patients who had another NHS number before, as `(former, current)`.
    pub fn superseded_patients(&self, limit: usize) -> Vec<(NhsNumber, NhsNumber)> {
        (0..self.patient_count())
            .filter_map(|i| Some((self.former_nhs_number(i)?, self.nhs_number(i)?)))
            .take(limit)
            .collect()
    }

    /// NHS numbers of up to `limit` deceased patients.
    pub fn deceased_patients(&self, limit: usize) -> Vec<NhsNumber> {
        self.patients_where(limit, |i| self.date_of_death(i).is_some())
    }
}

/// The patient index at the end of `id` after `prefix`: at least six digits, nothing else.
fn numbered(id: &str, prefix: &str) -> Option<usize> {
    let rest = id.strip_prefix(prefix)?;
    if rest.len() < 6 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// Records that carry entries a sharing agreement must act on, recorded by the patient's home
/// borough beside the drawn entries. One patient in ten of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// HIV (SNOMED CT, and CTV3 on the older entry), chlamydia, gender reassignment,
    /// counselling for termination of pregnancy and IVF, recorded in one sexual-health encounter
    /// whose reasons are those problems (one entry of every sensitive category); and a referral
    /// for substance-misuse intervention. The patient's call to the out-of-hours
    /// service is open (an in-progress encounter with it).
    Sensitive,
    /// Type 2 diabetes with a diabetic foot ulcer and an ingrowing nail, an HbA1c result,
    /// co-codamol for the pain, and depression (which podiatry must not see); open referrals
    /// to the podiatry service for the ulcer and to the mental-health service for the
    /// depression.
    PodiatryDiabetic,
}

impl Scenario {
    /// The scenario of patient `index`, if any.
    pub fn of(index: usize) -> Option<Self> {
        match index % 10 {
            7 => Some(Self::Sensitive),
            3 => Some(Self::PodiatryDiabetic),
            _ => None,
        }
    }

    fn add_to(self, record: &mut PatientRecord, g: &mut Gen) {
        let local = record.local_id.clone();
        let day = date(g);
        let encounter = format!("{local}-enc-s");
        let problems: &[(&str, &str, Option<LegacyCode>)] = match self {
            Self::Sensitive => &[
                ("86406008", "Human immunodeficiency virus infection", Some(LegacyCode::Ctv3("43C3."))),
                ("105629000", "Chlamydial infection", None),
                ("407377005", "Female-to-male transsexual", None),
            ],
            Self::PodiatryDiabetic => &[
                ("44054006", "Type 2 diabetes mellitus", Some(LegacyCode::ReadV2("C10F."))),
                ("371087003", "Diabetic foot ulcer", None),
                ("400200009", "Ingrowing nail", None),
                ("35489007", "Depressive disorder", None),
            ],
        };
        let first = record.problems.len();
        for (i, (code, display, legacy)) in problems.iter().enumerate() {
            record.problems.push(Problem {
                id: format!("{local}-cond-s{i}"),
                snomed: concept(code, display),
                legacy: *legacy,
                encounter: encounter.clone(),
                onset: day.clone(),
                recorded: day.clone(),
                last_updated: timestamp(g),
            });
        }
        let reasons = match self {
            Self::Sensitive => record.problems[first..].iter().map(|p| p.id.clone()).collect(),
            Self::PodiatryDiabetic => Vec::new(),
        };
        record.encounters.push(Encounter {
            id: encounter.clone(),
            kind: ENCOUNTER_TYPES[1],
            start: format!("{day}T14:00:00Z"),
            end: format!("{day}T14:30:00Z"),
            reasons,
            open_with: None,
            last_updated: timestamp(g),
        });
        match self {
            Self::Sensitive => {
                record.encounters.push(Encounter {
                    id: format!("{local}-enc-s-ooh"),
                    kind: ENCOUNTER_TYPES[0],
                    start: format!("{day}T22:40:00Z"),
                    end: String::new(),
                    reasons: Vec::new(),
                    open_with: Some(OUT_OF_HOURS_SERVICE),
                    last_updated: timestamp(g),
                });
                for (i, (code, display)) in [
                    ("10383002", "Counseling for termination of pregnancy"),
                    ("1048221000000107", "Referral for specialist substance misuse intervention"),
                    ("52637005", "In vitro fertilization"),
                ]
                .into_iter()
                .enumerate()
                {
                    record.procedures.push(Procedure {
                        id: format!("{local}-proc-s{i}"),
                        code: concept(code, display),
                        encounter: encounter.clone(),
                        date: day.clone(),
                        last_updated: timestamp(g),
                    });
                }
            }
            Self::PodiatryDiabetic => {
                record.observations.push(Observation {
                    id: format!("{local}-obs-s0"),
                    code: concept(OBSERVATIONS[2].0, OBSERVATIONS[2].1),
                    value: format!("{}.0", 50 + g.below(30)),
                    unit: OBSERVATIONS[2].2,
                    encounter,
                    effective: format!("{day}T14:10:00Z"),
                    sample: None,
                    last_updated: timestamp(g),
                });
                // For the foot ulcer and the depression, the problems drawn above.
                for (i, (to, problem)) in
                    [(PODIATRY_SERVICE, 1), (MENTAL_HEALTH_SERVICE, 3)].into_iter().enumerate()
                {
                    let p = &record.problems[first + problem];
                    record.referrals.push(Referral {
                        id: format!("{local}-ref-s{i}"),
                        to,
                        reason: p.snomed,
                        problem: p.id.clone(),
                        authored: day.clone(),
                        last_updated: timestamp(g),
                    });
                }
                // Pain relief for the ulcer, drawn last so every draw before it stays as it was:
                // a medicine the CPRD product lists give a Gemscript code and an EMIS product
                // code id for, so the Vision- and EMIS-style records carry those and their maps
                // to dm+d are exercised.
                record.medications.push(Medication {
                    id: format!("{local}-ms-s0"),
                    medicine: CO_CODAMOL,
                    started: day.clone(),
                    asserted: day.clone(),
                    dosage: "Two tablets up to four times a day when required",
                    last_updated: timestamp(g),
                });
            }
        }
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

/// dm+d
const MEDICINES: [Concept; 6] = [
    concept("325278000", "Metformin 500mg tablets"),
    concept("318858000", "Ramipril 5mg capsules"),
    concept("320029001", "Salbutamol 100micrograms/dose inhaler"),
    concept("321968002", "Sertraline 50mg tablets"),
    concept("319740004", "Atorvastatin 20mg tablets"),
    concept("317896006", "Amlodipine 5mg tablets"),
];

/// dm+d: the podiatry-diabetic scenario's pain relief.
pub const CO_CODAMOL: Concept = concept("322341003", "Co-codamol 30mg/500mg tablets");

/// SNOMED CT
const ALLERGIES: [Concept; 4] = [
    concept("91936005", "Allergy to penicillin"),
    concept("300913006", "Shellfish allergy"),
    concept("418689008", "Allergy to grass pollen"),
    concept("293586001", "Allergy to aspirin"),
];

/// SNOMED CT
const ENCOUNTER_TYPES: [Concept; 4] = [
    concept("185349003", "Encounter for check up"),
    concept("185347001", "Encounter for problem"),
    concept("390906007", "Follow-up encounter"),
    concept("50849002", "Emergency room admission"),
];

/// (SNOMED, display, unit, whole part range start, range width)
const OBSERVATIONS: [(&str, &str, &str, u64, u64); 5] = [
    ("1000731000000107", "Serum potassium level", "mmol/L", 3, 3),
    ("1000981000000109", "Serum creatinine level", "umol/L", 60, 60),
    ("1107481000000106", "Haemoglobin A1c level", "mmol/mol", 38, 30),
    ("60621009", "Body mass index", "kg/m2", 19, 15),
    ("27113001", "Body weight", "kg", 50, 50),
];

/// dm+d
const VACCINES: [Concept; 3] = [
    concept("39114911000001105", "Influenza vaccine (split virion, inactivated) suspension for injection"),
    concept("39115611000001103", "Pneumococcal polysaccharide vaccine solution for injection"),
    concept("39330711000001103", "COVID-19 mRNA Vaccine Comirnaty 30micrograms/0.3ml dose"),
];

/// SNOMED CT
const PROCEDURES: [Concept; 4] = [
    concept("80146002", "Appendicectomy"),
    concept("73761001", "Colonoscopy"),
    concept("232717009", "Coronary artery bypass grafting"),
    concept("18286008", "Cataract extraction"),
];

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

    #[test]
    fn restricted_and_deceased_patients_are_flagged_by_the_last_borough_holding_them_only() {
        let p = Population::new(3, 5, 60);
        let restricted = p.restricted_patients(10);
        let deceased = p.deceased_patients(10);
        assert!(restricted.len() >= 4 && deceased.len() >= 4, "a few of each");
        for nhs in restricted.iter().chain(&deceased) {
            let i = p.patient_index(nhs).unwrap();
            let held = p.boroughs_of(i);
            assert_eq!(held.len(), 2, "held twice, so merging matters");
            let flags: Vec<(bool, Option<String>)> = held
                .iter()
                .map(|&b| {
                    let d = p.record(b, i).unwrap().demographics;
                    (d.restricted, d.deceased)
                })
                .collect();
            assert_eq!(flags[0], (false, None), "the home borough does not know");
            assert_eq!(flags[1], (p.is_restricted(i), p.date_of_death(i)));
        }
        assert_eq!(p.restricted_patients(10), restricted, "deterministic");
        for nhs in p.conflicting_patients(3) {
            let i = p.patient_index(&nhs).unwrap();
            let names: Vec<&str> =
                p.boroughs_of(i).iter().map(|&b| p.record(b, i).unwrap().demographics.family).collect();
            assert_eq!(names.len(), 2);
            assert_ne!(names[0], names[1], "the second borough still has the old name");
            assert_eq!(names[0], p.person(i).unwrap().family);
        }
        let (former, current) = p.superseded_patients(1).remove(0);
        assert_ne!(former, current);
        assert!(p.patient_index(&former).is_none(), "a former number is nobody's current one");
    }

    fn pop() -> Population {
        Population::new(42, 6, 200)
    }

    #[test]
    fn same_seed_gives_same_record() {
        let a = pop().record(2, 450).unwrap();
        assert_eq!(a, Population::new(42, 6, 200).record(2, 450).unwrap());
        assert_ne!(a, Population::new(43, 6, 200).record(2, 450).unwrap());
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
            let records: Vec<PatientRecord> = boroughs
                .iter()
                .map(|&b| {
                    assert!(p.patients_in_borough(b).contains(&idx));
                    p.record(b, idx).unwrap()
                })
                .collect();
            // A restriction and a date of death are recorded by one borough only.
            let flagged =
                records.iter().filter(|r| r.demographics.restricted || r.demographics.deceased.is_some());
            assert!(flagged.count() <= 1);
            // And an out-of-date family name (see Population::outdated_family_name).
            let person = |r: &PatientRecord| Demographics {
                restricted: false,
                deceased: None,
                family: "",
                ..r.demographics.clone()
            };
            assert!(records.windows(2).all(|w| person(&w[0]) == person(&w[1])));
            assert_eq!(records[0].demographics.nhs_number, nhs);
            assert_ne!(
                records[0].observations, records[1].observations,
                "clinical entries differ by borough"
            );
            let allergies = |r: &PatientRecord| r.allergies.iter().map(|a| a.code).collect::<Vec<_>>();
            assert_eq!(allergies(&records[0]), allergies(&records[1]), "allergies are the patient's");
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
    fn records_reference_only_their_own_encounters_and_keep_legacy_codes() {
        let p = Population::new(7, 3, 120);
        let (mut read2, mut ctv3) = (false, false);
        for b in 0..p.borough_count() {
            for i in p.patients_in_borough(b) {
                let r = p.record(b, i).unwrap();
                assert!(!r.encounters.is_empty() && !r.problems.is_empty() && r.observations.len() >= 2);
                let ids: Vec<&str> = r.encounters.iter().map(|e| e.id.as_str()).collect();
                let used = r
                    .problems
                    .iter()
                    .map(|x| &x.encounter)
                    .chain(r.prescriptions.iter().map(|x| &x.encounter))
                    .chain(r.observations.iter().map(|x| &x.encounter))
                    .chain(r.procedures.iter().map(|x| &x.encounter));
                for e in used {
                    assert!(ids.contains(&e.as_str()), "{e}");
                }
                assert!(r.observations[0].value.ends_with('0') && r.observations[0].sample.is_some());
                for pr in &r.problems {
                    read2 |= matches!(pr.legacy, Some(LegacyCode::ReadV2(_)));
                    ctv3 |= matches!(pr.legacy, Some(LegacyCode::Ctv3(_)));
                }
            }
        }
        assert!(read2 && ctv3);
    }

    #[test]
    fn a_thousand_patient_borough_generates_quickly() {
        let p = Population::new(1, 25, 1000);
        let start = std::time::Instant::now();
        let n: usize =
            p.patients_in_borough(4).iter().map(|&i| p.record(4, i).unwrap().clinical_entry_count()).sum();
        assert!(n > 10_000);
        // Generous for an unoptimised test build on a busy machine.
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{:?}", start.elapsed());
    }
}
