//! Building response Bundles from stored resource bytes.
//!
//! Resources arrive from adapters already serialised; a Bundle is written around them by
//! splicing those bytes in, so a response never parses a resource again. Pure functions only.

use serde_json::{Value, json};
use tideway_adapters::{
    AdapterError, ListWarning, ListWarningCode, NormalisedResource, RejectedResource, RejectionKind, SourceId,
};
use tideway_profiles::{IssueSeverity, IssueType, OperationOutcome};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::sources::SourceAnswer;

/// Something the client should know about how complete the answer is.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A source could not answer.
    SourceFailed {
        /// Which source.
        source: SourceId,
        /// Why (our words, never the source's).
        error: AdapterError,
    },
    /// A source sent entries that could not be passed on (not valid R4, unreadable in its own
    /// format, or of a kind it does not share); they were withheld.
    SourceRejected {
        /// Which source.
        source: SourceId,
        /// Why, in kind (never [`RejectionKind::OtherPatient`]: see [`Notice::OtherPatient`]).
        kind: RejectionKind,
        /// How many.
        count: usize,
        /// Their resource types (as claimed by the source), sorted, without repeats.
        types: Vec<String>,
    },
    /// A source sent entries about another patient; they were withheld.
    OtherPatient {
        /// Which source.
        source: SourceId,
        /// How many.
        count: usize,
    },
    /// A source warned that a section of its record is incomplete or withholds items (GP
    /// Connect's List warnings).
    SourceWarning {
        /// Which source.
        source: SourceId,
        /// The section's code as the source named it, when it gave one.
        section: Option<String>,
        /// What it warned of.
        code: ListWarningCode,
    },
    /// A search parameter was not understood and was ignored (lenient handling).
    IgnoredParameter(String),
    /// Information may be withheld under consent or sharing agreements. Every clinical answer
    /// carries it, whether or not anything was, so it reveals nothing.
    MayBeWithheld,
    /// The patient is restricted (S-flagged) at some source: their address, telecom,
    /// contacts' details and registered practice were withheld, as from every answer.
    Restricted,
    /// Some source records the patient as deceased.
    Deceased,
    /// The NHS number asked for was superseded: the patient is answered under the current one.
    Superseded,
    /// The sources holding a `$match` candidate disagree on these demographic fields.
    ConflictingDemographics {
        /// The candidate's gateway id.
        patient_id: String,
        /// The fields, never their values.
        fields: Vec<&'static str>,
    },
    /// These sources cannot search their patients by demographics, so a `$match` without an NHS
    /// number found no one through them (only patients the gateway already knew).
    NotSearchable {
        /// Which sources, in registry order.
        sources: Vec<SourceId>,
    },
    /// The requester broke the glass: the access is recorded with their reason, alerted to the
    /// privacy officer, and valid for this patient until the session ends.
    BrokeGlass {
        /// When the break-glass session ends (microseconds since the epoch).
        ends_at_us: i64,
    },
}

/// The words of [`Notice::MayBeWithheld`].
pub const MAY_BE_WITHHELD: &str = "Some information may be withheld from this answer under the patient's consent or \
     the sharing agreements that apply to this requester.";

/// The words of [`Notice::Restricted`].
pub const RESTRICTED: &str = "This patient's record is restricted (flagged sensitive): their address, telephone \
     and email, their contacts' details and their registered practice are withheld from every answer, \
     whoever asks.";

/// The words of [`Notice::Superseded`].
pub const SUPERSEDED: &str = "The NHS number asked for has been superseded: the patient is answered under their \
     current NHS number (Patient.identifier).";

/// The words of [`Notice::Deceased`].
pub const DECEASED: &str = "The patient is recorded as deceased (see Patient.deceased).";

/// How a break-glass answer begins its notice (a contract: clients look for it).
pub const BREAK_GLASS: &str = "Break-glass (emergency) access";

/// The OperationOutcome for a set of notices, or `None` when there is nothing to say.
pub fn notices_outcome(notices: &[Notice]) -> Option<Value> {
    if notices.is_empty() {
        return None;
    }
    let mut oo = OperationOutcome::default();
    // What went wrong comes first; the notice every clinical answer carries comes last.
    let (general, specific): (Vec<&Notice>, Vec<&Notice>) =
        notices.iter().partition(|n| matches!(n, Notice::MayBeWithheld));
    for n in specific.into_iter().chain(general.into_iter().take(1)) {
        oo = match n {
            Notice::SourceFailed { source, error } => oo
                .with(
                    IssueSeverity::Warning,
                    if matches!(error, AdapterError::Timeout) { IssueType::Timeout } else { IssueType::Incomplete },
                    format!("source '{source}' is missing from this answer: {error}"),
                )
                .with(IssueSeverity::Warning, IssueType::Incomplete, format!("results from source '{source}' are incomplete")),
            Notice::SourceRejected { source, kind, count, types } => oo.with(
                IssueSeverity::Warning,
                IssueType::Incomplete,
                format!(
                    "source '{source}' sent {count} {} ({}); they were withheld",
                    match kind {
                        RejectionKind::Unreadable => "entries that could not be read from its own format",
                        RejectionKind::NotCarried => "entries of a kind this source does not share",
                        _ => "resource(s) that are not valid FHIR R4",
                    },
                    if types.is_empty() { "of unknown type".to_owned() } else { types.join(", ") }
                ),
            ),
            Notice::OtherPatient { source, count } => oo.with(
                IssueSeverity::Warning,
                IssueType::Incomplete,
                format!("source '{source}' sent {count} entries about another patient; they were withheld"),
            ),
            Notice::SourceWarning { source, section, code } => oo.with(
                IssueSeverity::Warning,
                if *code == ListWarningCode::ConfidentialItems { IssueType::Suppressed } else { IssueType::Incomplete },
                format!(
                    "source '{source}' warns{}: {} ({})",
                    section.as_deref().map(|s| format!(" of its section {s}")).unwrap_or_default(),
                    warning_meaning(*code),
                    code.as_str()
                ),
            ),
            Notice::IgnoredParameter(name) => oo
                .with(IssueSeverity::Warning, IssueType::NotSupported, format!("search parameter '{name}' is not supported and was ignored"))
                .at(name.clone()),
            Notice::MayBeWithheld => oo.with(IssueSeverity::Information, IssueType::Suppressed, MAY_BE_WITHHELD),
            Notice::Restricted => oo.with(IssueSeverity::Information, IssueType::Suppressed, RESTRICTED),
            Notice::Deceased => oo.with(IssueSeverity::Information, IssueType::Informational, DECEASED),
            Notice::Superseded => oo.with(IssueSeverity::Information, IssueType::Informational, SUPERSEDED),
            Notice::NotSearchable { sources } => oo.with(
                IssueSeverity::Information,
                IssueType::Incomplete,
                format!(
                    "source(s) {} cannot be searched by demographics: a patient held only there is found by NHS number, or once the gateway has seen them",
                    sources.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
                ),
            ),
            Notice::ConflictingDemographics { patient_id, fields } => oo.with(
                IssueSeverity::Warning,
                IssueType::BusinessRule,
                format!(
                    "the sources holding candidate Patient/{patient_id} disagree on: {}; check the patient's identity before relying on this match",
                    fields.join(", ")
                ),
            ),
            Notice::BrokeGlass { ends_at_us } => oo.with(
                IssueSeverity::Warning,
                IssueType::Security,
                format!(
                    "{BREAK_GLASS}: this access is recorded with your reason and the privacy officer is alerted; \
                     it is valid for this patient until {}",
                    crate::epoch_us::rfc3339_seconds(*ends_at_us)
                ),
            ),
        };
    }
    Some(oo.to_json())
}

/// What a source's warning means, in words a clinician reads.
fn warning_meaning(code: ListWarningCode) -> &'static str {
    match code {
        ListWarningCode::ConfidentialItems => {
            "items are withheld at the source for confidentiality or at the patient's request"
        }
        ListWarningCode::DataInTransit => {
            "the record is still being transferred from a previous practice, so older entries may be missing"
        }
        ListWarningCode::DataAwaitingFiling => {
            "the practice has received data it has not yet filed into the record"
        }
        ListWarningCode::EntryNotShown => "some entries it lists could not be shown",
        ListWarningCode::Unrecognised => "a warning the gateway does not recognise",
    }
}

/// The parts of a searchset Bundle.
#[derive(Debug)]
pub struct Searchset<'a> {
    /// Base URL of the gateway, without trailing slash.
    pub base_url: &'a str,
    /// The `self` link.
    pub self_link: &'a str,
    /// The `next` link, if there are more pages.
    pub next_link: Option<&'a str>,
    /// Total matches across all pages.
    pub total: usize,
    /// This page's matches.
    pub entries: &'a [NormalisedResource],
    /// What supports them (`search.mode = include`).
    pub includes: &'a [NormalisedResource],
    /// An outcome entry (`search.mode = outcome`), if any.
    pub outcome: Option<&'a Value>,
}

/// Writes the Bundle JSON: the envelope is written directly, and each entry's stored bytes
/// are copied in once, never parsed or re-validated (adapters stored them as serde_json wrote
/// them). Strings that come from outside the stored resources (links, the base URL) go through
/// serde_json's escaping.
pub fn searchset(s: &Searchset<'_>) -> Vec<u8> {
    let base = json_string(s.base_url);
    // The base URL's closing quote is written after each resource's type and id.
    let base_open = &base[..base.len() - 1];
    let size: usize =
        s.entries.iter().chain(s.includes).map(|e| e.json.len() + base.len() + 96).sum::<usize>() + 512;
    let mut out: Vec<u8> = Vec::with_capacity(size);
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    let mut id = uuid::Uuid::encode_buffer();
    out.extend_from_slice(b"{\"resourceType\":\"Bundle\",\"id\":\"");
    out.extend_from_slice(uuid::Uuid::new_v4().hyphenated().encode_lower(&mut id).as_bytes());
    out.extend_from_slice(b"\",\"meta\":{\"lastUpdated\":\"");
    out.extend_from_slice(now.as_bytes());
    out.extend_from_slice(b"\"},\"type\":\"searchset\",\"total\":");
    out.extend_from_slice(s.total.to_string().as_bytes());
    out.extend_from_slice(b",\"link\":[{\"relation\":\"self\",\"url\":");
    out.extend_from_slice(json_string(s.self_link).as_bytes());
    if let Some(next) = s.next_link {
        out.extend_from_slice(b"},{\"relation\":\"next\",\"url\":");
        out.extend_from_slice(json_string(next).as_bytes());
    }
    out.extend_from_slice(b"}]");
    if s.entries.is_empty() && s.includes.is_empty() && s.outcome.is_none() {
        // FHIR JSON forbids empty arrays: an empty searchset has no `entry` at all.
        out.push(b'}');
        return out;
    }
    out.extend_from_slice(b",\"entry\":[");
    let modes = s.entries.iter().map(|e| (e, false)).chain(s.includes.iter().map(|e| (e, true)));
    for (n, (e, included)) in modes.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"fullUrl\":");
        if plain(&e.resource_type) && plain(&e.id) {
            // FHIR types and ids ([A-Za-z0-9.-]): nothing to escape, written as they are.
            out.extend_from_slice(base_open.as_bytes());
            out.push(b'/');
            out.extend_from_slice(e.resource_type.as_bytes());
            out.push(b'/');
            out.extend_from_slice(e.id.as_bytes());
            out.push(b'"');
        } else {
            // Adapters only hand on valid ids; anything else is escaped rather than trusted.
            let url = format!("{}/{}/{}", s.base_url, e.resource_type, e.id);
            out.extend_from_slice(json_string(&url).as_bytes());
        }
        out.extend_from_slice(b",\"resource\":");
        out.extend_from_slice(&e.json);
        out.extend_from_slice(if included {
            b",\"search\":{\"mode\":\"include\"}}"
        } else {
            b",\"search\":{\"mode\":\"match\"}}"
        });
    }
    if let Some(oo) = s.outcome {
        if !s.entries.is_empty() || !s.includes.is_empty() {
            out.push(b',');
        }
        let entry = json!({
            "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            "resource": oo,
            "search": {"mode": "outcome"},
        });
        out.extend_from_slice(entry.to_string().as_bytes());
    }
    out.extend_from_slice(b"]}");
    out
}

/// Whether `s` is made only of the characters FHIR ids and type names use.
fn plain(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Whether a resource is one the gateway made to support the matches rather than a match
/// itself: its own Provenance for merged facts and terminology maps.
pub fn is_included(r: &NormalisedResource) -> bool {
    is_gateway_made(&r.resource_type, &r.id)
}

/// Whether `resource_type/id` names a resource the gateway makes itself (see [`is_included`]).
pub fn is_gateway_made(resource_type: &str, id: &str) -> bool {
    resource_type == "Provenance" && id.starts_with(crate::merge::PROVENANCE_ID_PREFIX)
}

/// Parses a FHIR `instant` (as used by `_since`).
pub fn parse_instant(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

impl Notice {
    /// The notice for a source that could not answer, if it could not.
    pub fn of_failure<T>(answer: &SourceAnswer<T>) -> Option<Self> {
        answer
            .result
            .as_ref()
            .err()
            .map(|e| Self::SourceFailed { source: answer.source.clone(), error: e.clone() })
    }

    /// The notices for what a source sent that could not be passed on.
    pub fn of_rejections(source: &SourceId, rejected: &[RejectedResource]) -> Vec<Self> {
        let mut out = Vec::new();
        for kind in RejectionKind::ALL.into_iter().filter(|k| *k != RejectionKind::OtherPatient) {
            let of_kind: Vec<&RejectedResource> = rejected.iter().filter(|r| r.kind == kind).collect();
            if of_kind.is_empty() {
                continue;
            }
            let mut types: Vec<String> = of_kind.iter().filter_map(|r| r.resource_type.clone()).collect();
            types.sort();
            types.dedup();
            out.push(Self::SourceRejected { source: source.clone(), kind, count: of_kind.len(), types });
        }
        let other = rejected.iter().filter(|r| r.kind == RejectionKind::OtherPatient).count();
        if other > 0 {
            out.push(Self::OtherPatient { source: source.clone(), count: other });
        }
        out
    }

    /// The notices for a source's warnings about its own record, once each.
    pub fn of_warnings(source: &SourceId, warnings: &[ListWarning]) -> Vec<Self> {
        let mut seen = std::collections::HashSet::new();
        warnings
            .iter()
            .filter(|w| seen.insert((w.section.clone(), w.code)))
            .map(|w| Self::SourceWarning { source: source.clone(), section: w.section.clone(), code: w.code })
            .collect()
    }
}

#[cfg(test)]
mod tests;
