//! `_include` and `_revinclude` over the references the record holds: R4's reference search
//! parameters of the clinical types (and `Provenance:target`, for `_revinclude`), each with the
//! element it reads and the types it may point at. Included resources come only from the same
//! decided record as the matches (never fetched by following a reference elsewhere), so an
//! include can never carry what the requester could not have been given anyway.

use std::collections::HashSet;

use serde_json::Value;
use tideway_adapters::NormalisedResource;

use super::BadParam;

mod params;

pub use params::{PARAMS, ReferenceParam};

/// The parameters `_include` takes on a search of `resource_type` (`Type:name`).
pub fn includes_of(resource_type: &str) -> impl Iterator<Item = &'static ReferenceParam> {
    PARAMS.iter().filter(move |p| p.source == resource_type && p.source != "Provenance")
}

/// The parameters `_revinclude` takes on a search of `resource_type`: those of another searched
/// type (or Provenance) that may point at it.
pub fn revincludes_of(resource_type: &str) -> impl Iterator<Item = &'static ReferenceParam> {
    PARAMS.iter().filter(move |p| p.may_point_at(resource_type))
}

/// One `_include` or `_revinclude` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// `_revinclude` (resources that refer to the matches) rather than `_include`.
    pub reverse: bool,
    /// The parameter, from [`PARAMS`].
    pub param: &'static ReferenceParam,
    /// `Type:name:Target`: only references to that type.
    pub target: Option<String>,
}

impl Include {
    /// Reads `_include` (`reverse` false) or `_revinclude` on a search of `searched`. An
    /// unsupported value is a 400 naming the parameter (`*`, `:iterate`, a parameter this table
    /// does not have), never silently ignored.
    pub fn parse(value: &str, reverse: bool, searched: &str) -> Result<Self, BadParam> {
        let name = if reverse { "_revinclude" } else { "_include" };
        let unsupported = |problem| BadParam { name, problem, unsupported: true };
        let mut parts = value.split(':');
        let (Some(source), Some(param)) = (parts.next(), parts.next()) else {
            return Err(BadParam {
                name,
                problem: "must be Type:parameter[:TargetType]",
                unsupported: false,
            });
        };
        let target = parts.next().map(str::to_owned);
        if target.as_deref().is_some_and(|t| !tideway_profiles::schema::is_resource_type(t)) {
            return Err(BadParam {
                name,
                problem: "names a target that is not a resource type",
                unsupported: false,
            });
        }
        if parts.next().is_some() {
            return Err(BadParam {
                name,
                problem: "must be Type:parameter[:TargetType]",
                unsupported: false,
            });
        }
        if source == "*" || param == "*" {
            return Err(unsupported("wildcards are not supported: name each Type:parameter"));
        }
        let Some(p) = PARAMS.iter().find(|p| p.source == source && p.name == param) else {
            return Err(unsupported("names a reference parameter this gateway does not include by"));
        };
        if reverse {
            if !p.may_point_at(searched) {
                return Err(BadParam {
                    name,
                    problem: "names a parameter that cannot refer to the type searched",
                    unsupported: false,
                });
            }
        } else if p.source != searched || p.source == "Provenance" {
            return Err(BadParam {
                name,
                problem: "must name a parameter of the type searched",
                unsupported: false,
            });
        }
        if let Some(t) = &target
            && (!p.may_point_at(t) || (reverse && t != searched))
        {
            return Err(BadParam {
                name,
                problem: "names a target type the parameter cannot refer to",
                unsupported: false,
            });
        }
        Ok(Self { reverse, param: p, target })
    }

    /// The resource types this may bring into an answer (`None`: any type).
    pub fn brings(&self) -> Option<Vec<&'static str>> {
        let p = self.param;
        if self.reverse {
            return Some(vec![p.source]);
        }
        if p.targets.is_empty() {
            return match &self.target {
                Some(t) => tideway_profiles::schema::resource_type_named(t).map(|t| vec![t]),
                None => None,
            };
        }
        Some(match &self.target {
            Some(t) => p.targets.iter().copied().filter(|x| x == t).collect(),
            None => p.targets.to_vec(),
        })
    }
}

/// Every type `includes` may bring in (`None`: any type).
pub fn brought_types(includes: &[Include]) -> Option<Vec<&'static str>> {
    let mut all = Vec::new();
    for i in includes {
        for t in i.brings()? {
            if !all.contains(&t) {
                all.push(t);
            }
        }
    }
    Some(all)
}

/// One include ready to test candidates: the parameter, the target type it is limited to, and
/// the keys it selects (`None` for a reverse include, which tests what a candidate refers to).
type Wanted<'a> = (&'static ReferenceParam, Option<&'a str>, Option<HashSet<String>>);

/// The `candidates` (released, not matching) that `includes` bring in beside `matches`, in
/// candidate order. Each include is turned into one set of keys first (what the matches refer
/// to through it, or the matches themselves for a reverse one), so each candidate costs one
/// look-up per include. Only parsed when includes were asked for.
pub fn select(
    includes: &[Include],
    matches: &[NormalisedResource],
    candidates: Vec<NormalisedResource>,
) -> Vec<NormalisedResource> {
    if includes.is_empty() || candidates.is_empty() {
        return Vec::new();
    }
    let match_keys: HashSet<String> = matches.iter().map(|m| m.reference()).collect();
    let parsed: Vec<Value> =
        matches.iter().map(|m| serde_json::from_slice(&m.json).unwrap_or(Value::Null)).collect();
    let wanted: Vec<Wanted<'_>> = includes
        .iter()
        .map(|i| {
            let p = i.param;
            let forward = (!i.reverse).then(|| {
                parsed.iter().flat_map(|json| p.references(json)).map(str::to_owned).collect::<HashSet<_>>()
            });
            (p, i.target.as_deref(), forward)
        })
        .collect();
    let needs_json = wanted.iter().any(|(_, _, forward)| forward.is_none());
    candidates
        .into_iter()
        .filter(|c| {
            let key = c.reference();
            let json = needs_json.then(|| serde_json::from_slice::<Value>(&c.json).unwrap_or(Value::Null));
            wanted.iter().any(|(p, target, forward)| match (forward, &json) {
                (Some(keys), _) => {
                    p.may_point_at(&c.resource_type)
                        && target.is_none_or(|t| t == c.resource_type)
                        && keys.contains(&key)
                }
                (None, Some(json)) => {
                    c.resource_type == p.source && p.references(json).iter().any(|x| match_keys.contains(*x))
                }
                (None, None) => false,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
