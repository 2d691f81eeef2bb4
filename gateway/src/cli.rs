//! The command line: `tideway serve`, `tideway demo`, `tideway simulate`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tideway_adapters::fhir_r4::simulator::{self, FaultConfig, PopulationSpec, SimulatorConfig};

use crate::config::{Settings, TelemetrySettings};
use crate::{Application, demo, telemetry};

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

/// Fault injection flags, shared by `simulate` and `demo`.
#[derive(Debug, Clone, Args, Default)]
pub struct FaultArgs {
    /// Latency added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fraction of requests answered with HTTP 500 (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Fraction of requests that never get an answer.
    #[arg(long, default_value_t = 0.0)]
    pub hang_rate: f64,
    /// Fraction of requests answered with a malformed body.
    #[arg(long, default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Fraction of requests answered with an oversized body.
    #[arg(long, default_value_t = 0.0)]
    pub oversized_rate: f64,
    /// Read the fault settings from this TOML file instead (keys: latency_ms, fail_rate,
    /// hang_rate, malformed_rate, oversized_rate, seed); the flags above are then ignored.
    #[arg(long)]
    pub faults_file: Option<PathBuf>,
}

impl FaultArgs {
    /// As the simulator's config: from `--faults-file` when given, else from the flags.
    pub fn resolve(&self, seed: u64) -> Result<FaultConfig, CliError> {
        let config = match &self.faults_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read faults file {}: {e}", path.display()))?;
                toml::from_str::<FaultConfig>(&text).map_err(|e| format!("invalid faults file: {e}"))?
            }
            None => self.to_config(seed),
        };
        for (name, rate) in [
            ("fail_rate", config.fail_rate),
            ("hang_rate", config.hang_rate),
            ("malformed_rate", config.malformed_rate),
            ("oversized_rate", config.oversized_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0.0 and 1.0").into());
            }
        }
        Ok(config)
    }

    /// As the simulator's config.
    pub fn to_config(&self, seed: u64) -> FaultConfig {
        FaultConfig {
            latency_ms: self.latency_ms,
            fail_rate: self.fail_rate,
            hang_rate: self.hang_rate,
            malformed_rate: self.malformed_rate,
            oversized_rate: self.oversized_rate,
            seed,
        }
    }
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

/// Boxed error for the command line's top level.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

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

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_come_from_a_file_or_the_flags_and_rates_are_checked() {
        let dir = std::env::temp_dir().join(format!("tideway-faults-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("faults.toml");
        std::fs::write(&file, "latency_ms = 20\nfail_rate = 0.25\n").unwrap();
        let from_file =
            FaultArgs { faults_file: Some(file.clone()), ..FaultArgs::default() }.resolve(1).unwrap();
        assert_eq!(from_file.latency_ms, 20);
        assert!((from_file.fail_rate - 0.25).abs() < f64::EPSILON);
        let flags = FaultArgs { hang_rate: 0.5, ..FaultArgs::default() }.resolve(1).unwrap();
        assert!((flags.hang_rate - 0.5).abs() < f64::EPSILON);
        assert!(FaultArgs { fail_rate: 1.5, ..FaultArgs::default() }.resolve(1).is_err());
        std::fs::write(&file, "colour = 1\n").unwrap();
        assert!(FaultArgs { faults_file: Some(file), ..FaultArgs::default() }.resolve(1).is_err());
    }
}
