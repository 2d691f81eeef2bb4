//! The CapabilityStatement: what this gateway really serves, built once at start-up.

use serde_json::{Value, json};
use tideway_profiles::maps;

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
            "documentation": "Everything the sources hold for the patient; supports _type, _since, _count, _summary (true, text, data, count, false) and _elements"
        }, {
            "name": "match",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match",
            "documentation": "IHE PDQm ITI-119: POST a Parameters with resource (a Patient: NHS number, name, birthDate, gender, postcode), onlyCertainMatches (default true) and count (1 to 20, default 10); candidates carry search.score and the match-grade extension. Sources are asked by NHS number; without one, the candidates are those the gateway has seen with the birth date and those the sources that can search by demographics (FHIR R4, social care) find by birthdate, family and gender, at most 20"
        }, {
            "name": "export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
            "documentation": "Bulk Data export (Prefer: respond-async; GET, or POST with a Parameters body) of the whole registered population's Patient-compartment data, de-identified, opted-out patients left out; _type, _since and _outputFormat=application/fhir+ndjson; patient is refused (a de-identified export names no one); for secondary use only"
        }]
    })];
    for t in tideway_profiles::PATIENT_SEARCH_TYPES {
        let mut params = vec![
            json!({"name": "patient", "type": "reference", "documentation": "The gateway's patient id: p..., Patient/p... or its fullUrl"}),
            json!({"name": "subject", "type": "reference", "documentation": "Same as patient"}),
            json!({"name": "_id", "type": "token"}),
            json!({"name": "_lastUpdated", "type": "date"}),
        ];
        params.extend(crate::search::supported(t).iter().map(|p| json!({"name": p.name, "type": p.kind})));
        let sorts = if crate::search::supported(t).iter().any(|p| p.kind == "date") {
            "_sort: date, -date, _lastUpdated, -_lastUpdated"
        } else {
            "_sort: _lastUpdated, -_lastUpdated"
        };
        let includes: Vec<String> = crate::search::include::includes_of(t).map(|p| p.spelled()).collect();
        let revincludes: Vec<String> =
            crate::search::include::revincludes_of(t).map(|p| p.spelled()).collect();
        resources.push(json!({
            "type": t,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchInclude": includes,
            "searchRevInclude": revincludes,
            "searchParam": params,
            "documentation": format!("Read by id through the record of the patient it belongs to (ids this gateway has handed out); searches filter what the requester may see; {sorts}; _summary: true, text, data, count, false; _elements: top-level element names (mandatory and modifier elements are always kept); _include and _revinclude bring in only what the same record holds and the requester may see, beside the matches on each page; _total: accurate; POST [type]/_search takes the same parameters as a form")
        }));
    }
    resources.push(json!({
        "type": "Provenance",
        "interaction": [{"code": "read"}],
        "documentation": "The gateway's own Provenance for merged facts and terminology maps, and sources' Provenance, as bundles include them; read through the record of the patient they are about, with that patient's consent and audit"
    }));
    for t in crate::record::SHARED_TYPES {
        resources.push(json!({
            "type": t,
            "interaction": [{"code": "read"}],
            "documentation": "Read from the source named in the id ({source}.{local id}), so the references a record carries can be followed"
        }));
    }
    resources.push(json!({
        "type": "Consent",
        "versioning": "versioned",
        "interaction": [{"code": "read"}, {"code": "history-instance"}, {"code": "create"}, {"code": "update"}, {"code": "search-type"}],
        "searchParam": [{"name": "patient", "type": "reference", "documentation": "The gateway's patient id; exactly one"}],
        "documentation": "A patient's consent directives, every version kept; recorded by the registered practice or the patient's own app. provision supports type, period, actor (ODS identifier), purpose, class, code, dataPeriod and nested provision; anything else is refused"
    }));
    resources.push(json!({
        "type": "AuditEvent",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            {"name": "patient", "type": "reference", "documentation": "The gateway's patient id; required"},
            {"name": "date", "type": "date", "documentation": "When recorded; eq, ge, gt, le, lt, sa, eb; repeatable (all must hold)"},
            {"name": "_count", "type": "number", "documentation": "1 to 1000, default 100; newest first"}
        ],
        "documentation": "Who accessed a patient's record (BALP-style, one event per request), for privacy officers only"
    }));
    resources.push(json!({
        "type": "Group",
        "interaction": [{"code": "search-type"}],
        "operation": [{
            "name": "export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
            "documentation": "Bulk Data export of a Group's patients, de-identified, for secondary use only (HOPERAT, HRESCH, PUBHLTH under an agreement that grants it): source.{id}, practice.{ODS code}, cohort.{code set}; GET /Group lists them"
        }],
        "documentation": "Groups an export can be asked for (definitions, never member lists)"
    }));
    resources.push(json!({
        "type": "MeasureReport",
        "interaction": [{"code": "search-type"}],
        "searchParam": [{"name": "measure", "type": "reference", "documentation": "diabetes, hypertension, asthma or copd"}],
        "documentation": "Population figures per borough by age band and sex, counts below the threshold suppressed (data-absent-reason masked), for secondary use only"
    }));
    json!({
        "resourceType": "CapabilityStatement",
        "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
        "extension": [terminology_maps()],
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
            "documentation": "Gateway federating borough exchanges; clinical data is read-only, consent directives are recorded here. Every request is audited.",
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
            "resource": resources,
            "operation": [{
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
                "documentation": "Bulk Data export (Prefer: respond-async; GET, or POST with a Parameters body) of the whole registered population, de-identified, opted-out patients left out; _type, _since and _outputFormat=application/fhir+ndjson; for secondary use only"
            }]
        }]
    })
}

/// Extension on the CapabilityStatement naming the terminology maps (and their one version)
/// the adapters add SNOMED CT and dm+d codings from, so an answer can be tied to the maps that
/// made it. Every coding a map added carries the same version.
pub const TERMINOLOGY_MAPS_URL: &str = "https://fhir.tideway.london/StructureDefinition/terminology-maps";

fn terminology_maps() -> Value {
    let mut parts = vec![json!({"url": "version", "valueString": maps::version()})];
    parts.extend(maps::info().iter().map(|m| {
        json!({"url": "map", "valueString": format!("{} ({} to {}, {} pairs)", m.name, m.from, m.to, m.pairs)})
    }));
    json!({"url": TERMINOLOGY_MAPS_URL, "extension": parts})
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
