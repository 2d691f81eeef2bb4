//! The one OperationOutcome builder.
//!
//! Every error the gateway or a simulator answers with is built here, so issue codes come only
//! from the R4 `issue-type` value set and diagnostics are always text the caller chose (never an
//! upstream's body, never patient data).

use serde_json::{Value, json};

/// R4 `IssueSeverity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueSeverity {
    /// The operation failed.
    Fatal,
    /// The issue is sufficiently important to cause the action to fail.
    Error,
    /// The issue is not important enough to cause the action to fail.
    Warning,
    /// Informational.
    Information,
}

impl IssueSeverity {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Fatal => "fatal",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Information => "information",
        }
    }
}

/// The subset of R4 `IssueType` Tideway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is the FHIR code of the same name
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    Security,
    Login,
    Unknown,
    Expired,
    Forbidden,
    Suppressed,
    Processing,
    NotSupported,
    Duplicate,
    NotFound,
    TooLong,
    BusinessRule,
    Throttled,
    Informational,
    Exception,
    Timeout,
    Incomplete,
    Transient,
    Conflict,
}

impl IssueType {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Structure => "structure",
            Self::Required => "required",
            Self::Value => "value",
            Self::Security => "security",
            Self::Login => "login",
            Self::Unknown => "unknown",
            Self::Expired => "expired",
            Self::Forbidden => "forbidden",
            Self::Suppressed => "suppressed",
            Self::Processing => "processing",
            Self::NotSupported => "not-supported",
            Self::Duplicate => "duplicate",
            Self::NotFound => "not-found",
            Self::TooLong => "too-long",
            Self::BusinessRule => "business-rule",
            Self::Throttled => "throttled",
            Self::Informational => "informational",
            Self::Exception => "exception",
            Self::Timeout => "timeout",
            Self::Incomplete => "incomplete",
            Self::Transient => "transient",
            Self::Conflict => "conflict",
        }
    }
}

/// One issue of an OperationOutcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// Severity.
    pub severity: IssueSeverity,
    /// Code from the IssueType value set.
    pub code: IssueType,
    /// Human-readable explanation. Must not contain patient data.
    pub diagnostics: String,
    /// FHIRPath-ish location of the problem (e.g. a parameter name), if any.
    pub expression: Option<String>,
}

/// An OperationOutcome under construction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperationOutcome {
    /// The issues, at least one when rendered.
    pub issues: Vec<Issue>,
}

impl OperationOutcome {
    /// An outcome with one issue.
    pub fn new(severity: IssueSeverity, code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self::default().with(severity, code, diagnostics)
    }

    /// Adds an issue.
    pub fn with(mut self, severity: IssueSeverity, code: IssueType, diagnostics: impl Into<String>) -> Self {
        self.issues.push(Issue { severity, code, diagnostics: diagnostics.into(), expression: None });
        self
    }

    /// Sets the expression of the last issue.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        if let Some(last) = self.issues.last_mut() {
            last.expression = Some(expression.into());
        }
        self
    }

    /// The resource as JSON. An empty outcome renders an `informational` "All OK" issue, as R4
    /// requires at least one issue.
    pub fn to_json(&self) -> Value {
        let issues: Vec<Value> = if self.issues.is_empty() {
            vec![json!({"severity": "information", "code": "informational", "diagnostics": "All OK"})]
        } else {
            self.issues
                .iter()
                .map(|i| {
                    let mut v = json!({
                        "severity": i.severity.code(),
                        "code": i.code.code(),
                        "diagnostics": i.diagnostics,
                    });
                    if let (Some(e), Some(obj)) = (&i.expression, v.as_object_mut()) {
                        obj.insert("expression".into(), json!([e]));
                    }
                    v
                })
                .collect()
        };
        json!({"resourceType": "OperationOutcome", "issue": issues})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_issue_with_expression() {
        let oo = OperationOutcome::new(IssueSeverity::Error, IssueType::Invalid, "bad").at("identifier");
        assert_eq!(
            oo.to_json(),
            json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"bad","expression":["identifier"]}]})
        );
    }

    #[test]
    fn empty_outcome_still_has_an_issue() {
        assert_eq!(OperationOutcome::default().to_json()["issue"][0]["code"], "informational");
    }
}
