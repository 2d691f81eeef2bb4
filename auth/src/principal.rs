//! Who is asking: the authenticated principal every request carries past authentication.

use serde::{Deserialize, Serialize};
use tideway_profiles::OdsCode;

use crate::scope::{Context, Interaction, Scope};

/// An HL7 v3 PurposeOfUse code (e.g. `TREAT`, `ETREAT`). Only the codes the region accepts
/// parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PurposeOfUse {
    /// Treatment.
    #[serde(rename = "TREAT")]
    Treat,
    /// Emergency treatment (break-glass).
    #[serde(rename = "ETREAT")]
    EmergencyTreat,
    /// Coordination of care.
    #[serde(rename = "COC")]
    CareCoordination,
    /// Patient request (the patient's own access).
    #[serde(rename = "PATRQT")]
    PatientRequest,
    /// Healthcare operations: a privacy officer's review, a registry administrator's work, and
    /// commissioning and planning (secondary use when an agreement grants it for population
    /// data).
    #[serde(rename = "HOPERAT")]
    Operations,
    /// Healthcare research (secondary use).
    #[serde(rename = "HRESCH")]
    Research,
    /// Public health (secondary use).
    #[serde(rename = "PUBHLTH")]
    PublicHealth,
}

impl PurposeOfUse {
    /// Parses a PurposeOfUse code.
    pub fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "TREAT" => Self::Treat,
            "ETREAT" => Self::EmergencyTreat,
            "COC" => Self::CareCoordination,
            "PATRQT" => Self::PatientRequest,
            "HOPERAT" => Self::Operations,
            "HRESCH" => Self::Research,
            "PUBHLTH" => Self::PublicHealth,
            _ => return None,
        })
    }

    /// The code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Treat => "TREAT",
            Self::EmergencyTreat => "ETREAT",
            Self::CareCoordination => "COC",
            Self::PatientRequest => "PATRQT",
            Self::Operations => "HOPERAT",
            Self::Research => "HRESCH",
            Self::PublicHealth => "PUBHLTH",
        }
    }

    /// Whether this purpose is a secondary use (commissioning and planning, research, public
    /// health): served only de-identified population data, never a patient's record.
    pub fn is_secondary(self) -> bool {
        matches!(self, Self::Operations | Self::Research | Self::PublicHealth)
    }

    /// Every purpose the region accepts, as their codes, for messages.
    pub const CODES: &'static str = "TREAT, ETREAT, COC, PATRQT, HOPERAT, HRESCH, PUBHLTH";
}

/// A national RBAC job role code (e.g. `R8000` clinical practitioner access role).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RoleCode(String);

impl RoleCode {
    /// Parses a role code: `R` or `S` followed by 4 to 5 digits (national RBAC job role codes).
    pub fn parse(input: &str) -> Option<Self> {
        let mut chars = input.chars();
        let first = chars.next()?;
        let rest: &str = chars.as_str();
        ((first == 'R' || first == 'S')
            && (4..=5).contains(&rest.len())
            && rest.bytes().all(|b| b.is_ascii_digit()))
        .then(|| Self(input.to_owned()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The authenticated caller: a registered client acting for a named user in an organisation,
/// for a purpose. Built only from a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The registered client (system) id.
    pub client_id: String,
    /// The end user's id as asserted by the client (e.g. an SDS user id).
    pub user_id: String,
    /// The user's national RBAC role.
    pub role: RoleCode,
    /// The user's organisation.
    pub organisation: OdsCode,
    /// Why the user is asking.
    pub purpose: PurposeOfUse,
    /// Granted scopes, e.g. `system/*.read`.
    pub scopes: Vec<String>,
    /// The access token's own id (for audit correlation).
    pub token_id: String,
    /// Why the user broke the glass (purpose of use `ETREAT` only; always present then).
    pub break_glass_reason: Option<String>,
}

impl Principal {
    /// Whether the user is breaking the glass (purpose of use `ETREAT`, which the token service
    /// issues only with a reason).
    pub fn breaks_glass(&self) -> bool {
        self.purpose == PurposeOfUse::EmergencyTreat
    }

    /// Whether the granted scopes permit `interaction` on resources of `resource_type`.
    /// Only `system/` scopes count: the gateway serves backend services, and the scopes it
    /// issues are never of another context.
    pub fn may(&self, interaction: Interaction, resource_type: &str) -> bool {
        self.scopes
            .iter()
            .filter_map(|s| Scope::parse(s))
            .any(|s| s.permits(Context::System, interaction, resource_type))
    }

    /// Whether the granted scopes allow reading resources of `resource_type` by id or through
    /// an operation such as `$everything` (SMART v1 `read`, v2 `r`).
    pub fn may_read(&self, resource_type: &str) -> bool {
        self.may(Interaction::Read, resource_type)
    }

    /// Whether the granted scopes allow searching resources of `resource_type` (SMART v1
    /// `read`, v2 `s`).
    pub fn may_search(&self, resource_type: &str) -> bool {
        self.may(Interaction::Search, resource_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_codes() {
        assert!(RoleCode::parse("R8000").is_some());
        assert!(RoleCode::parse("S0080").is_some());
        assert!(RoleCode::parse("X8000").is_none());
        assert!(RoleCode::parse("R80").is_none());
    }
}
