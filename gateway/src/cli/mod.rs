//! The command line: `tideway serve`, `tideway demo`, `tideway simulate`, `tideway audit`,
//! `tideway export`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tideway_adapters::SystemKind;
use tideway_simulators::fhir_r4::simulator::{self, PopulationSpec, SimulatorConfig};
use tideway_simulators::kinds;
use tideway_simulators::population::Population;

pub mod audit;
mod demo;
pub mod export;
mod faults;

pub use faults::{CliError, FaultArgs};

use crate::config::{Settings, TelemetrySettings};
use crate::signals::shutdown_signal;
use crate::{Application, telemetry};

/// Tideway: a FHIR R4 gateway federating borough exchanges for a regional shared care record.
#[derive(Debug, Parser)]
#[command(name = "tideway", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway from a TOML config file (TIDEWAY__SECTION__KEY variables override it).
    Serve {
        /// Path of the config file (see deploy/tideway.example.toml).
        #[arg(long, short = 'c', env = "TIDEWAY_CONFIG")]
        config: PathBuf,
    },
    /// Run simulated borough exchanges and the gateway on an embedded SQLite file, no set-up.
    Demo(demo::DemoArgs),
    /// Run one simulated borough exchange on its own.
    Simulate(SimulateArgs),
    /// Check or export the audit trail, or make a checkpoint signing key.
    Audit(audit::AuditArgs),
    /// Run a Bulk Data export against a running gateway and download its files.
    Export(export::ExportArgs),
}

/// `tideway simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// Serve the FHIR R4 bundles in this directory (e.g. Synthea output) instead of a
    /// synthetic population.
    #[arg(long)]
    pub from_dir: Option<PathBuf>,
    /// Seed of the synthetic population (the same seed gives the same patients).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Which borough of the population this simulator is (0-based).
    #[arg(long, default_value_t = 0)]
    pub borough_index: usize,
    /// How many boroughs the population is spread over.
    #[arg(long, default_value_t = 25)]
    pub boroughs: usize,
    /// Patients registered in each borough.
    #[arg(long, default_value_t = 200)]
    pub patients: usize,
    /// The system this exchange speaks, as config spells kinds (`fhir-r4`, `systmone`,
    /// `gp-connect`, ...), or `regional` for the kind the demo's regional mix gives this
    /// borough. `--from-dir` serves FHIR R4 only.
    #[arg(long, default_value = "fhir-r4")]
    pub kind: String,
    /// Fault injection.
    #[command(flatten)]
    pub faults: FaultArgs,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tideway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { config } => serve(config).await.map(|()| ExitCode::SUCCESS),
            Command::Demo(args) => demo::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Simulate(args) => simulate(args).await.map(|()| ExitCode::SUCCESS),
            Command::Audit(args) => audit::run(args).await,
            Command::Export(args) => export::run(args).await.map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tideway: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: PathBuf) -> Result<(), CliError> {
    let settings = Settings::load(&config)?;
    let guard = telemetry::init(&settings.telemetry)?;
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "tideway gateway listening");
    let handle = app.handle();
    let server = tokio::spawn(app.run());
    shutdown_signal().await;
    tracing::info!("shutting down");
    handle.stop(true).await;
    let served = server.await;
    guard.shutdown().await;
    served??;
    Ok(())
}

async fn simulate(args: SimulateArgs) -> Result<(), CliError> {
    let _guard = telemetry::init(&TelemetrySettings::default())?;
    let kind = match args.kind.as_str() {
        "regional" => kinds::regional_mix(args.borough_index),
        spelled => serde_json::from_value::<SystemKind>(serde_json::Value::String(spelled.to_owned()))
            .map_err(|_| format!("--kind: '{spelled}' is not a source kind"))?,
    };
    let bind = SocketAddr::new(args.host, args.port);
    let faults = args.faults.resolve(args.seed)?;
    let sim = match args.from_dir {
        Some(dir) if kind == SystemKind::FhirR4 => {
            simulator::start(SimulatorConfig { bind, population: PopulationSpec::FromDir(dir), faults })
                .await?
        }
        Some(_) => return Err("--from-dir serves FHIR R4 bundles: use it with --kind fhir-r4".into()),
        None => {
            let population = Population::new(args.seed, args.boroughs, args.patients);
            kinds::start(kind, bind, population, args.borough_index, faults).await?
        }
    };
    println!("simulated borough exchange at {}", sim.base_url());
    println!("kind {}", kind.as_str());
    shutdown_signal().await;
    sim.stop().await;
    Ok(())
}
