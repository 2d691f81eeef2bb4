//! The `tideway` binary: see `tideway --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    // One TLS crypto provider for the whole process (ring); reqwest and actix both need it
    // installed before the first TLS use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tideway_gateway::cli::main()
}
