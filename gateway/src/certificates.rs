//! Watching the TLS certificates the gateway presents: its own (`[server.tls]`) and the client
//! certificates it shows each registered exchange (`[sources.tls]` and the registration API's
//! `tls`, as the live registry holds them). At start-up and every hour, each one's remaining
//! life goes to the gauge `tideway_tls_certificate_expiry_seconds` (`certificate="server"` or
//! `"source:<id>"`), so an operator's alerting sees it coming, and one within
//! `server.certificate_warning_days` of its end is logged as a warning (an expired one as an
//! error), naming the certificate and the file, nothing else. A source registered, changed or
//! deregistered through the API has its gauge set or ended at once ([`record_source`]).

use std::path::Path;

use std::sync::Arc;

use tideway_adapters::SourceConfig;
use time::OffsetDateTime;
use x509_cert::der::DecodePem;

use crate::config::Settings;
use crate::registry::Registry;

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

/// The gauge's name for a source's client certificate, and its file, if it has one.
fn source_certificate(source: &SourceConfig) -> Option<(String, std::path::PathBuf)> {
    source.tls.as_ref().map(|t| (format!("source:{}", source.id), t.client_certificate.clone()))
}

/// Records and, near or past expiry, logs the remaining life of the server's certificate and
/// of each of `sources`' client certificates.
pub fn check(settings: &Settings, sources: &[SourceConfig]) {
    let now = OffsetDateTime::now_utc();
    let warn_within = time::Duration::days(i64::from(settings.server.certificate_warning_days));
    let server = settings.server.tls.iter().map(|t| ("server".to_owned(), t.certificate.clone()));
    for (name, file) in server.chain(sources.iter().filter_map(source_certificate)) {
        match not_after(&file) {
            Ok(end) => {
                let left = end - now;
                crate::telemetry::metrics::certificate_expiry(&name, Some(left.whole_seconds()));
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

/// Sets the gauge of `source`'s client certificate as registered now, or ends it (`None`: the
/// source was deregistered, or has no client certificate any more).
pub fn record_source(id: &str, source: Option<&SourceConfig>) {
    let name = format!("source:{id}");
    let seconds_left = source
        .and_then(source_certificate)
        .and_then(|(_, file)| not_after(&file).ok())
        .map(|end| (end - OffsetDateTime::now_utc()).whole_seconds());
    crate::telemetry::metrics::certificate_expiry(&name, seconds_left);
}

/// [`check`] over the live registry's sources now, then every hour until the runtime stops.
pub async fn watch(settings: Settings, registry: Arc<Registry>) {
    check(&settings, &registry.configs().await);
    crate::periodic::every(EVERY_SECS, move || {
        let (settings, registry) = (settings.clone(), registry.clone());
        async move { check(&settings, &registry.configs().await) }
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
