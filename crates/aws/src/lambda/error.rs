//! What a function answers Lambda when it cannot do its work. The
//! `errorType` Lambda records (and the function's error metrics and logs
//! show) starts with `Retryable.` or `NotRetryable.`, so whoever reads it
//! knows whether waiting can help or the configuration must change.

use lambda_runtime::Diagnostic;

use retailflow_core::config::ConfigError;
use retailflow_core::ports::{BusError, StoreError};
use retailflow_core::reconciliation::request::RequestError;
use retailflow_core::reconciliation::run::ReconciliationError;
use retailflow_core::resilience::ConnectorError;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct FunctionError {
    /// What failed, as the error type names it (`Configuration`,
    /// `StateStore`, …).
    kind: &'static str,
    retryable: bool,
    message: String,
}

impl FunctionError {
    /// A failure the next attempt may not meet (a dependency down, a run
    /// cut short).
    pub fn retryable(kind: &'static str, message: impl Into<String>) -> Self {
        FunctionError {
            kind,
            retryable: true,
            message: message.into(),
        }
    }

    /// A failure every attempt will meet until something is changed (a
    /// setting, the request).
    pub fn not_retryable(kind: &'static str, message: impl Into<String>) -> Self {
        FunctionError {
            kind,
            retryable: false,
            message: message.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The `errorType` Lambda records.
    pub fn error_type(&self) -> String {
        let class = if self.retryable {
            "Retryable"
        } else {
            "NotRetryable"
        };
        format!("{class}.{}", self.kind)
    }

    fn classed(kind: &'static str, retryable: bool, e: impl std::fmt::Display) -> Self {
        FunctionError {
            kind,
            retryable,
            message: e.to_string(),
        }
    }
}

impl From<ConfigError> for FunctionError {
    fn from(e: ConfigError) -> Self {
        Self::classed("Configuration", e.is_retryable(), e)
    }
}

impl From<StoreError> for FunctionError {
    fn from(e: StoreError) -> Self {
        Self::classed("StateStore", e.is_retryable(), e)
    }
}

impl From<BusError> for FunctionError {
    fn from(e: BusError) -> Self {
        Self::classed("EventBus", e.is_retryable(), e)
    }
}

impl From<ConnectorError> for FunctionError {
    fn from(e: ConnectorError) -> Self {
        Self::classed("Connector", e.is_retryable(), e)
    }
}

impl From<ReconciliationError> for FunctionError {
    fn from(e: ReconciliationError) -> Self {
        Self::classed("Reconciliation", e.is_retryable(), e)
    }
}

/// A request the function cannot take as it is: asking again is the same.
impl From<RequestError> for FunctionError {
    fn from(e: RequestError) -> Self {
        Self::classed("Request", false, e)
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(e: FunctionError) -> Self {
        Diagnostic {
            error_type: e.error_type(),
            error_message: e.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_is_told_whether_waiting_can_help() {
        let unset: FunctionError = ConfigError::Unset("RETAILFLOW_STATE_TABLE".into()).into();
        let d = Diagnostic::from(unset);
        assert_eq!(d.error_type, "NotRetryable.Configuration");
        assert_eq!(
            d.error_message,
            "environment variable RETAILFLOW_STATE_TABLE is not set"
        );
        let secret: FunctionError = ConfigError::Secret {
            arn: "arn:aws:secretsmanager:eu-west-1:1:secret:x".into(),
            reason: "service unavailable".into(),
        }
        .into();
        assert_eq!(
            Diagnostic::from(secret).error_type,
            "Retryable.Configuration"
        );
        let down: FunctionError = StoreError::Unavailable("throttled".into()).into();
        assert_eq!(Diagnostic::from(down).error_type, "Retryable.StateStore");
        let too_large: FunctionError = StoreError::TooLarge("saga".into()).into();
        assert_eq!(
            Diagnostic::from(too_large).error_type,
            "NotRetryable.StateStore"
        );
    }
}
