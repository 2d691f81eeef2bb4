use super::*;

fn terminology() -> Terminology {
    Terminology::embedded().unwrap()
}

const GOOD: &str = r#"
id = "test"
version = 2
title = "A test agreement"
consent_model = "implied-direct-care"
start = 2026-01-01
end = 2026-12-31
objection = "Tell your GP."
controllers = ["LBX01", "lbx02"]

[recipients]
organisations = ["YPOD1"]
roles = ["R8003"]
purposes = ["TREAT"]

[record]
sections = ["problems", "medications"]
include = ["diabetes"]
exclude = ["substance-misuse"]
sensitive = ["hiv"]
"#;

fn error_of(text: &str) -> String {
    parse_agreement("a.toml", text, &terminology()).unwrap_err().to_string()
}

#[test]
fn a_good_agreement_reads_into_its_rules() {
    let t = terminology();
    let a = parse_agreement("a.toml", GOOD, &t).unwrap();
    assert_eq!(a.label(), "test@2");
    assert_eq!(a.consent_model, ConsentModel::ImpliedDirectCare);
    assert!(a.in_force(time::macros::date!(2026 - 06 - 01)));
    assert!(!a.in_force(time::macros::date!(2027 - 01 - 01)));
    assert!(!a.in_force(time::macros::date!(2025 - 12 - 31)));
    let Controllers::Only(c) = &a.controllers else { panic!("controllers") };
    assert!(c.contains(&OdsCode::parse("LBX02").unwrap()));
    assert_eq!(a.sections, Sections::Only([Section::Problems, Section::Medications].into()));
    assert_eq!(a.include, t.bit("diabetes").unwrap());
    assert_eq!(a.exclude, t.bit("substance-misuse").unwrap());
    assert_eq!(a.sensitive, t.bit("hiv").unwrap());
}

#[test]
fn every_mistake_names_the_file_line_and_field() {
    let cases = [
        (GOOD.replace("\"R8003\"", "\"R99\""), "a.toml:13:", "recipients.roles"),
        (GOOD.replace("\"TREAT\"", "\"HOLIDAY\""), "a.toml:14:", "recipients.purposes"),
        (GOOD.replace("\"problems\"", "\"feet\""), "a.toml:17:", "record.sections"),
        (GOOD.replace("[\"diabetes\"]", "[\"diabetess\"]"), "a.toml:18:", "record.include"),
        (
            GOOD.replace("sensitive = [\"hiv\"]", "sensitive = [\"diabetes\"]"),
            "a.toml:20:",
            "not one of the sensitive sets",
        ),
        (GOOD.replace("\"lbx02\"", "\"*\""), "a.toml:9:", "stands alone"),
        (GOOD.replace("end = 2026-12-31", "end = 2025-12-31"), "a.toml:7:", "ends before it starts"),
        (GOOD.replace("start = 2026-01-01", "start = 2026-01-01T10:00:00Z"), "a.toml:6:", "without a time"),
        (
            GOOD.replace("consent_model = \"implied-direct-care\"", "consent_model = \"assumed\""),
            "a.toml:5:",
            "unknown variant",
        ),
        (GOOD.replace("[record]", "[record]\nallow_everything = true"), "a.toml:17:", "unknown field"),
        (
            GOOD.replace("organisations = [\"YPOD1\"]", "organisations = []"),
            "a.toml:",
            "recipients.organisations: must name at least one",
        ),
        (GOOD.replace("id = \"test\"", "id = \"Test Agreement\""), "a.toml:2:", "id:"),
    ];
    for (text, place, field) in cases {
        let e = error_of(&text);
        assert!(e.starts_with(place) && e.contains(field), "{e} (wanted {place} .. {field})");
    }
}

#[test]
fn the_shipped_examples_all_load() {
    let t = terminology();
    for (file, text) in EXAMPLES {
        let a = parse_agreement(file, text, &t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format!("{}.toml", a.id), file);
    }
}
