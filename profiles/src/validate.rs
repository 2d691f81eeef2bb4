//! R4 structural validation, the one place fhirbolt's typed model is instantiated.
//!
//! Sources' JSON is never round-tripped through fhirbolt (it is slow to parse and lossy in its
//! lenient modes); the original bytes are passed on and this module only decides whether they are
//! a valid R4 resource. Strict mode rejects unknown elements, wrong primitive types and wrong
//! choice-type names, which is what keeps everything the gateway emits valid.

use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};

/// Why a resource is not valid R4. The message names the structural problem fhirbolt found;
/// callers must not echo it to clients when it could contain source content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid FHIR R4 resource: {0}")]
pub struct InvalidResource(pub String);

/// Checks that `json` is one valid R4 resource (any type), in strict mode.
pub fn check_r4_resource(json: &[u8]) -> Result<(), InvalidResource> {
    let config = DeserializationConfig { mode: DeserializationMode::Strict };
    fhirbolt::json::from_slice::<Resource>(json, Some(config))
        .map(|_| ())
        .map_err(|e| InvalidResource(redact(&e.to_string())))
}

/// Same as [`check_r4_resource`] for an already-parsed JSON value.
pub fn check_r4_value(value: &serde_json::Value) -> Result<(), InvalidResource> {
    let bytes = serde_json::to_vec(value).map_err(|e| InvalidResource(e.to_string()))?;
    check_r4_resource(&bytes)
}

/// fhirbolt's messages sometimes quote the offending value; keep only the part before any quote
/// so no source content (which may be clinical) travels further.
fn redact(message: &str) -> String {
    let cut = message.find(['"', '`']).unwrap_or(message.len());
    message[..cut].trim_end_matches([' ', ':']).chars().take(200).collect()
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
    }
}
