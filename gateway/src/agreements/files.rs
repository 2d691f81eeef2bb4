//! Loading the policy at start: the agreement files of `[policy] agreements_dir` (or the
//! region's examples) and every fully approved published version in the store.

use std::path::Path;

use tideway_adapters::SourceConfig;
use tideway_policy::{PolicyError, Terminology};
use tideway_profiles::OdsCode;

use super::PolicyInForce;
use crate::app::StartError;
use crate::config::PolicySettings;
use crate::store::AgreementStore;

/// The policy for these settings and sources: the agreement files and every fully approved
/// published version in `store`.
pub async fn load(
    settings: &PolicySettings,
    sources: &[SourceConfig],
    store: &dyn AgreementStore,
) -> Result<PolicyInForce, StartError> {
    let controllers: Vec<(String, OdsCode)> =
        sources.iter().map(|s| (s.id.to_string(), s.ods_code.clone())).collect();
    let fail = |e: PolicyError| StartError::Policy(e.to_string());
    let policy = match &settings.agreements_dir {
        None => PolicyInForce::examples(controllers).map_err(fail)?,
        Some(dir) => {
            let files = read_dir(dir)?;
            let terminology = Terminology::embedded().map_err(|e| StartError::Policy(e.to_string()))?;
            PolicyInForce::new(files, terminology, controllers).map_err(fail)?
        }
    };
    policy.refresh(store).await.map_err(|e| StartError::Policy(e.to_string()))?;
    Ok(policy)
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
