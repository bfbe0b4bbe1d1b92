//! Platform payloads → canonical events. Mappers are pure: bytes in, a
//! canonical event or a [`MapError`] naming exactly what is wrong out.

pub mod adobe;
mod decimal;
pub mod pos;
pub mod shopify;
#[cfg(test)]
mod tests;

pub use decimal::DecimalText;

use crate::model::MoneyBag;
use crate::money::MoneyError;

/// Why a payload could not become a canonical event. Never retryable: the
/// same body fails the same way, so it is quarantined and answered 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("body is not the expected JSON: {0}")]
    Malformed(String),
    #[error("missing field {0}")]
    MissingField(String),
    #[error("field {field}: {source}")]
    BadAmount {
        field: String,
        #[source]
        source: MoneyError,
    },
    #[error("field {field}: {reason}")]
    BadValue { field: String, reason: String },
    #[error(
        "totals do not reconcile in {currency}: {computation} = {computed}, but the stated {stated_field} is {stated}"
    )]
    TotalsMismatch {
        currency: String,
        computation: String,
        computed: String,
        stated_field: String,
        stated: String,
    },
    /// Not a failure: the platform telling us of a refund retailflow itself
    /// recorded there (a till return); it is answered 200 and ignored, the
    /// till return already being handled.
    #[error("refund {reference} was recorded by retailflow for a till return")]
    OwnEcho { reference: String },
    /// Not a failure: a document that moves no money yet (an Adobe credit
    /// memo still open, or canceled); answered 200 and ignored.
    #[error("{0}")]
    NotARefund(String),
}

impl MapError {
    pub(crate) fn amount(field: impl Into<String>) -> impl FnOnce(MoneyError) -> MapError {
        let field = field.into();
        move |source| MapError::BadAmount { field, source }
    }
}

/// Equal in both currencies, or a mismatch naming the computation, the stated
/// field and the first currency that differs. Never "fixes" a difference.
pub(crate) fn check_reconciled(
    computation: &str,
    computed: MoneyBag,
    stated_field: &str,
    stated: MoneyBag,
) -> Result<(), MapError> {
    for (a, b) in [
        (computed.shop, stated.shop),
        (computed.presentment, stated.presentment),
    ] {
        if a != b {
            return Err(MapError::TotalsMismatch {
                currency: a.currency.to_string(),
                computation: computation.to_string(),
                computed: a.to_decimal_string(),
                stated_field: stated_field.to_string(),
                stated: b.to_decimal_string(),
            });
        }
    }
    Ok(())
}
