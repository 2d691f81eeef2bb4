//! The command line: `tideway serve`, `tideway demo`, `tideway simulate`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tideway_simulators::fhir_r4::simulator::{self, PopulationSpec, SimulatorConfig};

mod demo;
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
            Command::Serve { config } => serve(config).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Simulate(args) => simulate(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
    let population = match args.from_dir {
        Some(dir) => PopulationSpec::FromDir(dir),
        None => PopulationSpec::Synthetic {
            seed: args.seed,
            borough_index: args.borough_index,
            borough_count: args.boroughs,
            patients_per_borough: args.patients,
        },
    };
    let sim = simulator::start(SimulatorConfig {
        bind: SocketAddr::new(args.host, args.port),
        population,
        faults: args.faults.resolve(args.seed)?,
    })
    .await?;
    println!("simulated borough exchange at {}", sim.base_url());
    shutdown_signal().await;
    sim.stop().await;
    Ok(())
}
