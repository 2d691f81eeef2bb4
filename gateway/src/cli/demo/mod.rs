//! `tideway demo`: simulated borough exchanges plus the gateway on an embedded SQLite file, with
//! a demo clinician's access token obtained through the real `/token` flow: the exchanges
//! (`exchanges.rs`), the gateway's settings (`setup.rs`) and what is recorded through the
//! gateway once it runs (`seeds.rs`).

mod exchanges;
mod seeds;
mod setup;

use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use tideway_auth::client::BackendClient;
use tideway_simulators::fhir_r4::simulator::RunningSimulator;
use tideway_simulators::population::Population;

use super::faults::{CliError, FaultArgs};
use crate::config::TelemetrySettings;
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
        let population = Population::new(args.seed, args.boroughs, args.patients);
        let exchanges::Exchanges { simulators, kinds_of, sources, from_dir_patients } =
            exchanges::start(args, population).await?;
        let client = BackendClient::generate_es384(setup::DEMO_CLIENT, "demo-key-1")?;
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
        let opted_out = setup::opted_out(&population);
        let settings =
            setup::settings(args, &data_dir, &client, (sources, &kinds_of), &population, &opted_out)?;
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

        let seeds::Seeded { token, personas, scenario_patients } =
            seeds::seed(&client, &base_url, &population).await?;
        let nhs_numbers =
            population.patients_in_several_boroughs(5).iter().map(|n| n.as_str().to_owned()).collect();
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
