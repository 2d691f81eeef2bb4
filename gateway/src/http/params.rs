//! Query parameters and content negotiation shared by the FHIR handlers.

use actix_web::HttpRequest;
use actix_web::http::header;

use super::ApiError;
use crate::bundle::Notice;

/// Parameters every FHIR interaction accepts and that never change the result's content.
const ALWAYS_ALLOWED: &[&str] = &["_format", "_pretty"];

/// The query string as ordered pairs, with the unknown ones either refused or reported.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// Unknown parameters ignored under lenient handling, for the outcome entry.
    pub ignored: Vec<Notice>,
}

impl Params {
    /// Parses `req`'s query string, accepting only `known` (and `_format`, `_pretty`). Unknown
    /// parameters are a 400 `not-supported` naming them (a filter must never be dropped
    /// silently), unless the client sent `Prefer: handling=lenient`: then they are ignored and
    /// reported in the outcome entry.
    pub fn parse(req: &HttpRequest, known: &[&str]) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
            .map_err(|_| ApiError::invalid("the query string is not valid URL encoding"))?;
        let strict = !prefers_lenient(req);
        let mut ignored = Vec::new();
        for (name, _) in &pairs {
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
            }
        }
        Ok(Self { pairs, ignored })
    }

    /// Every (name, value) pair, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
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
    req.headers().get_all("prefer").filter_map(|v| v.to_str().ok()).any(|v| {
        v.split([',', ';']).any(|p| {
            let p = p.trim();
            let Some((k, val)) = p.split_once('=') else { return false };
            k.trim().eq_ignore_ascii_case("handling")
                && val.trim().trim_matches('"').eq_ignore_ascii_case("lenient")
        })
    })
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
    let accepts: Vec<String> = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| m.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty())
        .collect();
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
