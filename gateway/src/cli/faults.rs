//! Fault-injection flags shared by `simulate` and `demo`, and the command line's error type.

use std::path::PathBuf;

use clap::Args;
use tideway_simulators::fhir_r4::simulator::FaultConfig;

/// Boxed error for the command line's top level.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

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
    /// hang_rate, malformed_rate, oversized_rate, redirect_rate, foreign_link_rate,
    /// wrong_patient_rate, empty_record_rate, seed); the flags above are then ignored.
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
        config.check()?;
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
            ..FaultConfig::default()
        }
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
