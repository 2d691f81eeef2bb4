//! The allow-list: one FHIR R4 resource of a patient's record in, its de-identified form out.
//!
//! Nothing is copied because it is absent from a deny-list: each exported type has a [`Spec`]
//! naming the elements that may leave and what each is ([`Kind`]), and the output is built from
//! those alone. Whatever is not named (narrative, notes, identifiers, names, telecom, performers,
//! extensions, free-text `CodeableConcept.text`, `display`s of references, ...) never reaches the
//! output. Each kept value is checked for its type as it is copied, so a string where a code or
//! a date was expected is dropped too.

use crate::dates::{self, Partial};
use crate::postcode::postcode_district;
use crate::{AgeBand, BirthDetail, PlaceDetail, Profile, Pseudonymiser};
use serde_json::{Map, Value, json};
use time::Date;

/// The extension a Patient carries its age band in under [`BirthDetail::AgeBand5`] (and for
/// patients aged 90 or over under [`BirthDetail::YearOfBirth`]).
pub const AGE_BAND_EXTENSION: &str = "https://fhir.tideway.london/StructureDefinition/age-band";

/// The resource types [`deidentify`] exports; anything else (Practitioner, Organization,
/// Provenance, RelatedPerson, Location, ...) is not exported.
pub const EXPORTED_TYPES: [&str; 14] = [
    "Patient",
    "Condition",
    "Observation",
    "AllergyIntolerance",
    "MedicationStatement",
    "MedicationRequest",
    "Immunization",
    "Procedure",
    "Encounter",
    "DiagnosticReport",
    "CarePlan",
    "EpisodeOfCare",
    "ServiceRequest",
    "Task",
];

/// Whether an exported type is in FHIR R4's Patient compartment, so a Patient-level export
/// (`GET /Patient/$export`) carries it. Task is not: a task is about its `focus`, and only
/// reaches a patient through `for`, which the compartment does not list.
pub fn in_patient_compartment(resource_type: &str) -> bool {
    resource_type != "Task" && EXPORTED_TYPES.contains(&resource_type)
}

/// `resource` (one resource of the record of the patient with NHS number `patient_nhs`) in the
/// de-identified form of `profile`, with ids and references rewritten to the pseudonyms of
/// `pseudonyms`; ages are computed at `on`.
///
/// `None` when the resource is not exported: a type outside [`EXPORTED_TYPES`], or a resource
/// whose required elements cannot be produced (an Observation whose code is only free text, a
/// MedicationRequest naming its medicine by reference, ...), since invalid FHIR is never output,
/// and a resource with a `modifierExtension` (its meaning would change without it).
/// The caller passes only resources of this patient's record: every `subject`/`patient`
/// reference that is not explicitly to another resource type is taken to be this patient.
pub fn deidentify(
    resource: &Value,
    profile: &Profile,
    pseudonyms: &Pseudonymiser,
    patient_nhs: &str,
    on: Date,
) -> Option<Value> {
    let input = resource.as_object()?;
    let resource_type = input.get("resourceType")?.as_str()?;
    if has_modifier(input) {
        return None;
    }
    let cx = Cx { profile, pseudonyms, patient_ref: format!("Patient/{}", pseudonyms.patient(patient_nhs)) };
    let mut out = Map::new();
    out.insert("resourceType".into(), resource_type.into());
    if resource_type == "Patient" {
        out.insert("id".into(), pseudonyms.patient(patient_nhs).into());
        copy_meta(input, &mut out);
        patient(input, &cx, on, &mut out);
        return Some(Value::Object(out));
    }
    let spec = spec_of(resource_type)?;
    if let Some(id) = input.get("id").and_then(Value::as_str) {
        out.insert("id".into(), pseudonyms.resource(resource_type, id).into());
    }
    copy_meta(input, &mut out);
    let body = spec.apply(input, &cx)?;
    out.extend(body);
    Some(Value::Object(out))
}

struct Cx<'a> {
    profile: &'a Profile,
    pseudonyms: &'a Pseudonymiser,
    patient_ref: String,
}

/// What an allowed element is, which says how it is checked and rewritten.
#[derive(Clone, Copy)]
enum Kind {
    /// A code from a required value set: kept only if it is one of these (`|`-separated, as the
    /// specification writes them).
    Code(&'static str),
    /// A terminology code or a UCUM unit code: one or more non-blank runs, single spaces between.
    Token,
    /// A URI (a code system): no whitespace.
    Uri,
    /// A JSON boolean.
    Bool,
    /// A JSON number.
    Decimal,
    /// A whole JSON number.
    Integer,
    /// A whole number of at least 1.
    PositiveInt,
    /// `Quantity.unit`: short human-readable unit text.
    Unit,
    /// A Coding: system, version, code, and the display of published code systems.
    Coding,
    /// A CodeableConcept: its codings only (its `text` may be typed by a clinician).
    Cc,
    /// A `date` or `dateTime`, cut to the profile's event-date precision.
    Date,
    /// A reference to the patient: rewritten to the patient's pseudonym.
    Subject,
    /// A reference to another exported clinical resource: rewritten to its pseudonym; references
    /// to any other type (people, organisations, places) are dropped.
    Ref,
    /// A complex element or backbone element, itself allow-listed.
    Nested(&'static Spec),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Card {
    One,
    Many,
}

struct Field {
    name: &'static str,
    kind: Kind,
    card: Card,
}

/// The elements of one type that may leave, and the groups of which the output must hold one
/// element (a required element, or one variant of a required choice) to be valid.
struct Spec {
    fields: &'static [Field],
    required: &'static [&'static [&'static str]],
}

/// A spec's fields written as JSON-ish pairs: `"code": CC` for an element of cardinality 0..1,
/// `"category": [CC]` for an array. (rustfmt leaves the tables as written.)
macro_rules! fields {
    (@acc [$($out:expr,)*]) => { &[$($out,)*] };
    (@acc [$($out:expr,)*] $name:literal : [$kind:expr] $(, $($rest:tt)*)?) => {
        fields!(@acc [$($out,)* many($name, $kind),] $($($rest)*)?)
    };
    (@acc [$($out:expr,)*] $name:literal : $kind:expr $(, $($rest:tt)*)?) => {
        fields!(@acc [$($out,)* one($name, $kind),] $($($rest)*)?)
    };
    ($($t:tt)*) => { fields!(@acc [] $($t)*) };
}

const fn one(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, card: Card::One }
}

const fn many(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, card: Card::Many }
}

impl Spec {
    fn apply(&self, input: &Map<String, Value>, cx: &Cx<'_>) -> Option<Map<String, Value>> {
        if has_modifier(input) {
            return None;
        }
        let mut out = Map::new();
        for field in self.fields {
            let Some(value) = input.get(field.name) else { continue };
            let kept = match (field.card, value) {
                (Card::One, Value::Array(_)) => None,
                (Card::One, v) => field.kind.apply(v, cx),
                (Card::Many, Value::Array(items)) => {
                    let kept: Vec<Value> = items.iter().filter_map(|v| field.kind.apply(v, cx)).collect();
                    (!kept.is_empty()).then_some(Value::Array(kept))
                }
                (Card::Many, _) => None,
            };
            if let Some(kept) = kept {
                out.insert(field.name.into(), kept);
            }
        }
        let complete = self.required.iter().all(|group| group.iter().any(|name| out.contains_key(*name)));
        (complete && !out.is_empty()).then_some(out)
    }
}

impl Kind {
    fn apply(&self, value: &Value, cx: &Cx<'_>) -> Option<Value> {
        match self {
            Kind::Date => dates::truncate(value.as_str()?, cx.profile.event_dates).map(Value::from),
            Kind::Subject => {
                let to = value.as_object()?;
                match target(to) {
                    Some((t, _)) if t != "Patient" => None,
                    _ => Some(json!({ "reference": cx.patient_ref })),
                }
            }
            Kind::Ref => {
                let (t, id) = target(value.as_object()?)?;
                let exported = t != "Patient" && EXPORTED_TYPES.contains(&t.as_str());
                exported.then(|| json!({ "reference": format!("{t}/{}", cx.pseudonyms.resource(&t, &id)) }))
            }
            Kind::Nested(spec) => spec.apply(value.as_object()?, cx).map(Value::Object),
            plain => plain.plain(value),
        }
    }

    /// The kinds that need no context (no pseudonyms, no profile).
    fn plain(&self, value: &Value) -> Option<Value> {
        match self {
            Kind::Code(allowed) => {
                value.as_str().filter(|s| allowed.split('|').any(|a| a == *s)).map(Value::from)
            }
            Kind::Token => value.as_str().filter(|s| is_token(s)).map(Value::from),
            Kind::Uri => value
                .as_str()
                .filter(|s| !s.is_empty() && s.len() <= 256 && !s.contains(char::is_whitespace))
                .map(Value::from),
            Kind::Bool => value.as_bool().map(Value::from),
            Kind::Decimal => value.is_number().then(|| value.clone()),
            Kind::Integer => value.as_i64().map(Value::from),
            Kind::PositiveInt => value.as_u64().filter(|n| *n >= 1).map(Value::from),
            Kind::Unit => value
                .as_str()
                .filter(|s| !s.trim().is_empty() && s.chars().count() <= 32 && s.trim() == *s)
                .map(Value::from),
            Kind::Coding => coding(value),
            Kind::Cc => {
                let codings = value.get("coding")?.as_array()?;
                let kept: Vec<Value> = codings.iter().filter_map(coding).collect();
                (!kept.is_empty()).then(|| json!({ "coding": kept }))
            }
            Kind::Date | Kind::Subject | Kind::Ref | Kind::Nested(_) => None,
        }
    }
}

/// Whether an element carries a modifier extension: one that changes the meaning of the element
/// (R4 says a reader that does not understand it must not use the element). Since no extension is
/// carried over, such an element, or resource, is dropped rather than exported with a changed
/// meaning.
fn has_modifier(input: &Map<String, Value>) -> bool {
    input.get("modifierExtension").and_then(Value::as_array).is_some_and(|m| !m.is_empty())
}

/// A FHIR `code`-shaped string, at most 256 characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.split(' ').all(|part| !part.is_empty() && !part.contains(char::is_whitespace))
}

/// Code systems whose `display`s are terminology text, published with the system, not typed by
/// a user. Local code systems may carry free text in `display`, so theirs is dropped.
const PUBLISHED_SYSTEMS: [&str; 12] = [
    "http://snomed.info/sct",
    "http://loinc.org",
    "http://read.info/readv2",
    "http://read.info/ctv3",
    "http://hl7.org/fhir/sid/icd-10",
    "https://dmd.nhs.uk",
    "https://fhir.nhs.uk/CodeSystem/",
    "https://fhir.hl7.org.uk/CodeSystem/",
    "http://terminology.hl7.org/CodeSystem/",
    "http://unitsofmeasure.org",
    "http://www.nlm.nih.gov/research/umls/rxnorm",
    "http://hl7.org/fhir/sid/cvx",
];

fn published(system: &str) -> bool {
    PUBLISHED_SYSTEMS.iter().any(|p| if p.ends_with('/') { system.starts_with(p) } else { system == *p })
}

fn coding(value: &Value) -> Option<Value> {
    let input = value.as_object()?;
    let code = Kind::Token.plain(input.get("code")?)?;
    let system = input.get("system").and_then(|s| Kind::Uri.plain(s));
    let mut out = Map::new();
    let display = match system.as_ref().and_then(Value::as_str) {
        Some(system) if published(system) => {
            input.get("display").and_then(Value::as_str).filter(|d| !d.trim().is_empty())
        }
        _ => None,
    };
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    if let Some(version) = input.get("version").and_then(|v| Kind::Token.plain(v)) {
        out.insert("version".into(), version);
    }
    out.insert("code".into(), code);
    if let Some(display) = display {
        out.insert("display".into(), display.into());
    }
    Some(Value::Object(out))
}

/// The (type, id) a reference points at: `Type/id`, an absolute URL ending in `Type/id`, either
/// optionally followed by `/_history/n`. Contained (`#x`) and `urn:` references name no type
/// and id, so give `None` (the element's `type` alone does not say which resource).
fn target(reference: &Map<String, Value>) -> Option<(String, String)> {
    let text = reference.get("reference")?.as_str()?;
    if text.starts_with('#') || text.starts_with("urn:") {
        return None;
    }
    let mut segments: Vec<&str> = text.split('/').collect();
    if segments.len() >= 4 && segments[segments.len() - 2] == "_history" {
        segments.truncate(segments.len() - 2);
    }
    let id = segments.pop().filter(|s| !s.is_empty())?;
    let resource_type = segments.pop().filter(|t| {
        t.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && t.chars().all(|c| c.is_ascii_alphabetic())
    })?;
    Some((resource_type.to_owned(), id.to_owned()))
}

fn copy_meta(input: &Map<String, Value>, out: &mut Map<String, Value>) {
    let profiles: Vec<Value> = input
        .get("meta")
        .and_then(|m| m.get("profile"))
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(|p| Kind::Uri.plain(p)).collect())
        .unwrap_or_default();
    if !profiles.is_empty() {
        out.insert("meta".into(), json!({ "profile": profiles }));
    }
}

fn patient(input: &Map<String, Value>, cx: &Cx<'_>, on: Date, out: &mut Map<String, Value>) {
    let birth = input.get("birthDate").and_then(Value::as_str).and_then(dates::parse);
    let band = birth.and_then(|b| band_of(b, on));
    let ninety_plus = band.is_some_and(|b| b == AgeBand::of_age(90));
    let band_shown = match cx.profile.birth {
        BirthDetail::AgeBand5 => band,
        BirthDetail::YearOfBirth => band.filter(|_| ninety_plus),
    };
    if let Some(band) = band_shown {
        out.insert("extension".into(), json!([{ "url": AGE_BAND_EXTENSION, "valueString": band.label() }]));
    }
    if let Some(gender) = input.get("gender").and_then(|g| GENDER.plain(g)) {
        out.insert("gender".into(), gender);
    }
    if let (BirthDetail::YearOfBirth, Some(birth), false) = (cx.profile.birth, birth, ninety_plus) {
        out.insert("birthDate".into(), format!("{:04}", birth.year).into());
    }
    let deceased = match (input.get("deceasedBoolean"), input.get("deceasedDateTime")) {
        (Some(Value::Bool(b)), _) => Some(*b),
        (_, Some(Value::String(d))) => dates::parse(d).map(|_| true),
        _ => None,
    };
    if let Some(deceased) = deceased {
        out.insert("deceasedBoolean".into(), deceased.into());
    }
    if cx.profile.place == PlaceDetail::District
        && let Some(district) = home_district(input.get("address"))
    {
        out.insert("address".into(), json!([{ "postalCode": district }]));
    }
}

/// The age band a (possibly partial) birth date gives at `on`, if every day it may stand for
/// gives the same band; a year of birth alone near a band's edge gives none.
fn band_of(birth: Partial, on: Date) -> Option<AgeBand> {
    let (earliest, latest) = birth.bounds()?;
    let (a, b) = (crate::age_band(earliest, on), crate::age_band(latest, on));
    (a == b).then_some(a)
}

/// The district of the patient's current home address: the first address with `use` "home"
/// and a well-formed postcode, else the first address with one that is not `old` or `temp`.
fn home_district(addresses: Option<&Value>) -> Option<String> {
    let addresses = addresses?.as_array()?;
    let candidates = || {
        addresses.iter().filter_map(|a| {
            let use_ = a.get("use").and_then(Value::as_str);
            let district = a.get("postalCode").and_then(Value::as_str).and_then(postcode_district)?;
            Some((use_, district))
        })
    };
    candidates()
        .find(|(u, _)| *u == Some("home"))
        .or_else(|| candidates().find(|(u, _)| !matches!(u, Some("old" | "temp"))))
        .map(|(_, d)| d)
}

// Value sets of the R4 required bindings kept here.
const GENDER: Kind = Kind::Code("male|female|other|unknown");
const PRIORITY: Kind = Kind::Code("routine|urgent|asap|stat");
const REQUEST_STATUS: Kind = Kind::Code("draft|active|on-hold|revoked|completed|entered-in-error|unknown");
const REQUEST_INTENT: Kind = Kind::Code(
    "proposal|plan|directive|order|original-order|reflex-order|filler-order|instance-order|option",
);

const CC: Kind = Kind::Cc;
const BOOL: Kind = Kind::Bool;
const SUBJECT: Kind = Kind::Subject;
const POSITIVE_INT: Kind = Kind::PositiveInt;
const DATE: Kind = Kind::Date;
const REF: Kind = Kind::Ref;
const PERIOD: Kind = Kind::Nested(&PERIOD_SPEC);
static PERIOD_SPEC: Spec = Spec { fields: fields! { "start": DATE, "end": DATE }, required: &[] };
static QUANTITY: Spec = Spec {
    fields: fields! {
        "value": Kind::Decimal, "comparator": Kind::Code("<|<=|>=|>"), "unit": Kind::Unit, "system": Kind::Uri,
        "code": Kind::Token,
    },
    required: &[],
};
const QTY: Kind = Kind::Nested(&QUANTITY);

fn spec_of(resource_type: &str) -> Option<&'static Spec> {
    Some(match resource_type {
        "Condition" => &CONDITION,
        "Observation" => &OBSERVATION,
        "AllergyIntolerance" => &ALLERGY,
        "MedicationStatement" => &MEDICATION_STATEMENT,
        "MedicationRequest" => &MEDICATION_REQUEST,
        "Immunization" => &IMMUNIZATION,
        "Procedure" => &PROCEDURE,
        "Encounter" => &ENCOUNTER,
        "DiagnosticReport" => &DIAGNOSTIC_REPORT,
        "CarePlan" => &CARE_PLAN,
        "EpisodeOfCare" => &EPISODE_OF_CARE,
        "ServiceRequest" => &SERVICE_REQUEST,
        "Task" => &TASK,
        _ => return None,
    })
}

static CONDITION: Spec = Spec {
    fields: fields! {
        "clinicalStatus": CC, "verificationStatus": CC, "category": [CC], "severity": CC, "code": CC,
        "bodySite": [CC], "subject": SUBJECT, "encounter": REF, "onsetDateTime": DATE,
        "onsetPeriod": PERIOD, "abatementDateTime": DATE, "abatementPeriod": PERIOD,
        "abatementBoolean": BOOL, "recordedDate": DATE,
    },
    required: &[&["subject"]],
};

static OBSERVATION_COMPONENT: Spec = Spec {
    fields: fields! {
        "code": CC, "valueQuantity": QTY, "valueCodeableConcept": CC, "valueBoolean": BOOL,
        "valueInteger": Kind::Integer, "dataAbsentReason": CC, "interpretation": [CC],
    },
    required: &[&["code"]],
};

static OBSERVATION: Spec = Spec {
    fields: fields! {
        "basedOn": [REF], "partOf": [REF],
        "status": Kind::Code("registered|preliminary|final|amended|corrected|cancelled|entered-in-error|unknown"),
        "category": [CC], "code": CC, "subject": SUBJECT, "encounter": REF,
        "effectiveDateTime": DATE, "effectivePeriod": PERIOD, "valueQuantity": QTY,
        "valueCodeableConcept": CC, "valueBoolean": BOOL, "valueInteger": Kind::Integer,
        "dataAbsentReason": CC, "interpretation": [CC], "bodySite": CC, "method": CC,
        "hasMember": [REF], "derivedFrom": [REF], "component": [Kind::Nested(&OBSERVATION_COMPONENT)],
    },
    required: &[&["status"], &["code"]],
};

static ALLERGY_REACTION: Spec = Spec {
    fields: fields! {
        "substance": CC, "manifestation": [CC], "onset": DATE,
        "severity": Kind::Code("mild|moderate|severe"), "exposureRoute": CC,
    },
    required: &[&["manifestation"]],
};

static ALLERGY: Spec = Spec {
    fields: fields! {
        "clinicalStatus": CC, "verificationStatus": CC, "type": Kind::Code("allergy|intolerance"),
        "category": [Kind::Code("food|medication|environment|biologic")],
        "criticality": Kind::Code("low|high|unable-to-assess"), "code": CC, "patient": SUBJECT,
        "encounter": REF, "onsetDateTime": DATE, "onsetPeriod": PERIOD, "recordedDate": DATE,
        "lastOccurrence": DATE, "reaction": [Kind::Nested(&ALLERGY_REACTION)],
    },
    required: &[&["patient"]],
};

static MEDICATION_STATEMENT: Spec = Spec {
    fields: fields! {
        "basedOn": [REF], "partOf": [REF],
        "status": Kind::Code("active|completed|entered-in-error|intended|stopped|on-hold|unknown|not-taken"),
        "statusReason": [CC], "category": CC, "medicationCodeableConcept": CC, "subject": SUBJECT,
        "context": REF, "effectiveDateTime": DATE, "effectivePeriod": PERIOD, "dateAsserted": DATE,
        "derivedFrom": [REF], "reasonCode": [CC], "reasonReference": [REF],
    },
    required: &[&["status"], &["medicationCodeableConcept"], &["subject"]],
};

static MEDICATION_REQUEST: Spec = Spec {
    fields: fields! {
        "status": Kind::Code("active|on-hold|cancelled|completed|entered-in-error|stopped|draft|unknown"),
        "statusReason": CC,
        "intent": Kind::Code("proposal|plan|order|original-order|reflex-order|filler-order|instance-order|option"),
        "category": [CC], "priority": PRIORITY, "doNotPerform": BOOL,
        "medicationCodeableConcept": CC, "subject": SUBJECT, "encounter": REF, "authoredOn": DATE,
        "reasonCode": [CC], "reasonReference": [REF], "basedOn": [REF], "courseOfTherapyType": CC,
    },
    required: &[&["status"], &["intent"], &["medicationCodeableConcept"], &["subject"]],
};

static IMMUNIZATION_PROTOCOL: Spec = Spec {
    fields: fields! {
        "targetDisease": [CC], "doseNumberPositiveInt": POSITIVE_INT,
        "seriesDosesPositiveInt": POSITIVE_INT,
    },
    required: &[&["doseNumberPositiveInt"]],
};

static IMMUNIZATION: Spec = Spec {
    fields: fields! {
        "status": Kind::Code("completed|entered-in-error|not-done"), "statusReason": CC,
        "vaccineCode": CC, "patient": SUBJECT, "encounter": REF, "occurrenceDateTime": DATE,
        "recorded": DATE, "primarySource": BOOL, "site": CC, "route": CC, "reasonCode": [CC],
        "reasonReference": [REF], "isSubpotent": BOOL,
        "protocolApplied": [Kind::Nested(&IMMUNIZATION_PROTOCOL)],
    },
    required: &[&["status"], &["vaccineCode"], &["patient"], &["occurrenceDateTime"]],
};

static PROCEDURE: Spec = Spec {
    fields: fields! {
        "basedOn": [REF], "partOf": [REF],
        "status": Kind::Code("preparation|in-progress|not-done|on-hold|stopped|completed|entered-in-error|unknown"),
        "statusReason": CC, "category": CC, "code": CC, "subject": SUBJECT, "encounter": REF,
        "performedDateTime": DATE, "performedPeriod": PERIOD, "reasonCode": [CC],
        "reasonReference": [REF], "bodySite": [CC], "outcome": CC, "complication": [CC],
        "followUp": [CC], "usedCode": [CC],
    },
    required: &[&["status"], &["subject"]],
};

static ENCOUNTER_DIAGNOSIS: Spec = Spec {
    fields: fields! { "condition": REF, "use": CC, "rank": POSITIVE_INT },
    required: &[&["condition"]],
};

static ENCOUNTER: Spec = Spec {
    fields: fields! {
        "status": Kind::Code("planned|arrived|triaged|in-progress|onleave|finished|cancelled|entered-in-error|unknown"),
        "class": Kind::Coding, "type": [CC], "serviceType": CC, "priority": CC,
        "subject": SUBJECT, "episodeOfCare": [REF], "basedOn": [REF], "period": PERIOD,
        "reasonCode": [CC], "reasonReference": [REF], "diagnosis": [Kind::Nested(&ENCOUNTER_DIAGNOSIS)],
        "partOf": REF,
    },
    required: &[&["status"], &["class"]],
};

static DIAGNOSTIC_REPORT: Spec = Spec {
    fields: fields! {
        "basedOn": [REF],
        "status": Kind::Code("registered|partial|preliminary|final|amended|corrected|appended|cancelled|entered-in-error|unknown"),
        "category": [CC], "code": CC, "subject": SUBJECT, "encounter": REF,
        "effectiveDateTime": DATE, "effectivePeriod": PERIOD, "result": [REF], "conclusionCode": [CC],
    },
    required: &[&["status"], &["code"]],
};

static CARE_PLAN: Spec = Spec {
    fields: fields! {
        "basedOn": [REF], "replaces": [REF], "partOf": [REF], "status": REQUEST_STATUS,
        "intent": Kind::Code("proposal|plan|order|option"), "category": [CC], "subject": SUBJECT,
        "encounter": REF, "period": PERIOD, "created": DATE, "addresses": [REF],
    },
    required: &[&["status"], &["intent"], &["subject"]],
};

const EPISODE_STATUS: Kind = Kind::Code("planned|waitlist|active|onhold|finished|cancelled|entered-in-error");

static EPISODE_STATUS_HISTORY: Spec = Spec {
    fields: fields! { "status": EPISODE_STATUS, "period": PERIOD },
    required: &[&["status"], &["period"]],
};

static EPISODE_DIAGNOSIS: Spec = Spec {
    fields: fields! { "condition": REF, "role": CC, "rank": POSITIVE_INT },
    required: &[&["condition"]],
};

static EPISODE_OF_CARE: Spec = Spec {
    fields: fields! {
        "status": EPISODE_STATUS, "statusHistory": [Kind::Nested(&EPISODE_STATUS_HISTORY)], "type": [CC],
        "diagnosis": [Kind::Nested(&EPISODE_DIAGNOSIS)], "patient": SUBJECT, "period": PERIOD,
        "referralRequest": [REF],
    },
    required: &[&["status"], &["patient"]],
};

static SERVICE_REQUEST: Spec = Spec {
    fields: fields! {
        "basedOn": [REF], "replaces": [REF], "status": REQUEST_STATUS, "intent": REQUEST_INTENT,
        "category": [CC], "priority": PRIORITY, "doNotPerform": BOOL, "code": CC,
        "orderDetail": [CC], "subject": SUBJECT, "encounter": REF, "occurrenceDateTime": DATE,
        "occurrencePeriod": PERIOD, "authoredOn": DATE, "reasonCode": [CC], "reasonReference": [REF],
        "bodySite": [CC],
    },
    required: &[&["status"], &["intent"], &["subject"]],
};

static TASK: Spec = Spec {
    fields: fields! {
        "basedOn": [REF], "partOf": [REF],
        "status": Kind::Code("draft|requested|received|accepted|rejected|ready|cancelled|in-progress|on-hold|failed|completed|entered-in-error"),
        "statusReason": CC, "businessStatus": CC,
        "intent": Kind::Code("unknown|proposal|plan|order|original-order|reflex-order|filler-order|instance-order|option"),
        "priority": PRIORITY, "code": CC, "focus": REF, "for": SUBJECT, "encounter": REF,
        "executionPeriod": PERIOD, "authoredOn": DATE, "lastModified": DATE, "reasonCode": CC,
        "reasonReference": REF,
    },
    required: &[&["status"], &["intent"]],
};
