//! `tideway demo`: simulated borough exchanges plus the gateway on an embedded SQLite file, with
//! a demo clinician's access token obtained through the real `/token` flow.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use rand::RngCore;
use secrecy::SecretString;
use serde_json::json;
use tideway_adapters::{SourceConfig, SourceId, SystemKind};
use tideway_auth::client::{BackendClient, UserClaims};
use tideway_auth::config::{AuthConfig, ClientConfig};
use tideway_auth::{PurposeOfUse, RoleCode};
use tideway_profiles::OdsCode;
use tideway_simulators::fhir_r4::from_dir::FromDir;
use tideway_simulators::fhir_r4::simulator::{self, PopulationSpec, RunningSimulator, SimulatorConfig};
use tideway_simulators::kinds;
use tideway_simulators::population::{
    MENTAL_HEALTH_SERVICE, OUT_OF_HOURS_SERVICE, PODIATRY_SERVICE, Population, Scenario,
};

use super::faults::{CliError, FaultArgs};
use crate::audit::checkpoint::CheckpointKey;
use crate::config::{
    AuditSettings, CacheSettings, FederationSettings, IdentitySettings, PageSettings, PolicySettings,
    RegistrySettings, ServerSettings, Settings, StoreSettings, TelemetrySettings,
};
use crate::secondary::{AggregateSettings, ProjectSettings, SecondarySettings};
use crate::signals::shutdown_signal;
use crate::{Application, telemetry};

/// `tideway demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Gateway port (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Operator listener port (metrics and the dashboard without a token; 0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub admin_port: u16,
    /// Number of simulated borough exchanges.
    #[arg(long, default_value_t = 25)]
    pub boroughs: usize,
    /// Patients registered in each borough.
    #[arg(long, default_value_t = 200)]
    pub patients: usize,
    /// Seed of the synthetic population.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// When ready, write `{"base_url", "token", "nhs_numbers", "personas", "scenario_patients",
    /// "sources", "privacy-officer", "admin", "analyst", "opted_out", "dashboard_url"}` (and
    /// `"from_dir_patients"` with `--from-dir`) here as JSON.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Also run one more borough exchange serving the FHIR R4 patient bundles in this
    /// directory (as `tideway simulate --from-dir` does).
    #[arg(long)]
    pub from_dir: Option<PathBuf>,
    /// Directory for the SQLite file (default: a fresh temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Pace of bulk export and population-figure walks, in patients a second.
    #[arg(long, default_value_t = 500)]
    pub export_patients_per_sec: u32,
    /// How often the dashboards' population figures are computed again, in seconds (0: never,
    /// and not at start either).
    #[arg(long, default_value_t = 60)]
    pub figures_interval_secs: u64,
    /// Fault injection applied to every simulated borough.
    #[command(flatten)]
    pub faults: FaultArgs,
}

const DEMO_CLIENT: &str = "tideway-demo";

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

/// The demo's users: `(name, role, ODS code, purpose of use)`. Each gets a token through the
/// real `/token` flow; the organisations are the example agreements' (`policy/agreements/`).
const PERSONAS: [(&str, &str, &str, PurposeOfUse); 10] = [
    ("ooh-gp", "R8000", OUT_OF_HOURS_SERVICE, PurposeOfUse::Treat),
    ("registered-gp", "R8000", REGISTERED_PRACTICE, PurposeOfUse::Treat),
    ("podiatrist", "R8003", PODIATRY_SERVICE, PurposeOfUse::Treat),
    ("mental-health", "R8001", MENTAL_HEALTH_SERVICE, PurposeOfUse::Treat),
    ("social-worker", "R8003", "YLA01", PurposeOfUse::CareCoordination),
    // An organisation no agreement names.
    ("no-relationship", "R8000", "YNONE", PurposeOfUse::Treat),
    ("break-glass", "R8000", OUT_OF_HOURS_SERVICE, PurposeOfUse::EmergencyTreat),
    ("privacy-officer", "R8000", PRIVACY_OFFICE, PurposeOfUse::Operations),
    // Administers the source registry (`/admin/sources`, `/admin/organisations`).
    ("admin", "R8000", REGISTRY_ADMIN, PurposeOfUse::Operations),
    // A London-wide commissioning analyst: de-identified population data only.
    ("analyst", "R8010", ANALYTICS_UNIT, PurposeOfUse::Operations),
];

/// The commissioning analytics unit the `commissioning` agreement names.
const ANALYTICS_UNIT: &str = "YLDN1";

/// How many demo patients are on the National Data Opt-out list (the ready file's
/// `opted_out`), loaded through the file feed.
const OPTED_OUT: usize = 3;

/// The demo's opt-outs: patients of the first borough, away from every scenario patient.
fn opted_out(population: &Population) -> Vec<String> {
    (0..population.patient_count())
        .skip(7)
        .step_by(11)
        .filter(|&p| population.boroughs_of(p).len() == 1)
        .filter_map(|p| population.nhs_number(p))
        .take(OPTED_OUT)
        .map(|n| n.as_str().to_owned())
        .collect()
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

/// The organisation whose users administer the demo's source registry.
const REGISTRY_ADMIN: &str = "YADM1";

/// The demo clinician's organisation (the ready file's top-level `token`).
const DEMO_CLINICIAN_ORG: &str = "RJ122";

/// The attestation the demo's sources and organisations hold: the Data Security and Protection
/// Toolkit's standards met, for a year from today.
fn demo_attestation() -> tideway_adapters::Attestation {
    tideway_adapters::Attestation {
        scheme: "dspt".to_owned(),
        status: tideway_adapters::AttestationStatus::StandardsMet,
        expires: time::OffsetDateTime::now_utc().date() + time::Duration::days(365),
    }
}

/// The `registered-gp` persona's practice, where the `--from-dir` patients are registered.
const REGISTERED_PRACTICE: &str = "F80001";

/// The region's privacy office (the `privacy-officer` persona's organisation).
const PRIVACY_OFFICE: &str = "YPRIV";

/// The bundles of `dir`, every patient registered at [`REGISTERED_PRACTICE`].
async fn registered_at_demo_practice(dir: &std::path::Path) -> Result<FromDir, CliError> {
    let dir = dir.to_owned();
    let loaded = tokio::task::spawn_blocking(move || FromDir::load(&dir))
        .await
        .map_err(|e| format!("--from-dir: {e}"))?
        .map_err(|e| format!("--from-dir: {e}"))?;
    Ok(loaded.register_all_at(REGISTERED_PRACTICE))
}

/// One demo user with a token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Persona {
    /// Access token (valid for an hour).
    pub token: String,
    /// National RBAC role.
    pub role: String,
    /// Organisation.
    pub ods_code: String,
    /// Purpose of use.
    pub purpose: String,
}

/// What a started demo offers.
pub struct Demo {
    /// Gateway base URL.
    pub base_url: String,
    /// The web dashboard on the operator listener.
    pub dashboard_url: String,
    /// A demo clinician's access token (valid for an hour).
    pub token: String,
    /// Patients present in several boroughs.
    pub nhs_numbers: Vec<String>,
    /// The demo's users, by persona name.
    pub personas: std::collections::BTreeMap<String, Persona>,
    /// NHS numbers of patients whose records the example agreements and the consents recorded at
    /// start act on, by scenario.
    pub scenario_patients: serde_json::Value,
    /// With `--from-dir`: file name -> NHS number of each patient the extra exchange serves.
    pub from_dir_patients: Option<std::collections::BTreeMap<String, String>>,
    /// Every borough exchange the demo runs: `{"id", "kind", "ods_code"}`, `kind` as config
    /// spells it.
    pub sources: Vec<serde_json::Value>,
    /// NHS numbers of demo patients on the National Data Opt-out list.
    pub opted_out: Vec<String>,
    gateway: crate::app::AppHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    simulators: Vec<RunningSimulator>,
    owned_dir: Option<PathBuf>,
}

impl Demo {
    /// Starts the simulators and the gateway and obtains a token.
    pub async fn start(args: &DemoArgs) -> Result<Self, CliError> {
        if args.boroughs == 0 {
            return Err("--boroughs must be at least 1".into());
        }
        let mut simulators = Vec::with_capacity(args.boroughs);
        let mut kinds_of = Vec::with_capacity(args.boroughs);
        let mut sources = Vec::with_capacity(args.boroughs);
        let population = Population::new(args.seed, args.boroughs, args.patients);
        for i in 0..args.boroughs {
            let kind = kinds::regional_mix(i);
            kinds_of.push((i, kind));
            let sim = kinds::start(
                kind,
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                population,
                i,
                args.faults.resolve(args.seed.wrapping_add(i as u64))?,
            )
            .await?;
            sources.push(SourceConfig {
                id: SourceId::parse(&format!("borough-{i:02}"))?,
                name: format!(
                    "{} exchange ({}, simulated)",
                    population.borough_name(i).unwrap_or("London"),
                    kind.as_str()
                ),
                kind,
                ods_code: kinds::ods_code(kind, &population, i).ok_or("no ODS code for borough")?,
                base_url: sim.base_url(),
                timeout_ms: 5_000,
                max_body_bytes: 32 * 1024 * 1024,
                tls: None,
                attestation: Some(demo_attestation()),
            });
            simulators.push(sim);
        }
        let from_dir_patients = match &args.from_dir {
            Some(dir) => {
                let sim = simulator::start(SimulatorConfig {
                    bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                    population: PopulationSpec::Loaded(Arc::new(registered_at_demo_practice(dir).await?)),
                    faults: args.faults.resolve(args.seed.wrapping_add(args.boroughs as u64))?,
                })
                .await?;
                sources.push(SourceConfig {
                    id: SourceId::parse("from-dir")?,
                    name: "Exchange serving the bundles of --from-dir (simulated)".to_owned(),
                    kind: SystemKind::FhirR4,
                    ods_code: OdsCode::parse("LBX99")?,
                    base_url: sim.base_url(),
                    timeout_ms: 5_000,
                    max_body_bytes: 32 * 1024 * 1024,
                    tls: None,
                    attestation: Some(demo_attestation()),
                });
                simulators.push(sim);
                let assigned = tideway_simulators::fhir_r4::from_dir::assign_nhs_numbers(dir)
                    .map_err(|e| format!("--from-dir: {e}"))?;
                Some(assigned.into_iter().map(|(nhs, _, file)| (file, nhs.as_str().to_owned())).collect())
            }
            None => None,
        };
        let client = BackendClient::generate_es384(DEMO_CLIENT, "demo-key-1")?;
        // A fresh directory per run, removed on stop: the demo's SQLite file holds the patient
        // index (synthetic NHS numbers), which must not outlive the demo or leak into the next.
        let (data_dir, owned_dir) = match &args.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let d = std::env::temp_dir().join(format!("tideway-demo-{}", uuid::Uuid::new_v4().simple()));
                (d.clone(), Some(d))
            }
        };
        std::fs::create_dir_all(&data_dir)?;
        let db = data_dir.join("tideway.db");
        let audit = demo_checkpoints(&data_dir)?;
        let opted_out = opted_out(&population);
        let (registrations, opt_out_file) = demo_feeds(&data_dir, &population, &kinds_of, &opted_out)?;
        let settings = Settings {
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
        };
        settings.validate()?;
        let listed = settings
            .sources
            .iter()
            .map(|s| json!({"id": s.id.as_str(), "kind": s.kind.as_str(), "ods_code": s.ods_code.as_str()}))
            .collect();
        let app = Application::build(settings).await?;
        let base_url = app.base_url().to_owned();
        let dashboard_url =
            format!("http://127.0.0.1:{}/dashboard/", app.admin_port().unwrap_or(args.admin_port));
        let gateway = app.handle();
        let server = tokio::spawn(app.run());

        let tokens = TokenFlow {
            client: &client,
            token_url: format!("{base_url}/token"),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
        };
        let token = tokens.token("demo-clinician", "R8000", DEMO_CLINICIAN_ORG, PurposeOfUse::Treat).await?;
        let mut personas = std::collections::BTreeMap::new();
        for (name, role, ods, purpose) in PERSONAS {
            let token = tokens.token(&format!("demo-{name}"), role, ods, purpose).await?;
            let persona = Persona {
                token,
                role: role.to_owned(),
                ods_code: ods.to_owned(),
                purpose: purpose.code().to_owned(),
            };
            personas.insert(name.to_owned(), persona);
        }
        let population = Population::new(args.seed, args.boroughs, args.patients);
        // Every organisation a demo user acts for, and the practices that record the scenario
        // consents, holds a current attestation, recorded through the real admin API.
        let admin = personas.get("admin").map(|p| p.token.clone()).ok_or("no admin persona")?;
        let mut organisations: Vec<String> = PERSONAS.iter().map(|p| p.2.to_owned()).collect();
        organisations.push(DEMO_CLINICIAN_ORG.to_owned());
        organisations.extend(ConsentSeeds::PATIENTS.iter().filter_map(|i| {
            let record = population.record(population.home_borough(*i), *i)?;
            Some(record.demographics.practice.ods_code)
        }));
        organisations.sort();
        organisations.dedup();
        for ods in &organisations {
            let res = tokens
                .http
                .put(format!("{base_url}/admin/organisations/{ods}"))
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body(json!({ "attestation": demo_attestation() }).to_string())
                .send()
                .await?;
            if !res.status().is_success() {
                return Err(
                    format!("the demo could not record an attestation (HTTP {})", res.status()).into()
                );
            }
        }
        let nhs_numbers =
            population.patients_in_several_boroughs(5).iter().map(|n| n.as_str().to_owned()).collect();
        let first = |s: Scenario| population.scenario_patients(s, 1).first().map(|n| n.as_str().to_owned());
        // Consents recorded at start through the real API, by each patient's registered practice.
        let seeded =
            ConsentSeeds { tokens: &tokens, http: &tokens.http, base_url: &base_url, clinician: &token };
        let [deny, permit, none] = ConsentSeeds::PATIENTS;
        let dissented = seeded.record(&population, deny, Some(json!({"type": "deny"}))).await?;
        let agreed = json!({"type": "permit", "actor": [{
            "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
            "reference": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "YLA01"}}
        }]});
        let explicit = seeded.record(&population, permit, Some(agreed)).await?;
        let no_consent = seeded.record(&population, none, None).await?;
        let scenario_patients = json!({
            "sensitive": first(Scenario::Sensitive),
            "podiatry-diabetic": first(Scenario::PodiatryDiabetic),
            "dissented": dissented,
            "explicit-consent-given": explicit,
            "no-consent": no_consent,
            "restricted": population.restricted_patients(1).first().map(|n| n.as_str().to_owned()),
            "deceased": population.deceased_patients(1).first().map(|n| n.as_str().to_owned()),
        });
        Ok(Self {
            base_url,
            dashboard_url,
            token,
            nhs_numbers,
            personas,
            scenario_patients,
            from_dir_patients,
            sources: listed,
            opted_out,
            gateway,
            server,
            simulators,
            owned_dir,
        })
    }

    /// The ready-file JSON.
    pub fn ready_json(&self) -> serde_json::Value {
        let mut ready = json!({
            "base_url": self.base_url,
            "token": self.token,
            "nhs_numbers": self.nhs_numbers,
            "personas": self.personas,
            "scenario_patients": self.scenario_patients,
            "sources": self.sources,
            "dashboard_url": self.dashboard_url,
        });
        if let (Some(files), Some(obj)) = (&self.from_dir_patients, ready.as_object_mut()) {
            obj.insert("from_dir_patients".into(), json!(files));
        }
        if let (Some(officer), Some(obj)) = (self.personas.get("privacy-officer"), ready.as_object_mut()) {
            obj.insert("privacy-officer".into(), json!(officer));
        }
        if let (Some(admin), Some(obj)) = (self.personas.get("admin"), ready.as_object_mut()) {
            obj.insert("admin".into(), json!(admin));
        }
        if let (Some(analyst), Some(obj)) = (self.personas.get("analyst"), ready.as_object_mut()) {
            obj.insert("analyst".into(), json!({"token": analyst.token, "purpose": analyst.purpose}));
            obj.insert("opted_out".into(), json!(self.opted_out));
        }
        ready
    }

    /// Stops the gateway and every simulator.
    pub async fn stop(self) -> Result<(), CliError> {
        self.gateway.stop(true).await;
        self.server.await??;
        for s in self.simulators {
            s.stop().await;
        }
        if let Some(dir) = self.owned_dir {
            std::fs::remove_dir_all(&dir)?;
        }
        Ok(())
    }
}

/// Gets demo tokens through the gateway's real `/token` endpoint.
struct TokenFlow<'a> {
    client: &'a BackendClient,
    token_url: String,
    http: reqwest::Client,
}

impl TokenFlow<'_> {
    async fn token(
        &self,
        user_id: &str,
        role: &str,
        ods: &str,
        purpose: PurposeOfUse,
    ) -> Result<String, CliError> {
        let user = UserClaims {
            user_id: user_id.to_owned(),
            role: RoleCode::parse(role).ok_or("bad demo role")?,
            organisation: OdsCode::parse(ods)?,
            purpose,
            name: Some("Demo User".to_owned()),
            break_glass_reason: (purpose == PurposeOfUse::EmergencyTreat)
                .then(|| "Demo: patient collapsed at home; unable to give consent".to_owned()),
        };
        let res = self
            .http
            .post(&self.token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(self.client.token_form(&self.token_url, "system/*.read", &user)?)
            .send()
            .await?;
        let status = res.status();
        let body: serde_json::Value = res.json().await?;
        Ok(body["access_token"]
            .as_str()
            .ok_or_else(|| format!("the demo could not obtain a token (HTTP {status})"))?
            .to_owned())
    }
}

/// Records the demo's scenario consents through the gateway's own `/Consent` endpoint.
struct ConsentSeeds<'a> {
    tokens: &'a TokenFlow<'a>,
    http: &'a reqwest::Client,
    base_url: &'a str,
    clinician: &'a str,
}

impl ConsentSeeds<'_> {
    /// The population indexes of the `dissented`, `explicit-consent-given` and `no-consent`
    /// patients.
    const PATIENTS: [usize; 3] = [1, 2, 4];

    /// Publishes patient `index`'s id (an NHS-number search) and, given a provision, records a
    /// consent with it as that patient's registered practice. Returns the NHS number (`None`
    /// when the population is too small to hold that patient).
    async fn record(
        &self,
        population: &Population,
        index: usize,
        provision: Option<serde_json::Value>,
    ) -> Result<Option<String>, CliError> {
        let Some(nhs) = population.nhs_number(index) else { return Ok(None) };
        let url = format!(
            "{}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number%7C{}",
            self.base_url,
            nhs.as_str()
        );
        let found: serde_json::Value =
            self.http.get(url).bearer_auth(self.clinician).send().await?.json().await?;
        let id = found["entry"][0]["resource"]["id"]
            .as_str()
            .ok_or("a scenario patient was not found")?
            .to_owned();
        if let Some(provision) = provision {
            let home = population.home_borough(index);
            let practice =
                population.record(home, index).ok_or("no home record")?.demographics.practice.ods_code;
            let token = self.tokens.token("demo-practice", "R8000", &practice, PurposeOfUse::Treat).await?;
            let consent = json!({
                "resourceType": "Consent",
                "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                "patient": {"reference": format!("Patient/{id}")},
                "provision": provision
            });
            let res = self
                .http
                .post(format!("{}/Consent", self.base_url))
                .bearer_auth(&token)
                .header("content-type", "application/fhir+json")
                .body(consent.to_string())
                .send()
                .await?;
            if res.status() != reqwest::StatusCode::CREATED {
                return Err(
                    format!("the demo could not record a scenario consent (HTTP {})", res.status()).into()
                );
            }
        }
        Ok(Some(nhs.as_str().to_owned()))
    }
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs) -> Result<(), CliError> {
    let _guard = telemetry::init(&TelemetrySettings {
        log_filter: "warn,tideway_gateway=info".to_owned(),
        ..Default::default()
    })?;
    let demo = Demo::start(&args).await?;
    println!("Tideway demo ready: {} simulated borough exchanges", args.boroughs);
    println!("  base URL:     {}", demo.base_url);
    println!("  access token: {}", demo.token);
    println!("  dashboard:    {}", demo.dashboard_url);
    println!("  NHS numbers of patients held by several boroughs (synthetic, 999 test range):");
    for n in &demo.nhs_numbers {
        println!("    {n}");
    }
    println!(
        "Try: curl -H \"Authorization: Bearer $TOKEN\" '{}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{}'",
        demo.base_url,
        demo.nhs_numbers.first().map(String::as_str).unwrap_or("")
    );
    println!("Stop with Ctrl-C.");
    if let Some(path) = &args.ready_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&demo.ready_json())?)?;
        std::fs::rename(&tmp, path)?;
    }
    shutdown_signal().await;
    println!("stopping");
    demo.stop().await
}
