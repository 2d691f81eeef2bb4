//! `tideway export`: runs a Bulk Data export against a running gateway (or the demo) as an
//! operator would, through the public API only: kicks it off, shows a progress bar while the
//! gateway reports progress, downloads every file into a directory and exits non-zero with a
//! clear message if anything fails. Nothing it prints carries patient data (the files are
//! de-identified; the messages are the gateway's OperationOutcomes).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::faults::CliError;

/// `tideway export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The gateway's base URL (or take it, and the analyst's token, from a demo ready file).
    #[arg(long, required_unless_present = "ready_file")]
    pub base_url: Option<String>,
    /// An access token of a principal admitted to secondary use (or `TIDEWAY_TOKEN`).
    #[arg(long, env = "TIDEWAY_TOKEN", required_unless_present = "ready_file", hide_env_values = true)]
    pub token: Option<String>,
    /// A demo ready file (`tideway demo --ready-file F`): its `base_url` and `analyst.token`.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Export this Group (`source.{id}`, `practice.{ODS}`, `cohort.{code set}`) instead of
    /// the whole registered population.
    #[arg(long)]
    pub group: Option<String>,
    /// Only these resource types (comma-separated).
    #[arg(long = "type")]
    pub types: Option<String>,
    /// Only resources changed since this instant (e.g. 2024-01-31T09:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Directory the files are written to (created if missing).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3_600)]
    pub timeout_secs: u64,
}

/// The gateway's explanation of a refusal: its OperationOutcome's diagnostics, when it sent one.
async fn refusal(res: reqwest::Response, what: &str) -> CliError {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let why = body["issue"][0]["diagnostics"].as_str().unwrap_or("no explanation was given");
    format!("{what}: the gateway answered HTTP {}: {why}", status.as_u16()).into()
}

/// Runs the export; returns how many files and resources were written.
pub async fn run(args: ExportArgs) -> Result<(), CliError> {
    let (base, token) = match &args.ready_file {
        Some(f) => {
            let ready: Value = serde_json::from_str(&std::fs::read_to_string(f)?)?;
            let base = ready["base_url"].as_str().ok_or("the ready file has no base_url")?.to_owned();
            let token =
                ready["analyst"]["token"].as_str().ok_or("the ready file has no analyst token")?.to_owned();
            (args.base_url.clone().unwrap_or(base), args.token.clone().unwrap_or(token))
        }
        None => (
            args.base_url.clone().ok_or("--base-url is required")?,
            args.token.clone().ok_or("--token is required")?,
        ),
    };
    let base = base.trim_end_matches('/').to_owned();
    // A file of a large export takes as long as it takes; a stalled connection does not.
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .build()?;
    let mut url = match &args.group {
        Some(g) => url::Url::parse(&format!("{base}/Group/{g}/$export"))?,
        None => url::Url::parse(&format!("{base}/$export"))?,
    };
    {
        let mut q = url.query_pairs_mut();
        if let Some(t) = &args.types {
            q.append_pair("_type", t);
        }
        if let Some(s) = &args.since {
            q.append_pair("_since", s);
        }
    }
    let res = http
        .get(url)
        .bearer_auth(&token)
        .header("accept", "application/fhir+json")
        .header("prefer", "respond-async")
        .send()
        .await?;
    if res.status().as_u16() != 202 {
        return Err(refusal(res, "the export was not started").await);
    }
    let status_url = res
        .headers()
        .get("content-location")
        .and_then(|v| v.to_str().ok())
        .ok_or("the gateway started the export but named no status URL")?
        .to_owned();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} exporting [{bar:40}] {pos}/{len} patients ({eta} left)",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
    let manifest = loop {
        if tokio::time::Instant::now() > deadline {
            bar.abandon();
            return Err(format!(
                "the export did not finish within {} s (status: {status_url})",
                args.timeout_secs
            )
            .into());
        }
        let res = http
            .get(&status_url)
            .bearer_auth(&token)
            .header("accept", "application/fhir+json")
            .send()
            .await?;
        match res.status().as_u16() {
            202 => {
                if let Some((done, total)) =
                    res.headers().get("x-progress").and_then(|v| v.to_str().ok()).and_then(progress)
                {
                    bar.set_length(total);
                    bar.set_position(done);
                }
                let wait = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1)
                    .clamp(1, 30);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            200 => break res.json::<Value>().await?,
            _ => {
                bar.abandon();
                return Err(refusal(res, "the export failed").await);
            }
        }
    };
    bar.finish_and_clear();
    tokio::fs::create_dir_all(&args.out).await?;
    let mut files = 0;
    let mut resources = 0u64;
    for list in ["output", "error"] {
        for item in manifest[list].as_array().cloned().unwrap_or_default() {
            let file_url = item["url"].as_str().ok_or("the manifest names a file without a url")?;
            // The token goes only to the gateway that was asked.
            if !file_url.starts_with(&format!("{base}/")) {
                return Err("the manifest names a file on another server; it was not downloaded".into());
            }
            let name = file_url.rsplit('/').next().filter(|n| n.ends_with(".ndjson") && !n.contains(".."));
            let name = name.ok_or("the manifest names a file this tool will not write")?;
            let target =
                args.out.join(if list == "error" { format!("error-{name}") } else { name.to_owned() });
            let res = http
                .get(file_url)
                .bearer_auth(&token)
                .header("accept", "application/fhir+ndjson")
                .send()
                .await?;
            if !res.status().is_success() {
                return Err(refusal(res, "a file could not be downloaded").await);
            }
            let mut out = tokio::fs::File::create(&target).await?;
            let mut body = res.bytes_stream();
            while let Some(chunk) = body.next().await {
                out.write_all(&chunk?).await?;
            }
            out.flush().await?;
            files += 1;
            if list == "output" {
                resources += item["count"].as_u64().unwrap_or(0);
            }
        }
    }
    println!("export complete: {files} files, {resources} resources in {}", args.out.display());
    if manifest["error"].as_array().is_some_and(|e| !e.is_empty()) {
        println!("some sources could not give every record: see the error-*.ndjson files");
    }
    Ok(())
}

/// `done` and `total` patients from `X-Progress` (`running: 40 of 120 patients (33%)`).
fn progress(header: &str) -> Option<(u64, u64)> {
    let (_, rest) = header.split_once(": ")?;
    let mut words = rest.split(' ');
    let done = words.next()?.parse().ok()?;
    let _of = words.next()?;
    let total = words.next()?.parse().ok()?;
    Some((done, total))
}

#[cfg(test)]
mod tests {
    #[test]
    fn progress_is_read_from_the_gateways_header() {
        assert_eq!(super::progress("running: 40 of 120 patients (33%)"), Some((40, 120)));
        assert_eq!(super::progress("queued: 0 of 0 patients (0%)"), Some((0, 0)));
        assert_eq!(super::progress("nonsense"), None);
    }
}
