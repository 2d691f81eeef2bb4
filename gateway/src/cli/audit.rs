//! `tideway audit`: the operator's tools for the audit trail. `verify` checks the hash chain
//! and the signed checkpoints and exits 0 only when the trail is intact (non-zero, naming the
//! first bad sequence number and the kind of damage, otherwise); `export` writes the trail as
//! BALP-style `AuditEvent`s, one JSON object per line, to stdout; `keygen` makes a checkpoint
//! signing key.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::CliError;
use crate::audit::balp;
use crate::audit::checkpoint::{CheckpointFile, CheckpointKey};
use crate::audit::verify::{ChainVerifier, Report};
use crate::config::Settings;
use crate::store::Store;

/// `tideway audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// `tideway audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the trail's hash chain and signed checkpoints; exit 0 only if it is intact.
    Verify {
        /// The gateway's config file (its store and `[audit]` checkpoint settings are used).
        #[arg(long, short = 'c', env = "TIDEWAY_CONFIG")]
        config: PathBuf,
    },
    /// Write the trail as BALP-style AuditEvents in ndjson to stdout, in sequence order.
    Export {
        /// The gateway's config file.
        #[arg(long, short = 'c', env = "TIDEWAY_CONFIG")]
        config: PathBuf,
        /// Only records made at or after this instant (RFC 3339, e.g. 2026-12-01T09:00:00Z,
        /// or a date, 2026-12-01, meaning its start in UTC).
        #[arg(long)]
        since: Option<String>,
    },
    /// Make a checkpoint signing key (Ed25519) in a new file readable by its owner only.
    Keygen {
        /// Where to write it (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `tideway audit …`.
pub async fn run(args: AuditArgs) -> Result<ExitCode, CliError> {
    match args.command {
        AuditCommand::Verify { config } => verify(&Settings::load(&config)?).await,
        AuditCommand::Export { config, since } => {
            let since_us = since.as_deref().map(parse_since).transpose()?.unwrap_or(i64::MIN);
            export(&Settings::load(&config)?, since_us).await
        }
        AuditCommand::Keygen { out } => {
            let key = CheckpointKey::generate(&out)?;
            println!("checkpoint key {} written to {}", key.key_id(), out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn open_store(settings: &Settings) -> Result<Store, CliError> {
    let timeout = Duration::from_millis(settings.store.acquire_timeout_ms);
    Ok(Store::connect(&settings.store.url, 2, timeout).await?)
}

async fn verify(settings: &Settings) -> Result<ExitCode, CliError> {
    let report = check(settings).await?;
    print!("{}", describe(&report));
    Ok(if report.intact() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Checks the trail of the gateway `settings` describe, against its checkpoints if configured.
pub async fn check(settings: &Settings) -> Result<Report, CliError> {
    let store = open_store(settings).await?;
    let verifier = match (&settings.audit.checkpoint_key, &settings.audit.checkpoint_file) {
        (Some(key), Some(file)) => {
            let key = CheckpointKey::load(key)?;
            let (checkpoints, unreadable) = CheckpointFile::new(file.clone()).read()?;
            ChainVerifier::new(checkpoints, &unreadable, Some(&key.verifying_key()))
        }
        _ => {
            eprintln!(
                "note: no audit checkpoints configured ([audit] checkpoint_key, checkpoint_file): \
                 a cut-off tail or a chain rewritten whole cannot be detected"
            );
            ChainVerifier::new(Vec::new(), &[], None)
        }
    };
    Ok(store.verify_audit(verifier).await?)
}

/// What `verify` prints: one line when intact; otherwise the first damage, then every finding.
pub fn describe(report: &Report) -> String {
    let mut out = String::new();
    match report.first() {
        None => {
            let head = match report.head {
                Some((seq, Some(hash))) => format!("head seq {seq} hash {hash}"),
                _ => "empty".to_owned(),
            };
            let checkpoints = match report.latest_checkpoint {
                Some(latest) => {
                    format!("{} checkpoints verified, latest at seq {latest}", report.checkpoints)
                }
                None => "no checkpoints".to_owned(),
            };
            out.push_str(&format!("audit trail intact: {} records, {head}; {checkpoints}\n", report.records));
            if let Some((seq, before_us)) = report.retained_from {
                out.push_str(&format!(
                    "records before seq {seq} were removed under retention (all made before {}), \
                     as a signed retention anchor attests\n",
                    crate::epoch_us::rfc3339_seconds(before_us)
                ));
            }
        }
        Some(first) => {
            out.push_str(&format!("audit trail damaged: first damage at {first}\n"));
            for finding in &report.findings {
                out.push_str(&format!("  {finding}\n"));
            }
            if report.more_findings > 0 {
                out.push_str(&format!("  ... and {} more\n", report.more_findings));
            }
            out.push_str(&format!("{} records checked\n", report.records));
        }
    }
    out
}

/// Records read per page while exporting.
const EXPORT_PAGE: i64 = 2_000;

async fn export(settings: &Settings, since_us: i64) -> Result<ExitCode, CliError> {
    let store = open_store(settings).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut after = i64::MIN;
    loop {
        let page = store.audit_page(after, since_us, EXPORT_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.stored.seq;
        for row in &page {
            serde_json::to_writer(&mut out, &balp::audit_event(row))?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `--since`: an RFC 3339 instant or a date (its start, UTC), in microseconds since the epoch.
fn parse_since(text: &str) -> Result<i64, CliError> {
    let instant = OffsetDateTime::parse(text, &Rfc3339).or_else(|_| {
        time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
            .map(|d| d.midnight().assume_utc())
    });
    instant.map(crate::epoch_us::of).map_err(|_| {
        format!("--since: '{text}' is neither an RFC 3339 instant nor a date (YYYY-MM-DD)").into()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    #[test]
    fn since_takes_instants_and_dates_and_refuses_the_rest() {
        assert_eq!(parse_since("1970-01-01T00:00:01Z").unwrap(), 1_000_000);
        assert_eq!(parse_since("1970-01-02").unwrap(), 86_400_000_000);
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("2026-13-01").is_err());
    }
}
