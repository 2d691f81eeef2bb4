//! SMART Backend Services for Tideway: this crate owns who may call the gateway and as whom.
//! It verifies the signed client assertions registered backend clients present at `POST /token`
//! (RS384/ES384 JWTs checked against each client's JWK Set, with replay protection through the
//! [`ReplayGuard`] trait), issues the gateway's own short-lived access tokens, and turns a bearer
//! token back into a [`Principal`] (client, user, role, organisation, purpose of use), checking
//! every token against the live [`ClientRegistry`] (clients can be replaced, suspended or
//! removed while the gateway runs) and reading SMART scopes ([`scope`]). It also
//! holds the client side ([`client::BackendClient`]) used by the demo and end-to-end tests.
//!
//! It has no HTTP framework, database or network inside: the gateway wires actix-web to
//! [`TokenService::exchange`] and [`TokenService::authenticate`] and implements [`ReplayGuard`]
//! over its store. It depends only on `tideway-profiles` within the workspace.
//!
//! Nothing here logs; errors carry no assertion, token or user data, so callers may log them.

pub mod client;
pub mod config;
pub mod limit;
pub mod principal;
pub mod registry;
pub mod replay;
pub mod scope;
pub mod service;

pub use client::{BackendClient, ClientError, UserClaims};
pub use config::{AuthConfig, AuthConfigError, ClientConfig};
pub use limit::{KeyedLimiter, RateLimit, RetryAfter};
pub use principal::{Principal, PurposeOfUse, RoleCode};
pub use registry::ClientRegistry;
pub use replay::{InMemoryReplayGuard, ReplayGuard, ReplayStoreError};
pub use scope::{Interaction, Scope};
pub use service::{OAuthError, TokenError, TokenGrant, TokenResponse, TokenService};

/// The `client_assertion_type` a SMART Backend Services client sends (RFC 7523).
pub const JWT_BEARER_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The code system the client uses for `purpose_of_use` (HL7 v3 ActReason).
pub const PURPOSE_OF_USE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// The code system the client uses for `subject_role` (NHS national RBAC job role codes).
pub const ROLE_CODE_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/NHSDigital-SDS-JobRoleCode";
