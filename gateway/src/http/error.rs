//! The one place errors become HTTP responses.
//!
//! Handlers return [`ApiError`]; its `ResponseError` impl renders an OperationOutcome with the
//! status chosen here. Domain errors ([`RecordError`], [`AuditError`], [`GovernanceError`]) become statuses here and
//! nowhere else, and their causes are logged here, once. The responder never logs (middleware does) and never includes upstream
//! bodies or patient data: messages are written by us.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use tideway_profiles::{IssueSeverity, IssueType, OperationOutcome};

use crate::audit::AuditError;
use crate::governance::GovernanceError;
use crate::record::RecordError;

/// FHIR JSON media type.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// An error answered as an OperationOutcome.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Body.
    pub outcome: OperationOutcome,
    /// Value of `WWW-Authenticate`, for 401s.
    pub www_authenticate: Option<&'static str>,
    /// Value of `Allow`, for 405s.
    pub allow: Option<&'static str>,
    /// Seconds for `Retry-After`, for 429s.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with one issue.
    pub fn new(status: StatusCode, code: IssueType, message: impl Into<String>) -> Self {
        Self {
            status,
            outcome: OperationOutcome::new(IssueSeverity::Error, code, message),
            www_authenticate: None,
            allow: None,
            retry_after_secs: None,
        }
    }

    /// Sets the expression (e.g. the offending parameter) of the issue.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.outcome = self.outcome.at(expression);
        self
    }

    /// 400 `invalid`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, IssueType::Invalid, message)
    }

    /// 400 `not-supported` (an unknown or unsupported search parameter under strict handling).
    pub fn unsupported_parameter(name: &str) -> Self {
        let name = echo(name);
        Self::new(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            format!("search parameter '{name}' is not supported"),
        )
        .at(name)
    }

    /// 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
    pub fn invalid_token(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, IssueType::Login, message);
        e.www_authenticate = Some(r#"Bearer realm="tideway", error="invalid_token""#);
        e
    }

    /// 401 for a request without any bearer token: the challenge carries no error code, as
    /// RFC 6750 section 3.1 asks when the request had no authentication at all.
    pub fn missing_token() -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, IssueType::Login, "an access token is required");
        e.www_authenticate = Some(r#"Bearer realm="tideway""#);
        e
    }

    /// 401 `expired`: the access token was valid but has expired.
    pub fn expired_token() -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, IssueType::Expired, "the access token has expired");
        e.www_authenticate =
            Some(r#"Bearer realm="tideway", error="invalid_token", error_description="expired""#);
        e
    }

    /// 403 `forbidden` because the granted scopes do not cover the request, with the RFC 6750
    /// `insufficient_scope` challenge.
    pub fn insufficient_scope(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::FORBIDDEN, IssueType::Forbidden, message);
        e.www_authenticate = Some(r#"Bearer realm="tideway", error="insufficient_scope""#);
        e
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, IssueType::Forbidden, message)
    }

    /// 404 `not-found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, IssueType::NotFound, message)
    }

    /// 405 `not-supported`, naming the methods the resource does allow.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            IssueType::NotSupported,
            "this interaction is not supported: the gateway is read-only",
        );
        e.allow = Some(allow);
        e
    }

    /// 429 `throttled`: this peer sent too many requests without a valid token.
    pub fn throttled(retry_after_secs: u64) -> Self {
        Self::throttled_because(
            "too many requests without a valid access token from this address",
            retry_after_secs,
        )
    }

    /// 429 `throttled` for `why`, with `Retry-After`.
    pub fn throttled_because(why: &str, retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            IssueType::Throttled,
            format!("{why}; retry after {retry_after_secs} seconds"),
        );
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    /// 501 `not-supported`.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, IssueType::NotSupported, message)
    }

    /// 406 `not-supported`.
    pub fn not_acceptable() -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            IssueType::NotSupported,
            "only application/fhir+json (or application/json) is served",
        )
    }

    /// 408 `timeout`: the request did not arrive in time (the connection is closed after it).
    pub fn request_timeout() -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, IssueType::Timeout, "the request body did not arrive in time")
    }

    /// 413 `too-long`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            IssueType::TooLong,
            format!("the request exceeds the {limit}-byte limit"),
        )
    }

    /// 503 `transient`: the audit trail could not be written, so nothing is released.
    pub fn audit_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            IssueType::Transient,
            "the audit trail cannot be written, so no patient data can be released; try again later",
        )
    }

    /// 503 `transient` for another internal dependency.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, IssueType::Transient, message)
    }

    /// 502 `exception`: every source failed.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, IssueType::Exception, message)
    }

    /// 504 `timeout`: no source answered in time.
    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, IssueType::Timeout, message)
    }

    /// 500 `exception`, with a fixed message (details go to the log by the caller, not here).
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, IssueType::Exception, "internal error")
    }
}

/// Client input as it may appear in an error message: short names made of the characters FHIR
/// names use are shown as given; anything else is not repeated (it could be long, carry markup
/// or carry patient data).
pub fn echo(input: &str) -> String {
    // Digits alone could be an NHS number; `p` and 32 hex digits is a patient id.
    let identifier_like = (input.len() >= 6 && input.bytes().all(|b| b.is_ascii_digit() || b == b' '))
        || crate::identity::PatientIds::is_well_formed(input);
    let plain = !identifier_like && input.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:$-".contains(&b));
    if plain && (1..=64).contains(&input.len()) { input.to_owned() } else { "(not shown)".to_owned() }
}

impl From<AuditError> for ApiError {
    fn from(_: AuditError) -> Self {
        // The cause was logged where the append failed, with the request id.
        Self::audit_unavailable()
    }
}

/// The one refusal for a requester with no legitimate relationship, whether or not the patient
/// exists (a contract: clients and tests match on it).
pub const RELATIONSHIP_REQUIRED: &str = "relationship required; break-glass available";

impl From<crate::store::StoreError> for ApiError {
    /// The store did not answer: 503, fail closed (the cause goes to the log, not the client).
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "the store could not be used");
        Self::unavailable("the gateway's store cannot be used just now; try again later")
    }
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::UnknownPatient => Self::not_found("no patient with this id is known to the gateway"),
            RecordError::NotHeld => Self::not_found("no source holds this patient any more"),
            RecordError::NoSuchResource | RecordError::HiddenById(_) => {
                Self::not_found("no resource with this id is known to the gateway")
            }
            RecordError::ResourceSourceFailed => Self::bad_gateway(
                "the source that holds this resource failed to answer, so it cannot be read now; try again",
            ),
            RecordError::ByIdBreakGlass => Self::forbidden(
                "a break-glass token reads its patient's record through Patient/{id}/$everything, not by a resource's id",
            ),
            RecordError::AllSourcesFailed => {
                Self::bad_gateway("every source that could hold this record failed to answer")
            }
            RecordError::NoSourceInTime => Self::gateway_timeout("no source answered in time"),
            RecordError::PatientIndex { what, cause } => {
                tracing::error!(error = %cause, "patient index could not be {what}");
                Self::unavailable(format!("the patient index cannot be {what}; try again later"))
            }
            RecordError::Audit(e) => e.into(),
            RecordError::Pages(cause) => {
                tracing::error!(error = %cause, "page snapshots unavailable");
                Self::unavailable("paging is unavailable; try again later or ask for fewer results")
            }
            RecordError::PageExpired => Self::new(
                StatusCode::GONE,
                IssueType::NotFound,
                "this page link is unknown or has expired; repeat the search",
            ),
            RecordError::PageOwner => Self::forbidden("this page link belongs to another user"),
            RecordError::Withheld => Self::forbidden("this record is not available to this requester"),
            RecordError::Consent(cause) => {
                tracing::error!(error = %cause, "consent could not be read");
                Self::unavailable("the patient's consent could not be read; nothing is released")
            }
            RecordError::BadConsent(e) => Self::invalid(e.to_string()).at(e.element.clone()),
            RecordError::ConsentForbidden => Self::forbidden(
                "only the patient's registered practice or the patient's own app may record or read their consent",
            ),
            RecordError::ConsentConflict => Self::new(
                StatusCode::CONFLICT,
                IssueType::Conflict,
                "another version of this consent was recorded at the same time; read it and try again",
            ),
            RecordError::Refused(tideway_policy::Refusal::NoAgreement) => Self::forbidden(
                "no sharing agreement in force grants this role and purpose of use at this organisation",
            ),
            RecordError::Refused(tideway_policy::Refusal::SecondaryUse) => Self::forbidden(
                "a secondary purpose of use (HOPERAT, HRESCH, PUBHLTH) is served de-identified population \
                 data only (bulk $export, MeasureReport), never a patient's record",
            ),
            RecordError::Refused(tideway_policy::Refusal::NotSecondaryUse) => Self::forbidden(
                "population data is served only for a secondary purpose of use (HOPERAT, HRESCH, PUBHLTH) \
                 under a sharing agreement that grants it",
            ),
            RecordError::RelationshipRequired => Self::forbidden(RELATIONSHIP_REQUIRED),
            RecordError::MatchBreakGlass => Self::forbidden(
                "break-glass access opens one patient's record: find the patient by NHS number, not Patient/$match",
            ),
            RecordError::BreakGlassElsewhere => Self::forbidden(
                "this break-glass token is bound to another patient; break the glass again for this one",
            ),
            RecordError::BreakGlassEnded => {
                Self::forbidden("this break-glass access has ended; break the glass again if still needed")
            }
            RecordError::PolicyUnconfirmed => {
                Self::unavailable("the sharing agreements in force cannot be confirmed; nothing is released")
            }
            RecordError::NotPrivacyOfficer => Self::forbidden(
                "only a privacy officer (purpose of use HOPERAT) of an organisation trusted as a privacy office may (or, for its own access history, the patient's own app)",
            ),
            RecordError::Oversight(cause) => {
                tracing::error!(error = %cause, "oversight could not be recorded");
                Self::unavailable("this access could not be recorded for oversight; nothing is released")
            }
            RecordError::MisuseLimited { retry_after_secs } => Self::throttled_because(
                "patient reads by this user are paused after an alert to the privacy officer",
                retry_after_secs,
            ),
            RecordError::Alerts(cause) => {
                tracing::error!(error = %cause, "break-glass could not be recorded");
                Self::unavailable("break-glass access could not be recorded; nothing is released")
            }
        }
    }
}

impl From<GovernanceError> for ApiError {
    fn from(e: GovernanceError) -> Self {
        let conflict =
            |e: &GovernanceError| Self::new(StatusCode::CONFLICT, IssueType::Conflict, e.to_string());
        match e {
            GovernanceError::Invalid(_) => Self::invalid(e.to_string()),
            GovernanceError::Stale { .. } => conflict(&e).at("version"),
            GovernanceError::AlreadyApproved(_) | GovernanceError::NotAwaiting(_) => conflict(&e),
            GovernanceError::NotController(_) => Self::forbidden(e.to_string()),
            GovernanceError::NotFound => Self::not_found("no such sharing agreement version"),
            GovernanceError::Ledger(cause) => {
                tracing::error!(error = %cause, "sharing agreements could not be read");
                Self::unavailable("the sharing agreements cannot be read; try again later")
            }
            GovernanceError::Audit(e) => e.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first = self.outcome.issues.first().map(|i| i.code.code()).unwrap_or("error");
        write!(f, "{} {}", self.status.as_u16(), first)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON)));
        if let Some(v) = self.allow {
            res.insert_header((header::ALLOW, HeaderValue::from_static(v)));
        }
        if let Some(v) = self.www_authenticate {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static(v)));
        }
        if let Some(secs) = self.retry_after_secs {
            res.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        res.body(self.outcome.to_json().to_string())
    }
}

impl From<crate::clients::ClientAdminError> for ApiError {
    fn from(e: crate::clients::ClientAdminError) -> Self {
        use crate::clients::ClientAdminError;
        match e {
            ClientAdminError::NotFound => Self::not_found("no client of that id is registered"),
            ClientAdminError::Removed(_) => {
                Self::new(StatusCode::CONFLICT, IssueType::Conflict, e.to_string())
            }
            ClientAdminError::Store(cause) => {
                tracing::error!(error = %cause, "the client registry could not be read or written");
                Self::unavailable(
                    "the client registry could not be written; nothing changed, try again later",
                )
            }
        }
    }
}

impl From<crate::registry::RegistryError> for ApiError {
    fn from(e: crate::registry::RegistryError) -> Self {
        use crate::registry::RegistryError;
        let conflict =
            |e: &RegistryError| Self::new(StatusCode::CONFLICT, IssueType::Conflict, e.to_string());
        match e {
            RegistryError::Invalid(field) => {
                let e = Self::invalid(field.message);
                if field.field.is_empty() { e } else { e.at(field.field) }
            }
            RegistryError::BadOrganisation => Self::invalid(e.to_string()).at("ods"),
            RegistryError::Exists(_) => conflict(&e).at("id"),
            RegistryError::ConfigOwned(_) => conflict(&e),
            RegistryError::NotFound => Self::not_found("no source of that id is registered"),
            RegistryError::Store(cause) => {
                tracing::error!(error = %cause, "the source registry could not be read or written");
                Self::unavailable(
                    "the source registry could not be read or written; try again later (GET /admin/sources shows what holds)",
                )
            }
            RegistryError::Audit(e) => e.into(),
        }
    }
}
