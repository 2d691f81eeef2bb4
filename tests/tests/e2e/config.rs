//! The configuration file: the example parses, unknown keys are refused, the environment
//! overrides.

use tideway_gateway::config::Settings;
use tideway_tests::workspace_root;

fn example() -> String {
    let text = std::fs::read_to_string(workspace_root().join("deploy/tideway.example.toml")).unwrap();
    // Point the example's client at a JWKS file that exists here.
    let jwks = workspace_root().join("auth/tests/fixtures/rsa-test-client.jwks.json");
    text.replace("/etc/tideway/clients/guys-epr.jwks.json", &jwks.display().to_string())
}

#[test]
fn the_example_config_parses_with_every_key() {
    let s = Settings::from_toml_with_env(&example(), Vec::new()).expect("example parses");
    assert_eq!(s.server.bind.port(), 8080);
    assert_eq!(s.sources.len(), 1);
    assert_eq!(s.sources[0].id.as_str(), "camden");
    assert_eq!(s.sources[0].timeout_ms, 5000);
    assert_eq!(s.auth.clients[0].token_lifetime_secs, 300);
    assert_eq!(s.federation.max_page_size, 1000);
    assert_eq!(s.server.admin_bind.map(|a| a.port()), Some(9090));
    assert_eq!(s.store.acquire_timeout_ms, 5000);
    assert!(s.cache.enabled);
    assert_eq!(s.cache.ttl_secs, 60);
    assert_eq!(s.pages.ttl_secs, 600);
    assert!(s.pages.redis_url.is_some());
    assert_eq!(s.telemetry.service_name, "tideway");
    assert!(s.telemetry.otlp_endpoint.is_some());
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let text = example().replace("[server]", "[server]\ncolour = \"blue\"");
    let err = Settings::from_toml_with_env(&text, Vec::new()).unwrap_err().to_string();
    assert!(err.contains("colour"), "{err}");
    let text = example() + "\n[surprise]\nx = 1\n";
    let err = Settings::from_toml_with_env(&text, Vec::new()).unwrap_err().to_string();
    assert!(err.contains("surprise"), "{err}");
}

#[test]
fn environment_overrides_win() {
    let env = vec![
        ("TIDEWAY__SERVER__BIND".to_owned(), "0.0.0.0:9999".to_owned()),
        ("TIDEWAY__FEDERATION__DEFAULT_PAGE_SIZE".to_owned(), "25".to_owned()),
        ("TIDEWAY__STORE__URL".to_owned(), "postgres://tideway@db/tideway".to_owned()),
        ("UNRELATED".to_owned(), "1".to_owned()),
    ];
    let s = Settings::from_toml_with_env(&example(), env).unwrap();
    assert_eq!(s.server.bind.port(), 9999);
    assert_eq!(s.federation.default_page_size, 25);
    let err =
        Settings::from_toml_with_env(&example(), vec![("TIDEWAY__SERVER__NOPE".to_owned(), "1".to_owned())])
            .unwrap_err()
            .to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn nonsense_values_are_refused() {
    for (from, to) in [
        ("pseudonym_key = \"change-me-change-me-change-me-change-me\"", "pseudonym_key = \"short\""),
        ("url = \"sqlite://tideway.db\"", "url = \"mysql://x\""),
        ("kind = \"fhir-r4\"", "kind = \"carrier-pigeon\""),
        ("id = \"camden\"", "id = \"Camden Exchange\""),
        ("ods_code = \"RKE\"", "ods_code = \"x\""),
        ("token_lifetime_secs = 300", "token_lifetime_secs = 86400"),
    ] {
        let text = example().replace(from, to);
        assert_ne!(text, example(), "fixture replacement for {from}");
        assert!(Settings::from_toml_with_env(&text, Vec::new()).is_err(), "{to} should be refused");
    }
}

#[test]
fn audit_retention_needs_signed_checkpoints_and_a_sane_period() {
    let with = |lines: &str| {
        example().replace("refusal_interval_secs = 60", &format!("refusal_interval_secs = 60\n{lines}"))
    };
    let err = Settings::from_toml_with_env(&with("retention_days = 30"), Vec::new()).unwrap_err().to_string();
    assert!(err.contains("retention_days needs checkpoint_key"), "{err}");
    let anchored = "checkpoint_key = \"/k\"\ncheckpoint_file = \"/f\"\n";
    let s =
        Settings::from_toml_with_env(&with(&format!("{anchored}retention_days = 30")), Vec::new()).unwrap();
    assert_eq!(s.audit.retention_days, Some(30));
    for days in ["0", "40000"] {
        let text = with(&format!("{anchored}retention_days = {days}"));
        let err = Settings::from_toml_with_env(&text, Vec::new()).unwrap_err().to_string();
        assert!(err.contains("between 1 and 36500"), "{days}: {err}");
    }
}

#[test]
fn every_source_kind_is_accepted_when_an_adapter_speaks_it_and_refused_by_name_otherwise() {
    use tideway_adapters::SystemKind;
    let kinds = [
        SystemKind::FhirR4,
        SystemKind::Systmone,
        SystemKind::Emis,
        SystemKind::Vision,
        SystemKind::GpConnect,
        SystemKind::SocialCare,
    ];
    for kind in kinds {
        let text = example().replace("kind = \"fhir-r4\"", &format!("kind = \"{}\"", kind.as_str()));
        let parsed = Settings::from_toml_with_env(&text, Vec::new());
        if tideway_adapters::registry::is_supported(kind) {
            assert!(parsed.is_ok(), "{}: {:?}", kind.as_str(), parsed.err());
        } else {
            let err = parsed.unwrap_err().to_string();
            assert!(
                err.contains(&format!("kind '{}'", kind.as_str())) && err.contains("no adapter"),
                "{err}"
            );
        }
    }
    assert!(tideway_adapters::registry::is_supported(SystemKind::Systmone));
    assert!(tideway_adapters::registry::is_supported(SystemKind::GpConnect));
    assert!(tideway_adapters::registry::is_supported(SystemKind::SocialCare));
}
