//! A registration as an administrator sends it, parsed field by field so a refusal names the
//! field and says what it must be, never repeating what was sent.

use serde_json::{Map, Value};
use tideway_adapters::{Attestation, ClientKey, SourceConfig, SourceId, SourceTls, SystemKind};
use tideway_profiles::OdsCode;

/// The fields a registration may carry.
const FIELDS: [&str; 9] =
    ["id", "name", "kind", "ods_code", "base_url", "timeout_ms", "max_body_bytes", "attestation", "tls"];

/// A field of the input is wrong: which, and what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, e.g. `base_url` or `attestation.expires`.
    pub field: String,
    /// What it must be.
    pub message: String,
}

/// A field name as it may be repeated: a short plain name, or nothing of what was sent.
fn shown(name: &str) -> String {
    let plain = (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain { name.to_owned() } else { "(not shown)".to_owned() }
}

fn bad(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_owned(), message: format!("{field}: {}", message.into()) }
}

fn text<'a>(o: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, FieldError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

fn required<'a>(o: &'a Map<String, Value>, field: &str) -> Result<&'a str, FieldError> {
    text(o, field)?.ok_or_else(|| bad(field, "is required"))
}

fn number(
    o: &Map<String, Value>,
    field: &str,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Result<u64, FieldError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().filter(|n| range.contains(n)).ok_or_else(|| {
            bad(field, format!("must be a whole number from {} to {}", range.start(), range.end()))
        }),
    }
}

/// Parses a registration. `path_id` is the id in the URL (an update): the body's `id`, when
/// given, must be the same.
pub fn parse(body: &[u8], path_id: Option<&SourceId>) -> Result<SourceConfig, FieldError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| FieldError { field: String::new(), message: "the body must be a JSON object".into() })?;
    let Value::Object(o) = value else {
        return Err(FieldError { field: String::new(), message: "the body must be a JSON object".into() });
    };
    if let Some(unknown) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        let named = shown(unknown);
        return Err(FieldError {
            field: named.clone(),
            message: format!("unknown field '{named}'; a registration has {}", FIELDS.join(", ")),
        });
    }
    let id = match (text(&o, "id")?, path_id) {
        (None, Some(p)) => p.clone(),
        (None, None) => return Err(bad("id", "is required")),
        (Some(given), path) => {
            let id = SourceId::parse(given).map_err(|e| bad("id", e.to_string()))?;
            if path.is_some_and(|p| *p != id) {
                return Err(bad("id", "must be the id in the URL (an id cannot be changed)"));
            }
            id
        }
    };
    let name = required(&o, "name")?;
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(bad("name", "must be 1 to 200 characters without control characters"));
    }
    let kind = required(&o, "kind")?;
    let kind: SystemKind = serde_json::from_value(Value::String(kind.to_owned()))
        .ok()
        .filter(|k| tideway_adapters::registry::is_supported(*k))
        .ok_or_else(|| {
            bad("kind", format!("must be one of {}", tideway_adapters::registry::supported_list()))
        })?;
    let ods_code = OdsCode::parse(required(&o, "ods_code")?).map_err(|e| bad("ods_code", e.to_string()))?;
    let base_url = url::Url::parse(required(&o, "base_url")?)
        .ok()
        .filter(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
                && u.fragment().is_none()
        })
        .ok_or_else(|| {
            bad("base_url", "must be an absolute http(s) URL without credentials, query or fragment")
        })?;
    let timeout_ms = number(&o, "timeout_ms", 1..=300_000, 5_000)?;
    let max_body_bytes = number(&o, "max_body_bytes", 1024..=1 << 30, 32 * 1024 * 1024)?;
    let attestation = attestation(o.get("attestation"))?;
    let tls = match o.get("tls") {
        None | Some(Value::Null) => None,
        Some(Value::Object(t)) => Some(tls(t)?),
        Some(_) => return Err(bad("tls", TLS_SHAPE)),
    };
    Ok(SourceConfig {
        id,
        name: name.to_owned(),
        kind,
        ods_code,
        base_url,
        timeout_ms,
        max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
        attestation: Some(attestation),
        tls,
    })
}

const TLS_SHAPE: &str = "must be {client_certificate, client_key or client_key_pem[, ca_certificate]}: \
     PEM file paths on the gateway's host, or the key itself as PEM text (held encrypted at rest)";

/// Most bytes of a client key handed over as PEM text.
const MAX_KEY_PEM: usize = 16 * 1024;

/// Parses `tls`: certificate and authority are paths on the gateway's host; the key is a path
/// (`client_key`) or the PEM text itself (`client_key_pem`), which the registry seals before
/// it is stored.
fn tls(t: &Map<String, Value>) -> Result<SourceTls, FieldError> {
    const MEMBERS: [&str; 4] = ["client_certificate", "client_key", "client_key_pem", "ca_certificate"];
    if let Some(unknown) = t.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
        return Err(bad("tls", format!("has no member {} ({TLS_SHAPE})", shown(unknown))));
    }
    let path = |member: &str| -> Result<Option<std::path::PathBuf>, FieldError> {
        match t.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.into())),
            Some(_) => Err(bad(&format!("tls.{member}"), "must be a file path on the gateway's host")),
        }
    };
    let client_certificate =
        path("client_certificate")?.ok_or_else(|| bad("tls.client_certificate", "is required"))?;
    let client_key = match (path("client_key")?, t.get("client_key_pem")) {
        (Some(file), None | Some(Value::Null)) => ClientKey::File(file),
        (None, Some(Value::String(pem))) => {
            let looks_like_a_key = pem.len() <= MAX_KEY_PEM
                && pem.trim_start().starts_with("-----BEGIN ")
                && pem.contains("PRIVATE KEY-----");
            if !looks_like_a_key {
                return Err(bad(
                    "tls.client_key_pem",
                    format!(
                        "must be a PEM private key (PKCS#8, PKCS#1 or SEC1), at most {MAX_KEY_PEM} bytes"
                    ),
                ));
            }
            ClientKey::Open(secrecy::SecretBox::new(pem.as_bytes().into()))
        }
        (None, None | Some(Value::Null)) => {
            return Err(bad("tls.client_key", "or tls.client_key_pem is required"));
        }
        _ => return Err(bad("tls.client_key_pem", "is given instead of tls.client_key, not beside it")),
    };
    Ok(SourceTls { client_certificate, client_key, ca_certificate: path("ca_certificate")? })
}

/// A registration whose client key cannot be held encrypted (no secrets key), as a field error.
pub fn unsealable(e: &crate::registry::secrets::SecretsError) -> FieldError {
    bad("tls.client_key_pem", e.to_string())
}

/// Parses an attestation (`{"scheme", "status", "expires"}`), naming the member at fault.
pub fn attestation(value: Option<&Value>) -> Result<Attestation, FieldError> {
    let Some(Value::Object(a)) = value else {
        return Err(bad(
            "attestation",
            "is required: {\"scheme\": \"dspt\", \"status\": \"standards-met\", \"expires\": \"YYYY-MM-DD\"}",
        ));
    };
    if let Some(unknown) = a.keys().find(|k| !["scheme", "status", "expires"].contains(&k.as_str())) {
        let named = format!("attestation.{}", shown(unknown));
        return Err(FieldError { field: named.clone(), message: format!("unknown field '{named}'") });
    }
    // Each member alone beside valid others, so the refusal names the one at fault.
    let check = |name: &str, message: &str| -> Result<(), FieldError> {
        let mut probe =
            serde_json::json!({ "scheme": "dspt", "status": "standards-met", "expires": "2000-01-01" });
        probe[name] = a.get(name).cloned().unwrap_or(Value::Null);
        serde_json::from_value::<Attestation>(probe)
            .map(drop)
            .map_err(|_| bad(&format!("attestation.{name}"), message))
    };
    check("scheme", "must be 1 to 32 lower-case letters, digits or '-', e.g. dspt")?;
    check("status", "must be standards-met, approaching-standards or standards-not-met")?;
    check("expires", "must be a day, YYYY-MM-DD")?;
    serde_json::from_value(Value::Object(a.clone()))
        .map_err(|_| bad("attestation", "is not a valid attestation"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(v: &Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    fn good() -> Value {
        json!({
            "id": "hackney-new", "name": "Hackney exchange", "kind": "emis", "ods_code": "LBX42",
            "base_url": "https://hackney.example.nhs.uk/api/",
            "attestation": {"scheme": "dspt", "status": "standards-met", "expires": "2027-06-30"}
        })
    }

    #[test]
    fn a_full_registration_parses_with_defaults() {
        let c = parse(&body(&good()), None).unwrap();
        assert_eq!(c.id.as_str(), "hackney-new");
        assert_eq!(c.kind, SystemKind::Emis);
        assert_eq!(c.timeout_ms, 5_000);
        assert_eq!(c.max_body_bytes, 32 * 1024 * 1024);
        assert_eq!(c.attestation.unwrap().scheme, "dspt");
    }

    #[test]
    fn each_bad_field_is_named() {
        let att =
            |status: &str, expires: &str| json!({"scheme": "dspt", "status": status, "expires": expires});
        let cases: [(&str, Value, &str); 11] = [
            ("id", json!("Bad Id"), "id"),
            ("name", json!(""), "name"),
            ("kind", json!("cerner"), "kind"),
            ("ods_code", json!("x"), "ods_code"),
            ("base_url", json!("ftp://x.example/"), "base_url"),
            ("base_url", json!("https://user:pw@x.example/"), "base_url"),
            ("timeout_ms", json!(0), "timeout_ms"),
            ("max_body_bytes", json!("big"), "max_body_bytes"),
            ("attestation", att("fine", "2027-06-30"), "attestation.status"),
            ("attestation", att("standards-met", "soon"), "attestation.expires"),
            ("attestation", Value::Null, "attestation"),
        ];
        for (field, value, named) in cases {
            let mut v = good();
            v[field] = value;
            let e = parse(&body(&v), None).unwrap_err();
            assert_eq!(e.field, named, "{field}: {}", e.message);
            assert!(e.message.starts_with(named), "{}", e.message);
        }
        let mut v = good();
        v["colour"] = json!("blue");
        assert_eq!(parse(&body(&v), None).unwrap_err().field, "colour");
        assert!(parse(b"[1]", None).is_err());
    }

    #[test]
    fn the_client_key_is_a_path_or_pem_text_never_both_and_bad_tls_is_named() {
        const PEM: &str =
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        let with = |tls: Value| {
            let mut v = good();
            v["tls"] = tls;
            parse(&body(&v), None)
        };
        let file = with(json!({"client_certificate": "/c.pem", "client_key": "/k.pem"})).unwrap();
        assert_eq!(file.tls.unwrap().client_key, ClientKey::File("/k.pem".into()));
        let open =
            with(json!({"client_certificate": "/c.pem", "client_key_pem": PEM, "ca_certificate": "/ca"}))
                .unwrap()
                .tls
                .unwrap();
        assert!(matches!(open.client_key, ClientKey::Open(_)));
        assert_eq!(open.ca_certificate, Some("/ca".into()));
        let cases = [
            (
                json!({"client_certificate": "/c.pem", "client_key": "/k", "client_key_pem": PEM}),
                "tls.client_key_pem",
            ),
            (json!({"client_certificate": "/c.pem", "client_key_pem": "a password"}), "tls.client_key_pem"),
            (json!({"client_certificate": "/c.pem", "client_key": {"sealed": "v1.x"}}), "tls.client_key"),
            (json!({"client_certificate": "/c.pem"}), "tls.client_key"),
            (json!({"client_key": "/k"}), "tls.client_certificate"),
            (json!({"client_certificate": "/c.pem", "client_key": "/k", "pin": 1}), "tls"),
            (json!("on"), "tls"),
        ];
        for (tls, named) in cases {
            let e = with(tls.clone()).unwrap_err();
            assert_eq!(e.field, named, "{tls}: {}", e.message);
            assert!(!e.message.contains("a password"), "what was sent is not repeated");
        }
    }

    #[test]
    fn an_update_keeps_the_id_of_its_url() {
        let path = SourceId::parse("hackney-new").unwrap();
        let mut v = good();
        v.as_object_mut().unwrap().remove("id");
        assert_eq!(parse(&body(&v), Some(&path)).unwrap().id, path);
        v["id"] = json!("another");
        assert_eq!(parse(&body(&v), Some(&path)).unwrap_err().field, "id");
    }
}
