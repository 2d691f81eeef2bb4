//! Why the gateway could not start: each cause names the setting or file at fault, never a
//! secret or patient data.

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The page store could not be reached.
    #[error("{0}")]
    Pages(String),
    /// Auth configuration was refused.
    #[error("auth: {0}")]
    Auth(String),
    /// The sharing agreements or code sets could not be loaded: nothing may be decided.
    #[error("policy: {0}")]
    Policy(String),
    /// The listener's TLS certificate, key or client authority could not be used.
    #[error("server.tls: {0}")]
    Tls(String),
    /// The audit checkpoint key or file could not be read.
    #[error("audit checkpoints: {0}")]
    Checkpoints(#[from] crate::audit::checkpoint::CheckpointError),
    /// The audit trail no longer holds what its last signed checkpoint covers (names the
    /// place and the kind of damage): the gateway does not start on a trail it cannot vouch for.
    #[error(
        "audit trail damaged since its last checkpoint: {0}; run `tideway audit verify` and resolve it \
         before starting (the checkpoint file is the evidence: archive it, never edit it)"
    )]
    AuditDamaged(String),
    /// The webhook client could not be built.
    #[error("alerts webhook: {0}")]
    Webhook(String),
    /// The source registry's settings were refused.
    #[error("registry: {0}")]
    Registry(String),
    /// The superseded NHS numbers feed could not be read (names the line, never a number).
    #[error("identity.superseded_nhs_numbers_file: {0}")]
    Supersessions(String),
    /// The registered population feed could not be read (names the line, never a number).
    #[error("identity.registrations_file: {0}")]
    Registrations(String),
    /// Secondary use's settings, opt-out feed or export folder could not be used.
    #[error("secondary: {0}")]
    Secondary(String),
    /// A source adapter could not be built.
    #[error("source {id}: {reason}")]
    Source {
        /// Source id.
        id: String,
        /// Why.
        reason: String,
    },
}
