//! Dashboard projects: which pseudonym key an organisation's exports and counts are made under.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::ExposeSecret;
use tideway_deid::{ProjectKey, Pseudonymiser};
use tideway_profiles::OdsCode;

use super::settings::ProjectSettings;

/// Each organisation's project pseudonymiser.
#[derive(Default)]
pub struct Projects {
    by_organisation: HashMap<String, Arc<Pseudonymiser>>,
}

impl Projects {
    /// The configured projects; a key that cannot be used is refused, naming the project.
    pub fn new(projects: &[ProjectSettings]) -> Result<Self, String> {
        let mut by_organisation = HashMap::new();
        for p in projects {
            let key = ProjectKey::new(p.key_id.clone(), p.key.expose_secret().as_bytes().to_vec())
                .map_err(|e| format!("secondary.projects '{}': {e}", p.id))?;
            let pseudonyms = Arc::new(Pseudonymiser::new(&p.id, key));
            for o in &p.organisations {
                by_organisation.insert(o.to_ascii_uppercase(), pseudonyms.clone());
            }
        }
        Ok(Self { by_organisation })
    }

    /// The pseudonymiser of the project naming `organisation`, if one does.
    pub fn for_organisation(&self, organisation: &OdsCode) -> Option<Arc<Pseudonymiser>> {
        self.by_organisation.get(organisation.as_str()).cloned()
    }
}
