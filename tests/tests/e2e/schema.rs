//! Everything the gateway emits validates against HL7's R4 JSON schema. The validator is built
//! once and every collected body is checked in this one test; each resource (nested ones too)
//! is checked against its own type's definition.

use std::collections::HashMap;

use serde_json::{Value, json};
use tideway_tests::{Options, TestApp, nhs_search, shared_data};

struct Validator {
    schema: Value,
    by_type: HashMap<String, jsonschema::Validator>,
}

impl Validator {
    fn new() -> Self {
        let text = std::fs::read_to_string(shared_data("fhir-r4-schema/fhir.schema.json")).unwrap();
        let mut schema: Value = serde_json::from_str(&text).unwrap();
        schema.as_object_mut().unwrap().remove("id");
        let defs = schema["definitions"].as_object_mut().unwrap();
        // HL7's packaged schema is the 4.0.0 build: admit 4.0.1 where versions are enumerated.
        for (_, d) in defs.iter_mut() {
            for pointer in ["/properties/fhirVersion/enum", "/properties/fhirVersion/items/enum"] {
                if let Some(Value::Array(a)) = d.pointer_mut(pointer)
                    && !a.contains(&json!("4.0.1"))
                {
                    a.push(json!("4.0.1"));
                }
            }
        }
        // Nested resources are validated one by one against their own type instead of the
        // schema's oneOf over every type.
        defs.insert("ResourceList".into(), json!({"type": "object", "required": ["resourceType"]}));
        Self { schema, by_type: HashMap::new() }
    }

    fn errors(&mut self, resource: &Value, path: &str, out: &mut Vec<String>) {
        let Some(rt) = resource["resourceType"].as_str() else {
            out.push(format!("{path}: no resourceType"));
            return;
        };
        if !self.by_type.contains_key(rt) {
            if self.schema["definitions"].get(rt).is_none() {
                out.push(format!("{path}: unknown resourceType {rt}"));
                return;
            }
            let mut s = self.schema.clone();
            s.as_object_mut().unwrap().insert("$ref".into(), json!(format!("#/definitions/{rt}")));
            let v = jsonschema::options().with_draft(jsonschema::Draft::Draft6).build(&s).unwrap();
            self.by_type.insert(rt.to_owned(), v);
        }
        let v = &self.by_type[rt];
        for e in v.iter_errors(resource).take(3) {
            out.push(format!("{path}{rt}: {} at {}", e, e.instance_path));
        }
        for (p, nested) in nested_resources(resource, path) {
            self.errors(nested, &p, out);
        }
    }
}

fn nested_resources<'a>(v: &'a Value, path: &str) -> Vec<(String, &'a Value)> {
    let mut out = Vec::new();
    if let Value::Object(map) = v {
        for (k, child) in map {
            if matches!(k.as_str(), "resource" | "contained" | "outcome") {
                let items: Vec<&Value> = match child {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                for (i, r) in items.into_iter().enumerate() {
                    if r.get("resourceType").is_some() {
                        out.push((format!("{path}{k}[{i}]/"), r));
                        continue;
                    }
                }
            }
            if !matches!(k.as_str(), "resource" | "contained" | "outcome") {
                out.extend(nested_resources(child, &format!("{path}{k}/")));
            }
        }
    } else if let Value::Array(a) = v {
        for (i, item) in a.iter().enumerate() {
            out.extend(nested_resources(item, &format!("{path}{i}/")));
        }
    }
    out
}

#[tokio::test]
async fn everything_the_gateway_emits_validates_against_the_r4_schema() {
    let app = TestApp::spawn(Options {
        boroughs: 3,
        from_dir: Some(shared_data("synthea-r4")),
        ..Options::default()
    })
    .await;
    let token = app.token().await;
    let t = Some(token.as_str());
    let mut bodies: Vec<(String, Value)> = Vec::new();
    let mut keep = |what: &str, a: tideway_tests::Answer| {
        assert!(a.body.get("resourceType").is_some(), "{what}: not a FHIR body");
        bodies.push((what.to_owned(), a.body));
    };
    keep("metadata", app.get("/metadata", None).await);
    keep("401", app.get("/Patient/x", None).await);
    keep("400", app.get(&nhs_search("9434765918"), t).await);
    keep("404", app.get("/Patient/p00000000000000000000000000000000", t).await);
    keep("406", app.get("/metadata?_format=xml", None).await);
    keep("501", app.get("/Patient/x/$match", t).await);
    keep(
        "lenient",
        app.get_with(
            &format!("{}&colour=blue", nhs_search(app.population.nhs_number(0).unwrap().as_str())),
            t,
            &[("prefer", "handling=lenient")],
        )
        .await,
    );
    keep("empty search", app.get(&nhs_search("9434765919"), t).await);
    for nhs in app.population.patients_in_several_boroughs(3) {
        let found = app.get(&nhs_search(nhs.as_str()), t).await;
        let id = found.body["entry"][0]["resource"]["id"].as_str().unwrap().to_owned();
        keep("search", found);
        keep("read", app.get(&format!("/Patient/{id}"), t).await);
        let page = app.get(&format!("/Patient/{id}/$everything?_count=10"), t).await;
        let next = page.next_link();
        keep("everything", page);
        if let Some(n) = next {
            keep("page 2", app.get(&n, t).await);
        }
        keep("conditions", app.get(&format!("/Condition?patient={id}"), t).await);
        keep("observations", app.get(&format!("/Observation?patient={id}"), t).await);
    }
    // Synthea patients served through the gateway.
    let synthea =
        tideway_simulators::fhir_r4::from_dir::assign_nhs_numbers(&shared_data("synthea-r4")).unwrap();
    for (nhs, _, _) in synthea.iter().take(5) {
        let found = app.get(&nhs_search(nhs.as_str()), t).await;
        let id = found.body["entry"][0]["resource"]["id"].as_str().unwrap().to_owned();
        keep("synthea everything", app.get(&format!("/Patient/{id}/$everything?_count=1000"), t).await);
    }
    let mut v = Validator::new();
    let mut problems = Vec::new();
    for (what, body) in &bodies {
        let mut out = Vec::new();
        v.errors(body, "", &mut out);
        problems.extend(out.into_iter().map(|p| format!("{what}: {p}")));
    }
    assert!(bodies.len() > 20);
    assert!(
        problems.is_empty(),
        "{} problems, first: {:#?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
    app.stop().await;
}
