//! A patient's consent directives (FHIR R4 `Consent`), read into rules the decision applies.
//!
//! Supported in `Consent.provision`, at any depth: `type` (`deny` or `permit`), `period`,
//! `actor` (organisations by ODS identifier), `purpose` (HL7 v3 purpose of use), `class`
//! (resource types), `code` (codings in any system), `dataPeriod` and nested `provision` (an
//! exception to its parent). `action`, `securityLabel` and `data` are refused with a 400 naming
//! the element, as is anything else: a restriction the engine cannot apply is never accepted as
//! if it had been. A provision applies to a resource when every condition it names matches; the
//! deepest applying provision decides; across directives, deny overrides permit.

use serde_json::Value;
use tideway_auth::{Principal, PurposeOfUse};
use tideway_profiles::{Coding, OdsCode, ResourceFacts};
use time::Date;

/// The ODS identifier system, for `actor.reference.identifier`.
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// A Consent could not be used. `element` is the FHIRPath of the offending element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{element}: {message}")]
pub struct ConsentError {
    /// Where, e.g. `Consent.provision.actor[0].reference`.
    pub element: String,
    /// What is wrong.
    pub message: String,
}

/// Deny or permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionType {
    /// Withhold what it matches.
    Deny,
    /// Share what it matches.
    Permit,
}

/// One provision (a rule and its exceptions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provision {
    kind: ProvisionType,
    period: Option<(Option<Date>, Option<Date>)>,
    actors: Vec<OdsCode>,
    purposes: Vec<PurposeOfUse>,
    classes: Vec<String>,
    codes: Vec<Coding>,
    data_period: Option<(Option<Date>, Option<Date>)>,
    exceptions: Vec<Provision>,
}

/// An active consent directive, as the decision applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    root: Provision,
}

/// What a patient's directives say about one resource for one requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentVerdict {
    /// A directive denies it.
    Denied,
    /// A directive permits it and none denies it.
    Permitted,
    /// No directive speaks to it.
    Silent,
}

/// The parts of a Consent the gateway keeps about it beside its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentSummary {
    /// `status`.
    pub status: String,
    /// The gateway's patient id from `patient.reference` (`Patient/{id}`).
    pub patient_id: String,
    /// The rules, when `status` is `active`.
    pub directive: Option<Directive>,
}

const STATUSES: [&str; 6] = ["draft", "proposed", "active", "rejected", "inactive", "entered-in-error"];
const CONSENT_KEYS: [&str; 14] = [
    "resourceType",
    "id",
    "meta",
    "text",
    "status",
    "scope",
    "category",
    "patient",
    "dateTime",
    "performer",
    "organization",
    "policyRule",
    "provision",
    "identifier",
];
const PROVISION_KEYS: [&str; 8] =
    ["type", "period", "actor", "purpose", "class", "code", "dataPeriod", "provision"];

fn fail(element: impl Into<String>, message: impl Into<String>) -> ConsentError {
    ConsentError { element: element.into(), message: message.into() }
}

/// Reads a Consent resource. Only what the gateway can enforce is accepted.
pub fn read_consent(v: &Value) -> Result<ConsentSummary, ConsentError> {
    let obj = v.as_object().ok_or_else(|| fail("Consent", "expected a JSON object"))?;
    if obj.get("resourceType").and_then(Value::as_str) != Some("Consent") {
        return Err(fail("Consent.resourceType", "must be Consent"));
    }
    if let Some(k) = obj.keys().find(|k| !CONSENT_KEYS.contains(&k.as_str())) {
        return Err(fail(format!("Consent.{k}"), "is not supported by this gateway"));
    }
    let status =
        obj.get("status").and_then(Value::as_str).ok_or_else(|| fail("Consent.status", "is required"))?;
    if !STATUSES.contains(&status) {
        return Err(fail("Consent.status", "is not a Consent status code"));
    }
    for required in ["scope", "category"] {
        if obj.get(required).is_none() {
            return Err(fail(format!("Consent.{required}"), "is required"));
        }
    }
    let patient = obj
        .get("patient")
        .and_then(|p| p.get("reference"))
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("Patient/"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| {
            fail("Consent.patient.reference", "must be Patient/{id}, an id this gateway returned")
        })?;
    let provision = obj
        .get("provision")
        .ok_or_else(|| fail("Consent.provision", "is required: say what is denied or permitted"))?;
    let root = read_provision(provision, "Consent.provision")?;
    // Whatever is kept and handed back must also be valid R4 as HL7's schema has it.
    tideway_profiles::validate::check_r4_value(v)
        .map_err(|e| fail("Consent", format!("is not valid FHIR R4: {}", e.0)))?;
    Ok(ConsentSummary {
        status: status.to_owned(),
        patient_id: patient.to_owned(),
        directive: (status == "active").then_some(Directive { root }),
    })
}

fn read_provision(v: &Value, at: &str) -> Result<Provision, ConsentError> {
    let obj = v.as_object().ok_or_else(|| fail(at, "expected an object"))?;
    if let Some(k) = obj.keys().find(|k| !PROVISION_KEYS.contains(&k.as_str())) {
        return Err(fail(
            format!("{at}.{k}"),
            "is not supported by this gateway (supported: type, period, actor, purpose, class, code, dataPeriod, provision)",
        ));
    }
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some("deny") => ProvisionType::Deny,
        Some("permit") => ProvisionType::Permit,
        _ => return Err(fail(format!("{at}.type"), "must be deny or permit")),
    };
    let list = |key: &str| {
        obj.get(key).map_or(Ok(&[][..]), |x| {
            x.as_array().map(Vec::as_slice).ok_or_else(|| fail(format!("{at}.{key}"), "expected an array"))
        })
    };
    let actors = list("actor")?
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if a.get("role").is_none() {
                return Err(fail(format!("{at}.actor[{i}].role"), "is required (e.g. v3-ParticipationType IRCP, the recipient)"));
            }
            let id = &a["reference"]["identifier"];
            match (id["system"].as_str(), id["value"].as_str()) {
                (Some(ODS_SYSTEM), Some(code)) => OdsCode::parse(code).map_err(|_| fail(format!("{at}.actor[{i}].reference.identifier.value"), "is not an ODS code")),
                _ => Err(fail(format!("{at}.actor[{i}].reference"), "name the organisation by its ODS identifier (identifier.system https://fhir.nhs.uk/Id/ods-organization-code)")),
            }
        })
        .collect::<Result<_, _>>()?;
    let purposes = list("purpose")?
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p["code"].as_str().and_then(PurposeOfUse::parse).ok_or_else(|| {
                fail(format!("{at}.purpose[{i}]"), "is not a purpose of use this gateway knows")
            })
        })
        .collect::<Result<_, _>>()?;
    let classes = list("class")?
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let code = c["code"].as_str().filter(|t| tideway_profiles::schema::is_resource_type(t));
            code.map(str::to_owned)
                .ok_or_else(|| fail(format!("{at}.class[{i}]"), "must name an R4 resource type"))
        })
        .collect::<Result<_, _>>()?;
    let mut codes = Vec::new();
    for (i, c) in list("code")?.iter().enumerate() {
        let codings = c["coding"]
            .as_array()
            .filter(|cs| !cs.is_empty())
            .ok_or_else(|| fail(format!("{at}.code[{i}].coding"), "is required"))?;
        for (j, coding) in codings.iter().enumerate() {
            match (coding["system"].as_str(), coding["code"].as_str()) {
                (Some(system), Some(code)) => {
                    codes.push(Coding { system: system.to_owned(), code: code.to_owned() })
                }
                _ => return Err(fail(format!("{at}.code[{i}].coding[{j}]"), "needs a system and a code")),
            }
        }
    }
    let exceptions = list("provision")?
        .iter()
        .enumerate()
        .map(|(i, p)| read_provision(p, &format!("{at}.provision[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(Provision {
        kind,
        period: obj.get("period").map(|p| read_period(p, &format!("{at}.period"))).transpose()?,
        actors,
        purposes,
        classes,
        codes,
        data_period: obj
            .get("dataPeriod")
            .map(|p| read_period(p, &format!("{at}.dataPeriod")))
            .transpose()?,
        exceptions,
    })
}

fn read_period(v: &Value, at: &str) -> Result<(Option<Date>, Option<Date>), ConsentError> {
    let day = |key: &str| -> Result<Option<Date>, ConsentError> {
        match v.get(key) {
            None => Ok(None),
            Some(x) => x
                .as_str()
                .and_then(date_prefix)
                .map(Some)
                .ok_or_else(|| fail(format!("{at}.{key}"), "must be a date (YYYY-MM-DD...)")),
        }
    };
    Ok((day("start")?, day("end")?))
}

/// The calendar day a FHIR date or dateTime starts on.
fn date_prefix(s: &str) -> Option<Date> {
    let day = s.get(..10)?;
    Date::parse(day, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

fn within(period: Option<(Option<Date>, Option<Date>)>, day: Date) -> bool {
    period.is_none_or(|(start, end)| start.is_none_or(|s| s <= day) && end.is_none_or(|e| day <= e))
}

impl Directive {
    /// Whether a provision in force today permits sharing with `organisation`, for `purpose`,
    /// by name and without narrowing it to some types, codes or dates: the patient agreed, at
    /// the point of care, that this organisation may see their record. A permit for part of the
    /// record is not a relationship (it would open the rest under an implied-consent agreement).
    pub fn names_permitted(&self, organisation: &OdsCode, purpose: PurposeOfUse, today: Date) -> bool {
        self.root.names_permitted(organisation, purpose, today)
    }
}

impl Provision {
    fn names_permitted(&self, organisation: &OdsCode, purpose: PurposeOfUse, today: Date) -> bool {
        let whole = self.classes.is_empty() && self.codes.is_empty() && self.data_period.is_none();
        within(self.period, today)
            && ((self.kind == ProvisionType::Permit
                && self.actors.contains(organisation)
                && (self.purposes.is_empty() || self.purposes.contains(&purpose))
                && whole)
                || self.exceptions.iter().any(|p| p.names_permitted(organisation, purpose, today)))
    }

    /// Whether every condition this provision names matches.
    fn matches(&self, principal: &Principal, today: Date, facts: &ResourceFacts) -> bool {
        within(self.period, today)
            && (self.actors.is_empty() || self.actors.contains(&principal.organisation))
            && (self.purposes.is_empty() || self.purposes.contains(&principal.purpose))
            && (self.classes.is_empty() || self.classes.contains(&facts.resource_type))
            && (self.codes.is_empty() || facts.codings.iter().any(|c| self.codes.contains(c)))
            && (self.data_period.is_none()
                || facts
                    .clinical_date
                    .as_deref()
                    .and_then(date_prefix)
                    .is_some_and(|d| within(self.data_period, d)))
    }

    /// The type of the deepest applying provision under (and including) this one, if it applies.
    fn verdict(&self, principal: &Principal, today: Date, facts: &ResourceFacts) -> Option<ProvisionType> {
        if !self.matches(principal, today, facts) {
            return None;
        }
        let inner: Vec<ProvisionType> =
            self.exceptions.iter().filter_map(|p| p.verdict(principal, today, facts)).collect();
        if inner.contains(&ProvisionType::Deny) {
            Some(ProvisionType::Deny)
        } else if inner.is_empty() {
            Some(self.kind)
        } else {
            Some(ProvisionType::Permit)
        }
    }
}

/// What the patient's active directives say about `facts` for `principal` today.
pub fn consent_verdict(
    directives: &[Directive],
    principal: &Principal,
    today: Date,
    facts: &ResourceFacts,
) -> ConsentVerdict {
    let verdicts: Vec<ProvisionType> =
        directives.iter().filter_map(|d| d.root.verdict(principal, today, facts)).collect();
    if verdicts.contains(&ProvisionType::Deny) {
        ConsentVerdict::Denied
    } else if verdicts.is_empty() {
        ConsentVerdict::Silent
    } else {
        ConsentVerdict::Permitted
    }
}

#[cfg(test)]
mod tests;
