//! Promotions: percentage or fixed discounts with a minimum spend, a SKU or
//! collection scope, a date window and a per-customer limit, evaluated in
//! minor units.
//!
//! Rounding rule: a percentage discount is computed once on the eligible
//! subtotal, rounded half up to the minor unit; the discount is then spread
//! over the eligible lines in proportion to their subtotals by largest
//! remainder (ties to the earlier line), so the line discounts always add up
//! to the discount exactly. A fixed discount never exceeds what it applies to.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::pricing::PricedLine;
use crate::money::{Money, MoneyError, Rounding};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Discount {
    /// Hundredths of a percent: 1500 = 15 %.
    Percent {
        basis_points: u32,
    },
    Fixed {
        amount: Money,
    },
}

/// What a promotion applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "values", rename_all = "snake_case")]
pub enum Scope {
    All,
    Skus(BTreeSet<String>),
    Collections(BTreeSet<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub code: String,
    pub discount: Discount,
    /// Eligible subtotal needed, in the cart's currency.
    pub min_spend: Option<Money>,
    pub scope: Scope,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Uses allowed per customer (guests cannot use limited promotions).
    pub per_customer_limit: Option<u32>,
}

/// A promotion applied to a cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub code: String,
    pub discount: Money,
    /// Per cart line (same order as the lines), summing to `discount`.
    pub line_discounts: Vec<Money>,
}

/// Why a promotion does not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum PromotionProblem {
    #[error("promotion {code} does not exist")]
    Unknown { code: String },
    #[error("promotion {code} is not valid at this time")]
    OutsideWindow { code: String },
    #[error("promotion {code} needs {min_spend} of eligible items, the cart has {eligible}")]
    BelowMinimumSpend {
        code: String,
        min_spend: Money,
        eligible: Money,
    },
    #[error("promotion {code} applies to nothing in the cart")]
    NothingEligible { code: String },
    #[error("promotion {code} was already used {uses} time(s), its limit per customer")]
    LimitReached { code: String, uses: u32 },
    #[error("promotion {code} is for signed-in customers")]
    NeedsCustomer { code: String },
    #[error("promotion {code}: {reason}")]
    Invalid { code: String, reason: String },
}

impl Promotion {
    fn covers(&self, line: &PricedLine) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Skus(skus) => skus.contains(&line.sku),
            Scope::Collections(c) => !c.is_disjoint(&line.collections),
        }
    }

    /// Applies the promotion to `lines` for a customer who used it `uses`
    /// times before (`None`: a guest).
    pub fn apply(
        &self,
        lines: &[PricedLine],
        now: DateTime<Utc>,
        uses: Option<u32>,
    ) -> Result<Applied, PromotionProblem> {
        let code = self.code.clone();
        let invalid = |e: MoneyError| PromotionProblem::Invalid {
            code: code.clone(),
            reason: e.to_string(),
        };
        if self.starts_at.is_some_and(|s| now < s) || self.ends_at.is_some_and(|e| now >= e) {
            return Err(PromotionProblem::OutsideWindow { code });
        }
        if let Some(limit) = self.per_customer_limit {
            match uses {
                None => return Err(PromotionProblem::NeedsCustomer { code }),
                Some(n) if n >= limit => {
                    return Err(PromotionProblem::LimitReached { code, uses: n })
                }
                Some(_) => {}
            }
        }
        let Some(currency) = lines.first().map(|l| l.subtotal.currency) else {
            return Err(PromotionProblem::NothingEligible { code });
        };
        let eligible: Vec<Money> = lines
            .iter()
            .map(|l| {
                if self.covers(l) {
                    l.subtotal
                } else {
                    Money::zero(currency)
                }
            })
            .collect();
        let base = Money::sum(currency, eligible.iter()).map_err(invalid)?;
        if base.minor <= 0 {
            return Err(PromotionProblem::NothingEligible { code });
        }
        if let Some(min) = self.min_spend {
            if min.currency != currency {
                return Err(invalid(MoneyError::CurrencyMismatch {
                    left: min.currency.code().into(),
                    right: currency.code().into(),
                }));
            }
            if base.minor < min.minor {
                return Err(PromotionProblem::BelowMinimumSpend {
                    code,
                    min_spend: min,
                    eligible: base,
                });
            }
        }
        let discount = match &self.discount {
            Discount::Percent { basis_points } => base
                .share(
                    i64::from(*basis_points).min(10_000),
                    10_000,
                    Rounding::HalfUp,
                )
                .map_err(invalid)?,
            Discount::Fixed { amount } => {
                if amount.currency != currency {
                    return Err(invalid(MoneyError::CurrencyMismatch {
                        left: amount.currency.code().into(),
                        right: currency.code().into(),
                    }));
                }
                Money::new(amount.minor.clamp(0, base.minor), currency)
            }
        };
        let line_discounts = allocate(discount, &eligible).map_err(invalid)?;
        Ok(Applied {
            code,
            discount,
            line_discounts,
        })
    }
}

/// Spreads `total` over `weights` in proportion, by largest remainder: the
/// parts add up to `total` exactly, ties go to the earlier weight.
fn allocate(total: Money, weights: &[Money]) -> Result<Vec<Money>, MoneyError> {
    let sum: i128 = weights.iter().map(|w| i128::from(w.minor)).sum();
    if sum == 0 {
        return Ok(weights
            .iter()
            .map(|_| Money::zero(total.currency))
            .collect());
    }
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let n = i128::from(total.minor) * i128::from(w.minor);
        parts.push(n / sum);
        remainders.push((n % sum, i));
    }
    let given: i128 = parts.iter().sum();
    let mut left = i128::from(total.minor) - given;
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders {
        if left <= 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts
        .into_iter()
        .map(|p| {
            i64::try_from(p)
                .map(|m| Money::new(m, total.currency))
                .map_err(|_| MoneyError::Overflow)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::from_code("USD").unwrap())
    }

    fn line(sku: &str, subtotal: i64, collections: &[&str]) -> PricedLine {
        PricedLine {
            sku: sku.into(),
            quantity: 1,
            unit_price: usd(subtotal),
            price_version: 1,
            subtotal: usd(subtotal),
            collections: collections.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn promo(discount: Discount) -> Promotion {
        Promotion {
            code: "SAVE".into(),
            discount,
            min_spend: None,
            scope: Scope::All,
            starts_at: None,
            ends_at: None,
            per_customer_limit: None,
        }
    }

    fn t(h: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 11, 27, h, 0, 0).unwrap()
    }

    #[test]
    fn a_percentage_is_rounded_half_up_once_and_its_line_shares_add_up_exactly() {
        // 15 % of 33.33 + 33.33 + 33.34 = 100.00 → 15.00, spread 5.00 each.
        let lines = [
            line("A", 3333, &[]),
            line("B", 3333, &[]),
            line("C", 3334, &[]),
        ];
        let a = promo(Discount::Percent { basis_points: 1500 })
            .apply(&lines, t(12), None)
            .unwrap();
        assert_eq!(a.discount, usd(1500));
        assert_eq!(a.line_discounts.iter().map(|m| m.minor).sum::<i64>(), 1500);
        // 10 % of 0.05 = 0.005 → 0.01 (half up).
        let small = promo(Discount::Percent { basis_points: 1000 })
            .apply(&[line("A", 5, &[])], t(12), None)
            .unwrap();
        assert_eq!(small.discount, usd(1));
        // 10 % of 3 × 0.10: 0.03 over three equal lines, one cent each.
        let even = promo(Discount::Percent { basis_points: 1000 })
            .apply(
                &[line("A", 10, &[]), line("B", 10, &[]), line("C", 10, &[])],
                t(12),
                None,
            )
            .unwrap();
        assert_eq!(even.line_discounts, vec![usd(1), usd(1), usd(1)]);
    }

    #[test]
    fn a_fixed_discount_applies_to_its_scope_only_and_never_exceeds_it() {
        let mut p = promo(Discount::Fixed { amount: usd(5000) });
        p.scope = Scope::Collections(["summer".to_string()].into());
        let lines = [line("A", 2000, &["summer"]), line("B", 9000, &[])];
        let a = p.apply(&lines, t(12), None).unwrap();
        assert_eq!(a.discount, usd(2000), "capped at the eligible 20.00");
        assert_eq!(a.line_discounts, vec![usd(2000), usd(0)]);
        p.scope = Scope::Skus(["Z".to_string()].into());
        assert!(matches!(
            p.apply(&lines, t(12), None),
            Err(PromotionProblem::NothingEligible { .. })
        ));
    }

    #[test]
    fn a_promotion_outside_its_window_below_its_minimum_or_over_its_limit_is_refused() {
        let mut p = promo(Discount::Percent { basis_points: 1000 });
        p.starts_at = Some(t(10));
        p.ends_at = Some(t(14));
        let lines = [line("A", 4000, &[])];
        assert!(p.apply(&lines, t(12), None).is_ok());
        assert!(
            matches!(
                p.apply(&lines, t(14), None),
                Err(PromotionProblem::OutsideWindow { .. })
            ),
            "the end is exclusive"
        );
        assert!(matches!(
            p.apply(&lines, t(9), None),
            Err(PromotionProblem::OutsideWindow { .. })
        ));
        p.min_spend = Some(usd(5000));
        let err = p.apply(&lines, t(12), None).unwrap_err();
        assert!(err.to_string().contains("needs 50.00 USD"), "{err}");
        p.min_spend = None;
        p.per_customer_limit = Some(1);
        assert!(p.apply(&lines, t(12), Some(0)).is_ok());
        assert!(matches!(
            p.apply(&lines, t(12), Some(1)),
            Err(PromotionProblem::LimitReached { uses: 1, .. })
        ));
        assert!(matches!(
            p.apply(&lines, t(12), None),
            Err(PromotionProblem::NeedsCustomer { .. })
        ));
    }
}
