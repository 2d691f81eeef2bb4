//! SMART on FHIR scopes: what one scope string permits, and whether one scope is covered by
//! another. Used at `POST /token` to grant a subset of a client's allowed scopes, and on every
//! request to ask whether the granted scopes permit an interaction on a resource type.
//!
//! Both SMART versions are read. v1 permissions are `read` (read and search), `write`
//! (create, update, delete) and `*` (all of them); v2 permissions are the letters `c`, `r`,
//! `u`, `d`, `s` in that order, each at most once, so `r` alone allows a read by id and not a
//! search, and `s` alone the reverse. Constrained v2 scopes (`...rs?category=...`) are not
//! read: they would have to narrow what a scope grants, and a scope the gateway cannot
//! narrow must grant nothing rather than everything.

use serde::{Deserialize, Serialize};

/// The launch context a scope is granted in (the part before `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// `system/`: a backend service acting on its own authority.
    System,
    /// `user/`: what the user may see.
    User,
    /// `patient/`: one patient's data.
    Patient,
}

/// An interaction on a resource type that a scope may permit. The default is a read: what
/// an answer that is not a search asks of the scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interaction {
    /// Create (`c`).
    Create,
    /// Read by id, and operations that return a resource's contents such as `$everything`
    /// (`r`).
    #[default]
    Read,
    /// Update (`u`).
    Update,
    /// Delete (`d`).
    Delete,
    /// Search (`s`).
    Search,
}

impl Interaction {
    /// The SMART v2 letters, in the order v2 requires them.
    const LETTERS: [(char, Interaction); 5] = [
        ('c', Interaction::Create),
        ('r', Interaction::Read),
        ('u', Interaction::Update),
        ('d', Interaction::Delete),
        ('s', Interaction::Search),
    ];

    fn bit(self) -> u8 {
        match self {
            Self::Create => 1,
            Self::Read => 1 << 1,
            Self::Update => 1 << 2,
            Self::Delete => 1 << 3,
            Self::Search => 1 << 4,
        }
    }
}

/// A set of interactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u8);

impl Permissions {
    const ALL: Self = Self(0b1_1111);

    fn of(interactions: &[Interaction]) -> Self {
        Self(interactions.iter().fold(0, |bits, i| bits | i.bit()))
    }

    /// Whether `interaction` is in the set.
    pub fn allows(self, interaction: Interaction) -> bool {
        self.0 & interaction.bit() != 0
    }

    /// Whether every interaction of `self` is in `other`.
    pub fn within(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Reads a permission string: v1 `read`, `write`, `*`, or v2 letters from `cruds` in order.
    fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => return Some(Self::of(&[Interaction::Read, Interaction::Search])),
            "write" => {
                return Some(Self::of(&[Interaction::Create, Interaction::Update, Interaction::Delete]));
            }
            "*" => return Some(Self::ALL),
            "" => return None,
            _ => {}
        }
        let mut letters = Interaction::LETTERS.iter();
        let mut bits = Self::default();
        for c in text.chars() {
            // Each letter must come after the previous one in `cruds`: this refuses repeats,
            // other orders and other characters alike.
            let (_, interaction) = letters.by_ref().find(|(letter, _)| *letter == c)?;
            bits = bits.union(Self::of(&[*interaction]));
        }
        Some(bits)
    }
}

/// One parsed scope, e.g. `system/Patient.rs` or `system/*.read`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Its launch context.
    pub context: Context,
    /// The resource type it names; `None` for `*` (every type).
    pub resource_type: Option<String>,
    /// What it permits on that type.
    pub permissions: Permissions,
}

impl Scope {
    /// Parses a SMART resource scope; `None` for anything else (including constrained v2 scopes
    /// and scopes such as `openid` or `launch`, which name no resource).
    pub fn parse(text: &str) -> Option<Self> {
        let (context, rest) = text.split_once('/')?;
        let context = match context {
            "system" => Context::System,
            "user" => Context::User,
            "patient" => Context::Patient,
            _ => return None,
        };
        let (resource_type, permissions) = rest.split_once('.')?;
        let resource_type = match resource_type {
            "*" => None,
            t if !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric()) => Some(t.to_owned()),
            _ => return None,
        };
        Some(Self { context, resource_type, permissions: Permissions::parse(permissions)? })
    }

    /// Whether this scope is about `resource_type` (it names it, or names every type).
    pub fn names(&self, resource_type: &str) -> bool {
        self.resource_type.as_deref().is_none_or(|t| t == resource_type)
    }

    /// Whether this scope permits `interaction` on `resource_type` in `context`.
    pub fn permits(&self, context: Context, interaction: Interaction, resource_type: &str) -> bool {
        self.context == context && self.names(resource_type) && self.permissions.allows(interaction)
    }

    /// Whether granting `self` gives nothing beyond what `allowed` together permit: the same
    /// context, and every permission of `self` given by allowed scopes whose type covers
    /// `self`'s (a scope for every type is covered only by scopes for every type).
    pub fn is_covered_by<'a>(&self, allowed: impl IntoIterator<Item = &'a Scope>) -> bool {
        let given = allowed
            .into_iter()
            .filter(|a| a.context == self.context)
            .filter(|a| match (&a.resource_type, &self.resource_type) {
                (None, _) => true,
                (Some(a), Some(s)) => a == s,
                (Some(_), None) => false,
            })
            .fold(Permissions::default(), |p, a| p.union(a.permissions));
        self.permissions.within(given)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    fn scope(text: &str) -> Scope {
        Scope::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    fn covered(requested: &str, allowed: &[&str]) -> bool {
        let allowed: Vec<Scope> = allowed.iter().map(|a| scope(a)).collect();
        scope(requested).is_covered_by(&allowed)
    }

    #[test]
    fn v1_read_means_read_and_search_and_v2_letters_mean_each_alone() {
        let read = scope("system/*.read");
        assert!(read.permits(Context::System, Interaction::Read, "Patient"));
        assert!(read.permits(Context::System, Interaction::Search, "Patient"));
        assert!(!read.permits(Context::System, Interaction::Update, "Patient"));
        let r = scope("system/Patient.r");
        assert!(r.permits(Context::System, Interaction::Read, "Patient"));
        assert!(!r.permits(Context::System, Interaction::Search, "Patient"));
        let s = scope("system/Patient.s");
        assert!(s.permits(Context::System, Interaction::Search, "Patient"));
        assert!(!s.permits(Context::System, Interaction::Read, "Patient"));
        assert!(!s.permits(Context::System, Interaction::Search, "Condition"));
        assert!(!s.permits(Context::User, Interaction::Search, "Patient"));
        assert_eq!(scope("system/*.*").permissions, Permissions::ALL);
        assert_eq!(scope("system/*.cruds").permissions, Permissions::ALL);
        assert!(!scope("system/*.write").permissions.allows(Interaction::Read));
    }

    #[test]
    fn malformed_and_constrained_scopes_do_not_parse() {
        for bad in [
            "system/*.sr",
            "system/*.rr",
            "system/*.x",
            "system/*.",
            "system/.rs",
            "system/Patient",
            "device/*.rs",
            "openid",
            "system/Observation.rs?category=laboratory",
            "system/Pat-ient.rs",
        ] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_scope_is_covered_by_a_wider_type_and_a_superset_of_permissions() {
        assert!(covered("system/Patient.read", &["system/*.read"]));
        assert!(covered("system/Patient.r", &["system/*.read"]));
        assert!(covered("system/Patient.s", &["system/*.read"]));
        assert!(covered("system/Patient.rs", &["system/*.read"]));
        assert!(covered("system/Patient.read", &["system/Patient.rs"]));
        assert!(covered("system/*.rs", &["system/*.read"]));
        assert!(covered("system/*.read", &["system/*.rs"]));
        assert!(covered("system/Patient.rs", &["system/Patient.r", "system/Patient.s"]));
    }

    #[test]
    fn a_scope_is_not_covered_by_a_narrower_type_another_context_or_fewer_permissions() {
        assert!(!covered("system/*.read", &["system/Patient.rs"]));
        assert!(!covered("system/*.rs", &["system/*.r", "system/Patient.s"]));
        assert!(!covered("system/Condition.read", &["system/Patient.rs"]));
        assert!(!covered("system/Patient.read", &["system/Patient.r"]));
        assert!(!covered("system/Patient.write", &["system/*.read"]));
        assert!(!covered("system/Patient.cr", &["system/*.rs"]));
        assert!(!covered("user/Patient.read", &["system/*.read"]));
        assert!(!covered("patient/*.read", &["system/*.read"]));
        assert!(!covered("system/Patient.r", &[]));
    }
}
