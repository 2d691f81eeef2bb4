//! Query parameters and content negotiation shared by the FHIR handlers.

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest};
use serde_json::Value;

use super::ApiError;
use crate::bundle::Notice;

/// Parameters every FHIR interaction accepts and that never change the result's content.
const ALWAYS_ALLOWED: &[&str] = &["_format", "_pretty"];

/// Parameters that reach other resources than the ones searched where this interaction does not
/// take them: `_include` and `_revinclude` (where not `known`, and always with a modifier such
/// as `:iterate`), `_has` (reverse chaining) and chained parameters (`subject.name=`). Refused
/// with a 400 even under lenient handling: ignoring them would answer a different question
/// than the one asked.
fn reaches_other_resources(name: &str, known: &[&str]) -> bool {
    if known.contains(&name) {
        return false;
    }
    let base = name.split(':').next().unwrap_or(name);
    matches!(base, "_include" | "_revinclude" | "_has") || name.contains('.')
}

/// Parameters sent in a POST body (`_search` forms, operation invocations), attached to the
/// request by the POST route so the same handlers read them as if they were in the query.
#[derive(Debug, Clone)]
pub struct BodyParams(pub Vec<(String, String)>);

/// Reads a POST body as parameters: an `application/x-www-form-urlencoded` form, or (for
/// operations) a FHIR `Parameters` resource whose parameters are primitive values.
pub fn body_params(content_type: Option<&str>, body: &[u8]) -> Result<BodyParams, ApiError> {
    let mime =
        content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(BodyParams(Vec::new()));
    }
    match mime.as_str() {
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(body)
            .map(BodyParams)
            .map_err(|_| ApiError::invalid("the form body is not valid URL encoding")),
        "application/fhir+json" | "application/json" => parameters(body),
        _ => Err(ApiError::invalid(
            "send parameters as application/x-www-form-urlencoded, or a Parameters resource as application/fhir+json",
        )),
    }
}

/// The primitive (and reference) parameters of a `Parameters` resource, as name/value pairs.
fn parameters(body: &[u8]) -> Result<BodyParams, ApiError> {
    let not =
        || ApiError::invalid("the body must be a Parameters resource whose parameters have primitive values");
    let v: Value = serde_json::from_slice(body).map_err(|_| not())?;
    if v.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(not());
    }
    let mut pairs = Vec::new();
    for p in v.get("parameter").and_then(Value::as_array).into_iter().flatten() {
        let name = p.get("name").and_then(Value::as_str).ok_or_else(not)?;
        let value = p
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.starts_with("value")))
            .and_then(|(k, v)| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                // A reference is read as its literal reference, as a search parameter reads it.
                Value::Object(o) if k == "valueReference" => {
                    o.get("reference").and_then(Value::as_str).map(str::to_owned)
                }
                _ => None,
            })
            .ok_or_else(not)?;
        pairs.push((name.to_owned(), value));
    }
    Ok(BodyParams(pairs))
}

/// The query string as ordered pairs, with the unknown ones either refused or reported.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// Unknown parameters ignored under lenient handling, for the outcome entry.
    pub ignored: Vec<Notice>,
    /// The names of the parameters taken, each once in the order given (what the audit says
    /// was asked: names the gateway knows, never a value or a name it does not).
    taken: Vec<String>,
}

impl Params {
    /// Parses `req`'s query string, accepting only `known` (and `_format`, `_pretty`). Unknown
    /// parameters are a 400 `not-supported` naming them (a filter must never be dropped
    /// silently), unless the client sent `Prefer: handling=lenient`: then they are ignored and
    /// reported in the outcome entry.
    pub fn parse(req: &HttpRequest, known: &[&str]) -> Result<Self, ApiError> {
        let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
            .map_err(|_| ApiError::invalid("the query string is not valid URL encoding"))?;
        if let Some(body) = req.extensions().get::<BodyParams>() {
            pairs.extend(body.0.iter().cloned());
        }
        let strict = !prefers_lenient(req);
        let mut ignored = Vec::new();
        let mut taken = Vec::new();
        for (name, _) in &pairs {
            if reaches_other_resources(name, known) {
                return Err(ApiError::unsupported_parameter(name));
            }
            let base = name.split(':').next().unwrap_or(name);
            if !known.contains(&base) && !ALWAYS_ALLOWED.contains(&base) {
                if strict {
                    return Err(ApiError::unsupported_parameter(name));
                }
                let notice = Notice::IgnoredParameter(super::error::echo(name));
                if !ignored.contains(&notice) {
                    ignored.push(notice);
                }
            } else if name.contains(':') {
                // Modifiers are not supported on any parameter yet.
                if strict {
                    return Err(ApiError::unsupported_parameter(name));
                }
                ignored.push(Notice::IgnoredParameter(super::error::echo(name)));
            } else if !taken.iter().any(|t| t == base) {
                taken.push(base.to_owned());
            }
        }
        Ok(Self { pairs, ignored, taken })
    }

    /// What a search of `resource_type` with these parameters asks, for the audit:
    /// `Condition?patient&code` (the names taken, never a value).
    pub fn audit_query(&self, resource_type: &str) -> String {
        if self.taken.is_empty() {
            resource_type.to_owned()
        } else {
            format!("{resource_type}?{}", self.taken.join("&"))
        }
    }

    /// Every (name, value) pair, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The single value of `name`; a 400 if it is repeated.
    pub fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::invalid(format!(
                "parameter '{}' may be given only once",
                super::error::echo(name)
            ))
            .at(super::error::echo(name)));
        }
        Ok(first)
    }

    /// `_count` within `1..=max`, or `default`.
    pub fn count(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.one("_count")? {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n.min(max)),
                _ => Err(ApiError::invalid("_count must be a positive whole number").at("_count")),
            },
        }
    }
}

/// Whether `Prefer` asks for `handling=lenient` (the value quoted or not). Anything else,
/// `handling=strict` included, is strict.
fn prefers_lenient(req: &HttpRequest) -> bool {
    prefer_tokens(req).any(|p| {
        let Some((k, val)) = p.split_once('=') else { return false };
        k.trim().eq_ignore_ascii_case("handling")
            && val.trim().trim_matches('"').eq_ignore_ascii_case("lenient")
    })
}

/// Every preference of every `Prefer` header (split on `,` and `;`), trimmed.
pub fn prefer_tokens(req: &HttpRequest) -> impl Iterator<Item = String> + '_ {
    req.headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']).map(|p| p.trim().to_owned()))
}

/// The media types `Accept` names, lower-cased, without parameters.
pub fn accepted(req: &HttpRequest) -> Vec<String> {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| m.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Refuses (406) requests whose `_format` or `Accept` ask for something other than FHIR JSON.
pub fn negotiate(req: &HttpRequest) -> Result<(), ApiError> {
    let format = serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "_format").map(|(_, v)| v));
    if let Some(f) = format {
        let f = f.trim().to_ascii_lowercase();
        let mime = f.split(';').next().unwrap_or_default().trim();
        // An unencoded `+` in the query arrives as a space.
        if !matches!(mime, "json" | "application/json" | "application/fhir+json" | "application/fhir json") {
            return Err(ApiError::not_acceptable());
        }
        return Ok(());
    }
    let accepts = accepted(req);
    if accepts.is_empty()
        || accepts.iter().any(|m| {
            matches!(
                m.as_str(),
                "*/*"
                    | "application/*"
                    | "application/json"
                    | "application/fhir+json"
                    | "application/json+fhir"
            )
        })
    {
        Ok(())
    } else {
        Err(ApiError::not_acceptable())
    }
}
