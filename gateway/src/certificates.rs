//! Watching the TLS certificates the gateway presents: its own (`[server.tls]`) and the client
//! certificates it shows each exchange (`[sources.tls]`). At start-up and every hour, each
//! one's remaining life goes to the gauge `tideway_tls_certificate_expiry_seconds`
//! (`certificate="server"` or `"source:<id>"`), so an operator's alerting sees it coming, and
//! one within `server.certificate_warning_days` of its end is logged as a warning (an expired
//! one as an error), naming the certificate and the file, nothing else.

use std::path::Path;

use time::OffsetDateTime;
use x509_cert::der::DecodePem;

use crate::config::Settings;

/// How often (seconds) the certificates are looked at again.
const EVERY_SECS: u64 = 3600;

/// When the first certificate in the PEM file `path` stops being valid. Errors name the file.
pub fn not_after(path: &Path) -> Result<OffsetDateTime, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certificate = x509_cert::Certificate::from_pem(pem.as_bytes())
        .map_err(|_| format!("{} does not start with a PEM certificate", path.display()))?;
    let seconds = certificate.tbs_certificate.validity.not_after.to_unix_duration().as_secs();
    i64::try_from(seconds)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| format!("{} has an expiry out of range", path.display()))
}

/// The certificates `settings` configure, by the name the gauge gives them.
fn configured(settings: &Settings) -> Vec<(String, std::path::PathBuf)> {
    let server = settings.server.tls.iter().map(|t| ("server".to_owned(), t.certificate.clone()));
    let sources = settings
        .sources
        .iter()
        .filter_map(|s| s.tls.as_ref().map(|t| (format!("source:{}", s.id), t.client_certificate.clone())));
    server.chain(sources).collect()
}

/// Records and, near or past expiry, logs each configured certificate's remaining life.
pub fn check(settings: &Settings) {
    let now = OffsetDateTime::now_utc();
    let warn_within = time::Duration::days(i64::from(settings.server.certificate_warning_days));
    for (name, file) in configured(settings) {
        match not_after(&file) {
            Ok(end) => {
                let left = end - now;
                crate::telemetry::metrics::certificate_expiry(&name, left.whole_seconds());
                if left.is_negative() {
                    tracing::error!(certificate = %name, file = %file.display(), "TLS certificate has expired");
                } else if left < warn_within {
                    tracing::warn!(certificate = %name, file = %file.display(), days_left = left.whole_days(), "TLS certificate expires soon");
                }
            }
            Err(e) => tracing::error!(certificate = %name, error = %e, "TLS certificate could not be read"),
        }
    }
}

/// [`check`] now and every hour, until the runtime stops.
pub fn spawn_watch(settings: Settings) {
    if configured(&settings).is_empty() {
        return;
    }
    check(&settings);
    crate::periodic::every(EVERY_SECS, move || {
        check(&settings);
        std::future::ready(())
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_certificate_is_an_error_naming_the_file_not_its_content() {
        let path = std::env::temp_dir().join(format!("tideway-not-a-cert-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, "secret-looking text").unwrap();
        let e = not_after(&path).unwrap_err();
        assert!(e.contains(&path.display().to_string()) && !e.contains("secret-looking"), "{e}");
        let _ = std::fs::remove_file(&path);
        assert!(not_after(&path).unwrap_err().contains("cannot read"));
    }
}
