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
        let mut q: Vec<(&str, &str)> = vec![("patient", self.id.as_str()), ("_count", "1000")];
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
        (("_summary", "true"), "not-supported", "_summary"),
        (("_sort", "code"), "not-supported", "_sort"),
        (("_include", "Observation:performer"), "not-supported", "_include"),
        (("onset-date", "2020"), "not-supported", "onset-date"),
    ] {
        let a = f.search("Observation", &[q]).await;
        assert_eq!(a.status, 400, "{q:?}: {}", a.body);
        assert_eq!(a.issue_code(), code, "{q:?}");
        assert_eq!(a.body["issue"][0]["expression"][0], param, "{q:?}");
    }
    // What reaches other resources is refused even under lenient handling, on every path:
    // ignoring it would answer another question, and what it would include is not decided.
    for (name, value) in [
        ("_include", "Observation:performer"),
        ("_revinclude", "Provenance:target"),
        ("_has:Observation:patient:code", "1234"),
        ("subject.name", "Smith"),
        ("subject:Patient.identifier", "9000000009"),
    ] {
        let qs = serde_urlencoded::to_string([("patient", f.id.as_str()), (name, value)]).unwrap();
        for path in [format!("/Observation?{qs}"), format!("/Patient/{}/$everything?{name}={value}", f.id)] {
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
