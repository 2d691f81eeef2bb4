//! Clients rotate their keys by publishing a new JWKS file: every `auth.jwks_reload_secs` the
//! gateway looks at each registered client's `jwks_file` and, when the file changed since it
//! was last read, replaces that client's keys with the file's (suspension, scopes and lifetime
//! stay as registered). A client rolls over by publishing a JWKS holding its old and new keys,
//! switching its assertions to the new `kid`, then publishing the new key alone. A file that
//! cannot be read or holds no acceptable key leaves the keys in force and is logged (the
//! client's id and the file's path, nothing else).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use actix_web::web;

use crate::state::AppState;

/// Looks at the clients' JWKS files every `secs` seconds until the runtime stops (never if 0).
pub fn spawn_reload(state: web::Data<AppState>, secs: u64) {
    if secs == 0 {
        return;
    }
    let files: Vec<(tideway_auth::ClientConfig, PathBuf)> = state
        .settings
        .auth
        .clients
        .iter()
        .filter_map(|c| c.jwks_file.clone().map(|f| (c.clone(), f)))
        .collect();
    if files.is_empty() {
        return;
    }
    // Nothing is taken as seen: the first look reads every file once more, so a file changed
    // between the keys' loading at start and this job's start is not missed.
    let seen: Mutex<HashMap<String, Option<SystemTime>>> = Mutex::new(HashMap::new());
    crate::periodic::every(secs, move || {
        look_again(&state, &files, &mut seen.lock().unwrap_or_else(PoisonError::into_inner));
        std::future::ready(())
    });
}

/// Reloads the keys of every client whose file changed since `seen` last recorded it.
fn look_again(
    state: &AppState,
    files: &[(tideway_auth::ClientConfig, PathBuf)],
    seen: &mut HashMap<String, Option<SystemTime>>,
) {
    for (client, file) in files {
        let now = modified(file);
        if seen.get(&client.client_id) == Some(&now) {
            continue;
        }
        match state.tokens.clients().reload_keys(client) {
            Ok(_) => {
                tracing::info!(client_id = %client.client_id, "client keys reloaded from its JWKS file");
                seen.insert(client.client_id.clone(), now);
            }
            Err(e) => tracing::warn!(
                client_id = %client.client_id, file = %file.display(), error = %e,
                "client JWKS file could not be reloaded; the keys in force stay"
            ),
        }
    }
}

fn modified(file: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(file).and_then(|m| m.modified()).ok()
}
