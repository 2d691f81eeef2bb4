//! R4 structural validation of what sources send and of what the gateway builds.
//!
//! Sources' JSON is never round-tripped through a typed model (slow, and lossy in lenient
//! modes); the original bytes are passed on and this module only decides whether they are a
//! valid R4 resource, by HL7's R4 JSON schema as [`crate::schema`] walks it: unknown elements,
//! wrong JSON types, malformed dates and codes, codes outside required value sets, single values
//! where R4 has arrays and wrong choice-type names are all rejected, nested resources included.

use serde_json::Value;

use crate::schema;

/// Why a resource is not valid R4. The message names the path and the problem, never the
/// offending value (see [`schema::SchemaError`]), but callers still should not echo it to
/// clients as if it were the gateway's own diagnosis of a source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid FHIR R4 resource: {0}")]
pub struct InvalidResource(pub String);

impl From<schema::SchemaError> for InvalidResource {
    fn from(e: schema::SchemaError) -> Self {
        InvalidResource(e.to_string())
    }
}

/// Checks that `json` is one valid R4 resource (any type).
pub fn check_r4_resource(json: &[u8]) -> Result<(), InvalidResource> {
    // serde_json's syntax errors name a line and column, never the text.
    let value: Value =
        serde_json::from_slice(json).map_err(|e| InvalidResource(format!("not JSON ({e})")))?;
    check_r4_value(&value)
}

/// Same as [`check_r4_resource`] for an already-parsed JSON value, without serialising it again.
pub fn check_r4_value(value: &Value) -> Result<(), InvalidResource> {
    schema::check_resource(value).map_err(InvalidResource::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_observation_with_decimal_and_extension() {
        let obs = br#"{"resourceType":"Observation","id":"o1","status":"final",
            "extension":[{"url":"http://example.org/x","valueString":"y"}],
            "code":{"text":"Hb"},"valueQuantity":{"value":1.50,"unit":"g/dL"}}"#;
        assert_eq!(check_r4_resource(obs), Ok(()));
    }

    #[test]
    fn rejects_unknown_element_and_wrong_type() {
        let bad = br#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"colour":"red"}"#;
        assert!(check_r4_resource(bad).is_err());
        let bad2 = br#"{"resourceType":"Patient","gender":7}"#;
        assert!(check_r4_resource(bad2).is_err());
        assert!(check_r4_resource(b"{\"resourceType\":\"NotAThing\"}").is_err());
        assert!(check_r4_resource(b"[1,2]").is_err());
        assert!(check_r4_resource(b"{\"resourceType\":").is_err());
    }
}
