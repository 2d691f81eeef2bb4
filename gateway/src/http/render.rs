//! Rendering answers: searchset Bundles around stored resource bytes, `self` links, and the
//! audit outcome of an answer.

use tideway_adapters::NormalisedResource;

use super::params::Params;
use crate::audit::AuditOutcome;
use crate::bundle::{self, Searchset};
use crate::record::Page;

/// The Bundle for one page; `self_link` is used unless the page carries its own.
pub fn page_body(base_url: &str, self_link: &str, page: &Page) -> Vec<u8> {
    bundle::searchset(&Searchset {
        base_url,
        self_link: page.self_link.as_deref().unwrap_or(self_link),
        next_link: page.next_link.as_deref(),
        total: page.total,
        entries: &page.entries,
        includes: &page.includes,
        outcome: page.outcome.as_ref(),
    })
}

/// A single-page searchset Bundle of resources the gateway made itself (alerts, audit events),
/// each at `{base_url}/{path}/{id}`.
pub fn made_searchset(base_url: &str, path: &str, resources: &[serde_json::Value]) -> Vec<u8> {
    let entry: Vec<_> = resources
        .iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap_or_default();
            serde_json::json!({"fullUrl": format!("{base_url}/{path}/{id}"), "resource": r, "search": {"mode": "match"}})
        })
        .collect();
    serde_json::json!({"resourceType": "Bundle", "type": "searchset", "total": resources.len(), "entry": entry})
        .to_string()
        .into_bytes()
}

/// A single-page Bundle of `entries` (all of them matches).
pub fn entries_body(
    base_url: &str,
    self_link: &str,
    entries: &[NormalisedResource],
    outcome: Option<&serde_json::Value>,
) -> Vec<u8> {
    bundle::searchset(&Searchset {
        base_url,
        self_link,
        next_link: None,
        total: entries.len(),
        entries,
        includes: &[],
        outcome,
    })
}

/// The query for a `self` link: only the parameters this search understood (an ignored one could
/// carry anything, an NHS number included).
pub fn echo_query(params: &Params, known: &[&str]) -> String {
    let pairs: Vec<(&str, &str)> = params.pairs().filter(|(k, _)| known.contains(k)).collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", serde_urlencoded::to_string(&pairs).unwrap_or_default())
    }
}

/// Success, or partial when some source is missing from the answer.
pub fn outcome_of(partial: bool) -> AuditOutcome {
    if partial { AuditOutcome::Partial } else { AuditOutcome::Success }
}

/// `ETag` and `Last-Modified` from a resource's `meta.versionId` and `meta.lastUpdated`, where
/// it has them.
pub fn validators(resource: &[u8]) -> Vec<(actix_web::http::header::HeaderName, String)> {
    use actix_web::http::header;
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "versionId")]
        version_id: Option<String>,
        #[serde(rename = "lastUpdated")]
        last_updated: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct WithMeta {
        meta: Option<Meta>,
    }
    let Ok(WithMeta { meta: Some(meta) }) = serde_json::from_slice::<WithMeta>(resource) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // FHIR ids and version ids are [A-Za-z0-9.-]: nothing to escape inside the quotes.
    if let Some(v) =
        meta.version_id.filter(|v| v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
    {
        out.push((header::ETAG, format!("W/\"{v}\"")));
    }
    // An HTTP date cannot be before 1970 (a source's placeholder date, say): then none is sent.
    if let Some(when) = meta
        .last_updated
        .as_deref()
        .and_then(crate::bundle::parse_instant)
        .filter(|t| *t >= time::OffsetDateTime::UNIX_EPOCH)
    {
        let date = header::HttpDate::from(std::time::SystemTime::from(when));
        out.push((header::LAST_MODIFIED, date.to_string()));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod tests {
    #[test]
    fn validators_come_from_meta_and_never_from_a_date_before_1970() {
        let v = super::validators(br#"{"meta":{"versionId":"3","lastUpdated":"2024-01-02T03:04:05Z"}}"#);
        let got: Vec<(String, String)> = v.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(
            got,
            [
                ("etag".into(), "W/\"3\"".into()),
                ("last-modified".into(), "Tue, 02 Jan 2024 03:04:05 GMT".into())
            ]
        );
        assert!(super::validators(br#"{"meta":{"lastUpdated":"1900-01-01T00:00:00Z"}}"#).is_empty());
        assert!(super::validators(br#"{"meta":{"versionId":"a b"}}"#).is_empty());
        assert!(super::validators(b"{}").is_empty());
    }
}
