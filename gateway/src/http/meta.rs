//! Public endpoints: the CapabilityStatement, SMART configuration, liveness and readiness.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::fhir::SEARCHABLE_TYPES;
use super::params::negotiate;
use super::{ApiError, FHIR_JSON};
use crate::app::AppState;

/// The CapabilityStatement: what this gateway really serves.
pub fn capability_statement(base_url: &str, date: &str) -> Value {
    let token_url = format!("{base_url}/token");
    let mut resources = vec![json!({
        "type": "Patient",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [{
            "name": "identifier",
            "type": "token",
            "documentation": "NHS number, as https://fhir.nhs.uk/Id/nhs-number|{number}"
        }],
        "operation": [{
            "name": "everything",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
            "documentation": "Everything the sources hold for the patient; supports _type, _since and _count"
        }]
    })];
    for t in SEARCHABLE_TYPES {
        resources.push(json!({
            "type": t,
            "interaction": [{"code": "search-type"}],
            "searchParam": [
                {"name": "patient", "type": "reference", "documentation": "The gateway's patient id"},
                {"name": "subject", "type": "reference", "documentation": "Same as patient"}
            ]
        }));
    }
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "Tideway",
        "kind": "instance",
        "software": {"name": "Tideway", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Tideway regional FHIR gateway", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Read-only gateway federating borough exchanges. Every request is audited.",
            "security": {
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": "token", "valueUri": token_url}]
                }],
                "service": [{
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR"
                    }],
                    "text": "SMART Backend Services (client_credentials with private_key_jwt, RS384 or ES384); the user travels as IHE IUA claims in the client assertion"
                }],
                "description": "Obtain an access token at the token endpoint with a signed client assertion; send it as a Bearer token."
            },
            "resource": resources
        }]
    })
}

/// `GET /metadata`
pub async fn metadata(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    negotiate(&req)?;
    Ok(HttpResponse::Ok().content_type(FHIR_JSON).body(state.capability.clone()))
}

/// `GET /.well-known/smart-configuration`
pub async fn smart_configuration(state: web::Data<AppState>) -> HttpResponse {
    let body = json!({
        "issuer": state.base_url,
        "token_endpoint": format!("{}/token", state.base_url),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": ["system/*.read", "system/*.rs"],
        "capabilities": ["client-confidential-asymmetric"]
    });
    HttpResponse::Ok().content_type("application/json").body(body.to_string())
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(r#"{"status":"ok"}"#)
}

/// `GET /readyz`: the store answers, so requests can be audited.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().content_type("application/json").body(r#"{"status":"ready"}"#),
        Err(_) => HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(r#"{"status":"not ready","reason":"store unavailable"}"#),
    }
}

/// `GET /metrics` on the operator listener.
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics::encode())
}

/// `GET /metrics` on the main listener: the same, for holders of a valid access token.
pub async fn metrics_with_token(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    match state.tokens.authenticate(header) {
        Ok(_) => Ok(metrics().await),
        Err(tideway_auth::service::TokenError::Missing) => Err(ApiError::missing_token()),
        Err(_) => Err(ApiError::invalid_token("the access token is not valid")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_statement_is_valid_r4() {
        let cs = capability_statement("http://127.0.0.1:8080", "2026-11-22T00:00:00Z");
        assert_eq!(tideway_profiles::validate::check_r4_value(&cs), Ok(()));
        assert_eq!(cs["fhirVersion"], "4.0.1");
    }
}
