//! Shopify REST webhook payloads (`orders/create`, `orders/updated`,
//! `orders/cancelled`, `refunds/create`) → canonical events.
//!
//! Traps handled here, each with a test below:
//! - money is decimal strings, and JSON numbers in some refund fields;
//! - a code discount may live only in `line_items[].discount_allocations`
//!   while `total_discount(s)` reads "0.00": discounts come from allocations;
//! - `taxes_included: true` stores: tax is inside prices, not added on top;
//! - shop vs presentment money: each side from its own `*_set` entry;
//! - gift-card lines: no SKU, no inventory, not merchandise revenue;
//! - a refund's shipping can appear in `refund_shipping_lines` and again as a
//!   `shipping_refund` order adjustment: counted once.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::decimal::{DecimalText, IdText};
use super::{check_reconciled, MapError};
use crate::events::{CanonicalEvent, OrderCancelled, OrderPlaced, OrderUpdated, RefundIssued};
use crate::model::{
    Cancellation, Customer, DiscountAllocation, LineKind, MoneyBag, Order, OrderLine, OrderRef,
    OrderTotals, Platform, Refund, RefundLine, RestockType, ShippingLine, TaxLine,
};
use crate::money::{Currency, Money};

mod order;
use order::map_order;
mod refund;
use refund::{map_refund, SRefund};

/// The Shopify webhook topics retailflow maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShopifyTopic {
    OrdersCreate,
    OrdersUpdated,
    OrdersCancelled,
    RefundsCreate,
}

impl ShopifyTopic {
    /// `None` for topics retailflow does not handle (acknowledged, not published).
    pub fn parse(topic: &str) -> Option<Self> {
        match topic.trim() {
            "orders/create" => Some(Self::OrdersCreate),
            "orders/updated" => Some(Self::OrdersUpdated),
            "orders/cancelled" => Some(Self::OrdersCancelled),
            "refunds/create" => Some(Self::RefundsCreate),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrdersCreate => "orders/create",
            Self::OrdersUpdated => "orders/updated",
            Self::OrdersCancelled => "orders/cancelled",
            Self::RefundsCreate => "refunds/create",
        }
    }
}

/// Maps one webhook body. `shop` is the `X-Shopify-Shop-Domain` header.
pub fn map(topic: ShopifyTopic, shop: &str, body: &[u8]) -> Result<CanonicalEvent, MapError> {
    match topic {
        ShopifyTopic::OrdersCreate => Ok(CanonicalEvent::OrderPlaced(OrderPlaced {
            order: map_order(shop, &parse(body)?)?,
        })),
        ShopifyTopic::OrdersUpdated => Ok(CanonicalEvent::OrderUpdated(OrderUpdated {
            order: map_order(shop, &parse(body)?)?,
        })),
        ShopifyTopic::OrdersCancelled => {
            let o: SOrder = parse(body)?;
            // Required: the topic header is not signed, so a live order's body
            // must not be accepted as a cancellation.
            let cancelled_at = o.cancelled_at.ok_or_else(|| {
                MapError::MissingField("cancelled_at (the order is not cancelled)".into())
            })?;
            Ok(CanonicalEvent::OrderCancelled(OrderCancelled {
                cancellation: Cancellation {
                    order: order_ref(shop, &o.id),
                    cancelled_at: cancelled_at.with_timezone(&Utc),
                    reason: o.cancel_reason,
                },
            }))
        }
        ShopifyTopic::RefundsCreate => {
            let r: SRefund = parse(body)?;
            let own = r
                .note
                .as_deref()
                .and_then(crate::ports::shop::till_return_reference);
            if let Some(reference) = own {
                return Err(MapError::OwnEcho {
                    reference: reference.to_string(),
                });
            }
            Ok(CanonicalEvent::RefundIssued(RefundIssued {
                refund: map_refund(shop, &r)?,
            }))
        }
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, MapError> {
    serde_json::from_slice(body).map_err(|e| MapError::Malformed(e.to_string()))
}

fn order_ref(shop: &str, id: &IdText) -> OrderRef {
    OrderRef {
        platform: Platform::Shopify,
        shop: shop.to_string(),
        order_id: id.0.clone(),
    }
}

// ---- payload shapes (only the fields retailflow reads) ----

#[derive(Deserialize)]
struct SMoney {
    amount: DecimalText,
    currency_code: String,
}

#[derive(Deserialize)]
struct SMoneySet {
    shop_money: SMoney,
    presentment_money: SMoney,
}

#[derive(Deserialize)]
struct SCustomer {
    id: Option<IdText>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct STaxLine {
    title: Option<String>,
    rate: Option<DecimalText>,
    price: Option<DecimalText>,
    price_set: Option<SMoneySet>,
}

#[derive(Deserialize)]
struct SDiscountAllocation {
    amount: Option<DecimalText>,
    amount_set: Option<SMoneySet>,
    discount_application_index: Option<usize>,
}

#[derive(Deserialize)]
struct SDiscountApplication {
    code: Option<String>,
    title: Option<String>,
}

#[derive(Deserialize)]
struct SLineItem {
    id: IdText,
    sku: Option<String>,
    product_id: Option<IdText>,
    variant_id: Option<IdText>,
    title: Option<String>,
    name: Option<String>,
    quantity: u32,
    price: Option<DecimalText>,
    price_set: Option<SMoneySet>,
    #[serde(default)]
    gift_card: bool,
    #[serde(default)]
    requires_shipping: bool,
    #[serde(default)]
    tax_lines: Vec<STaxLine>,
    #[serde(default)]
    discount_allocations: Vec<SDiscountAllocation>,
}

#[derive(Deserialize)]
struct SShippingLine {
    title: Option<String>,
    code: Option<String>,
    price: Option<DecimalText>,
    price_set: Option<SMoneySet>,
    #[serde(default)]
    tax_lines: Vec<STaxLine>,
    #[serde(default)]
    discount_allocations: Vec<SDiscountAllocation>,
}

#[derive(Deserialize)]
struct SDiscountCode {
    code: String,
}

#[derive(Deserialize)]
struct SOrder {
    id: IdText,
    name: Option<String>,
    created_at: Option<DateTime<chrono::FixedOffset>>,
    cancelled_at: Option<DateTime<chrono::FixedOffset>>,
    cancel_reason: Option<String>,
    currency: Option<String>,
    presentment_currency: Option<String>,
    #[serde(default)]
    taxes_included: bool,
    customer: Option<SCustomer>,
    #[serde(default)]
    line_items: Vec<SLineItem>,
    #[serde(default)]
    shipping_lines: Vec<SShippingLine>,
    #[serde(default)]
    discount_applications: Vec<SDiscountApplication>,
    checkout_token: Option<String>,
    checkout_id: Option<IdText>,
    #[serde(default)]
    discount_codes: Vec<SDiscountCode>,
    total_price: Option<DecimalText>,
    total_price_set: Option<SMoneySet>,
    total_tax: Option<DecimalText>,
    total_tax_set: Option<SMoneySet>,
    total_tip_received: Option<DecimalText>,
    original_total_duties_set: Option<SMoneySet>,
}

// ---- money extraction ----

/// Currencies of one order: legacy single-value fields are in the shop currency.
#[derive(Clone, Copy)]
struct Currencies {
    shop: Currency,
    presentment: Currency,
}

impl Currencies {
    /// An amount from its `*_set` (each side from its own entry), or from the
    /// legacy shop-currency field when shop and presentment are the same.
    fn bag(
        &self,
        field: &str,
        set: Option<&SMoneySet>,
        legacy: Option<&DecimalText>,
    ) -> Result<MoneyBag, MapError> {
        if let Some(set) = set {
            let shop = self.side(field, "shop_money", &set.shop_money, self.shop)?;
            let presentment = self.side(
                field,
                "presentment_money",
                &set.presentment_money,
                self.presentment,
            )?;
            return Ok(MoneyBag { shop, presentment });
        }
        match legacy {
            Some(v) if self.shop == self.presentment => {
                let m = v.money(self.shop).map_err(MapError::amount(field))?;
                Ok(MoneyBag::single(m))
            }
            Some(_) => Err(MapError::MissingField(format!(
                "{field}_set (needed for the {} presentment amount)",
                self.presentment
            ))),
            None => Err(MapError::MissingField(field.to_string())),
        }
    }

    fn side(
        &self,
        field: &str,
        side: &str,
        m: &SMoney,
        expected: Currency,
    ) -> Result<Money, MapError> {
        let name = format!("{field}_set.{side}");
        let currency =
            Currency::from_code(&m.currency_code).map_err(MapError::amount(name.clone()))?;
        if currency != expected {
            return Err(MapError::BadValue {
                field: name,
                reason: format!("currency {currency}, expected {expected}"),
            });
        }
        m.amount.money(currency).map_err(MapError::amount(name))
    }

    fn zero(&self) -> MoneyBag {
        MoneyBag::zero(self.shop, self.presentment)
    }
}

fn sum_bags(
    zero: MoneyBag,
    bags: impl IntoIterator<Item = MoneyBag>,
) -> Result<MoneyBag, MapError> {
    bags.into_iter().try_fold(zero, |acc, b| {
        acc.checked_add(b).map_err(MapError::amount("sum"))
    })
}

fn tax_lines(c: &Currencies, field: &str, lines: &[STaxLine]) -> Result<Vec<TaxLine>, MapError> {
    lines
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Ok(TaxLine {
                title: t.title.clone().unwrap_or_default(),
                rate: t.rate.as_ref().map(|r| r.0.clone()),
                amount: c.bag(
                    &format!("{field}.tax_lines[{i}].price"),
                    t.price_set.as_ref(),
                    t.price.as_ref(),
                )?,
            })
        })
        .collect()
}

fn allocations(
    c: &Currencies,
    field: &str,
    allocs: &[SDiscountAllocation],
    apps: &[SDiscountApplication],
) -> Result<Vec<DiscountAllocation>, MapError> {
    allocs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let source = a
                .discount_application_index
                .and_then(|idx| apps.get(idx))
                .and_then(|app| app.code.clone().or_else(|| app.title.clone()));
            Ok(DiscountAllocation {
                amount: c.bag(
                    &format!("{field}.discount_allocations[{i}].amount"),
                    a.amount_set.as_ref(),
                    a.amount.as_ref(),
                )?,
                source,
            })
        })
        .collect()
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}
