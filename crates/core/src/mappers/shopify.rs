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
                .and_then(|n| n.strip_prefix(crate::ports::shop::TILL_RETURN_NOTE_PREFIX));
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

// ---- orders ----

fn map_order(shop: &str, o: &SOrder) -> Result<Order, MapError> {
    let shop_code = o
        .currency
        .as_deref()
        .ok_or_else(|| MapError::MissingField("currency".into()))?;
    let shop_currency = Currency::from_code(shop_code).map_err(MapError::amount("currency"))?;
    let presentment_currency = match o.presentment_currency.as_deref() {
        Some(code) => {
            Currency::from_code(code).map_err(MapError::amount("presentment_currency"))?
        }
        None => shop_currency,
    };
    let c = Currencies {
        shop: shop_currency,
        presentment: presentment_currency,
    };
    let created_at = o
        .created_at
        .ok_or_else(|| MapError::MissingField("created_at".into()))?
        .with_timezone(&Utc);

    let mut lines = Vec::with_capacity(o.line_items.len());
    for (i, li) in o.line_items.iter().enumerate() {
        let field = format!("line_items[{i}]");
        let unit_price = c.bag(
            &format!("{field}.price"),
            li.price_set.as_ref(),
            li.price.as_ref(),
        )?;
        let gross = unit_price
            .checked_mul(i64::from(li.quantity))
            .map_err(MapError::amount(format!("{field}.price")))?;
        let discount_allocations = allocations(
            &c,
            &field,
            &li.discount_allocations,
            &o.discount_applications,
        )?;
        let discount_total = sum_bags(c.zero(), discount_allocations.iter().map(|d| d.amount))?;
        let net = gross
            .checked_sub(discount_total)
            .map_err(MapError::amount(field.clone()))?;
        let kind = if li.gift_card {
            LineKind::GiftCard
        } else {
            LineKind::Merchandise
        };
        lines.push(OrderLine {
            line_id: li.id.0.clone(),
            sku: if li.gift_card {
                None
            } else {
                non_empty(li.sku.clone())
            },
            product_id: li.product_id.as_ref().map(|p| p.0.clone()),
            variant_id: li.variant_id.as_ref().map(|v| v.0.clone()),
            title: li
                .name
                .clone()
                .or_else(|| li.title.clone())
                .unwrap_or_default(),
            kind,
            quantity: li.quantity,
            unit_price,
            gross,
            discount_allocations,
            discount_total,
            net,
            tax_lines: tax_lines(&c, &field, &li.tax_lines)?,
            requires_shipping: li.requires_shipping && !li.gift_card,
        });
    }

    let mut shipping_lines = Vec::with_capacity(o.shipping_lines.len());
    for (i, sl) in o.shipping_lines.iter().enumerate() {
        let field = format!("shipping_lines[{i}]");
        let allocs = allocations(
            &c,
            &field,
            &sl.discount_allocations,
            &o.discount_applications,
        )?;
        shipping_lines.push(ShippingLine {
            title: sl.title.clone().unwrap_or_default(),
            code: sl.code.clone(),
            price: c.bag(
                &format!("{field}.price"),
                sl.price_set.as_ref(),
                sl.price.as_ref(),
            )?,
            discount_total: sum_bags(c.zero(), allocs.iter().map(|d| d.amount))?,
            tax_lines: tax_lines(&c, &field, &sl.tax_lines)?,
        });
    }

    let totals = order_totals(&c, o, &lines, &shipping_lines)?;

    let customer = o.customer.as_ref().map(|cu| Customer {
        customer_id: cu.id.as_ref().map(|i| i.0.clone()),
        email: cu.email.clone(),
        first_name: cu.first_name.clone(),
        last_name: cu.last_name.clone(),
        is_guest: cu.id.is_none(),
    });

    Ok(Order {
        order: order_ref(shop, &o.id),
        display_name: o.name.clone().unwrap_or_else(|| o.id.0.clone()),
        created_at,
        customer,
        shop_currency,
        presentment_currency,
        taxes_included: o.taxes_included,
        lines,
        shipping_lines,
        totals,
        // The token is what a storefront's checkout knows itself by; older
        // payloads only carry the numeric id.
        checkout_id: o
            .checkout_token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| o.checkout_id.as_ref().map(|i| i.0.clone())),
        discount_codes: o
            .discount_codes
            .iter()
            .map(|d| d.code.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect(),
    })
}

fn order_totals(
    c: &Currencies,
    o: &SOrder,
    lines: &[OrderLine],
    shipping_lines: &[ShippingLine],
) -> Result<OrderTotals, MapError> {
    let zero = c.zero();
    let lines_gross = sum_bags(zero, lines.iter().map(|l| l.gross))?;
    let line_discounts = sum_bags(zero, lines.iter().map(|l| l.discount_total))?;
    let shipping = sum_bags(zero, shipping_lines.iter().map(|s| s.price))?;
    let shipping_discounts = sum_bags(zero, shipping_lines.iter().map(|s| s.discount_total))?;
    let line_tax = sum_bags(
        zero,
        lines
            .iter()
            .flat_map(|l| l.tax_lines.iter().map(|t| t.amount))
            .chain(
                shipping_lines
                    .iter()
                    .flat_map(|s| s.tax_lines.iter().map(|t| t.amount)),
            ),
    )?;
    let has_line_tax = lines.iter().any(|l| !l.tax_lines.is_empty())
        || shipping_lines.iter().any(|s| !s.tax_lines.is_empty());
    let tax = if o.total_tax_set.is_some() || o.total_tax.is_some() {
        let stated = c.bag("total_tax", o.total_tax_set.as_ref(), o.total_tax.as_ref())?;
        if has_line_tax {
            check_reconciled(
                "sum of line and shipping tax_lines",
                line_tax,
                "total_tax",
                stated,
            )?;
        }
        stated
    } else {
        line_tax
    };
    let mut other_charges = zero;
    if let Some(duties) = &o.original_total_duties_set {
        other_charges = other_charges
            .checked_add(c.bag("original_total_duties", Some(duties), None)?)
            .map_err(MapError::amount("original_total_duties"))?;
    }
    let total = c.bag(
        "total_price",
        o.total_price_set.as_ref(),
        o.total_price.as_ref(),
    )?;

    let added_tax = if o.taxes_included { zero } else { tax };
    let mut computed = lines_gross
        .checked_sub(line_discounts)
        .and_then(|v| v.checked_add(shipping))
        .and_then(|v| v.checked_sub(shipping_discounts))
        .and_then(|v| v.checked_add(added_tax))
        .and_then(|v| v.checked_add(other_charges))
        .map_err(MapError::amount("total_price"))?;
    // A tip is a shop-currency-only field and may or may not be a line item:
    // it counts as a charge only when it is exactly what the lines leave
    // unexplained in shop money; its presentment amount is then the
    // presentment remainder. Anything else is reported as a mismatch.
    if let Some(tip) = &o.total_tip_received {
        let tip = tip
            .money(c.shop)
            .map_err(MapError::amount("total_tip_received"))?;
        let unexplained = total
            .checked_sub(computed)
            .map_err(MapError::amount("total_tip_received"))?;
        if !tip.is_zero() && unexplained.shop == tip && unexplained.presentment.minor > 0 {
            other_charges = other_charges
                .checked_add(unexplained)
                .map_err(MapError::amount("total_tip_received"))?;
            computed = total;
        }
    }
    let computation = if o.taxes_included {
        "lines − line discounts + shipping − shipping discounts + duties/tips (tax included in prices)"
    } else {
        "lines − line discounts + shipping − shipping discounts + tax + duties/tips"
    };
    check_reconciled(computation, computed, "total_price", total)?;

    let mut merchandise_net = zero;
    let mut gift_cards = zero;
    for l in lines {
        match l.kind {
            LineKind::GiftCard => {
                gift_cards = gift_cards
                    .checked_add(l.gross)
                    .map_err(MapError::amount("gift_cards"))?
            }
            LineKind::Merchandise => {
                let mut net = l.net;
                if o.taxes_included {
                    let t = sum_bags(zero, l.tax_lines.iter().map(|t| t.amount))?;
                    net = net
                        .checked_sub(t)
                        .map_err(MapError::amount("merchandise_net"))?;
                }
                merchandise_net = merchandise_net
                    .checked_add(net)
                    .map_err(MapError::amount("merchandise_net"))?;
            }
        }
    }

    Ok(OrderTotals {
        lines_gross,
        line_discounts,
        shipping,
        shipping_discounts,
        tax,
        other_charges,
        total,
        merchandise_net,
        gift_cards,
    })
}

// ---- refunds ----

#[derive(Deserialize)]
struct SRefundLineItemLine {
    sku: Option<String>,
    #[serde(default)]
    gift_card: bool,
}

#[derive(Deserialize)]
struct SRefundLineItem {
    line_item_id: IdText,
    quantity: u32,
    restock_type: Option<String>,
    location_id: Option<IdText>,
    subtotal: Option<DecimalText>,
    subtotal_set: Option<SMoneySet>,
    total_tax: Option<DecimalText>,
    total_tax_set: Option<SMoneySet>,
    line_item: Option<SRefundLineItemLine>,
}

#[derive(Deserialize)]
struct SRefundShippingLine {
    subtotal_amount_set: Option<SMoneySet>,
    tax_amount_set: Option<SMoneySet>,
}

#[derive(Deserialize)]
struct SOrderAdjustment {
    kind: Option<String>,
    amount: Option<DecimalText>,
    amount_set: Option<SMoneySet>,
    tax_amount: Option<DecimalText>,
    tax_amount_set: Option<SMoneySet>,
}

#[derive(Deserialize)]
struct STransaction {
    kind: Option<String>,
    status: Option<String>,
    amount: Option<DecimalText>,
    currency: Option<String>,
}

#[derive(Deserialize)]
struct SRefund {
    id: IdText,
    order_id: IdText,
    note: Option<String>,
    created_at: Option<DateTime<chrono::FixedOffset>>,
    processed_at: Option<DateTime<chrono::FixedOffset>>,
    #[serde(default)]
    refund_line_items: Vec<SRefundLineItem>,
    #[serde(default)]
    refund_shipping_lines: Vec<SRefundShippingLine>,
    #[serde(default)]
    order_adjustments: Vec<SOrderAdjustment>,
    #[serde(default)]
    transactions: Vec<STransaction>,
    total_duties_set: Option<SMoneySet>,
}

impl SRefund {
    /// Shop and presentment currency, read from the first amount set present.
    fn currencies(&self) -> Result<Currencies, MapError> {
        let mut sets = self
            .refund_line_items
            .iter()
            .flat_map(|l| [l.subtotal_set.as_ref(), l.total_tax_set.as_ref()])
            .chain(
                self.refund_shipping_lines
                    .iter()
                    .map(|s| s.subtotal_amount_set.as_ref()),
            )
            .chain(self.order_adjustments.iter().map(|a| a.amount_set.as_ref()))
            .flatten();
        if let Some(set) = sets.next() {
            let shop = Currency::from_code(&set.shop_money.currency_code)
                .map_err(MapError::amount("shop_money.currency_code"))?;
            let presentment = Currency::from_code(&set.presentment_money.currency_code)
                .map_err(MapError::amount("presentment_money.currency_code"))?;
            return Ok(Currencies { shop, presentment });
        }
        let code = self
            .transactions
            .iter()
            .find_map(|t| t.currency.as_deref())
            .ok_or_else(|| {
                MapError::MissingField("an amount set or transaction currency on the refund".into())
            })?;
        let cur = Currency::from_code(code).map_err(MapError::amount("transactions[].currency"))?;
        Ok(Currencies {
            shop: cur,
            presentment: cur,
        })
    }
}

fn restock(kind: Option<&str>) -> Result<RestockType, MapError> {
    match kind.unwrap_or("no_restock") {
        "return" | "legacy_restock" => Ok(RestockType::Return),
        "cancel" => Ok(RestockType::Cancel),
        "no_restock" => Ok(RestockType::NoRestock),
        other => Err(MapError::BadValue {
            field: "refund_line_items[].restock_type".into(),
            reason: format!("unknown restock type {other:?}"),
        }),
    }
}

fn map_refund(shop: &str, r: &SRefund) -> Result<Refund, MapError> {
    let c = r.currencies()?;
    let zero = c.zero();
    let created_at = r
        .created_at
        .or(r.processed_at)
        .ok_or_else(|| MapError::MissingField("created_at".into()))?
        .with_timezone(&Utc);

    let mut lines = Vec::with_capacity(r.refund_line_items.len());
    for (i, rl) in r.refund_line_items.iter().enumerate() {
        let field = format!("refund_line_items[{i}]");
        let gift = rl.line_item.as_ref().is_some_and(|l| l.gift_card);
        lines.push(RefundLine {
            line_id: rl.line_item_id.0.clone(),
            sku: if gift {
                None
            } else {
                non_empty(rl.line_item.as_ref().and_then(|l| l.sku.clone()))
            },
            kind: if gift {
                LineKind::GiftCard
            } else {
                LineKind::Merchandise
            },
            quantity: rl.quantity,
            restock_type: restock(rl.restock_type.as_deref())?,
            location_id: rl.location_id.as_ref().map(|l| l.0.clone()),
            subtotal: c.bag(
                &format!("{field}.subtotal"),
                rl.subtotal_set.as_ref(),
                rl.subtotal.as_ref(),
            )?,
            tax: c.bag(
                &format!("{field}.total_tax"),
                rl.total_tax_set.as_ref(),
                rl.total_tax.as_ref(),
            )?,
        });
    }

    // Shipping is counted once: from refund_shipping_lines when present, else
    // from shipping_refund order adjustments (whose amounts are negative).
    let (shipping, shipping_tax) = if !r.refund_shipping_lines.is_empty() {
        let mut s = zero;
        let mut t = zero;
        for (i, sl) in r.refund_shipping_lines.iter().enumerate() {
            let field = format!("refund_shipping_lines[{i}]");
            s = s
                .checked_add(c.bag(
                    &format!("{field}.subtotal_amount"),
                    sl.subtotal_amount_set.as_ref(),
                    None,
                )?)
                .map_err(MapError::amount(field.clone()))?;
            if let Some(tax) = &sl.tax_amount_set {
                t = t
                    .checked_add(c.bag(&format!("{field}.tax_amount"), Some(tax), None)?)
                    .map_err(MapError::amount(field))?;
            }
        }
        (s, t)
    } else {
        adjustment_sum(&c, r, Some("shipping_refund"))?
    };
    // Since API 2024-10 refunds/create adjustments carry no `kind`: every
    // adjustment that is not a shipping refund is a discrepancy.
    let (discrepancy, discrepancy_tax) = adjustment_sum(&c, r, None)?;
    let duties = match &r.total_duties_set {
        Some(set) => c.bag("total_duties", Some(set), None)?,
        None => zero,
    };
    let adjustments = discrepancy
        .checked_add(discrepancy_tax)
        .map_err(MapError::amount("order_adjustments"))?;

    let lines_subtotal = sum_bags(zero, lines.iter().map(|l| l.subtotal))?;
    let lines_tax = sum_bags(zero, lines.iter().map(|l| l.tax))?;
    let total = sum_bags(
        zero,
        [
            lines_subtotal,
            lines_tax,
            shipping,
            shipping_tax,
            adjustments,
            duties,
        ],
    )?;

    // The money that actually moved: successful refund transactions, in the
    // presentment currency. When present they must match what was itemised.
    let mut paid: Option<Money> = None;
    for (i, t) in r.transactions.iter().enumerate() {
        if t.kind.as_deref() != Some("refund") || t.status.as_deref() != Some("success") {
            continue;
        }
        let field = format!("transactions[{i}].amount");
        let cur = match t.currency.as_deref() {
            Some(code) => Currency::from_code(code).map_err(MapError::amount(field.clone()))?,
            None => c.presentment,
        };
        let amount = t
            .amount
            .as_ref()
            .ok_or_else(|| MapError::MissingField(field.clone()))?
            .money(cur)
            .map_err(MapError::amount(field.clone()))?;
        let acc = paid.unwrap_or(Money::zero(cur));
        paid = Some(acc.checked_add(amount).map_err(MapError::amount(field))?);
    }
    if let Some(paid) = paid {
        let itemised = if paid.currency == total.presentment.currency {
            total.presentment
        } else {
            total.shop
        };
        if paid != itemised {
            return Err(MapError::TotalsMismatch {
                currency: paid.currency.to_string(),
                computation:
                    "refunded lines + line tax + shipping (once) + shipping tax + adjustments"
                        .into(),
                computed: itemised.to_decimal_string(),
                stated_field: "sum of successful refund transactions".into(),
                stated: paid.to_decimal_string(),
            });
        }
    }

    Ok(Refund {
        order: order_ref(shop, &r.order_id),
        refund_id: r.id.0.clone(),
        created_at,
        lines,
        shipping,
        shipping_tax,
        adjustments,
        duties,
        total,
    })
}

/// Money returned to the buyer by order adjustments of one kind, or (`None`)
/// by every adjustment that is not a shipping refund. Their amounts are signed
/// against the order, so refunded = −amount.
fn adjustment_sum(
    c: &Currencies,
    r: &SRefund,
    kind: Option<&str>,
) -> Result<(MoneyBag, MoneyBag), MapError> {
    let zero = c.zero();
    let mut amount = zero;
    let mut tax = zero;
    for (i, a) in r.order_adjustments.iter().enumerate() {
        let wanted = match kind {
            Some(k) => a.kind.as_deref() == Some(k),
            None => a.kind.as_deref() != Some("shipping_refund"),
        };
        if !wanted {
            continue;
        }
        let field = format!("order_adjustments[{i}]");
        let a_amt = c.bag(
            &format!("{field}.amount"),
            a.amount_set.as_ref(),
            a.amount.as_ref(),
        )?;
        amount = amount
            .checked_sub(a_amt)
            .map_err(MapError::amount(field.clone()))?;
        if a.tax_amount_set.is_some() || a.tax_amount.is_some() {
            let a_tax = c.bag(
                &format!("{field}.tax_amount"),
                a.tax_amount_set.as_ref(),
                a.tax_amount.as_ref(),
            )?;
            tax = tax.checked_sub(a_tax).map_err(MapError::amount(field))?;
        }
    }
    Ok((amount, tax))
}
