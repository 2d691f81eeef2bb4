//! FHIR STU3 resources as GP Connect Access Record Structured sends them, converted to R4: pure
//! functions over `serde_json::Value` (fhirbolt has no STU3 model), no I/O.
//!
//! Each converter changes only what differs between the versions and keeps everything else as
//! the source wrote it (codings with their extensions, decimals, key order). Where R4 has no
//! place for an STU3 element that carries meaning, the value is kept in an extension
//! (`https://fhir.tideway.london/StructureDefinition/stu3-{Type}.{element}`) rather than
//! dropped. What is still not R4 after conversion is left as it is, so the R4 check that follows
//! rejects the resource (reported, not passed on) instead of a converter guessing.
//!
//! Conversions, by type:
//! - **AllergyIntolerance**: `assertedDate` -> `recordedDate`; the code strings `clinicalStatus`
//!   and `verificationStatus` -> CodeableConcepts in R4's `allergyintolerance-clinical` and
//!   `allergyintolerance-verification` systems (no clinical status on an entry in error, as R4
//!   requires).
//! - **Condition**: `clinicalStatus`, `verificationStatus` likewise (`condition-clinical`,
//!   `condition-ver-status`; STU3's `unknown` has no R4 code and is kept as a coding in the
//!   STU3 system); `assertedDate` -> `recordedDate`; `context` -> `encounter`; `stage` becomes a
//!   list; `abatementBoolean` (gone in R4) -> `abatementString`.
//! - **MedicationStatement**: `taken` (gone in R4): `n` makes the status `not-taken`, and the
//!   code is kept in an extension; `reasonNotTaken` -> `statusReason`; `basedOn` (an array in
//!   both versions, sometimes sent as one object) becomes a list; dosages converted.
//! - **MedicationRequest**: `context` -> `encounter`; a dispense quantity or supply duration
//!   whose `value` is a decimal written as a string, or whose `code` is a one-item list (as the
//!   GP Connect examples send them), is read as the decimal and the code; `requester.agent` -> `requester` (the
//!   `onBehalfOf` kept in an extension); `category` becomes a list; `substitution.allowed` ->
//!   `allowedBoolean`; `definition` kept in an extension; dosages converted.
//! - **Medication**: `isBrand`, `isOverTheCounter` kept in extensions; `ingredient.amount` ->
//!   `strength`; `package` and `image` (no R4 place) kept as extensions only when present.
//! - **Immunization**: `notGiven: true` -> status `not-done`; `date` -> `occurrenceDateTime`;
//!   `practitioner` -> `performer` (`role` -> `function`); `explanation.reason` -> `reasonCode`,
//!   `explanation.reasonNotGiven` -> `statusReason`; `vaccinationProtocol` -> `protocolApplied`.
//! - **Observation**: `context` -> `encounter`; `comment` -> a `note`; `interpretation` becomes a
//!   list; `related` of type `has-member` / `derived-from` -> `hasMember` / `derivedFrom` (other
//!   types kept in an extension).
//! - **Encounter**: `reason` -> `reasonCode`; `incomingReferral` -> `basedOn`; `appointment`
//!   becomes a list; `diagnosis.role` -> `diagnosis.use`; a missing `class` (required in R4)
//!   becomes the v3 null flavour `UNK`, never a guessed class.
//! - **ReferralRequest** and **ProcedureRequest** -> **ServiceRequest**: `context` ->
//!   `encounter`; `requester.agent` -> `requester`; status `suspended` -> `on-hold`,
//!   `cancelled` -> `revoked`; a referral's `type` -> `category` (and `code` when no service is
//!   named), `serviceRequested` -> `code` (the first) and `orderDetail` (the rest), `specialty`
//!   -> `performerType`, `recipient` -> `performer`, `description` -> a `note`,
//!   `groupIdentifier` -> `requisition`; a procedure request's `performer` becomes a list.
//! - **Patient**: `generalPractitioner` becomes a list when sent as one object (as the GP
//!   Connect examples do), and the registered practice (`managingOrganization`) is added to it,
//!   as UK Core R4 names the registered GP practice there; the GP Connect NHS-number
//!   verification status is repeated in UK Core's extension beside the original.
//! - **List**: contained resources converted; the warning extensions kept, and for each one a
//!   note a clinician can read (see [`warning_text`]).
//! - **Organization**, **Practitioner**, **PractitionerRole**, **Location**: the same in both
//!   versions for every element GP Connect populates; passed through, except that a single
//!   `address`/`telecom` where both versions have a list becomes a list, and a Location's
//!   one-item `address` list (one address in both versions) its one address.
//!
//! - **Every type**: references to ReferralRequest and ProcedureRequest name ServiceRequest; the
//!   STU3 canonical URLs of HL7's v2 tables, v3 code systems and the few FHIR-defined systems R4
//!   moved (observation and condition categories, list order and empty reason) become their R4
//!   URLs under `terminology.hl7.org` (the codes are untouched: see [`r4_code_system`]).
//!
//! Every other type (Appointment, Slot, CapabilityStatement, ...) is not part of a structured
//! record and is refused by name.

use serde_json::{Map, Value, json};

/// GP Connect's List warning-code extension (`valueCode`).
pub const WARNING_CODE_URL: &str =
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-ListWarningCode-1";
/// The older CareConnect spelling of the same extension (`valueCodeableConcept`), still read.
pub const CARECONNECT_WARNING_CODE_URL: &str =
    "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-ListWarningCode-1";
/// GP Connect's NHS-number verification status extension on `Patient.identifier`.
pub const GPC_NHS_VERIFICATION_URL: &str =
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-NHSNumberVerificationStatus-1";
/// UK Core R4's NHS-number verification status extension.
pub const UKCORE_NHS_VERIFICATION_URL: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
/// UK Core R4's NHS-number verification status code system.
pub const UKCORE_NHS_VERIFICATION_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland";
/// Where STU3 elements without an R4 place are kept: this prefix, then `{Type}.{element}`.
pub const STU3_ELEMENT_URL_PREFIX: &str = "https://fhir.tideway.london/StructureDefinition/stu3-";

const ALLERGY_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
const ALLERGY_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const CONDITION_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const STU3_CONDITION_VERIFICATION: &str = "http://hl7.org/fhir/condition-ver-status";
const NULL_FLAVOR: &str = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor";

/// Why a resource could not be converted. A fixed phrase: it never carries the resource's
/// content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unconvertible(pub &'static str);

/// The text a clinician reads beside a List warning, as GP Connect defines it (the date GP
/// Connect leaves as `dd-Mmm-yyyy` is not known here and is left out).
pub fn warning_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "confidential-items" => "Items excluded due to confidentiality and/or patient preferences.",
        "data-in-transit" => {
            "Patient record transfer from previous GP practice not yet complete; information recorded before the patient registered here may be missing."
        }
        "data-awaiting-filing" => {
            "Patient data may be incomplete as there is data supplied by a third party awaiting review before becoming available."
        }
        _ => return None,
    })
}

/// The warning codes of a GP Connect List (its warning extensions, in either spelling), in
/// order. Codes are returned only when they are plain tokens (`a-z`, `-`, at most 64).
pub fn list_warning_codes(list: &Value) -> Vec<String> {
    let Some(extensions) = list.get("extension").and_then(Value::as_array) else {
        return Vec::new();
    };
    extensions
        .iter()
        .filter(|e| {
            matches!(
                e.get("url").and_then(Value::as_str),
                Some(WARNING_CODE_URL | CARECONNECT_WARNING_CODE_URL)
            )
        })
        .filter_map(|e| {
            e.get("valueCode")
                .or_else(|| e.pointer("/valueCoding/code"))
                .or_else(|| e.pointer("/valueCodeableConcept/coding/0/code"))
                .and_then(Value::as_str)
        })
        .filter(|c| (1..=64).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        .map(str::to_owned)
        .collect()
}

/// The R4 type an STU3 type becomes, if it is one a structured record carries.
pub fn r4_type(stu3_type: &str) -> Option<&'static str> {
    Some(match stu3_type {
        "Patient" => "Patient",
        "Organization" => "Organization",
        "Practitioner" => "Practitioner",
        "PractitionerRole" => "PractitionerRole",
        "Location" => "Location",
        "List" => "List",
        "AllergyIntolerance" => "AllergyIntolerance",
        "Condition" => "Condition",
        "MedicationStatement" => "MedicationStatement",
        "MedicationRequest" => "MedicationRequest",
        "Medication" => "Medication",
        "Immunization" => "Immunization",
        "Observation" => "Observation",
        "DiagnosticReport" => "DiagnosticReport",
        "Specimen" => "Specimen",
        "Encounter" => "Encounter",
        "ReferralRequest" | "ProcedureRequest" => "ServiceRequest",
        _ => return None,
    })
}

/// Converts one STU3 resource to R4. References to converted types are rewritten
/// (`ReferralRequest/x` -> `ServiceRequest/x`).
pub fn convert(resource: Value) -> Result<Value, Unconvertible> {
    let Value::Object(mut obj) = resource else {
        return Err(Unconvertible("entry resource is not a JSON object"));
    };
    let stu3_type = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or(Unconvertible("entry has no readable resourceType"))?
        .to_owned();
    let r4 = r4_type(&stu3_type)
        .ok_or(Unconvertible("this STU3 resource type is not part of a structured record"))?;
    if let Some(Value::Array(contained)) = obj.remove("contained") {
        let converted = contained.into_iter().map(convert).collect::<Result<Vec<_>, _>>()?;
        obj.insert("contained".into(), Value::Array(converted));
    }
    match stu3_type.as_str() {
        "Patient" => patient(&mut obj),
        "List" => list(&mut obj),
        "AllergyIntolerance" => allergy(&mut obj),
        "Condition" => condition(&mut obj),
        "MedicationStatement" => medication_statement(&mut obj),
        "MedicationRequest" => medication_request(&mut obj),
        "Medication" => medication(&mut obj),
        "Immunization" => immunization(&mut obj),
        "Observation" => observation(&mut obj),
        "DiagnosticReport" => diagnostic_report(&mut obj),
        // STU3 and R4 Specimen agree on every element a structured record's investigations
        // send (type, subject, receivedTime, collection, note): nothing moves.
        "Specimen" => {}
        "Encounter" => encounter(&mut obj),
        "ReferralRequest" => referral_request(&mut obj),
        "ProcedureRequest" => procedure_request(&mut obj),
        "Organization" => {
            listify(&mut obj, "address");
            listify(&mut obj, "telecom");
        }
        "Location" => {
            listify(&mut obj, "telecom");
            unlistify(&mut obj, "address");
        }
        _ => {}
    }
    obj.insert("resourceType".into(), Value::String(r4.to_owned()));
    uk_core_profile(&mut obj, r4);
    let mut value = Value::Object(obj);
    rewrite_renamed(&mut value);
    Ok(value)
}

/// Extension on `meta` keeping each STU3 profile the provider claimed (CareConnect, GPC).
pub const ORIGINAL_PROFILE_URL: &str = "https://fhir.tideway.london/StructureDefinition/original-profile";

/// The R4 resource claims its UK Core profile; the STU3 profiles it was sent under are kept
/// beside it (they name a different FHIR version, so they cannot stay in `meta.profile`).
fn uk_core_profile(obj: &mut Map<String, Value>, r4: &str) {
    let Some(meta) = obj.entry("meta").or_insert_with(|| Value::Object(Map::new())).as_object_mut() else {
        return;
    };
    let original = meta.insert(
        "profile".into(),
        json!([format!("https://fhir.hl7.org.uk/StructureDefinition/UKCore-{r4}")]),
    );
    let kept: Vec<Value> = match original {
        Some(Value::Array(list)) => list.into_iter().filter(Value::is_string).collect(),
        _ => Vec::new(),
    };
    if kept.is_empty() {
        return;
    }
    let extensions = kept.into_iter().map(|p| json!({"url": ORIGINAL_PROFILE_URL, "valueUri": p}));
    match meta.entry("extension").or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(list) => list.extend(extensions),
        other => *other = Value::Array(extensions.collect()),
    }
}

/// What R4 renamed, rewritten in place: references to STU3 types that R4 renamed, and the
/// canonical URLs of HL7's own code systems, which R4 moved to `terminology.hl7.org`
/// ([`r4_code_system`]).
fn rewrite_renamed(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match (key.as_str(), child) {
                    ("reference", Value::String(s)) => {
                        for old in ["ReferralRequest/", "ProcedureRequest/"] {
                            if let Some(rest) = s.strip_prefix(old) {
                                *s = format!("ServiceRequest/{rest}");
                            }
                        }
                    }
                    ("system", Value::String(s)) => {
                        if let Some(r4) = r4_code_system(s) {
                            *s = r4;
                        }
                    }
                    (_, child) => rewrite_renamed(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_renamed),
        _ => {}
    }
}

/// Where HL7 publishes a code system in R4 that STU3 named under `http://hl7.org/fhir/`: the
/// v2 tables (`v2/0074` -> `CodeSystem/v2-0074`), the v3 code systems (`v3/ActCode` ->
/// `CodeSystem/v3-ActCode`) and the FHIR-defined systems a structured record uses whose codes
/// R4 kept unchanged under the new name. The same codes in the same code system: only the
/// canonical URL changed between the versions, so an R4 reader (or a search on
/// `category=…observation-category|laboratory`) finds them. Any other URL is left alone.
pub fn r4_code_system(stu3: &str) -> Option<String> {
    const THO: &str = "http://terminology.hl7.org/CodeSystem/";
    const MOVED: [&str; 4] =
        ["observation-category", "condition-category", "list-order", "list-empty-reason"];
    let rest = stu3.strip_prefix("http://hl7.org/fhir/")?;
    let well_formed =
        |name: &str| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if let Some(table) = rest.strip_prefix("v2/") {
        return well_formed(table).then(|| format!("{THO}v2-{table}"));
    }
    if let Some(system) = rest.strip_prefix("v3/") {
        return well_formed(system).then(|| format!("{THO}v3-{system}"));
    }
    MOVED.contains(&rest).then(|| format!("{THO}{rest}"))
}

type Obj = Map<String, Value>;

fn rename(obj: &mut Obj, from: &str, to: &str) {
    if let Some(v) = obj.remove(from) {
        obj.insert(to.to_owned(), v);
    }
}

/// A single value where R4 has a list becomes a one-item list.
fn listify(obj: &mut Obj, key: &str) {
    if let Some(v) = obj.get_mut(key)
        && !v.is_array()
    {
        let one = v.take();
        *v = Value::Array(vec![one]);
    }
}

/// A one-item list where both versions have a single value becomes that value (a longer list
/// is left for the R4 check to refuse: which item to keep is not ours to choose).
fn unlistify(obj: &mut Obj, key: &str) {
    if let Some(v) = obj.get_mut(key)
        && let Value::Array(items) = v
        && items.len() == 1
    {
        let one = items.remove(0);
        *v = one;
    }
}

/// A Quantity as some GP systems write it: `value` as a string holding a decimal (read as that
/// decimal, exactly as written) and `code` as a one-item list.
fn quantity(q: Option<&mut Value>) {
    let Some(Value::Object(q)) = q else { return };
    if let Some(Value::String(text)) = q.get("value")
        && is_decimal(text)
        && let Ok(number) = serde_json::from_str::<Value>(text)
    {
        q.insert("value".into(), number);
    }
    unlistify(q, "code");
}

/// FHIR's decimal: an optional minus, digits without a leading zero, an optional fraction.
fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && (whole == "0" || !whole.starts_with('0'))
        && !fraction.is_empty()
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// Appends an extension to `obj`.
fn push_extension(obj: &mut Obj, extension: Value) {
    // Not an array: left for the R4 check to refuse, the value kept where it was.
    if let Value::Array(list) = obj.entry("extension").or_insert_with(|| Value::Array(Vec::new())) {
        list.push(extension);
    }
}

/// Moves `obj[key]` into an extension `stu3-{ty}.{key}` as `value_key` (e.g. `valueBoolean`).
fn keep_as_extension(obj: &mut Obj, ty: &str, key: &str, value_key: &str) {
    if let Some(v) = obj.remove(key) {
        push_extension(obj, json!({"url": format!("{STU3_ELEMENT_URL_PREFIX}{ty}.{key}"), value_key: v}));
    }
}

fn concept(system: &str, code: &str, display: Option<&str>) -> Value {
    let mut coding = json!({"system": system, "code": code});
    if let (Some(d), Some(c)) = (display, coding.as_object_mut()) {
        c.insert("display".into(), Value::String(d.to_owned()));
    }
    json!({"coding": [coding]})
}

/// A code string becomes a CodeableConcept in `system`; anything else is left as it is.
fn code_to_concept(obj: &mut Obj, key: &str, system: &str) {
    if let Some(Value::String(code)) = obj.get(key) {
        let display = display_of(code);
        let c = concept(system, code, display);
        obj.insert(key.to_owned(), c);
    }
}

/// The displays R4's status code systems give the codes STU3 and R4 share.
fn display_of(code: &str) -> Option<&'static str> {
    Some(match code {
        "active" => "Active",
        "inactive" => "Inactive",
        "resolved" => "Resolved",
        "recurrence" => "Recurrence",
        "remission" => "Remission",
        "unconfirmed" => "Unconfirmed",
        "confirmed" => "Confirmed",
        "refuted" => "Refuted",
        "entered-in-error" => "Entered in Error",
        "provisional" => "Provisional",
        "differential" => "Differential",
        _ => return None,
    })
}

/// STU3's `requester: {agent, onBehalfOf}` becomes R4's `requester` reference.
fn requester(obj: &mut Obj, ty: &str) {
    let Some(Value::Object(mut r)) = obj.remove("requester") else {
        return;
    };
    if let Some(agent) = r.remove("agent") {
        obj.insert("requester".into(), agent);
    }
    if let Some(on_behalf) = r.remove("onBehalfOf") {
        let url = format!("{STU3_ELEMENT_URL_PREFIX}{ty}.requester.onBehalfOf");
        push_extension(obj, json!({"url": url, "valueReference": on_behalf}));
    }
}

/// STU3's `definition` (references to protocols; R4 has canonicals instead) kept, one
/// extension per reference.
fn definitions(obj: &mut Obj, ty: &str) {
    let defs = match obj.remove("definition") {
        Some(Value::Array(defs)) => defs,
        Some(one) => vec![one],
        None => return,
    };
    for d in defs {
        push_extension(
            obj,
            json!({"url": format!("{STU3_ELEMENT_URL_PREFIX}{ty}.definition"), "valueReference": d}),
        );
    }
}

fn note_text(obj: &mut Obj, text: Value) {
    if let Value::Array(notes) = obj.entry("note").or_insert_with(|| Value::Array(Vec::new())) {
        notes.push(json!({"text": text}));
    }
}

/// STU3 Dosage kept `dose[x]` and `rate[x]` on the dosage; R4 groups them in `doseAndRate`.
fn dosages(obj: &mut Obj, key: &str) {
    let Some(Value::Array(items)) = obj.get_mut(key) else { return };
    for dosage in items.iter_mut().filter_map(Value::as_object_mut) {
        let moved: Vec<String> =
            dosage.keys().filter(|k| k.starts_with("dose") || k.starts_with("rate")).cloned().collect();
        if moved.is_empty() {
            continue;
        }
        let mut dr = Map::new();
        for k in moved {
            if let Some(v) = dosage.remove(&k) {
                dr.insert(k, v);
            }
        }
        dosage.insert("doseAndRate".into(), Value::Array(vec![Value::Object(dr)]));
    }
}

fn patient(obj: &mut Obj) {
    listify(obj, "generalPractitioner");
    // UK Core names the registered GP practice in generalPractitioner; GP Connect names it in
    // managingOrganization and the usual GP in generalPractitioner.
    if let Some(practice) = obj.get("managingOrganization").cloned()
        && practice.get("reference").is_some()
    {
        let gps = obj.entry("generalPractitioner").or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(gps) = gps
            && !gps.iter().any(|g| g.get("reference") == practice.get("reference"))
        {
            gps.push(practice);
        }
    }
    if let Some(Value::Array(ids)) = obj.get_mut("identifier") {
        for id in ids.iter_mut().filter_map(Value::as_object_mut) {
            let code = id.get("extension").and_then(Value::as_array).and_then(|exts| {
                exts.iter()
                    .find(|e| e.get("url").and_then(Value::as_str) == Some(GPC_NHS_VERIFICATION_URL))
                    .and_then(|e| e.pointer("/valueCodeableConcept/coding/0"))
                    .cloned()
            });
            if let Some(coding) = code {
                let mut uk = coding.clone();
                if let Some(c) = uk.as_object_mut() {
                    c.remove("extension");
                    c.insert("system".into(), Value::String(UKCORE_NHS_VERIFICATION_SYSTEM.into()));
                }
                push_extension(
                    id,
                    json!({"url": UKCORE_NHS_VERIFICATION_URL, "valueCodeableConcept": {"coding": [uk]}}),
                );
            }
        }
    }
}

fn list(obj: &mut Obj) {
    let codes = list_warning_codes(&Value::Object(obj.clone()));
    for code in codes {
        if let Some(text) = warning_text(&code) {
            note_text(obj, Value::String(format!("GP Connect warning ({code}): {text}")));
        }
    }
}

fn allergy(obj: &mut Obj) {
    rename(obj, "assertedDate", "recordedDate");
    if obj.get("verificationStatus").and_then(Value::as_str) == Some("entered-in-error") {
        // R4 (ait-2): an entry in error has no clinical status; the STU3 value is kept.
        keep_as_extension(obj, "AllergyIntolerance", "clinicalStatus", "valueCode");
    }
    code_to_concept(obj, "clinicalStatus", ALLERGY_CLINICAL);
    code_to_concept(obj, "verificationStatus", ALLERGY_VERIFICATION);
}

fn condition(obj: &mut Obj) {
    code_to_concept(obj, "clinicalStatus", CONDITION_CLINICAL);
    let unknown = obj.get("verificationStatus").and_then(Value::as_str) == Some("unknown");
    if unknown {
        obj.insert(
            "verificationStatus".into(),
            json!({"coding": [{"system": STU3_CONDITION_VERIFICATION, "code": "unknown"}], "text": "Unknown"}),
        );
    } else {
        code_to_concept(obj, "verificationStatus", CONDITION_VERIFICATION);
    }
    rename(obj, "assertedDate", "recordedDate");
    rename(obj, "context", "encounter");
    listify(obj, "stage");
    if let Some(Value::Bool(abated)) = obj.remove("abatementBoolean")
        && abated
    {
        obj.insert("abatementString".into(), Value::String("Abated".into()));
    }
}

fn medication_statement(obj: &mut Obj) {
    listify(obj, "basedOn");
    listify(obj, "partOf");
    if obj.get("taken").and_then(Value::as_str) == Some("n") {
        obj.insert("status".into(), Value::String("not-taken".into()));
    }
    keep_as_extension(obj, "MedicationStatement", "taken", "valueCode");
    rename(obj, "reasonNotTaken", "statusReason");
    dosages(obj, "dosage");
}

fn medication_request(obj: &mut Obj) {
    listify(obj, "basedOn");
    listify(obj, "category");
    rename(obj, "context", "encounter");
    requester(obj, "MedicationRequest");
    definitions(obj, "MedicationRequest");
    if let Some(Value::Object(sub)) = obj.get_mut("substitution") {
        rename(sub, "allowed", "allowedBoolean");
    }
    if let Some(Value::Object(dispense)) = obj.get_mut("dispenseRequest") {
        quantity(dispense.get_mut("quantity"));
        quantity(dispense.get_mut("expectedSupplyDuration"));
    }
    dosages(obj, "dosageInstruction");
}

fn medication(obj: &mut Obj) {
    keep_as_extension(obj, "Medication", "isBrand", "valueBoolean");
    keep_as_extension(obj, "Medication", "isOverTheCounter", "valueBoolean");
    if let Some(Value::Array(ingredients)) = obj.get_mut("ingredient") {
        for i in ingredients.iter_mut().filter_map(Value::as_object_mut) {
            rename(i, "amount", "strength");
        }
    }
    for key in ["package", "image"] {
        if let Some(v) = obj.remove(key) {
            let url = format!("{STU3_ELEMENT_URL_PREFIX}Medication.{key}");
            push_extension(obj, json!({"url": url, "valueString": v.to_string()}));
        }
    }
}

fn immunization(obj: &mut Obj) {
    if obj.remove("notGiven").and_then(|v| v.as_bool()) == Some(true)
        && obj.get("status").and_then(Value::as_str) != Some("entered-in-error")
    {
        obj.insert("status".into(), Value::String("not-done".into()));
    }
    rename(obj, "date", "occurrenceDateTime");
    if let Some(Value::Array(people)) = obj.remove("practitioner") {
        let performers: Vec<Value> = people
            .into_iter()
            .map(|mut p| {
                if let Some(p) = p.as_object_mut() {
                    rename(p, "role", "function");
                }
                p
            })
            .collect();
        obj.insert("performer".into(), Value::Array(performers));
    }
    if let Some(Value::Object(mut explanation)) = obj.remove("explanation") {
        if let Some(reason) = explanation.remove("reason") {
            obj.insert("reasonCode".into(), reason);
        }
        if let Some(Value::Array(mut not_given)) = explanation.remove("reasonNotGiven")
            && !not_given.is_empty()
        {
            obj.insert("statusReason".into(), not_given.remove(0));
        }
    }
    if let Some(Value::Array(protocols)) = obj.remove("vaccinationProtocol") {
        let applied: Vec<Value> = protocols
            .into_iter()
            .map(|p| {
                let mut out = Map::new();
                for (from, to) in [
                    ("series", "series"),
                    ("authority", "authority"),
                    ("targetDisease", "targetDisease"),
                    ("doseSequence", "doseNumberPositiveInt"),
                    ("seriesDoses", "seriesDosesPositiveInt"),
                ] {
                    if let Some(v) = p.get(from) {
                        out.insert(to.into(), v.clone());
                    }
                }
                if let Some(status) = p.get("doseStatus") {
                    let url = format!("{STU3_ELEMENT_URL_PREFIX}Immunization.vaccinationProtocol.doseStatus");
                    out.insert("extension".into(), json!([{"url": url, "valueCodeableConcept": status}]));
                }
                // R4 requires a dose number; STU3 made it optional.
                out.entry("doseNumberString").or_insert_with(|| Value::String("unknown".into()));
                if out.contains_key("doseNumberPositiveInt") {
                    out.remove("doseNumberString");
                }
                Value::Object(out)
            })
            .collect();
        obj.insert("protocolApplied".into(), Value::Array(applied));
    }
}

fn observation(obj: &mut Obj) {
    rename(obj, "context", "encounter");
    listify(obj, "interpretation");
    if let Some(comment) = obj.remove("comment") {
        note_text(obj, comment);
    }
    if let Some(Value::Array(related)) = obj.remove("related") {
        for r in related {
            let target = r.get("target").cloned().unwrap_or(Value::Null);
            let key = match r.get("type").and_then(Value::as_str) {
                Some("has-member") => Some("hasMember"),
                Some("derived-from") => Some("derivedFrom"),
                _ => None,
            };
            match key {
                Some(key) => {
                    if let Value::Array(list) = obj.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
                        list.push(target);
                    }
                }
                None => {
                    let url = format!("{STU3_ELEMENT_URL_PREFIX}Observation.related");
                    push_extension(obj, json!({"url": url, "valueReference": target}));
                }
            }
        }
    }
}

/// An investigation report: STU3's `context`, `codedDiagnosis` and `image` are R4's `encounter`,
/// `conclusionCode` and `media`; its single `category` becomes a list; a performer's `actor`
/// is R4's performer, and the `role` (no R4 place) is kept in an extension.
fn diagnostic_report(obj: &mut Obj) {
    rename(obj, "context", "encounter");
    rename(obj, "codedDiagnosis", "conclusionCode");
    rename(obj, "image", "media");
    listify(obj, "category");
    if let Some(Value::Array(performers)) = obj.remove("performer") {
        let mut actors = Vec::new();
        for p in performers {
            if let Some(role) = p.get("role") {
                let url = format!("{STU3_ELEMENT_URL_PREFIX}DiagnosticReport.performer.role");
                push_extension(obj, json!({"url": url, "valueCodeableConcept": role}));
            }
            if let Some(actor) = p.get("actor") {
                actors.push(actor.clone());
            }
        }
        if !actors.is_empty() {
            obj.insert("performer".into(), Value::Array(actors));
        }
    }
}

fn encounter(obj: &mut Obj) {
    rename(obj, "reason", "reasonCode");
    rename(obj, "incomingReferral", "basedOn");
    listify(obj, "appointment");
    if let Some(Value::Array(diagnoses)) = obj.get_mut("diagnosis") {
        for d in diagnoses.iter_mut().filter_map(Value::as_object_mut) {
            rename(d, "role", "use");
        }
    }
    if !obj.contains_key("class") {
        obj.insert("class".into(), json!({"system": NULL_FLAVOR, "code": "UNK", "display": "unknown"}));
    }
}

fn service_request_status(obj: &mut Obj) {
    let status = match obj.get("status").and_then(Value::as_str) {
        Some("suspended") => "on-hold",
        Some("cancelled") => "revoked",
        _ => return,
    };
    obj.insert("status".into(), Value::String(status.into()));
}

fn referral_request(obj: &mut Obj) {
    service_request_status(obj);
    rename(obj, "context", "encounter");
    rename(obj, "groupIdentifier", "requisition");
    requester(obj, "ReferralRequest");
    definitions(obj, "ReferralRequest");
    let services = match obj.remove("serviceRequested") {
        Some(Value::Array(s)) => s,
        Some(one) => vec![one],
        None => Vec::new(),
    };
    let mut services = services.into_iter();
    if let Some(ty) = obj.remove("type") {
        obj.insert("category".into(), Value::Array(vec![ty.clone()]));
        obj.insert("code".into(), ty);
    }
    if let Some(first) = services.next() {
        obj.insert("code".into(), first);
    }
    let rest: Vec<Value> = services.collect();
    if !rest.is_empty() {
        obj.insert("orderDetail".into(), Value::Array(rest));
    }
    rename(obj, "specialty", "performerType");
    rename(obj, "recipient", "performer");
    if let Some(description) = obj.remove("description") {
        note_text(obj, description);
    }
}

fn procedure_request(obj: &mut Obj) {
    service_request_status(obj);
    rename(obj, "context", "encounter");
    requester(obj, "ProcedureRequest");
    definitions(obj, "ProcedureRequest");
    listify(obj, "performer");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tideway_profiles::validate::check_r4_value;

    fn converted(v: Value) -> Value {
        let out = convert(v).unwrap();
        if let Err(e) = check_r4_value(&out) {
            panic!("not R4 after conversion: {e}\n{out:#}");
        }
        out
    }

    #[test]
    fn an_investigation_report_and_its_specimen_become_r4_keeping_every_result_and_code() {
        let report = converted(json!({
            "resourceType": "DiagnosticReport", "id": "dr1", "status": "final",
            "category": {"coding": [{"system": "http://hl7.org/fhir/v2/0074", "code": "HM"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "721981007", "display": "Diagnostic studies report"}]},
            "subject": {"reference": "Patient/p1"}, "context": {"reference": "Encounter/e1"},
            "issued": "2019-03-04T10:00:00+00:00",
            "performer": [{"role": {"text": "Laboratory"}, "actor": {"reference": "Organization/lab"}}],
            "specimen": [{"reference": "Specimen/s1"}], "result": [{"reference": "Observation/o1"}, {"reference": "Observation/o2"}],
            "conclusion": "Normal", "codedDiagnosis": [{"coding": [{"system": "http://snomed.info/sct", "code": "17621005"}]}],
            "image": [{"comment": "film", "link": {"reference": "Media/m1"}}]
        }));
        assert_eq!(report["resourceType"], "DiagnosticReport");
        assert_eq!(report["encounter"]["reference"], "Encounter/e1");
        assert_eq!(report["category"][0]["coding"][0]["code"], "HM");
        assert_eq!(report["performer"], json!([{"reference": "Organization/lab"}]));
        assert_eq!(report["extension"][0]["valueCodeableConcept"]["text"], "Laboratory");
        assert_eq!(report["result"].as_array().unwrap().len(), 2);
        assert_eq!(report["conclusionCode"][0]["coding"][0]["code"], "17621005");
        assert_eq!(report["media"][0]["link"]["reference"], "Media/m1");
        let specimen = converted(json!({
            "resourceType": "Specimen", "id": "s1", "status": "available",
            "type": {"coding": [{"system": "http://snomed.info/sct", "code": "119297000", "display": "Blood specimen"}]},
            "subject": {"reference": "Patient/p1"}, "receivedTime": "2019-03-04T09:00:00+00:00",
            "collection": {"collectedDateTime": "2019-03-04T08:30:00+00:00"}
        }));
        assert_eq!(specimen["type"]["coding"][0]["code"], "119297000");
        assert_eq!(specimen["collection"]["collectedDateTime"], "2019-03-04T08:30:00+00:00");
    }

    #[test]
    fn an_allergy_keeps_its_codes_and_gets_r4_statuses_and_recorded_date() {
        let out = converted(json!({
            "resourceType": "AllergyIntolerance", "id": "a1",
            "clinicalStatus": "active", "verificationStatus": "unconfirmed",
            "assertedDate": "2012-05-07T00:00:00+00:00", "type": "allergy", "category": ["medication"],
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "323509004",
                "extension": [{"url": "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-coding-sctdescid",
                    "extension": [{"url": "DescriptionID", "valueId": "56966201000001112"}]}]}]},
            "patient": {"reference": "Patient/p1"}
        }));
        assert_eq!(out["recordedDate"], "2012-05-07T00:00:00+00:00");
        assert!(out.get("assertedDate").is_none());
        assert_eq!(
            out["clinicalStatus"]["coding"][0],
            json!({"system": ALLERGY_CLINICAL, "code": "active", "display": "Active"})
        );
        assert_eq!(out["verificationStatus"]["coding"][0]["system"], ALLERGY_VERIFICATION);
        assert_eq!(out["verificationStatus"]["coding"][0]["code"], "unconfirmed");
        assert_eq!(out["code"]["coding"][0]["extension"][0]["extension"][0]["valueId"], "56966201000001112");
    }

    #[test]
    fn an_allergy_entered_in_error_loses_its_clinical_status_to_an_extension() {
        let out = converted(json!({"resourceType": "AllergyIntolerance", "id": "a1",
            "clinicalStatus": "active", "verificationStatus": "entered-in-error",
            "patient": {"reference": "Patient/p1"}}));
        assert!(out.get("clinicalStatus").is_none());
        assert_eq!(out["extension"][0]["valueCode"], "active");
    }

    #[test]
    fn a_not_given_immunisation_is_not_done_with_its_date_as_occurrence() {
        let out = converted(json!({"resourceType": "Immunization", "id": "i1", "status": "completed",
            "notGiven": true, "date": "2019-10-01", "primarySource": true,
            "vaccineCode": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]},
            "patient": {"reference": "Patient/p1"},
            "explanation": {"reasonNotGiven": [{"text": "declined"}]},
            "practitioner": [{"role": {"text": "AP"}, "actor": {"reference": "Practitioner/x"}}]}));
        assert_eq!(out["status"], "not-done");
        assert_eq!(out["occurrenceDateTime"], "2019-10-01");
        assert_eq!(out["statusReason"]["text"], "declined");
        assert_eq!(out["performer"][0]["function"]["text"], "AP");
        let given = converted(json!({"resourceType": "Immunization", "id": "i2", "status": "completed",
            "notGiven": false, "date": "2019-10-01", "primarySource": true,
            "vaccineCode": {"text": "flu"}, "patient": {"reference": "Patient/p1"}}));
        assert_eq!(given["status"], "completed");
    }

    #[test]
    fn a_statement_not_taken_is_not_taken_and_keeps_the_stu3_code() {
        let out = converted(json!({"resourceType": "MedicationStatement", "id": "m1", "status": "active",
            "taken": "n", "medicationReference": {"reference": "Medication/x"},
            "subject": {"reference": "Patient/p1"}, "basedOn": {"reference": "MedicationRequest/r"},
            "dosage": [{"text": "one daily", "doseQuantity": {"value": 1}}]}));
        assert_eq!(out["status"], "not-taken");
        assert_eq!(out["extension"][0]["valueCode"], "n");
        assert_eq!(out["basedOn"][0]["reference"], "MedicationRequest/r");
        assert_eq!(out["dosage"][0]["doseAndRate"][0]["doseQuantity"]["value"], 1);
        let unknown = converted(
            json!({"resourceType": "MedicationStatement", "id": "m2", "status": "completed",
            "taken": "unk", "medicationReference": {"reference": "Medication/x"}, "subject": {"reference": "Patient/p1"}}),
        );
        assert_eq!(unknown["status"], "completed");
    }

    #[test]
    fn a_condition_gets_r4_statuses_recorded_date_and_encounter() {
        let out = converted(json!({"resourceType": "Condition", "id": "c1", "clinicalStatus": "remission",
            "verificationStatus": "confirmed", "assertedDate": "2020-01-01", "context": {"reference": "Encounter/e"},
            "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}, "abatementBoolean": true}));
        assert_eq!(out["clinicalStatus"]["coding"][0]["system"], CONDITION_CLINICAL);
        assert_eq!(out["clinicalStatus"]["coding"][0]["code"], "remission");
        assert_eq!(out["verificationStatus"]["coding"][0]["system"], CONDITION_VERIFICATION);
        assert_eq!(out["recordedDate"], "2020-01-01");
        assert_eq!(out["encounter"]["reference"], "Encounter/e");
        assert_eq!(out["abatementString"], "Abated");
        let unknown =
            converted(json!({"resourceType": "Condition", "id": "c2", "verificationStatus": "unknown",
            "subject": {"reference": "Patient/p1"}}));
        assert_eq!(unknown["verificationStatus"]["coding"][0]["code"], "unknown");
        assert_eq!(unknown["verificationStatus"]["coding"][0]["system"], STU3_CONDITION_VERIFICATION);
    }

    #[test]
    fn referrals_and_procedure_requests_become_service_requests() {
        let out = converted(json!({"resourceType": "ReferralRequest", "id": "r1", "status": "suspended",
            "intent": "order", "type": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]},
            "subject": {"reference": "Patient/p1"}, "context": {"reference": "Encounter/e"},
            "requester": {"agent": {"reference": "Practitioner/x"}, "onBehalfOf": {"reference": "Organization/o"}},
            "recipient": [{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "YPOD1"}}],
            "specialty": {"text": "Podiatry"}, "description": "see foot"}));
        assert_eq!(out["resourceType"], "ServiceRequest");
        assert_eq!(out["status"], "on-hold");
        assert_eq!(out["category"][0]["coding"][0]["code"], "3457005");
        assert_eq!(out["code"]["coding"][0]["code"], "3457005");
        assert_eq!(out["requester"]["reference"], "Practitioner/x");
        assert_eq!(out["performer"][0]["identifier"]["value"], "YPOD1");
        assert_eq!(out["performerType"]["text"], "Podiatry");
        assert_eq!(out["note"][0]["text"], "see foot");
        let proc = converted(json!({"resourceType": "ProcedureRequest", "id": "q1", "status": "cancelled",
            "intent": "plan", "code": {"text": "review"}, "subject": {"reference": "Patient/p1"},
            "performer": {"reference": "Practitioner/x"}, "basedOn": [{"reference": "ReferralRequest/r1"}]}));
        assert_eq!(proc["resourceType"], "ServiceRequest");
        assert_eq!(proc["status"], "revoked");
        assert_eq!(proc["performer"][0]["reference"], "Practitioner/x");
        assert_eq!(proc["basedOn"][0]["reference"], "ServiceRequest/r1");
    }

    #[test]
    fn a_patient_with_one_general_practitioner_gets_a_list_with_the_practice() {
        let out = converted(json!({"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9999999999",
                "extension": [{"url": GPC_NHS_VERIFICATION_URL, "valueCodeableConcept": {"coding": [
                    {"system": "https://fhir.nhs.uk/CareConnect-NHSNumberVerificationStatus-1", "code": "01"}]}}]}],
            "generalPractitioner": {"reference": "Practitioner/gp"},
            "managingOrganization": {"reference": "Organization/o"}}));
        let gps: Vec<&str> = out["generalPractitioner"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["reference"].as_str().unwrap())
            .collect();
        assert_eq!(gps, ["Practitioner/gp", "Organization/o"]);
        let exts = out["identifier"][0]["extension"].as_array().unwrap();
        assert_eq!(exts.len(), 2, "the original is kept beside UK Core's");
        assert_eq!(exts[1]["url"], UKCORE_NHS_VERIFICATION_URL);
        assert_eq!(exts[1]["valueCodeableConcept"]["coding"][0]["code"], "01");
    }

    #[test]
    fn a_list_keeps_its_warning_and_gains_a_readable_note() {
        let out =
            converted(json!({"resourceType": "List", "id": "l", "status": "current", "mode": "snapshot",
            "extension": [{"url": WARNING_CODE_URL, "valueCode": "data-awaiting-filing"}],
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "886921000000105"}]},
            "subject": {"reference": "Patient/p1"},
            "contained": [{"resourceType": "AllergyIntolerance", "id": "r1", "clinicalStatus": "resolved",
                "verificationStatus": "confirmed", "patient": {"reference": "Patient/p1"}}],
            "entry": [{"item": {"reference": "#r1"}}]}));
        assert_eq!(list_warning_codes(&out), ["data-awaiting-filing"]);
        assert!(out["note"][0]["text"].as_str().unwrap().contains("awaiting review"));
        assert_eq!(out["contained"][0]["clinicalStatus"]["coding"][0]["code"], "resolved");
    }

    #[test]
    fn a_dispense_quantity_written_as_text_is_read_as_the_decimal_only_when_it_is_one() {
        let request = |value: Value| {
            json!({"resourceType": "MedicationRequest", "id": "r", "status": "active", "intent": "order",
                "medicationReference": {"reference": "Medication/m"}, "subject": {"reference": "Patient/p1"},
                "dispenseRequest": {"quantity": {"value": value, "unit": "tablet"},
                    "expectedSupplyDuration": {"value": "28", "code": ["d"], "system": "http://unitsofmeasure.org"}}})
        };
        let out = converted(request(json!("28.50")));
        assert_eq!(out["dispenseRequest"]["quantity"]["value"].to_string(), "28.50");
        assert_eq!(out["dispenseRequest"]["expectedSupplyDuration"]["code"], "d");
        for not_a_decimal in ["28 tablets", "1e3", "028", ""] {
            let out = convert(request(json!(not_a_decimal))).unwrap();
            assert!(check_r4_value(&out).is_err(), "{not_a_decimal}");
        }
    }

    #[test]
    fn hl7_code_systems_get_their_r4_urls_and_other_systems_are_left_alone() {
        assert_eq!(
            r4_code_system("http://hl7.org/fhir/v2/0074").as_deref(),
            Some("http://terminology.hl7.org/CodeSystem/v2-0074")
        );
        assert_eq!(
            r4_code_system("http://hl7.org/fhir/v3/ActCode").as_deref(),
            Some("http://terminology.hl7.org/CodeSystem/v3-ActCode")
        );
        assert_eq!(
            r4_code_system("http://hl7.org/fhir/observation-category").as_deref(),
            Some("http://terminology.hl7.org/CodeSystem/observation-category")
        );
        for kept in [
            "http://snomed.info/sct",
            "http://hl7.org/fhir/allergy-intolerance-category",
            "http://hl7.org/fhir/v2/",
            "http://hl7.org/fhir/v3/Act/Code",
            "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ListEmptyReasonCode-1",
        ] {
            assert_eq!(r4_code_system(kept), None, "{kept}");
        }
        let encounter = converted(json!({
            "resourceType": "Encounter", "id": "e1", "status": "finished",
            "class": {"system": "http://hl7.org/fhir/v3/ActCode", "code": "AMB"},
            "identifier": [{"system": "https://fhir.nhs.uk/Id/local", "value": "x"}]
        }));
        assert_eq!(encounter["class"]["system"], "http://terminology.hl7.org/CodeSystem/v3-ActCode");
        assert_eq!(encounter["class"]["code"], "AMB");
        assert_eq!(encounter["identifier"][0]["system"], "https://fhir.nhs.uk/Id/local");
    }

    #[test]
    fn types_outside_a_structured_record_are_refused_by_name() {
        let err = convert(json!({"resourceType": "Appointment", "id": "a"})).unwrap_err();
        assert_eq!(err.to_string(), "this STU3 resource type is not part of a structured record");
        assert!(convert(json!([1])).is_err());
    }
}
