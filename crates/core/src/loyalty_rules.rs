//! How many points an order earns. Pure and deterministic, so reconciliation
//! can recompute every order's points independently of the loyalty platform.
//!
//! Points are earned per whole unit of shop-currency merchandise net: after
//! discounts, without gift cards, shipping or tax (tax is taken out of the
//! price when the shop's prices include it), without excluded SKUs, rounded
//! down. A rate and a tier multiplier then apply, again rounding down.
//! Default: 1 point per unit, so 58.50 USD of merchandise earns 58 points.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{LineKind, Order};
use crate::money::{Money, MoneyError};

/// Configurable earning rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoyaltyRules {
    /// Points earned per `per_units` whole units of shop currency.
    pub points: u32,
    pub per_units: u32,
    /// Tier name → multiplier in percent (150 = ×1.5). Unknown tiers earn ×1.
    pub tier_multipliers_percent: BTreeMap<String, u32>,
    /// SKUs that never earn points (e.g. tobacco, gift wrap).
    pub excluded_skus: BTreeSet<String>,
}

impl Default for LoyaltyRules {
    fn default() -> Self {
        LoyaltyRules {
            points: 1,
            per_units: 1,
            tier_multipliers_percent: BTreeMap::new(),
            excluded_skus: BTreeSet::new(),
        }
    }
}

/// The points an order earns, with the base they were computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accrual {
    /// Shop-currency merchandise net that earns points.
    pub eligible: Money,
    /// Whole currency units of `eligible`.
    pub whole_units: i64,
    pub points: i64,
}

impl LoyaltyRules {
    /// Points for `order` earned by a member of `tier`.
    pub fn accrual(&self, order: &Order, tier: Option<&str>) -> Result<Accrual, MoneyError> {
        let eligible = self.eligible_amount(order)?;
        let unit = 10i64.pow(u32::from(order.shop_currency.exponent()));
        // Negative merchandise (a fully discounted order with rounding) earns nothing.
        let whole_units = eligible.minor.max(0) / unit;
        let multiplier = tier
            .and_then(|t| self.tier_multipliers_percent.get(t))
            .copied()
            .unwrap_or(100);
        let numerator = i128::from(whole_units) * i128::from(self.points) * i128::from(multiplier);
        let denominator = i128::from(self.per_units.max(1)) * 100;
        let points = i64::try_from(numerator / denominator).map_err(|_| MoneyError::Overflow)?;
        Ok(Accrual {
            eligible,
            whole_units,
            points,
        })
    }

    /// Merchandise net in shop currency, tax excluded, excluded SKUs left out.
    pub fn eligible_amount(&self, order: &Order) -> Result<Money, MoneyError> {
        let mut total = Money::zero(order.shop_currency);
        for line in &order.lines {
            if line.kind != LineKind::Merchandise {
                continue;
            }
            if line
                .sku
                .as_ref()
                .is_some_and(|s| self.excluded_skus.contains(s))
            {
                continue;
            }
            let mut net = line.net.shop;
            if order.taxes_included {
                for t in &line.tax_lines {
                    net = net.checked_sub(t.amount.shop)?;
                }
            }
            total = total.checked_add(net)?;
        }
        Ok(total)
    }
}

impl LoyaltyRules {
    /// The part of a refund that takes back points: merchandise refunded
    /// (after discounts, without tax), gift cards and excluded SKUs left out,
    /// like [`Self::eligible_amount`] on the order.
    pub fn refund_eligible_amount(
        &self,
        refund: &crate::model::Refund,
    ) -> Result<Money, MoneyError> {
        let mut total = Money::zero(refund.total.shop.currency);
        for line in &refund.lines {
            let excluded = line
                .sku
                .as_ref()
                .is_some_and(|s| self.excluded_skus.contains(s));
            if line.kind == LineKind::Merchandise && !excluded {
                total = total.checked_add(line.subtotal.shop)?;
            }
        }
        Ok(total)
    }
}

/// What a return takes back: the points for the share of the accrual base
/// refunded so far, minus what earlier returns already took, rounded down,
/// never more than the order accrued. Computed on the cumulative refunded
/// amount so partial returns add up to exactly the accrual when everything
/// comes back, whatever the order the returns arrive in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReversalBase {
    /// Points the order accrued.
    pub accrued_points: i64,
    /// The merchandise amount they were earned on.
    pub accrued_on: Money,
    /// Merchandise refunded by earlier returns of this order.
    pub refunded_before: Money,
    /// Points earlier returns already reversed.
    pub reversed_before: i64,
}

impl ReversalBase {
    /// Points to reverse for a return refunding `refunded_now` of merchandise
    /// (shop currency, after discounts, without tax, shipping or gift cards).
    pub fn points_to_reverse(&self, refunded_now: Money) -> Result<i64, MoneyError> {
        let remaining = (self.accrued_points - self.reversed_before).max(0);
        if self.accrued_on.minor <= 0 || remaining == 0 {
            return Ok(0);
        }
        let cumulative = self.refunded_before.checked_add(refunded_now)?;
        let cumulative = cumulative.minor.clamp(0, self.accrued_on.minor);
        let target = i128::from(self.accrued_points) * i128::from(cumulative)
            / i128::from(self.accrued_on.minor);
        let target = i64::try_from(target).map_err(|_| MoneyError::Overflow)?;
        Ok((target - self.reversed_before).clamp(0, remaining))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::CanonicalEvent;
    use crate::mappers::shopify::{map, ShopifyTopic};

    fn order(payload: &str) -> Order {
        let path = format!(
            "{}/../../events/payloads/{payload}",
            env!("CARGO_MANIFEST_DIR")
        );
        match map(
            ShopifyTopic::OrdersCreate,
            "s",
            &std::fs::read(path).unwrap(),
        )
        .unwrap()
        {
            CanonicalEvent::OrderPlaced(e) => e.order,
            _ => unreachable!(),
        }
    }

    /// The discount-code order with its lines rewritten to one line of `net`.
    fn order_with_net(minor: i64) -> Order {
        let mut o = order("shopify-orders-create-discount-code.json");
        o.lines.truncate(1);
        o.lines[0].net.shop.minor = minor;
        o
    }

    #[test]
    fn default_rule_is_one_point_per_whole_unit_rounded_down() {
        let a = LoyaltyRules::default()
            .accrual(&order_with_net(5850), None)
            .unwrap();
        assert_eq!(a.eligible.minor, 5850);
        assert_eq!(a.whole_units, 58);
        assert_eq!(a.points, 58);
        assert_eq!(
            LoyaltyRules::default()
                .accrual(&order_with_net(99), None)
                .unwrap()
                .points,
            0
        );
    }

    #[test]
    fn merchandise_net_is_after_discounts_without_shipping_or_tax() {
        // 121.48 gross − 12.15 discount = 109.33 merchandise; shipping 10.00 and tax 8.75 excluded.
        let a = LoyaltyRules::default()
            .accrual(&order("shopify-orders-create-discount-code.json"), None)
            .unwrap();
        assert_eq!(a.eligible.minor, 10933);
        assert_eq!(a.points, 109);
    }

    #[test]
    fn gift_cards_earn_nothing() {
        let o = order("shopify-orders-create-cad-gift-card.json");
        let a = LoyaltyRules::default().accrual(&o, None).unwrap();
        assert_eq!(a.eligible.minor, 8999, "the 50.00 gift card is left out");
        assert_eq!(a.points, 89);
    }

    #[test]
    fn included_tax_is_taken_out_and_shop_currency_is_used() {
        let o = order("shopify-orders-create-eur-presentment-vat-inclusive.json");
        let a = LoyaltyRules::default().accrual(&o, None).unwrap();
        assert_eq!(a.eligible.currency.code(), "USD");
        assert_eq!(a.eligible.minor, 11142);
        assert_eq!(a.points, 111);
    }

    #[test]
    fn rate_tier_and_exclusions_apply() {
        let mut rules = LoyaltyRules {
            points: 3,
            per_units: 2,
            ..LoyaltyRules::default()
        };
        rules.tier_multipliers_percent.insert("Gold".into(), 150);
        let o = order_with_net(5850);
        // 58 units × 3/2 = 87; Gold ×1.5 → 130.5 → 130
        assert_eq!(rules.accrual(&o, None).unwrap().points, 87);
        assert_eq!(rules.accrual(&o, Some("Gold")).unwrap().points, 130);
        assert_eq!(rules.accrual(&o, Some("Unknown")).unwrap().points, 87);
        let sku = o.lines[0].sku.clone().unwrap();
        rules.excluded_skus.insert(sku);
        assert_eq!(rules.accrual(&o, Some("Gold")).unwrap().points, 0);
    }

    fn base(accrued: i64, on: i64, refunded_before: i64, reversed_before: i64) -> ReversalBase {
        let usd = crate::money::Currency::from_code("USD").unwrap();
        ReversalBase {
            accrued_points: accrued,
            accrued_on: Money::new(on, usd),
            refunded_before: Money::new(refunded_before, usd),
            reversed_before,
        }
    }

    fn usd(minor: i64) -> Money {
        Money::new(minor, crate::money::Currency::from_code("USD").unwrap())
    }

    #[test]
    fn a_partial_return_reverses_its_share_rounded_down() {
        // 109 points on 109.33; a 22.49 return: 109 × 22.49 / 109.33 = 22.42 → 22.
        assert_eq!(
            base(109, 10933, 0, 0).points_to_reverse(usd(2249)).unwrap(),
            22
        );
    }

    #[test]
    fn partial_returns_add_up_to_the_whole_accrual_in_any_order() {
        let parts = [2249, 3000, 5684]; // sums to 10933
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let (mut refunded, mut reversed) = (0, 0);
            for i in order {
                let r = base(109, 10933, refunded, reversed)
                    .points_to_reverse(usd(parts[i]))
                    .unwrap();
                refunded += parts[i];
                reversed += r;
            }
            assert_eq!(reversed, 109, "{order:?}");
        }
    }

    #[test]
    fn a_reversal_never_exceeds_what_is_left_of_the_accrual() {
        // Refunds beyond the accrual base (or repeated) take back nothing more.
        assert_eq!(
            base(109, 10933, 10933, 109)
                .points_to_reverse(usd(500))
                .unwrap(),
            0
        );
        assert_eq!(
            base(109, 10933, 0, 0)
                .points_to_reverse(usd(50_000))
                .unwrap(),
            109
        );
        assert_eq!(base(0, 0, 0, 0).points_to_reverse(usd(100)).unwrap(), 0);
        assert_eq!(
            base(109, 10933, 0, 30)
                .points_to_reverse(usd(2249))
                .unwrap(),
            0,
            "earlier reversals count"
        );
    }

    #[test]
    fn zero_decimal_currencies_count_whole_units_directly() {
        let mut o = order_with_net(1500);
        let jpy = crate::money::Currency::from_code("JPY").unwrap();
        o.shop_currency = jpy;
        o.lines[0].net.shop = Money::new(1500, jpy);
        assert_eq!(
            LoyaltyRules::default().accrual(&o, None).unwrap().points,
            1500
        );
    }
}
