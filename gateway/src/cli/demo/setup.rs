//! The demo gateway's settings: an embedded SQLite store in the data directory, signed audit
//! checkpoints, the registration and opt-out feeds, the demo client, the example agreements'
//! organisations, and a dashboard project.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use rand::RngCore;
use secrecy::SecretString;
use tideway_adapters::{SourceConfig, SystemKind};
use tideway_auth::client::BackendClient;
use tideway_auth::config::{AuthConfig, ClientConfig};
use tideway_simulators::kinds;
use tideway_simulators::population::Population;

use super::DemoArgs;
use crate::audit::checkpoint::CheckpointKey;
use crate::cli::faults::CliError;
use crate::config::{
    AuditSettings, CacheSettings, FederationSettings, IdentitySettings, PageSettings, PolicySettings,
    RegistrySettings, ServerSettings, Settings, StoreSettings, TelemetrySettings,
};
use crate::secondary::{AggregateSettings, ProjectSettings, SecondarySettings};

/// The demo's registered client (its key is made afresh at every start).
pub(super) const DEMO_CLIENT: &str = "tideway-demo";

/// The commissioning analytics unit the `commissioning` agreement names.
pub(super) const ANALYTICS_UNIT: &str = "YLDN1";

/// How many demo patients are on the National Data Opt-out list (the ready file's
/// `opted_out`), loaded through the file feed.
const OPTED_OUT: usize = 3;

/// The demo's opt-outs: patients of the first borough, away from every scenario patient.
pub(super) fn opted_out(population: &Population) -> Vec<String> {
    (0..population.patient_count())
        .skip(7)
        .step_by(11)
        .filter(|&p| population.boroughs_of(p).len() == 1)
        .filter_map(|p| population.nhs_number(p))
        .take(OPTED_OUT)
        .map(|n| n.as_str().to_owned())
        .collect()
}

/// The organisation whose users administer the demo's source registry.
pub(super) const REGISTRY_ADMIN: &str = "YADM1";

/// The region's privacy office (the `privacy-officer` persona's organisation).
pub(super) const PRIVACY_OFFICE: &str = "YPRIV";

/// The demo gateway's settings, writing its store, checkpoints and feeds under `data_dir`.
pub(super) fn settings(
    args: &DemoArgs,
    data_dir: &Path,
    client: &BackendClient,
    (sources, kinds_of): (Vec<SourceConfig>, &[(usize, SystemKind)]),
    population: &Population,
    opted_out: &[String],
) -> Result<Settings, CliError> {
    let db = data_dir.join("tideway.db");
    let audit = demo_checkpoints(data_dir)?;
    let (registrations, opt_out_file) = demo_feeds(data_dir, population, kinds_of, opted_out)?;
    Ok(Settings {
        server: ServerSettings {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), args.port),
            public_base_url: None,
            max_request_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            max_connections_per_peer: 64,
            workers: Some(2),
            admin_bind: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), args.admin_port)),
            tls: None,
            certificate_warning_days: 30,
            unauthenticated_rate_limit: crate::config::DEFAULT_UNAUTHENTICATED_RATE_LIMIT,
        },
        store: StoreSettings {
            url: SecretString::from(format!("sqlite://{}", db.display())),
            max_connections: 8,
            acquire_timeout_ms: 5_000,
        },
        audit,
        identity: IdentitySettings {
            pseudonym_key: random_secret(),
            superseded_nhs_numbers_file: None,
            registrations_file: Some(registrations),
            registrations_reload_secs: 300,
        },
        auth: AuthConfig {
            token_signing_secret: random_secret(),
            token_signing_kid: "k1".to_owned(),
            accepted_signing_keys: Vec::new(),
            clients: vec![ClientConfig {
                client_id: DEMO_CLIENT.to_owned(),
                name: "Tideway demo clinician".to_owned(),
                jwks: Some(client.jwks_json()),
                jwks_file: None,
                allowed_scopes: vec!["system/*.read".to_owned(), "system/*.rs".to_owned()],
                token_lifetime_secs: 3600,
                suspended: false,
                tls_client_certificate_sha256: None,
                patient_app: false,
            }],
            assertion_max_lifetime_secs: 300,
            clock_skew_secs: 60,
            token_rate_limit: tideway_auth::config::DEFAULT_TOKEN_RATE_LIMIT,
            jwks_reload_secs: 60,
        },
        federation: FederationSettings::default(),
        cache: CacheSettings::default(),
        pages: PageSettings::default(),
        policy: PolicySettings {
            privacy_officers: vec![PRIVACY_OFFICE.to_owned()],
            ..PolicySettings::default()
        },
        telemetry: TelemetrySettings::default(),
        sources,
        alerts: crate::config::AlertSettings::default(),
        // Consuming organisations must hold a current attestation: the demo records one for
        // each of its users' organisations at start (below).
        registry: RegistrySettings {
            admin_organisations: vec![REGISTRY_ADMIN.to_owned()],
            require_source_attestation: true,
            require_consumer_attestation: true,
            ..RegistrySettings::default()
        },
        secondary: SecondarySettings {
            export_directory: data_dir.join("exports"),
            opt_out_file: Some(opt_out_file),
            projects: vec![ProjectSettings {
                id: "london-dashboards".to_owned(),
                key_id: "k1".to_owned(),
                key: random_secret(),
                organisations: vec![ANALYTICS_UNIT.to_owned()],
            }],
            aggregates: (args.figures_interval_secs > 0).then(|| AggregateSettings {
                organisation: ANALYTICS_UNIT.to_owned(),
                role: "R8010".to_owned(),
                purpose: "HOPERAT".to_owned(),
                interval_secs: args.figures_interval_secs,
            }),
            max_patients_per_sec: args.export_patients_per_sec,
            ..SecondarySettings::default()
        },
    })
}

/// The demo signs audit checkpoints as a deployment should: a key (made on the first run in
/// the data directory) and a checkpoint file in a directory of its own.
fn demo_checkpoints(data_dir: &std::path::Path) -> Result<AuditSettings, CliError> {
    let key = data_dir.join("audit-checkpoint.key");
    if !key.exists() {
        CheckpointKey::generate(&key)?;
    }
    let dir = data_dir.join("checkpoints");
    std::fs::create_dir_all(&dir)?;
    Ok(AuditSettings {
        checkpoint_key: Some(key),
        checkpoint_file: Some(dir.join("checkpoints.jsonl")),
        checkpoint_interval_secs: 10,
        ..AuditSettings::default()
    })
}

fn random_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Writes the registration feed of every demo borough (what each exchange registers) and the
/// opt-out file feed into `data_dir`; returns their paths.
fn demo_feeds(
    data_dir: &std::path::Path,
    population: &Population,
    kinds_of: &[(usize, SystemKind)],
    opted_out: &[String],
) -> Result<(PathBuf, PathBuf), CliError> {
    use std::fmt::Write as _;
    let mut feed = String::from("# source_id,nhs_number,local_id\n");
    for (i, kind) in kinds_of {
        for (nhs, local) in kinds::registered(*kind, population, *i) {
            let _ = writeln!(feed, "borough-{i:02},{},{local}", nhs.as_str());
        }
    }
    let registrations = data_dir.join("registrations.csv");
    std::fs::write(&registrations, feed)?;
    let opt_outs = data_dir.join("opt-outs.txt");
    std::fs::write(&opt_outs, format!("# National Data Opt-out (demo)\n{}\n", opted_out.join("\n")))?;
    Ok((registrations, opt_outs))
}
