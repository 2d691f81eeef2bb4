//! Sharing agreements: who shares which parts of a record with whom, for what, under which
//! consent model. Written by information-governance leads as TOML (the format is in
//! `docs/agreements.md`; the region's examples are in `policy/agreements/`), validated on load
//! with the file, line and field of every mistake. A rule the engine does not understand is an
//! error, never a rule that silently allows.

use std::collections::BTreeSet;

use serde::Deserialize;
use tideway_auth::{PurposeOfUse, RoleCode};
use tideway_profiles::{OdsCode, Section};
use time::Date;
use toml::Spanned;

use crate::terminology::{SetKind, SetMask, Terminology};

/// How a patient's consent works under an agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentModel {
    /// Nothing flows until the patient has agreed at the point of care.
    Explicit,
    /// Flows for direct care unless the patient dissented.
    ImpliedDirectCare,
    /// Secondary use of de-identified data: flows unless the patient registered a National Data
    /// Opt-out (applied to every secondary use) or dissented.
    NationalDataOptOut,
}

/// Whether the agreement asks the requester to show a legitimate relationship with the patient.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RelationshipRule {
    /// The requester must be caring for the patient (registered practice, an open encounter, an
    /// active referral or episode of care, or the patient's consent naming them), or break the
    /// glass. The default: an agreement that says nothing requires one.
    #[default]
    Required,
    /// The agreement itself grants the relationship for the service it names (for example a
    /// hospital whose EPR asserts the patient in front of the clinician).
    Granted,
}

/// Whose data an agreement shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Controllers {
    /// Every source registered with the gateway (a locality-wide agreement).
    Every,
    /// Only sources run by these data controllers.
    Only(BTreeSet<OdsCode>),
}

/// Which sections an agreement shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sections {
    /// Every section, including what the gateway does not classify.
    Every,
    /// These sections (demographics and administrative ones are always shared alongside).
    Only(BTreeSet<Section>),
}

/// One version of a sharing agreement, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// Stable id (e.g. `podiatry`).
    pub id: String,
    /// Version, increasing.
    pub version: u32,
    /// Title, for the transparency page.
    pub title: String,
    /// How the patient's consent works under it.
    pub consent_model: ConsentModel,
    /// First day in force.
    pub start: Date,
    /// Last day in force, if it ends.
    pub end: Option<Date>,
    /// How a patient objects, for the transparency page.
    pub objection: String,
    /// Whose data it shares.
    pub controllers: Controllers,
    /// Receiving organisations (ODS codes).
    pub organisations: BTreeSet<OdsCode>,
    /// National RBAC roles it grants.
    pub roles: BTreeSet<String>,
    /// Purposes of use it grants.
    pub purposes: BTreeSet<PurposeOfUse>,
    /// Whether a legitimate relationship with the patient must be shown.
    pub relationship: RelationshipRule,
    /// Sections shared.
    pub sections: Sections,
    /// When non-empty, a clinical resource is shared only if it is classified by one of these
    /// sets.
    pub include: SetMask,
    /// A resource classified by any of these sets is withheld.
    pub exclude: SetMask,
    /// Sensitive sets this agreement explicitly shares.
    pub sensitive: SetMask,
}

impl Agreement {
    /// `id@version`, as decisions and audit records name it.
    pub fn label(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    /// Whether it is in force on `day`.
    pub fn in_force(&self, day: Date) -> bool {
        self.start <= day && self.end.is_none_or(|end| day <= end)
    }
}

/// An agreement file could not be used. The message names the file, the line and column, and
/// the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct AgreementError {
    file: String,
    line: usize,
    column: usize,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgreementFile {
    id: Spanned<String>,
    version: u32,
    title: String,
    consent_model: ConsentModel,
    start: Spanned<toml::value::Datetime>,
    end: Option<Spanned<toml::value::Datetime>>,
    objection: String,
    controllers: Vec<Spanned<String>>,
    recipients: Recipients,
    record: RecordScope,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipients {
    organisations: Vec<Spanned<String>>,
    roles: Vec<Spanned<String>>,
    purposes: Vec<Spanned<String>>,
    #[serde(default)]
    relationship: RelationshipRule,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordScope {
    sections: Vec<Spanned<String>>,
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    #[serde(default)]
    sensitive: Vec<Spanned<String>>,
}

/// Reads one agreement from `text` (named `file` in errors), checking every name it uses
/// against `terminology`.
pub fn parse_agreement(
    file: &str,
    text: &str,
    terminology: &Terminology,
) -> Result<Agreement, AgreementError> {
    let at = |span: std::ops::Range<usize>, message: String| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
        AgreementError { file: file.to_owned(), line, column, message }
    };
    let raw: AgreementFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        at(span, e.message().to_owned())
    })?;
    let id = raw.id.get_ref();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(at(raw.id.span(), "id: use lower-case letters, digits and '-'".into()));
    }
    let date = |d: &Spanned<toml::value::Datetime>, field: &str| {
        let v = d.get_ref();
        match (v.date, v.time, v.offset) {
            (Some(day), None, None) => Date::from_calendar_date(
                i32::from(day.year),
                time::Month::try_from(day.month)
                    .map_err(|_| at(d.span(), format!("{field}: no such month")))?,
                day.day,
            )
            .map_err(|_| at(d.span(), format!("{field}: no such day"))),
            _ => Err(at(d.span(), format!("{field}: give a date (YYYY-MM-DD), without a time"))),
        }
    };
    let start = date(&raw.start, "start")?;
    let end = raw.end.as_ref().map(|e| date(e, "end")).transpose()?;
    if let (Some(end), Some(span)) = (end, raw.end.as_ref().map(Spanned::span))
        && end < start
    {
        return Err(at(span, "end: the agreement ends before it starts".into()));
    }
    let ods = |items: &[Spanned<String>], field: &str| -> Result<BTreeSet<OdsCode>, AgreementError> {
        items
            .iter()
            .map(|s| {
                OdsCode::parse(s.get_ref()).map_err(|_| at(s.span(), format!("{field}: not an ODS code")))
            })
            .collect()
    };
    let controllers = match raw.controllers.as_slice() {
        [only] if only.get_ref() == "*" => Controllers::Every,
        [] => {
            return Err(at(raw.id.span(), "controllers: name at least one data controller, or \"*\"".into()));
        }
        items => {
            if let Some(star) = items.iter().find(|s| s.get_ref() == "*") {
                return Err(at(star.span(), "controllers: \"*\" stands alone".into()));
            }
            Controllers::Only(ods(items, "controllers")?)
        }
    };
    let organisations = ods(&raw.recipients.organisations, "recipients.organisations")?;
    let roles = raw
        .recipients
        .roles
        .iter()
        .map(|s| {
            RoleCode::parse(s.get_ref()).map(|r| r.as_str().to_owned()).ok_or_else(|| {
                at(s.span(), "recipients.roles: not a national RBAC role code (R or S and 4-5 digits)".into())
            })
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    let purposes = raw
        .recipients
        .purposes
        .iter()
        .map(|s| {
            PurposeOfUse::parse(s.get_ref()).ok_or_else(|| {
                at(s.span(), "recipients.purposes: not a purpose of use this gateway knows".into())
            })
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    // One agreement serves either direct care or secondary use, never both: a commissioning
    // agreement must not become a door to identifiable records, nor a care agreement to exports.
    if let Some(first) = purposes.first() {
        if purposes.iter().any(|p| p.is_secondary() != first.is_secondary()) {
            return Err(at(
                raw.id.span(),
                "recipients.purposes: an agreement is for direct care or for secondary use \
                 (HOPERAT, HRESCH, PUBHLTH), not both"
                    .into(),
            ));
        }
        if first.is_secondary() != (raw.consent_model == ConsentModel::NationalDataOptOut) {
            return Err(at(
                raw.id.span(),
                "consent_model: \"national-data-opt-out\" is the consent model of secondary use, \
                 and only of secondary use"
                    .into(),
            ));
        }
        if first.is_secondary() && raw.recipients.relationship != RelationshipRule::Granted {
            return Err(at(
                raw.id.span(),
                "recipients.relationship: a secondary-use agreement shares population data, where \
                 no relationship with each patient can be shown: say relationship = \"granted\""
                    .into(),
            ));
        }
    }
    for (field, empty) in [
        ("recipients.organisations", organisations.is_empty()),
        ("recipients.roles", roles.is_empty()),
        ("recipients.purposes", purposes.is_empty()),
        ("record.sections", raw.record.sections.is_empty()),
    ] {
        if empty {
            return Err(at(raw.id.span(), format!("{field}: must name at least one")));
        }
    }
    let sections = match raw.record.sections.as_slice() {
        [only] if only.get_ref() == "*" => Sections::Every,
        items => Sections::Only(
            items
                .iter()
                .map(|s| {
                    section_named(s.get_ref()).ok_or_else(|| {
                        at(
                            s.span(),
                            format!(
                                "record.sections: unknown section (known: {}, or \"*\" alone)",
                                SECTION_NAMES.join(", ")
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let sets =
        |items: &[Spanned<String>], field: &str, want: Option<SetKind>| -> Result<SetMask, AgreementError> {
            items.iter().try_fold(0, |mask, s| {
                let bit = terminology
                    .bit(s.get_ref())
                    .ok_or_else(|| at(s.span(), format!("{field}: no code set of this name")))?;
                let kind = terminology.sets().iter().find(|c| c.name == *s.get_ref()).map(|c| c.kind);
                if want.is_some() && kind != want {
                    return Err(at(s.span(), format!("{field}: not one of the sensitive sets")));
                }
                Ok(mask | bit)
            })
        };
    Ok(Agreement {
        id: id.clone(),
        version: raw.version,
        title: raw.title,
        consent_model: raw.consent_model,
        start,
        end,
        objection: raw.objection,
        controllers,
        organisations,
        roles,
        purposes,
        relationship: raw.recipients.relationship,
        sections,
        include: sets(&raw.record.include, "record.include", None)?,
        exclude: sets(&raw.record.exclude, "record.exclude", None)?,
        sensitive: sets(&raw.record.sensitive, "record.sensitive", Some(SetKind::Sensitive))?,
    })
}

const SECTION_NAMES: [&str; 12] = [
    "problems",
    "medications",
    "allergies",
    "investigations",
    "immunisations",
    "procedures",
    "consultations",
    "referrals",
    "care-plans",
    "documents",
    "social-care",
    "unclassified",
];

fn section_named(name: &str) -> Option<Section> {
    Some(match name {
        "problems" => Section::Problems,
        "medications" => Section::Medications,
        "allergies" => Section::Allergies,
        "investigations" => Section::Investigations,
        "immunisations" => Section::Immunisations,
        "procedures" => Section::Procedures,
        "consultations" => Section::Consultations,
        "referrals" => Section::Referrals,
        "care-plans" => Section::CarePlans,
        "documents" => Section::Documents,
        "social-care" => Section::SocialCare,
        "unclassified" => Section::Unclassified,
        _ => return None,
    })
}

/// The agreements shipped as the region's examples (`policy/agreements/*.toml`), as
/// `(file name, text)`.
pub const EXAMPLES: [(&str, &str); 6] = [
    ("direct-care.toml", include_str!("../agreements/direct-care.toml")),
    ("ooh-gp.toml", include_str!("../agreements/ooh-gp.toml")),
    ("podiatry.toml", include_str!("../agreements/podiatry.toml")),
    ("mental-health.toml", include_str!("../agreements/mental-health.toml")),
    ("social-care.toml", include_str!("../agreements/social-care.toml")),
    ("commissioning.toml", include_str!("../agreements/commissioning.toml")),
];

#[cfg(test)]
mod tests;
