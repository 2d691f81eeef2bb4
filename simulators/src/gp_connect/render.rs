//! The population's facts as a GP Connect structured record: FHIR STU3 resources in a
//! `collection` Bundle, organised by Lists, the way a GP system's GP Connect provider answers
//! `$gpc.getstructuredrecord`. Pure: the same record and request always give the same bytes.
//!
//! How the facts map (and where this simplifies GP Connect):
//! - demographics: the Patient (local id), the practice Organization (id = its ODS code), the
//!   usual GP (`{ods}-gp` Practitioner, `{ods}-gp-role` PractitionerRole) and the surgery
//!   (`{ods}-site` Location), which every record references;
//! - problems: Condition (STU3 code-string statuses, `assertedDate`, problem significance);
//! - medicines taken: MedicationStatement, based on a repeat authorisation (MedicationRequest
//!   `{id}-plan`, intent `plan`) for a Medication `{id}-med`; prescriptions: an acute
//!   authorisation (`{id}-plan`), its statement (`{id}-ms`), its Medication (`{id}-med`) and the
//!   issue itself (MedicationRequest `{id}`, intent `order`, when prescription issues are asked
//!   for). dm+d codes are sent with the SNOMED CT system URI, as GP Connect requires;
//! - allergies: AllergyIntolerance in the active allergies List; the ended allergies List is
//!   sent empty (the population records none);
//! - encounters: Encounter in the consultations List (without GP Connect's per-consultation
//!   topic and heading Lists);
//! - test results (the observations taken with a recorded sample): one laboratory
//!   DiagnosticReport per consultation (`{encounter}-report`) in the investigations List, with
//!   the Specimen taken (`{encounter}-specimen`, a blood specimen collected when the first result
//!   was taken) and each result as an Observation (category `laboratory`) naming the specimen,
//!   as GP Connect's investigations section sends them (without its test group headers and
//!   test request summaries);
//! - other observations and procedures: Observation in the uncategorised data List (GP Connect
//!   has no Procedure resource);
//! - immunisations: Immunization (`notGiven`, `date`, `primarySource`);
//! - referrals: ReferralRequest in the referrals List.
//!
//! A List with nothing in it says so (`emptyReason` no-content-recorded, "Information not
//! available"). Patients whose number ends the population's index in 1 have a confidential
//! item withheld from their problems (warning `confidential-items`); in 2, a record still in
//! transit from a previous practice (`data-in-transit` on every List); in 4, data awaiting
//! filing (`data-awaiting-filing` on the investigations and uncategorised Lists).

use serde_json::{Value, json};
use tideway_adapters::gp_connect::stu3::WARNING_CODE_URL;
use tideway_profiles::systems;

use crate::fhir_r4::render::SAMPLE_CONDITION_URL;
use crate::population::{CITY, COUNTRY, Concept, Gender, LegacyCode, Observation, PatientRecord, Practice};

const PROFILE: &str = "https://fhir.nhs.uk/STU3/StructureDefinition/";
const SPINE_CODES: &str = "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1";

/// The sections a request asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Includes {
    /// `includeAllergies` (with `includeResolvedAllergies`).
    pub allergies: bool,
    /// `includeMedication` (with `includePrescriptionIssues`).
    pub medication: bool,
    /// `includePrescriptionIssues`.
    pub prescription_issues: bool,
    /// `includeProblems`.
    pub problems: bool,
    /// `includeImmunisations`.
    pub immunisations: bool,
    /// `includeConsultations`.
    pub consultations: bool,
    /// `includeInvestigations`.
    pub investigations: bool,
    /// `includeReferrals`.
    pub referrals: bool,
    /// `includeUncategorisedData`.
    pub uncategorised: bool,
}

impl Includes {
    /// Every section, prescription issues included.
    pub fn all() -> Self {
        Self {
            allergies: true,
            medication: true,
            prescription_issues: true,
            problems: true,
            immunisations: true,
            consultations: true,
            investigations: true,
            referrals: true,
            uncategorised: true,
        }
    }
}

/// A section's List: its SNOMED CT code and title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// SNOMED CT code of the List.
    pub code: &'static str,
    /// Its title (the code's display).
    pub title: &'static str,
}

/// Active allergies.
pub const ALLERGIES: Section = Section { code: "886921000000105", title: "Allergies and adverse reactions" };
/// Ended (resolved) allergies.
pub const ENDED_ALLERGIES: Section = Section { code: "1103671000000101", title: "Ended allergies" };
/// Medications.
pub const MEDICATIONS: Section =
    Section { code: "933361000000108", title: "Medications and medical devices" };
/// Problems.
pub const PROBLEMS: Section = Section { code: "717711000000103", title: "Problems" };
/// Immunisations.
pub const IMMUNISATIONS: Section = Section { code: "1102181000000102", title: "Immunisations" };
/// Consultations.
pub const CONSULTATIONS: Section = Section { code: "1149501000000101", title: "List of consultations" };
/// Investigations and results.
pub const INVESTIGATIONS: Section = Section { code: "887191000000108", title: "Investigations and results" };
/// Referrals.
pub const REFERRALS: Section = Section { code: "792931000000107", title: "Outbound referral" };
/// Uncategorised data.
pub const UNCATEGORISED: Section = Section { code: "826501000000100", title: "Miscellaneous record" };

/// The List warning, if any, patient `index`'s record carries, and on which sections.
pub fn warning_of(index: usize) -> Option<(&'static str, &'static [Section])> {
    const ALL: &[Section] = &[
        ALLERGIES,
        ENDED_ALLERGIES,
        MEDICATIONS,
        PROBLEMS,
        IMMUNISATIONS,
        CONSULTATIONS,
        INVESTIGATIONS,
        REFERRALS,
        UNCATEGORISED,
    ];
    match index % 10 {
        1 => Some(("confidential-items", &[PROBLEMS])),
        2 => Some(("data-in-transit", ALL)),
        4 => Some(("data-awaiting-filing", &[INVESTIGATIONS, UNCATEGORISED])),
        _ => None,
    }
}

/// The note GP Connect puts on a List carrying the warning.
fn warning_note(code: &str, registered: &str) -> String {
    match code {
        "confidential-items" => "Items excluded due to confidentiality and/or patient preferences.".into(),
        "data-in-transit" => format!(
            "Patient record transfer from previous GP practice not yet complete; information recorded before {registered} may be missing."
        ),
        _ => "Patient data may be incomplete as there is data supplied by a third party awaiting review before becoming available.".into(),
    }
}

fn reference(ty: &str, id: &str) -> Value {
    json!({"reference": format!("{ty}/{id}")})
}

fn by_ods(ods: &str) -> Value {
    json!({"identifier": {"system": systems::ODS_ORGANIZATION_CODE, "value": ods}})
}

fn snomed(c: Concept) -> Value {
    json!({"system": systems::SNOMED_CT, "code": c.code, "display": c.display})
}

fn decimal(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn meta(profile: &str) -> Value {
    json!({"profile": [format!("{PROFILE}{profile}")]})
}

/// Id of the usual GP of a practice.
pub fn practitioner_id(ods: &str) -> String {
    format!("{ods}-gp")
}

/// Id of the usual GP's role at the practice.
pub fn practitioner_role_id(ods: &str) -> String {
    format!("{ods}-gp-role")
}

/// Id of the practice's surgery.
pub fn location_id(ods: &str) -> String {
    format!("{ods}-site")
}

/// The Patient as GP Connect sends it.
pub fn patient(record: &PatientRecord) -> Value {
    let d = &record.demographics;
    let ods = &d.practice.ods_code;
    let mut patient = json!({
        "resourceType": "Patient",
        "id": record.local_id,
        "meta": meta("CareConnect-GPC-Patient-1"),
        "identifier": [{
            "extension": [{
                "url": format!("{PROFILE}Extension-CareConnect-GPC-NHSNumberVerificationStatus-1"),
                "valueCodeableConcept": {"coding": [{
                    "system": "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-NHSNumberVerificationStatus-1",
                    "code": "01",
                    "display": "Number present and verified"
                }]}
            }],
            "system": systems::NHS_NUMBER,
            "value": d.nhs_number.as_str()
        }],
        "active": true,
        "name": [{"use": "official", "family": d.family, "given": [d.given]}],
        "gender": match d.gender { Gender::Female => "female", Gender::Male => "male" },
        "birthDate": d.birth_date,
        "address": [{
            "use": "home",
            "type": "physical",
            "line": [d.address.line],
            "city": CITY,
            "district": d.address.district,
            "postalCode": d.address.postcode,
            "country": COUNTRY
        }],
        "generalPractitioner": [reference("Practitioner", &practitioner_id(ods))],
        "managingOrganization": reference("Organization", ods)
    });
    crate::fhir_r4::render::flag(&mut patient, d);
    patient
}

/// The practice.
pub fn organization(p: &Practice) -> Value {
    json!({
        "resourceType": "Organization",
        "id": p.ods_code,
        "meta": meta("CareConnect-GPC-Organization-1"),
        "identifier": [{"system": systems::ODS_ORGANIZATION_CODE, "value": p.ods_code}],
        "name": p.name,
        "address": [{"city": CITY, "district": p.borough, "country": COUNTRY}]
    })
}

/// The practice's usual GP.
pub fn practitioner(p: &Practice) -> Value {
    json!({
        "resourceType": "Practitioner",
        "id": practitioner_id(&p.ods_code),
        "meta": meta("CareConnect-GPC-Practitioner-1"),
        "identifier": [{"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": format!("G{}", &p.ods_code[1..])}],
        "name": [{"use": "usual", "family": "Mensah", "given": ["Ada"], "prefix": ["Dr"]}]
    })
}

/// The usual GP's role at the practice.
pub fn practitioner_role(p: &Practice) -> Value {
    json!({
        "resourceType": "PractitionerRole",
        "id": practitioner_role_id(&p.ods_code),
        "meta": meta("CareConnect-GPC-PractitionerRole-1"),
        "practitioner": reference("Practitioner", &practitioner_id(&p.ods_code)),
        "organization": reference("Organization", &p.ods_code),
        "code": [{"coding": [{
            "system": "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-SDSJobRoleName-1",
            "code": "R0260",
            "display": "General Medical Practitioner"
        }]}]
    })
}

/// The practice's surgery.
pub fn location(p: &Practice) -> Value {
    json!({
        "resourceType": "Location",
        "id": location_id(&p.ods_code),
        "meta": meta("CareConnect-GPC-Location-1"),
        "name": format!("{} surgery", p.name),
        "address": {"city": CITY, "district": p.borough, "country": COUNTRY},
        "managingOrganization": reference("Organization", &p.ods_code)
    })
}

/// GP Connect's allergy categories for the population's allergy codes.
fn allergy_category(code: &str) -> &'static str {
    match code {
        "300913006" => "food",
        "418689008" => "environment",
        _ => "medication",
    }
}

/// One laboratory report: the results taken with a sample in one consultation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvestigationReport<'a> {
    /// The DiagnosticReport's id (`{encounter}-report`).
    pub id: String,
    /// The Specimen's id (`{encounter}-specimen`).
    pub specimen_id: String,
    /// The consultation the sample was taken in.
    pub encounter: &'a str,
    /// When the sample was collected: the first result's time.
    pub collected: &'a str,
    /// When the report was issued: the last result's time.
    pub issued: &'a str,
    /// Its results, in record order.
    pub results: Vec<&'a Observation>,
}

/// The record's laboratory reports: every observation taken with a recorded sample, grouped by
/// consultation in the order the consultations first appear.
pub fn investigation_reports(record: &PatientRecord) -> Vec<InvestigationReport<'_>> {
    let mut reports: Vec<InvestigationReport<'_>> = Vec::new();
    for o in record.observations.iter().filter(|o| o.sample.is_some()) {
        match reports.iter_mut().find(|r| r.encounter == o.encounter) {
            Some(r) => {
                r.collected = r.collected.min(o.effective.as_str());
                r.issued = r.issued.max(o.effective.as_str());
                r.results.push(o);
            }
            None => reports.push(InvestigationReport {
                id: format!("{}-report", o.encounter),
                specimen_id: format!("{}-specimen", o.encounter),
                encounter: &o.encounter,
                collected: &o.effective,
                issued: &o.effective,
                results: vec![o],
            }),
        }
    }
    reports
}

/// `observation` with its sample conditions as an extension, when they were recorded.
fn with_sample(mut observation: Value, o: &Observation) -> Value {
    if let (Some(sample), Some(obj)) = (o.sample, observation.as_object_mut()) {
        obj.insert(
            "extension".into(),
            json!([{"url": SAMPLE_CONDITION_URL, "extension": [
                {"url": "fasting", "valueBoolean": sample.fasting},
                {"url": "haemolysis-index", "valueDecimal": decimal(sample.haemolysis_index)}
            ]}]),
        );
    }
    observation
}

/// The whole structured record for patient `index` of the population, with the sections
/// `includes` asks for, as an STU3 `collection` Bundle.
pub fn structured_record(record: &PatientRecord, index: usize, includes: Includes) -> Value {
    let d = &record.demographics;
    let ods = d.practice.ods_code.as_str();
    let subject = reference("Patient", &record.local_id);
    let gp = reference("Practitioner", &practitioner_id(ods));
    let role = reference("PractitionerRole", &practitioner_role_id(ods));
    let mut entries = vec![
        patient(record),
        organization(&d.practice),
        practitioner(&d.practice),
        practitioner_role(&d.practice),
        location(&d.practice),
    ];
    let mut lists: Vec<(Section, Vec<Value>)> = Vec::new();
    if includes.allergies {
        let mut items = Vec::new();
        for a in &record.allergies {
            entries.push(json!({
                "resourceType": "AllergyIntolerance",
                "id": a.id,
                "meta": meta("CareConnect-GPC-AllergyIntolerance-1"),
                "clinicalStatus": "active",
                "verificationStatus": "confirmed",
                "type": "allergy",
                "category": [allergy_category(a.code.code)],
                "code": {"coding": [snomed(a.code)]},
                "patient": subject,
                "assertedDate": a.recorded,
                "recorder": role
            }));
            items.push(reference("AllergyIntolerance", &a.id));
        }
        lists.push((ALLERGIES, items));
        lists.push((ENDED_ALLERGIES, Vec::new()));
    }
    if includes.medication {
        let mut items = Vec::new();
        let medicine = |entries: &mut Vec<Value>, id: &str, c: Concept| {
            entries.push(json!({
                "resourceType": "Medication",
                "id": format!("{id}-med"),
                "meta": meta("CareConnect-GPC-Medication-1"),
                "code": {"coding": [snomed(c)], "text": c.display}
            }));
        };
        let plan = |id: &str, c: &str, authored: &str, kind: &str, status: &str, dosage: &str| {
            json!({
                "resourceType": "MedicationRequest",
                "id": format!("{id}-plan"),
                "meta": meta("CareConnect-GPC-MedicationRequest-1"),
                "extension": [{
                    "url": format!("{PROFILE}Extension-CareConnect-GPC-PrescriptionType-1"),
                    "valueCodeableConcept": {"coding": [{"system": "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescriptionType-1", "code": kind, "display": c}]}
                }],
                "status": status,
                "intent": "plan",
                "medicationReference": reference("Medication", &format!("{id}-med")),
                "subject": subject,
                "authoredOn": authored,
                "recorder": role,
                "dosageInstruction": [{"text": dosage}],
                "dispenseRequest": {"validityPeriod": {"start": authored}}
            })
        };
        let statement = |id: &str, ms_id: &str, status: &str, start: &str, asserted: &str, dosage: &str| {
            json!({
                "resourceType": "MedicationStatement",
                "id": ms_id,
                "meta": meta("CareConnect-GPC-MedicationStatement-1"),
                "extension": [{
                    "url": format!("{PROFILE}Extension-CareConnect-GPC-PrescribingAgency-1"),
                    "valueCodeableConcept": {"coding": [{"system": "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescribingAgency-1", "code": "prescribed-at-gp-practice", "display": "Prescribed at GP practice"}]}
                }],
                "basedOn": [reference("MedicationRequest", &format!("{id}-plan"))],
                "status": status,
                "medicationReference": reference("Medication", &format!("{id}-med")),
                "effectivePeriod": {"start": start},
                "dateAsserted": asserted,
                "subject": subject,
                "taken": "unk",
                "dosage": [{"text": dosage}]
            })
        };
        for m in &record.medications {
            medicine(&mut entries, &m.id, m.medicine);
            entries.push(plan(&m.id, "Repeat", &m.started, "repeat", "active", m.dosage));
            entries.push(statement(&m.id, &m.id, "active", &m.started, &m.asserted, m.dosage));
            items.push(reference("MedicationStatement", &m.id));
        }
        for p in &record.prescriptions {
            let ms_id = format!("{}-ms", p.id);
            medicine(&mut entries, &p.id, p.medicine);
            entries.push(plan(&p.id, "Acute", &p.authored, "acute", "completed", p.dosage));
            entries.push(statement(&p.id, &ms_id, "completed", &p.authored, &p.authored, p.dosage));
            items.push(reference("MedicationStatement", &ms_id));
            if includes.prescription_issues {
                entries.push(json!({
                    "resourceType": "MedicationRequest",
                    "id": p.id,
                    "meta": meta("CareConnect-GPC-MedicationRequest-1"),
                    "basedOn": [reference("MedicationRequest", &format!("{}-plan", p.id))],
                    "status": "completed",
                    "intent": "order",
                    "medicationReference": reference("Medication", &format!("{}-med", p.id)),
                    "subject": subject,
                    "context": reference("Encounter", &p.encounter),
                    "authoredOn": p.authored,
                    "recorder": role,
                    "dosageInstruction": [{"text": p.dosage}],
                    "dispenseRequest": {
                        "validityPeriod": {"start": p.authored},
                        "quantity": {"value": decimal(&p.quantity.to_string()), "unit": p.quantity_unit}
                    }
                }));
            }
        }
        lists.push((MEDICATIONS, items));
    }
    if includes.problems {
        let mut items = Vec::new();
        for p in &record.problems {
            let mut codings = vec![snomed(p.snomed)];
            match p.legacy {
                Some(LegacyCode::ReadV2(code)) => codings
                    .push(json!({"system": systems::READ_V2, "code": code, "display": p.snomed.display})),
                Some(LegacyCode::Ctv3(code)) => {
                    codings.push(json!({"system": systems::CTV3, "code": code, "display": p.snomed.display}))
                }
                None => {}
            }
            entries.push(json!({
                "resourceType": "Condition",
                "id": p.id,
                "meta": meta("CareConnect-GPC-ProblemHeader-Condition-1"),
                "extension": [{"url": format!("{PROFILE}Extension-CareConnect-GPC-ProblemSignificance-1"), "valueCode": "major"}],
                "clinicalStatus": "active",
                "verificationStatus": "confirmed",
                "category": [{"coding": [{"system": "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ConditionCategory-1", "code": "problem-list-item", "display": "Problem List Item"}]}],
                "code": {"coding": codings, "text": p.snomed.display},
                "subject": subject,
                "context": reference("Encounter", &p.encounter),
                "onsetDateTime": p.onset,
                "assertedDate": p.recorded,
                "asserter": gp
            }));
            items.push(reference("Condition", &p.id));
        }
        lists.push((PROBLEMS, items));
    }
    if includes.immunisations {
        let mut items = Vec::new();
        for i in &record.immunisations {
            entries.push(json!({
                "resourceType": "Immunization",
                "id": i.id,
                "meta": meta("CareConnect-GPC-Immunization-1"),
                "status": "completed",
                "notGiven": false,
                "vaccineCode": {"coding": [snomed(i.vaccine)]},
                "patient": subject,
                "date": i.date,
                "primarySource": true,
                "doseQuantity": {"value": decimal(i.dose_ml), "unit": "ml", "system": "http://unitsofmeasure.org", "code": "mL"},
                "practitioner": [{"actor": gp}]
            }));
            items.push(reference("Immunization", &i.id));
        }
        lists.push((IMMUNISATIONS, items));
    }
    if includes.consultations {
        let mut items = Vec::new();
        for e in &record.encounters {
            let mut r = json!({
                "resourceType": "Encounter",
                "id": e.id,
                "meta": meta("CareConnect-GPC-Encounter-1"),
                "status": if e.open_with.is_some() { "in-progress" } else { "finished" },
                "class": {"system": "http://hl7.org/fhir/v3/ActCode", "code": "AMB", "display": "ambulatory"},
                "type": [{"coding": [snomed(e.kind)]}],
                "subject": subject,
                "participant": [{"individual": gp}],
                "period": if e.open_with.is_some() { json!({"start": e.start}) } else { json!({"start": e.start, "end": e.end}) },
                "location": [{"location": reference("Location", &location_id(ods))}],
                "serviceProvider": match e.open_with { Some(other) => by_ods(other), None => reference("Organization", ods) }
            });
            if let (false, Some(obj)) = (e.reasons.is_empty(), r.as_object_mut()) {
                let diagnoses: Vec<Value> =
                    e.reasons.iter().map(|c| json!({"condition": reference("Condition", c)})).collect();
                obj.insert("diagnosis".into(), Value::Array(diagnoses));
            }
            entries.push(r);
            items.push(reference("Encounter", &e.id));
        }
        lists.push((CONSULTATIONS, items));
    }
    if includes.investigations {
        let mut items = Vec::new();
        for report in investigation_reports(record) {
            let specimen = reference("Specimen", &report.specimen_id);
            entries.push(json!({
                "resourceType": "Specimen",
                "id": report.specimen_id,
                "meta": meta("CareConnect-GPC-Specimen-1"),
                "status": "available",
                "type": {"coding": [{"system": systems::SNOMED_CT, "code": "119297000", "display": "Blood specimen"}]},
                "subject": subject,
                "receivedTime": report.issued,
                "collection": {"collectedDateTime": report.collected}
            }));
            let mut results = Vec::new();
            for o in &report.results {
                entries.push(with_sample(
                    json!({
                        "resourceType": "Observation",
                        "id": o.id,
                        "meta": meta("CareConnect-GPC-Observation-1"),
                        "status": "final",
                        "category": [{"coding": [{"system": "http://hl7.org/fhir/observation-category", "code": "laboratory", "display": "Laboratory"}]}],
                        "code": {"coding": [snomed(o.code)], "text": o.code.display},
                        "subject": subject,
                        "context": reference("Encounter", &o.encounter),
                        "effectiveDateTime": o.effective,
                        "issued": report.issued,
                        "performer": [gp],
                        "valueQuantity": {"value": decimal(&o.value), "unit": o.unit, "system": "http://unitsofmeasure.org", "code": o.unit},
                        "specimen": specimen
                    }),
                    o,
                ));
                results.push(reference("Observation", &o.id));
            }
            entries.push(json!({
                "resourceType": "DiagnosticReport",
                "id": report.id,
                "meta": meta("CareConnect-GPC-DiagnosticReport-1"),
                "status": "final",
                "category": {"coding": [{"system": "http://hl7.org/fhir/v2/0074", "code": "PAT", "display": "Pathology (gross & histopath, not surgical)"}]},
                "code": {"coding": [{"system": systems::SNOMED_CT, "code": "721981007", "display": "Diagnostic studies report"}]},
                "subject": subject,
                "context": reference("Encounter", report.encounter),
                "effectiveDateTime": report.collected,
                "issued": report.issued,
                "performer": [{"actor": reference("Organization", ods)}],
                "specimen": [specimen],
                "result": results
            }));
            items.push(reference("DiagnosticReport", &report.id));
        }
        lists.push((INVESTIGATIONS, items));
    }
    if includes.referrals {
        let mut items = Vec::new();
        for f in &record.referrals {
            entries.push(json!({
                "resourceType": "ReferralRequest",
                "id": f.id,
                "meta": meta("CareConnect-GPC-ReferralRequest-1"),
                "status": "active",
                "intent": "order",
                "priority": "routine",
                "type": {"coding": [{"system": systems::SNOMED_CT, "code": "3457005", "display": "Patient referral"}]},
                "subject": subject,
                "authoredOn": f.authored,
                "requester": {"agent": gp, "onBehalfOf": reference("Organization", ods)},
                "recipient": [by_ods(f.to)],
                "reasonCode": [{"coding": [snomed(f.reason)]}],
                "reasonReference": [reference("Condition", &f.problem)]
            }));
            items.push(reference("ReferralRequest", &f.id));
        }
        lists.push((REFERRALS, items));
    }
    if includes.uncategorised {
        let mut items = Vec::new();
        for o in record.observations.iter().filter(|o| o.sample.is_none()) {
            entries.push(json!({
                "resourceType": "Observation",
                "id": o.id,
                "meta": meta("CareConnect-GPC-Observation-1"),
                "status": "final",
                "code": {"coding": [snomed(o.code)], "text": o.code.display},
                "subject": subject,
                "context": reference("Encounter", &o.encounter),
                "effectiveDateTime": o.effective,
                "performer": [gp],
                "valueQuantity": {"value": decimal(&o.value), "unit": o.unit, "system": "http://unitsofmeasure.org", "code": o.unit}
            }));
            items.push(reference("Observation", &o.id));
        }
        for p in &record.procedures {
            entries.push(json!({
                "resourceType": "Observation",
                "id": p.id,
                "meta": meta("CareConnect-GPC-Observation-1"),
                "status": "final",
                "code": {"coding": [snomed(p.code)], "text": p.code.display},
                "subject": subject,
                "context": reference("Encounter", &p.encounter),
                "effectiveDateTime": p.date,
                "performer": [gp]
            }));
            items.push(reference("Observation", &p.id));
        }
        lists.push((UNCATEGORISED, items));
    }
    let warning = warning_of(index);
    let registered = "01-Jan-2024";
    for (section, items) in lists {
        let mut list = json!({
            "resourceType": "List",
            "meta": meta("CareConnect-GPC-List-1"),
            "status": "current",
            "mode": "snapshot",
            "title": section.title,
            "code": {"coding": [{"system": systems::SNOMED_CT, "code": section.code, "display": section.title}]},
            "subject": subject,
            "date": record.last_updated,
            "orderedBy": {"coding": [{"system": "http://hl7.org/fhir/list-order", "code": "event-date"}]}
        });
        let Some(obj) = list.as_object_mut() else { continue };
        let mut notes = Vec::new();
        if let Some((code, sections)) = warning
            && sections.contains(&section)
        {
            obj.insert("extension".into(), json!([{"url": WARNING_CODE_URL, "valueCode": code}]));
            notes.push(json!({"text": warning_note(code, registered)}));
        }
        if items.is_empty() {
            obj.insert(
                "emptyReason".into(),
                json!({"coding": [{
                    "system": "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ListEmptyReasonCode-1",
                    "code": "no-content-recorded",
                    "display": "No Content Recorded"
                }]}),
            );
            notes.push(json!({"text": "Information not available"}));
        } else {
            let items: Vec<Value> = items.into_iter().map(|item| json!({"item": item})).collect();
            obj.insert("entry".into(), Value::Array(items));
        }
        if !notes.is_empty() {
            obj.insert("note".into(), Value::Array(notes));
        }
        entries.push(list);
    }
    bundle(entries)
}

/// A `collection` Bundle of `resources`, as GP Connect answers.
pub fn bundle(resources: Vec<Value>) -> Value {
    let entry: Vec<Value> = resources.into_iter().map(|r| json!({"resource": r})).collect();
    json!({
        "resourceType": "Bundle",
        "meta": meta("GPConnect-StructuredRecord-Bundle-1"),
        "type": "collection",
        "entry": entry
    })
}

/// A GP Connect OperationOutcome with one issue: the Spine error code and its display, the
/// FHIR issue code, and a diagnostic that never quotes the request's content.
pub fn spine_outcome(
    severity: &str,
    issue: &str,
    spine_code: &str,
    display: &str,
    diagnostics: &str,
) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "meta": meta("GPConnect-OperationOutcome-1"),
        "issue": [{
            "severity": severity,
            "code": issue,
            "details": {"coding": [{"system": SPINE_CODES, "code": spine_code, "display": display}]},
            "diagnostics": diagnostics
        }]
    })
}
