//! The refunds of one order, in the order they were admitted: what stops a
//! refund from taking the order past its total, and what makes partial
//! returns add up.
//!
//! Every return is admitted once, by a conditional write on the order's saga
//! item (optimistic concurrency on `version`), before anything is sent to the
//! ERP or the loyalty platform. Its place in the ledger fixes what came back
//! before it, so the points each return reverses are a pure function of the
//! ledger ([`RefundLedger::reversal_base`]): whatever order returns arrive in,
//! however often they are redelivered, they add up to the same net.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::loyalty_rules::ReversalBase;
use crate::money::{Money, MoneyError};

/// What the returns of an order need to know about it, recorded by intake
/// with the order's first event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFacts {
    /// The order total in shop currency: refunds never exceed it.
    pub total: Money,
    /// Prices include tax: credit memo lines then carry their tax inside.
    pub taxes_included: bool,
    pub placed_at: DateTime<Utc>,
    /// The order's line ids another line counts ([`crate::model::Order`]):
    /// a refund's line for one of them posts no credit memo line. `None`
    /// for facts recorded before this was kept, which cannot say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncounted_line_ids: Option<Vec<String>>,
}

/// One admitted refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmittedRefund {
    pub refund_id: String,
    /// Refund total in shop currency.
    pub total: Money,
    /// Merchandise refunded that earned points (the loyalty base).
    pub loyalty_base: Money,
    pub admitted_at: DateTime<Utc>,
    /// The order's cancellation: takes back whatever points are left,
    /// refunds no money by itself (the shop's refund of it is a refund).
    #[serde(default)]
    pub takes_rest: bool,
}

/// An order's admitted refunds. `version` counts writes: a write succeeds
/// only if the ledger is still the version it was computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundLedger {
    pub version: u64,
    pub refunds: Vec<AdmittedRefund>,
    /// When the order's cancellation was admitted: from then on the order's
    /// own steps (ERP post, accrual) refuse to start.
    #[serde(default)]
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// The ledger id of an order's cancellation.
pub const CANCELLATION_ID: &str = "cancellation";

/// Why a refund cannot be admitted. Never retryable: a person must look.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error(
        "refund {refund_id} of {amount} would bring the order's refunds to {would_be}, over its total {order_total}: needs review"
    )]
    OverRefund {
        refund_id: String,
        amount: Money,
        would_be: Money,
        order_total: Money,
    },
    #[error("refund {refund_id} is in {refund}, the order in {order}")]
    CurrencyMismatch {
        refund_id: String,
        refund: String,
        order: String,
    },
    #[error("refund {refund_id} has a negative total {amount}")]
    Negative { refund_id: String, amount: Money },
    #[error("refund amounts overflow: {0}")]
    Money(#[from] MoneyError),
}

impl RefundLedger {
    pub fn position(&self, refund_id: &str) -> Option<usize> {
        self.refunds.iter().position(|r| r.refund_id == refund_id)
    }

    /// The ledger with `refund` appended, or why it cannot be. A refund
    /// already in the ledger is not admitted twice (callers check
    /// [`Self::position`] first).
    pub fn admit(
        &self,
        facts: &OrderFacts,
        refund: AdmittedRefund,
    ) -> Result<RefundLedger, AdmissionError> {
        let order_total = facts.total;
        if refund.total.currency != order_total.currency {
            return Err(AdmissionError::CurrencyMismatch {
                refund_id: refund.refund_id,
                refund: refund.total.currency.code().into(),
                order: order_total.currency.code().into(),
            });
        }
        if refund.total.minor < 0 {
            return Err(AdmissionError::Negative {
                refund_id: refund.refund_id,
                amount: refund.total,
            });
        }
        let before = self.refunded(order_total.currency)?;
        let would_be = before.checked_add(refund.total)?;
        if would_be.minor > order_total.minor {
            return Err(AdmissionError::OverRefund {
                refund_id: refund.refund_id,
                amount: refund.total,
                would_be,
                order_total,
            });
        }
        let mut next = self.clone();
        next.version += 1;
        next.refunds.push(refund);
        Ok(next)
    }

    /// The ledger with the order's cancellation appended (it refunds no
    /// money, takes back the points left); `None` when already cancelled.
    pub fn cancel(
        &self,
        at: DateTime<Utc>,
        currency: crate::money::Currency,
    ) -> Option<RefundLedger> {
        if self.cancelled_at.is_some() {
            return None;
        }
        let mut next = self.clone();
        next.version += 1;
        next.cancelled_at = Some(at);
        next.refunds.push(AdmittedRefund {
            refund_id: CANCELLATION_ID.into(),
            total: Money::zero(currency),
            loyalty_base: Money::zero(currency),
            admitted_at: at,
            takes_rest: true,
        });
        Some(next)
    }

    /// True when the cancellation came before any money was refunded: the
    /// ERP's sales order is then cancelled, and refunds after it have no
    /// invoice to credit.
    pub fn cancelled_before_refunds(&self) -> bool {
        match self.refunds.iter().position(|r| r.takes_rest) {
            Some(pos) => self.refunds[..pos].iter().all(|r| r.total.is_zero()),
            None => false,
        }
    }

    /// The loyalty base the entry at `position` takes back: its own, or all
    /// that is left for the cancellation.
    pub fn loyalty_base_of(&self, position: usize, accrued_on: Money) -> Money {
        match self.refunds.get(position) {
            Some(r) if r.takes_rest => accrued_on,
            Some(r) => r.loyalty_base,
            None => Money::zero(accrued_on.currency),
        }
    }

    /// The reversal base of the refund at `position`, for an order that
    /// accrued `accrued_points` on `accrued_on`: earlier refunds are taken
    /// to have reversed exactly their cumulative share, so the shares add up
    /// to the accrual whatever order the reversals run in.
    pub fn reversal_base(
        &self,
        position: usize,
        accrued_points: i64,
        accrued_on: Money,
    ) -> Result<ReversalBase, MoneyError> {
        let earlier = self.refunds.get(..position).unwrap_or_default();
        let refunded_before = if earlier.iter().any(|r| r.takes_rest) {
            accrued_on
        } else {
            Money::sum(accrued_on.currency, earlier.iter().map(|r| &r.loyalty_base))?
        };
        let share = ReversalBase {
            accrued_points,
            accrued_on,
            refunded_before: Money::zero(accrued_on.currency),
            reversed_before: 0,
        };
        Ok(ReversalBase {
            refunded_before,
            reversed_before: share.points_to_reverse(refunded_before)?,
            ..share
        })
    }

    /// Refunded in total so far.
    pub fn refunded(&self, currency: crate::money::Currency) -> Result<Money, MoneyError> {
        let money = self.refunds.iter().filter(|r| !r.takes_rest);
        Money::sum(currency, money.map(|r| &r.total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::from_code("USD").unwrap())
    }

    fn facts(total: i64) -> OrderFacts {
        OrderFacts {
            total: usd(total),
            taxes_included: false,
            placed_at: DateTime::UNIX_EPOCH,
            uncounted_line_ids: None,
        }
    }

    fn refund(id: &str, total: i64, base: i64) -> AdmittedRefund {
        AdmittedRefund {
            refund_id: id.into(),
            total: usd(total),
            loyalty_base: usd(base),
            admitted_at: DateTime::UNIX_EPOCH,
            takes_rest: false,
        }
    }

    #[test]
    fn refunds_up_to_the_order_total_are_admitted_and_one_cent_more_is_not() {
        let f = facts(10_000);
        let l = RefundLedger::default()
            .admit(&f, refund("a", 6_000, 5_000))
            .unwrap()
            .admit(&f, refund("b", 4_000, 3_000))
            .unwrap();
        assert_eq!(l.version, 2);
        assert_eq!(l.refunded(usd(0).currency).unwrap(), usd(10_000));
        let err = l.admit(&f, refund("c", 1, 0)).unwrap_err();
        assert!(
            matches!(err, AdmissionError::OverRefund { would_be, .. } if would_be == usd(10_001)),
            "{err}"
        );
        assert!(err.to_string().contains("needs review"));
    }

    #[test]
    fn a_refund_in_another_currency_or_negative_is_refused() {
        let f = facts(10_000);
        let mut eur = refund("e", 100, 0);
        eur.total = Money::new(100, Currency::from_code("EUR").unwrap());
        assert!(matches!(
            RefundLedger::default().admit(&f, eur),
            Err(AdmissionError::CurrencyMismatch { .. })
        ));
        assert!(matches!(
            RefundLedger::default().admit(&f, refund("n", -1, 0)),
            Err(AdmissionError::Negative { .. })
        ));
    }

    #[test]
    fn reversals_computed_from_the_ledger_add_up_to_the_accrual_in_any_run_order() {
        // 100 points on 99.99; three returns of 33.33 each.
        let f = facts(30_000);
        let mut l = RefundLedger::default();
        for id in ["a", "b", "c"] {
            l = l.admit(&f, refund(id, 3_333, 3_333)).unwrap();
        }
        let points = |pos: usize| {
            l.reversal_base(pos, 100, usd(9_999))
                .unwrap()
                .points_to_reverse(l.refunds[pos].loyalty_base)
                .unwrap()
        };
        // Run in reverse order: each share is fixed by the ledger position.
        let shares: Vec<i64> = [2, 0, 1].iter().map(|&p| points(p)).collect();
        assert_eq!(shares.iter().sum::<i64>(), 100);
        assert_eq!(points(0), 33);
        assert_eq!(points(1), 33);
        assert_eq!(points(2), 34);
    }

    #[test]
    fn a_cancellation_takes_back_what_earlier_returns_left_and_later_returns_take_nothing() {
        let f = facts(30_000);
        let l = RefundLedger::default()
            .admit(&f, refund("a", 3_333, 3_333))
            .unwrap();
        let l = l.cancel(DateTime::UNIX_EPOCH, usd(0).currency).unwrap();
        assert!(
            l.cancel(DateTime::UNIX_EPOCH, usd(0).currency).is_none(),
            "once"
        );
        let l = l.admit(&f, refund("b", 3_333, 3_333)).unwrap();
        let points = |pos: usize| {
            l.reversal_base(pos, 100, usd(9_999))
                .unwrap()
                .points_to_reverse(l.loyalty_base_of(pos, usd(9_999)))
                .unwrap()
        };
        assert_eq!((points(0), points(1), points(2)), (33, 67, 0));
        assert!(!l.cancelled_before_refunds(), "a refund came first");
        let only = RefundLedger::default()
            .cancel(DateTime::UNIX_EPOCH, usd(0).currency)
            .unwrap();
        assert!(only.cancelled_before_refunds());
    }
}
