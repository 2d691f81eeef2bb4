//! Loading the policy in force at start-up: the sharing agreements (from `[policy]
//! agreements_dir`, or the region's examples shipped with the gateway) and the code sets, for
//! the registered sources' data controllers. Any file that cannot be read or validated stops
//! the start, naming the file, line and field: a gateway never runs under a rule it could not
//! read.

use std::path::Path;

use tideway_adapters::SourceConfig;
use tideway_policy::{Policy, Terminology};

use crate::app::StartError;
use crate::config::PolicySettings;

/// The policy for these settings and sources.
pub fn load(settings: &PolicySettings, sources: &[SourceConfig]) -> Result<Policy, StartError> {
    let controllers = || sources.iter().map(|s| (s.id.to_string(), s.ods_code.clone()));
    let policy = match &settings.agreements_dir {
        None => Policy::examples(controllers()),
        Some(dir) => {
            let files = read_dir(dir)?;
            let terminology = Terminology::embedded().map_err(|e| StartError::Policy(e.to_string()))?;
            Policy::new(files.iter().map(|(n, t)| (n.as_str(), t.as_str())), terminology, controllers())
        }
    };
    policy.map_err(|e| StartError::Policy(e.to_string()))
}

/// Every `*.toml` file in `dir`, as `(file name, text)`, in name order.
fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, StartError> {
    let fail = |e: std::io::Error| StartError::Policy(format!("{}: {e}", dir.display()));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let path = entry.map_err(fail)?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let text =
                std::fs::read_to_string(&path).map_err(|e| StartError::Policy(format!("{name}: {e}")))?;
            files.push((name, text));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tideway-agreements-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_directory_of_agreements_loads_and_a_bad_file_stops_the_start_naming_its_line() {
        let good = tideway_policy::agreement::EXAMPLES[2].1;
        let dir = dir_with(&[("podiatry.toml", good), ("README.txt", "not an agreement")]);
        let policy = load(&PolicySettings { agreements_dir: Some(dir.clone()) }, &[]).unwrap();
        assert_eq!(policy.agreements().len(), 1);
        std::fs::write(
            dir.join("zz-bad.toml"),
            good.replace("id = \"podiatry\"", "id = \"other\"").replace("\"R8003\"", "\"nurse\""),
        )
        .unwrap();
        let err = load(&PolicySettings { agreements_dir: Some(dir.clone()) }, &[]).unwrap_err().to_string();
        assert!(err.contains("zz-bad.toml:") && err.contains("recipients.roles"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        let err = load(&PolicySettings { agreements_dir: Some(dir_with(&[])) }, &[]).unwrap_err().to_string();
        assert!(err.contains("no sharing agreement"), "{err}");
        let missing = load(&PolicySettings { agreements_dir: Some("/nonexistent/agreements".into()) }, &[]);
        assert!(missing.is_err());
    }
}
