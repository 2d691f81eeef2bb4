//! Search parameters over HTTP, each checked against an answer computed here from the
//! patient's `$everything` (the test reads the JSON itself; it shares no code with the gateway).

use serde_json::Value;
use tideway_tests::{Answer, Options, TestApp};

struct Fixture {
    app: TestApp,
    token: String,
    id: String,
    everything: Vec<Value>,
}

async fn fixture() -> Fixture {
    let app = TestApp::spawn(Options { boroughs: 2, patients: 30, ..Options::default() }).await;
    let token = app.token().await;
    let nhs = app.patient_held_by(&[0, 1]);
    let id = app.patient_id(&token, nhs.as_str()).await;
    let all = app.get(&format!("/Patient/{id}/$everything?_count=1000"), Some(&token)).await;
    let everything = all.matches().into_iter().cloned().collect();
    Fixture { app, token, id, everything }
}

impl Fixture {
    fn of_type(&self, ty: &str) -> Vec<&Value> {
        self.everything.iter().filter(|r| r["resourceType"] == ty).collect()
    }

    async fn search(&self, ty: &str, query: &[(&str, &str)]) -> Answer {
        let mut q: Vec<(&str, &str)> = vec![("patient", self.id.as_str())];
        if !query.iter().any(|(k, _)| *k == "_count") {
            q.push(("_count", "1000"));
        }
        q.extend_from_slice(query);
        let qs = serde_urlencoded::to_string(&q).unwrap();
        self.app.get(&format!("/{ty}?{qs}"), Some(&self.token)).await
    }
}

fn ids<'a>(items: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    let mut v: Vec<String> = items.into_iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    v.sort();
    v
}

fn codings(r: &Value, at: &str) -> Vec<(String, String)> {
    r[at]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["system"].as_str().unwrap_or("").to_owned(), c["code"].as_str().unwrap_or("").to_owned()))
        .collect()
}

#[tokio::test]
async fn code_status_and_id_tokens_match_what_the_record_holds() {
    let f = fixture().await;
    let conditions = f.of_type("Condition");
    assert!(conditions.len() >= 2, "fixture: a patient with several conditions");
    // system|code, code alone, and an OR list.
    let (system, code) = codings(conditions[0], "code")[0].clone();
    let expected = ids(conditions
        .iter()
        .copied()
        .filter(|r| codings(r, "code").contains(&(system.clone(), code.clone()))));
    let a = f.search("Condition", &[("code", &format!("{system}|{code}"))]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(ids(a.matches()), expected);
    let any_system =
        ids(conditions.iter().copied().filter(|r| codings(r, "code").iter().any(|(_, c)| *c == code)));
    assert_eq!(ids(f.search("Condition", &[("code", &code)]).await.matches()), any_system);
    let (_, other) = codings(conditions[conditions.len() - 1], "code")[0].clone();
    let either = ids(conditions
        .iter()
        .copied()
        .filter(|r| codings(r, "code").iter().any(|(_, c)| *c == code || *c == other)));
    assert_eq!(ids(f.search("Condition", &[("code", &format!("{code},{other}"))]).await.matches()), either);
    // A legacy code (Read v2 / CTV3) finds its entry too, when the record has one.
    if let Some((s, c)) =
        conditions.iter().flat_map(|r| codings(r, "code")).find(|(s, _)| !s.contains("snomed"))
    {
        let legacy = f.search("Condition", &[("code", &format!("{s}|{c}"))]).await;
        assert!(!legacy.matches().is_empty(), "{s}|{c}");
    }
    // clinical-status and status.
    let status = conditions[0]["clinicalStatus"]["coding"][0]["code"].as_str().unwrap().to_owned();
    let same = ids(conditions
        .iter()
        .copied()
        .filter(|r| r["clinicalStatus"]["coding"][0]["code"] == status.as_str()));
    assert_eq!(ids(f.search("Condition", &[("clinical-status", &status)]).await.matches()), same);
    let observations = f.of_type("Observation");
    let final_ = ids(observations.iter().copied().filter(|r| r["status"] == "final"));
    assert_eq!(ids(f.search("Observation", &[("status", "final")]).await.matches()), final_);
    // _id.
    let one = conditions[0]["id"].as_str().unwrap();
    assert_eq!(ids(f.search("Condition", &[("_id", one)]).await.matches()), [one.to_owned()]);
    f.app.stop().await;
}

#[tokio::test]
async fn dates_with_prefixes_sorting_and_counts() {
    let f = fixture().await;
    let observations = f.of_type("Observation");
    let day = |r: &Value| r["effectiveDateTime"].as_str().map(|d| d[..10].to_owned());
    let mut days: Vec<String> = observations.iter().filter_map(|r| day(r)).collect();
    days.sort();
    assert!(days.len() >= 2, "fixture: observations with dates");
    let middle = days[days.len() / 2].clone();
    let ge = ids(observations.iter().copied().filter(|r| day(r).is_some_and(|d| d >= middle)));
    let lt = ids(observations.iter().copied().filter(|r| day(r).is_some_and(|d| d < middle)));
    assert_eq!(ids(f.search("Observation", &[("date", &format!("ge{middle}"))]).await.matches()), ge);
    assert_eq!(ids(f.search("Observation", &[("date", &format!("lt{middle}"))]).await.matches()), lt);
    let year = &middle[..4];
    let in_year = ids(observations.iter().copied().filter(|r| day(r).is_some_and(|d| d.starts_with(year))));
    assert_eq!(ids(f.search("Observation", &[("date", year)]).await.matches()), in_year);
    // _sort=-date: newest first, undated last.
    let sorted = f.search("Observation", &[("_sort", "-date")]).await;
    let order: Vec<Option<String>> = sorted.matches().iter().map(|r| day(r)).collect();
    let mut expected = order.clone();
    expected.sort_by(|a, b| match (a, b) {
        (Some(x), Some(y)) => y.cmp(x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    assert_eq!(order, expected);
    // _summary=count: the total this requester may see, no entries.
    let count = f.search("Condition", &[("_summary", "count")]).await;
    assert_eq!(count.status, 200);
    assert_eq!(count.body["total"], f.of_type("Condition").len());
    assert_eq!(count.released(), 0, "no entries but the outcome: {}", count.body);
    assert!(count.says_may_be_withheld());
    f.app.stop().await;
}

#[tokio::test]
async fn bad_or_unsupported_values_are_400s_naming_the_parameter() {
    let f = fixture().await;
    for (q, code, param) in [
        (("date", "last tuesday"), "invalid", "date"),
        (("_summary", "short"), "invalid", "_summary"),
        (("_elements", "name.family"), "not-supported", "_elements"),
        (("_elements", "birthDate"), "invalid", "_elements"),
        (("_sort", "code"), "not-supported", "_sort"),
        (("_include", "Observation:*"), "not-supported", "_include"),
        (("_include", "Observation:specimen-of"), "not-supported", "_include"),
        (("_include", "Condition:encounter"), "invalid", "_include"),
        (("_include:iterate", "Observation:has-member"), "not-supported", "_include:iterate"),
        (("onset-date", "2020"), "not-supported", "onset-date"),
    ] {
        let a = f.search("Observation", &[q]).await;
        assert_eq!(a.status, 400, "{q:?}: {}", a.body);
        assert_eq!(a.issue_code(), code, "{q:?}");
        assert_eq!(a.body["issue"][0]["expression"][0], param, "{q:?}");
    }
    // What reaches other resources where it is not supported is refused even under lenient
    // handling, on every path: ignoring it would answer another question.
    for (name, value, on_search) in [
        ("_include", "Observation:performer", false),
        ("_revinclude", "Provenance:target", false),
        ("_include:iterate", "Observation:has-member", true),
        ("_has:Observation:patient:code", "1234", true),
        ("subject.name", "Smith", true),
        ("subject:Patient.identifier", "9000000009", true),
    ] {
        let qs = serde_urlencoded::to_string([("patient", f.id.as_str()), (name, value)]).unwrap();
        let everything = format!("/Patient/{}/$everything?{name}={value}", f.id);
        let paths = if on_search { vec![format!("/Observation?{qs}"), everything] } else { vec![everything] };
        for path in paths {
            let a = f.app.get_with(&path, Some(&f.token), &[("prefer", "handling=lenient")]).await;
            assert_eq!(a.status, 400, "{path}: {}", a.body);
            assert_eq!(a.body["issue"][0]["expression"][0], name, "{path}: {}", a.body);
        }
    }
    // The CapabilityStatement says what each type takes.
    let cs = f.app.get("/metadata", None).await;
    let condition =
        cs.body["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "Condition").unwrap();
    let names: Vec<&str> =
        condition["searchParam"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for n in ["patient", "code", "category", "clinical-status", "onset-date", "recorded-date", "_lastUpdated"]
    {
        assert!(names.contains(&n), "{n} declared: {names:?}");
    }
    f.app.stop().await;
}

/// The `Type/id` references `r` makes at `path` (object keys down to the Reference).
fn refs_at(r: &Value, path: &[&str]) -> Vec<String> {
    let mut level = vec![r];
    for key in path {
        level = level
            .into_iter()
            .filter_map(|v| v.get(*key))
            .flat_map(|v| v.as_array().map(|a| a.iter().collect()).unwrap_or_else(|| vec![v]))
            .collect();
    }
    level.into_iter().filter_map(|v| v["reference"].as_str().map(str::to_owned)).collect()
}

fn key_of(r: &Value) -> String {
    format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap())
}

fn includes(a: &Answer) -> Vec<&Value> {
    a.body["entry"]
        .as_array()
        .map(|es| es.iter().filter(|e| e["search"]["mode"] == "include").map(|e| &e["resource"]).collect())
        .unwrap_or_default()
}

fn is_subsetted(r: &Value) -> bool {
    r["meta"]["tag"].as_array().is_some_and(|tags| {
        tags.iter().any(|t| {
            t["system"] == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
                && t["code"] == "SUBSETTED"
        })
    })
}

#[tokio::test]
async fn summary_and_elements_send_less_of_each_match_but_never_what_changes_its_meaning() {
    let f = fixture().await;
    let whole: std::collections::HashMap<&str, &Value> =
        f.of_type("Condition").into_iter().map(|r| (r["id"].as_str().unwrap(), r)).collect();
    assert!(whole.len() >= 2, "fixture: several conditions");
    // What R4 keeps of a Condition, written out here from the R4 definition: mandatory
    // (subject) and modifier elements (implicitRules, modifierExtension, clinicalStatus,
    // verificationStatus) always, and what each question adds.
    let always = [
        "resourceType",
        "id",
        "meta",
        "subject",
        "implicitRules",
        "modifierExtension",
        "clinicalStatus",
        "verificationStatus",
    ];
    let summary =
        ["identifier", "code", "bodySite", "encounter", "onset", "recordedDate", "recorder", "asserter"];
    type Keeps = Box<dyn Fn(&str) -> bool>;
    let cases: Vec<((&str, &str), Keeps)> = vec![
        (("_elements", "code"), Box::new(move |k| always.contains(&k) || k == "code")),
        (
            ("_elements", "onset[x],note"),
            Box::new(move |k| always.contains(&k) || k.starts_with("onset") || k == "note"),
        ),
        (
            ("_summary", "true"),
            Box::new(move |k| {
                always.contains(&k) || summary.iter().any(|s| k.strip_prefix('_').unwrap_or(k).starts_with(s))
            }),
        ),
        (("_summary", "text"), Box::new(move |k| always.contains(&k) || k == "text")),
        (("_summary", "data"), Box::new(|k| k != "text")),
    ];
    for (q, keeps) in cases {
        let a = f.search("Condition", &[q]).await;
        assert_eq!(a.status, 200, "{q:?}: {}", a.body);
        assert_eq!(a.body["total"], whole.len(), "{q:?}");
        assert_eq!(a.matches().len(), whole.len(), "{q:?}");
        for m in a.matches() {
            let w = whole[m["id"].as_str().unwrap()];
            let mut expected: Vec<&str> =
                w.as_object().unwrap().keys().map(String::as_str).filter(|k| keeps(k)).collect();
            let mut got: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
            expected.retain(|k| *k != "meta");
            got.retain(|k| *k != "meta");
            expected.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, expected, "{q:?}");
            for k in &got {
                assert_eq!(m[k], w[k], "{q:?}: {k} is sent as it is");
            }
            let narrower = got.len() < w.as_object().unwrap().keys().filter(|k| *k != "meta").count();
            assert_eq!(is_subsetted(m), narrower, "{q:?}: SUBSETTED exactly when something was left out");
        }
    }
    // Later pages keep the question's subset.
    let first = f.search("Condition", &[("_elements", "code"), ("_count", "1")]).await;
    let next = first.next_link().expect("more than one page");
    let second = f.app.get(&next, Some(&f.token)).await;
    assert_eq!(second.status, 200);
    for m in first.matches().into_iter().chain(second.matches()) {
        assert!(m.get("code").is_some() && m.get("onsetDateTime").is_none() && is_subsetted(m), "{m}");
    }
    // $everything takes both too: each Observation keeps only code and what may never go.
    let everything =
        f.app.get(&format!("/Patient/{}/$everything?_elements=code&_count=1000", f.id), Some(&f.token)).await;
    assert_eq!(everything.status, 200, "{}", everything.body);
    let observations: Vec<&Value> =
        everything.matches().into_iter().filter(|r| r["resourceType"] == "Observation").collect();
    assert_eq!(observations.len(), f.of_type("Observation").len());
    for o in observations {
        for k in o.as_object().unwrap().keys() {
            assert!(
                ["resourceType", "id", "meta", "code", "status", "implicitRules", "modifierExtension"]
                    .contains(&k.as_str()),
                "{k}"
            );
        }
    }
    let everything = f.app.get(&format!("/Patient/{}/$everything?_summary=data", f.id), Some(&f.token)).await;
    assert_eq!(everything.status, 200);
    assert!(everything.matches().iter().all(|r| r.get("text").is_none()));
    f.app.stop().await;
}

#[tokio::test]
async fn includes_bring_in_what_the_matches_refer_to_and_revincludes_what_refers_to_them() {
    let f = fixture().await;
    let everything_keys: Vec<String> = f.everything.iter().map(key_of).collect();
    let conditions = f.of_type("Condition");
    let condition_keys: Vec<String> = conditions.iter().map(|c| key_of(c)).collect();
    // Condition:encounter: exactly the Encounters the Conditions name, as includes.
    let mut expected: Vec<String> = conditions
        .iter()
        .flat_map(|c| refs_at(c, &["encounter"]))
        .filter(|r| everything_keys.contains(r))
        .collect();
    expected.sort();
    expected.dedup();
    assert!(!expected.is_empty(), "fixture: conditions recorded in encounters");
    let a = f.search("Condition", &[("_include", "Condition:encounter")]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["total"], conditions.len(), "includes are not counted");
    assert_eq!(ids(a.matches()), ids(conditions.iter().copied()));
    let mut got: Vec<String> =
        includes(&a).into_iter().filter(|r| r["resourceType"] == "Encounter").map(key_of).collect();
    got.sort();
    assert_eq!(got, expected);
    // Condition:subject brings the Patient, once.
    let a = f.search("Condition", &[("_include", "Condition:subject")]).await;
    let patients: Vec<&Value> = includes(&a).into_iter().filter(|r| r["resourceType"] == "Patient").collect();
    assert_eq!(patients.len(), 1, "{}", a.body);
    assert_eq!(patients[0]["id"], f.id.as_str());
    // Encounter?_revinclude=Condition:encounter: the Conditions that name the Encounters.
    let encounters = f.of_type("Encounter");
    let encounter_keys: Vec<String> = encounters.iter().map(|e| key_of(e)).collect();
    let mut expected: Vec<String> = conditions
        .iter()
        .filter(|c| refs_at(c, &["encounter"]).iter().any(|r| encounter_keys.contains(r)))
        .map(|c| key_of(c))
        .collect();
    expected.sort();
    let a = f.search("Encounter", &[("_revinclude", "Condition:encounter")]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.matches().len(), encounters.len());
    let mut got: Vec<String> =
        includes(&a).into_iter().filter(|r| r["resourceType"] == "Condition").map(key_of).collect();
    got.sort();
    assert_eq!(got, expected);
    // Provenance:target: every Provenance naming a match, and nothing else.
    let a = f.search("Condition", &[("_revinclude", "Provenance:target")]).await;
    for p in includes(&a) {
        assert_eq!(p["resourceType"], "Provenance");
        assert!(refs_at(p, &["target"]).iter().any(|t| condition_keys.contains(t)), "{p}");
    }
    // Paged: each page carries the Encounters its own matches name.
    let mut page = f.search("Condition", &[("_include", "Condition:encounter"), ("_count", "1")]).await;
    let mut pages = 0;
    loop {
        assert_eq!(page.status, 200, "{}", page.body);
        let mut named: Vec<String> = page
            .matches()
            .iter()
            .flat_map(|c| refs_at(c, &["encounter"]))
            .filter(|r| everything_keys.contains(r))
            .collect();
        named.sort();
        let mut got: Vec<String> =
            includes(&page).into_iter().map(key_of).filter(|k| k.starts_with("Encounter/")).collect();
        got.sort();
        assert_eq!(got, named, "page {pages}");
        pages += 1;
        match page.next_link() {
            Some(next) => page = f.app.get(&next, Some(&f.token)).await,
            None => break,
        }
    }
    assert_eq!(pages, conditions.len());
    // An include goes only where the requester may see its type: scopes for Conditions only.
    let form = f
        .app
        .es_client
        .token_form(&f.app.token_url(), "system/Condition.rs", &tideway_tests::clinician())
        .unwrap();
    let res = f.app.post_token(form).await;
    assert_eq!(res.status(), 200);
    let narrow: Value = res.json().await.unwrap();
    let qs = serde_urlencoded::to_string([("patient", f.id.as_str()), ("_include", "Condition:encounter")])
        .unwrap();
    let a = f.app.get(&format!("/Condition?{qs}"), narrow["access_token"].as_str()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.matches().len(), conditions.len());
    assert!(includes(&a).iter().all(|r| r["resourceType"] != "Encounter"), "{}", a.body);
    f.app.stop().await;
}
