//! Adobe Commerce orders as Adobe I/O Events delivers them
//! (`observer.sales_order_save_after`, `observer.sales_order_place_after`):
//! a CloudEvents-style body whose `data.value` is the order in the REST
//! sales-order shape; credit memos (`observer.sales_order_creditmemo_save_after`)
//! in [`creditmemo`].
//!
//! Traps handled here, each with a test:
//! - observer payloads carry model data: numbers arrive as JSON numbers or as
//!   padded strings ("52.0000");
//! - a configurable product sends a parent line and a price-0 child line: the
//!   group is counted once (the priced side of it);
//! - the order's `discount_amount` is negative, item `discount_amount`s are positive;
//! - `base_*` fields are the shop (base) currency, plain ones the order currency.

mod creditmemo;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::decimal::{DecimalText, IdText};
use super::{check_reconciled, MapError};
use crate::events::{CanonicalEvent, OrderCancelled, OrderPlaced};
use crate::model::{
    Cancellation, Customer, DiscountAllocation, LineKind, MoneyBag, Order, OrderLine, OrderRef,
    OrderTotals, Platform, ShippingLine, TaxLine,
};
use crate::money::{Currency, Money};

/// An Adobe I/O Events delivery, reduced to what routing and dedup need.
#[derive(Debug, Clone)]
pub struct AdobeDelivery {
    /// I/O Events event id: the dedup key for redeliveries.
    pub event_id: String,
    /// The Commerce event code without the `com.adobe.commerce.` prefix,
    /// e.g. `observer.sales_order_save_after`.
    pub event_code: String,
    /// The instance that emitted it (the CloudEvents `source`).
    pub source: String,
    pub recipient_client_id: Option<String>,
    /// When the event happened (CloudEvents `time`), inside the signed
    /// body: what replay protection judges.
    pub time: Option<String>,
    value: serde_json::Value,
}

#[derive(Deserialize)]
struct RawDelivery {
    id: Option<String>,
    event_id: Option<String>,
    eventid: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    event_code: Option<String>,
    source: Option<String>,
    recipient_client_id: Option<String>,
    recipientclientid: Option<String>,
    time: Option<String>,
    data: Option<RawData>,
    event: Option<Box<RawDelivery>>,
}

#[derive(Deserialize)]
struct RawData {
    value: Option<serde_json::Value>,
}

impl AdobeDelivery {
    /// Reads the I/O Events envelope. Accepts the CloudEvents body I/O Events
    /// posts to webhooks and the `{ "event": { ... } }` wrapping of runtime actions.
    pub fn parse(body: &[u8]) -> Result<Self, MapError> {
        let raw: RawDelivery =
            serde_json::from_slice(body).map_err(|e| MapError::Malformed(e.to_string()))?;
        let (outer_id, outer_kind) = (
            raw.id
                .clone()
                .or(raw.event_id.clone())
                .or(raw.eventid.clone()),
            raw.kind.clone().or(raw.event_code.clone()),
        );
        let inner = raw.event.as_deref();
        let data = raw
            .data
            .as_ref()
            .or_else(|| inner.and_then(|i| i.data.as_ref()))
            .and_then(|d| d.value.clone())
            .ok_or_else(|| MapError::MissingField("data.value".into()))?;
        let event_id = outer_id
            .or_else(|| inner.and_then(|i| i.id.clone().or(i.event_id.clone())))
            .ok_or_else(|| MapError::MissingField("id (I/O Events event id)".into()))?;
        let kind = outer_kind
            .or_else(|| inner.and_then(|i| i.kind.clone().or(i.event_code.clone())))
            .ok_or_else(|| MapError::MissingField("type (event code)".into()))?;
        let event_code = kind
            .strip_prefix("com.adobe.commerce.")
            .unwrap_or(&kind)
            .to_string();
        Ok(AdobeDelivery {
            event_id,
            event_code,
            source: raw.source.unwrap_or_else(|| "adobe-commerce".into()),
            recipient_client_id: raw.recipient_client_id.or(raw.recipientclientid),
            time: raw.time.or_else(|| inner.and_then(|i| i.time.clone())),
            value: data,
        })
    }

    /// Whether retailflow maps this event code; others are acknowledged only.
    pub fn is_mapped(&self) -> bool {
        is_order_event_code(&self.event_code) || is_creditmemo_event_code(&self.event_code)
    }
}

/// The credit memo event code: a refund made in Adobe Commerce.
pub const CREDITMEMO_EVENT: &str = "observer.sales_order_creditmemo_save_after";

/// Whether the code is the credit memo event's.
pub fn is_creditmemo_event_code(code: &str) -> bool {
    code.strip_prefix("com.adobe.commerce.").unwrap_or(code) == CREDITMEMO_EVENT
}

/// The event codes mapped to order events.
pub fn is_order_event_code(code: &str) -> bool {
    let code = code.strip_prefix("com.adobe.commerce.").unwrap_or(code);
    matches!(
        code,
        "observer.sales_order_save_after" | "observer.sales_order_place_after"
    )
}

/// Maps an order or credit memo event. Every save of a live order maps to `OrderPlaced`
/// (the intake records Adobe orders by the order: the first save seen
/// places it, a later one is nothing or an `OrderUpdated`); a save in state
/// `canceled` maps to `OrderCancelled`.
pub fn map(shop: &str, delivery: &AdobeDelivery) -> Result<CanonicalEvent, MapError> {
    if is_creditmemo_event_code(&delivery.event_code) {
        return creditmemo::map(shop, delivery);
    }
    let o: AOrder = serde_json::from_value(delivery.value.clone())
        .map_err(|e| MapError::Malformed(format!("data.value: {e}")))?;
    let order_ref = OrderRef {
        platform: Platform::AdobeCommerce,
        shop: shop.to_string(),
        order_id: o.entity_id.0.clone(),
    };
    if o.state.as_deref() == Some("canceled") {
        let at = o
            .updated_at
            .as_deref()
            .or(o.created_at.as_deref())
            .ok_or_else(|| MapError::MissingField("updated_at".into()))?;
        return Ok(CanonicalEvent::OrderCancelled(OrderCancelled {
            cancellation: Cancellation {
                order: order_ref,
                cancelled_at: parse_time("updated_at", at)?,
                reason: o.status.clone(),
            },
        }));
    }
    Ok(CanonicalEvent::OrderPlaced(OrderPlaced {
        order: map_order(order_ref, &o)?,
    }))
}

fn parse_time(field: &str, s: &str) -> Result<DateTime<Utc>, MapError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    // Commerce stores UTC as "YYYY-MM-DD HH:MM:SS".
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .map(|n| n.and_utc())
        .map_err(|e| MapError::BadValue {
            field: field.to_string(),
            reason: format!("{s:?} is not a date-time: {e}"),
        })
}

#[derive(Deserialize)]
struct AItem {
    item_id: Option<IdText>,
    parent_item_id: Option<IdText>,
    sku: Option<String>,
    name: Option<String>,
    product_id: Option<IdText>,
    product_type: Option<String>,
    qty_ordered: Option<DecimalText>,
    price: Option<DecimalText>,
    base_price: Option<DecimalText>,
    row_total: Option<DecimalText>,
    base_row_total: Option<DecimalText>,
    discount_amount: Option<DecimalText>,
    base_discount_amount: Option<DecimalText>,
    tax_amount: Option<DecimalText>,
    base_tax_amount: Option<DecimalText>,
    tax_percent: Option<DecimalText>,
    is_virtual: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct AOrder {
    entity_id: IdText,
    increment_id: Option<IdText>,
    state: Option<String>,
    status: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    base_currency_code: Option<String>,
    order_currency_code: Option<String>,
    customer_id: Option<IdText>,
    customer_email: Option<String>,
    customer_firstname: Option<String>,
    customer_lastname: Option<String>,
    customer_is_guest: Option<serde_json::Value>,
    discount_amount: Option<DecimalText>,
    base_discount_amount: Option<DecimalText>,
    shipping_description: Option<String>,
    shipping_method: Option<String>,
    shipping_amount: Option<DecimalText>,
    base_shipping_amount: Option<DecimalText>,
    shipping_discount_amount: Option<DecimalText>,
    base_shipping_discount_amount: Option<DecimalText>,
    shipping_tax_amount: Option<DecimalText>,
    base_shipping_tax_amount: Option<DecimalText>,
    tax_amount: Option<DecimalText>,
    base_tax_amount: Option<DecimalText>,
    discount_tax_compensation_amount: Option<DecimalText>,
    base_discount_tax_compensation_amount: Option<DecimalText>,
    shipping_discount_tax_compensation_amount: Option<DecimalText>,
    base_shipping_discount_tax_compensation_amount: Option<DecimalText>,
    grand_total: Option<DecimalText>,
    base_grand_total: Option<DecimalText>,
    quote_id: Option<IdText>,
    coupon_code: Option<String>,
    #[serde(default)]
    items: Vec<AItem>,
}

#[derive(Clone, Copy)]
struct Currencies {
    base: Currency,
    order: Currency,
}

impl Currencies {
    /// A base/order pair of fields. A missing pair is zero when `optional`.
    fn bag(
        &self,
        field: &str,
        base: Option<&DecimalText>,
        order: Option<&DecimalText>,
        optional: bool,
    ) -> Result<MoneyBag, MapError> {
        let read = |v: Option<&DecimalText>,
                    cur: Currency,
                    name: String|
         -> Result<Option<Money>, MapError> {
            v.map(|v| v.money(cur).map_err(MapError::amount(name)))
                .transpose()
        };
        let b = read(base, self.base, format!("base_{field}"))?;
        let o = read(order, self.order, field.to_string())?;
        match (b, o) {
            (Some(b), Some(o)) => Ok(MoneyBag {
                shop: b,
                presentment: o,
            }),
            // Single-currency stores sometimes send only one of the pair.
            (Some(m), None) | (None, Some(m)) if self.base == self.order => Ok(MoneyBag::single(m)),
            (None, None) if optional => Ok(MoneyBag::zero(self.base, self.order)),
            _ => Err(MapError::MissingField(format!("{field} / base_{field}"))),
        }
    }
}

fn truthy(v: &Option<serde_json::Value>) -> bool {
    match v {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::Number(n)) => n.as_i64() == Some(1),
        Some(serde_json::Value::String(s)) => s == "1" || s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn map_order(order_ref: OrderRef, o: &AOrder) -> Result<Order, MapError> {
    let base_code = o
        .base_currency_code
        .as_deref()
        .ok_or_else(|| MapError::MissingField("base_currency_code".into()))?;
    let base = Currency::from_code(base_code).map_err(MapError::amount("base_currency_code"))?;
    let order_cur = match o.order_currency_code.as_deref() {
        Some(code) => Currency::from_code(code).map_err(MapError::amount("order_currency_code"))?,
        None => base,
    };
    let c = Currencies {
        base,
        order: order_cur,
    };
    let zero = MoneyBag::zero(base, order_cur);
    let created_at = parse_time(
        "created_at",
        o.created_at
            .as_deref()
            .ok_or_else(|| MapError::MissingField("created_at".into()))?,
    )?;

    let counted = counted_items(o);
    // What the counted lines stand for: a credit memo names them too.
    let uncounted = o
        .items
        .iter()
        .enumerate()
        .filter(|(i, _)| !counted.iter().any(|(c, _)| c == i))
        .filter_map(|(_, it)| it.item_id.as_ref().map(|id| id.0.clone()))
        .collect();
    let lines = counted
        .into_iter()
        .map(|(i, it)| map_item(&c, i, it))
        .collect::<Result<Vec<_>, _>>()?;

    let shipping = c.bag(
        "shipping_amount",
        o.base_shipping_amount.as_ref(),
        o.shipping_amount.as_ref(),
        true,
    )?;
    let shipping_discounts = c.bag(
        "shipping_discount_amount",
        o.base_shipping_discount_amount.as_ref(),
        o.shipping_discount_amount.as_ref(),
        true,
    )?;
    let shipping_tax = c.bag(
        "shipping_tax_amount",
        o.base_shipping_tax_amount.as_ref(),
        o.shipping_tax_amount.as_ref(),
        true,
    )?;
    let shipping_lines =
        if shipping.is_zero() && shipping_tax.is_zero() && o.shipping_method.is_none() {
            Vec::new()
        } else {
            vec![ShippingLine {
                title: o.shipping_description.clone().unwrap_or_default(),
                code: o.shipping_method.clone(),
                price: shipping,
                discount_total: shipping_discounts,
                tax_lines: if shipping_tax.is_zero() {
                    Vec::new()
                } else {
                    vec![TaxLine {
                        title: "shipping tax".into(),
                        rate: None,
                        amount: shipping_tax,
                    }]
                },
            }]
        };

    let sum = |f: &dyn Fn(&OrderLine) -> MoneyBag| -> Result<MoneyBag, MapError> {
        lines
            .iter()
            .try_fold(zero, |acc, l| acc.checked_add(f(l)))
            .map_err(MapError::amount("items"))
    };
    let lines_gross = sum(&|l| l.gross)?;
    let line_discounts = sum(&|l| l.discount_total)?;
    let tax = c.bag(
        "tax_amount",
        o.base_tax_amount.as_ref(),
        o.tax_amount.as_ref(),
        true,
    )?;
    let compensation = c
        .bag(
            "discount_tax_compensation_amount",
            o.base_discount_tax_compensation_amount.as_ref(),
            o.discount_tax_compensation_amount.as_ref(),
            true,
        )?
        .checked_add(c.bag(
            "shipping_discount_tax_compensation_amount",
            o.base_shipping_discount_tax_compensation_amount.as_ref(),
            o.shipping_discount_tax_compensation_amount.as_ref(),
            true,
        )?)
        .map_err(MapError::amount("discount_tax_compensation_amount"))?;
    let total = c.bag(
        "grand_total",
        o.base_grand_total.as_ref(),
        o.grand_total.as_ref(),
        false,
    )?;

    // The order's discount_amount is negative: −(item discounts + shipping discount).
    let stated_discount = c.bag(
        "discount_amount",
        o.base_discount_amount.as_ref(),
        o.discount_amount.as_ref(),
        true,
    )?;
    let expected_discount = zero
        .checked_sub(line_discounts)
        .and_then(|v| v.checked_sub(shipping_discounts))
        .map_err(MapError::amount("discount_amount"))?;
    check_reconciled(
        "−(item discount_amount + shipping_discount_amount)",
        expected_discount,
        "discount_amount",
        stated_discount,
    )?;

    let computed = lines_gross
        .checked_sub(line_discounts)
        .and_then(|v| v.checked_add(shipping))
        .and_then(|v| v.checked_sub(shipping_discounts))
        .and_then(|v| v.checked_add(tax))
        .and_then(|v| v.checked_add(compensation))
        .map_err(MapError::amount("grand_total"))?;
    check_reconciled(
        "item row totals − item discounts + shipping − shipping discount + tax + discount tax compensation",
        computed,
        "grand_total",
        total,
    )?;

    let merchandise_net = lines
        .iter()
        .filter(|l| l.kind == LineKind::Merchandise)
        .try_fold(zero, |acc, l| acc.checked_add(l.net))
        .map_err(MapError::amount("merchandise_net"))?;
    let gift_cards = lines
        .iter()
        .filter(|l| l.kind == LineKind::GiftCard)
        .try_fold(zero, |acc, l| acc.checked_add(l.gross))
        .map_err(MapError::amount("gift_cards"))?;

    let customer_id = o.customer_id.as_ref().map(|i| i.0.clone());
    Ok(Order {
        order: order_ref,
        display_name: o
            .increment_id
            .as_ref()
            .map(|i| i.0.clone())
            .unwrap_or_else(|| o.entity_id.0.clone()),
        created_at,
        customer: Some(Customer {
            is_guest: truthy(&o.customer_is_guest) || customer_id.is_none(),
            customer_id,
            email: o.customer_email.clone(),
            first_name: o.customer_firstname.clone(),
            last_name: o.customer_lastname.clone(),
        }),
        shop_currency: base,
        presentment_currency: order_cur,
        taxes_included: false,
        lines,
        shipping_lines,
        totals: OrderTotals {
            lines_gross,
            line_discounts,
            shipping,
            shipping_discounts,
            tax,
            other_charges: compensation,
            total,
            merchandise_net,
            gift_cards,
        },
        checkout_id: o.quote_id.as_ref().map(|q| q.0.clone()),
        // Adobe Commerce keeps one coupon per order; several are listed
        // comma-separated by extensions that allow more.
        discount_codes: o
            .coupon_code
            .iter()
            .flat_map(|c| c.split(','))
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect(),
        uncounted_line_ids: uncounted,
    })
}

/// The items that carry the money: for a parent/child group (configurable,
/// bundle) the parent when it is priced, else its children; never both.
fn counted_items(o: &AOrder) -> Vec<(usize, &AItem)> {
    let zero_row = |it: &AItem| {
        it.row_total
            .as_ref()
            .or(it.base_row_total.as_ref())
            .is_none_or(DecimalText::is_zero)
    };
    let mut out = Vec::new();
    for (i, it) in o.items.iter().enumerate() {
        match &it.parent_item_id {
            Some(parent_id) => {
                let parent = o
                    .items
                    .iter()
                    .find(|p| p.item_id.as_ref() == Some(parent_id));
                match parent {
                    // Child of a priced parent: the parent already counts it.
                    Some(p) if !zero_row(p) => {}
                    _ => out.push((i, it)),
                }
            }
            None => {
                let has_children = it.item_id.is_some()
                    && o.items
                        .iter()
                        .any(|ch| ch.parent_item_id.is_some() && ch.parent_item_id == it.item_id);
                // An unpriced parent whose children carry the price is not counted.
                if !(has_children && zero_row(it)) {
                    out.push((i, it));
                }
            }
        }
    }
    out
}

fn map_item(c: &Currencies, i: usize, it: &AItem) -> Result<OrderLine, MapError> {
    let field = format!("items[{i}]");
    let quantity = it
        .qty_ordered
        .as_ref()
        .ok_or_else(|| MapError::MissingField(format!("{field}.qty_ordered")))?
        .whole()
        .ok_or_else(|| MapError::BadValue {
            field: format!("{field}.qty_ordered"),
            reason: "not a whole quantity".into(),
        })?;
    let unit_price = c.bag(
        &format!("{field}.price"),
        it.base_price.as_ref(),
        it.price.as_ref(),
        false,
    )?;
    let gross = match (it.row_total.as_ref(), it.base_row_total.as_ref()) {
        (None, None) => unit_price
            .checked_mul(i64::from(quantity))
            .map_err(MapError::amount(format!("{field}.row_total")))?,
        (o, b) => c.bag(&format!("{field}.row_total"), b, o, false)?,
    };
    let discount_total = c.bag(
        &format!("{field}.discount_amount"),
        it.base_discount_amount.as_ref(),
        it.discount_amount.as_ref(),
        true,
    )?;
    let tax = c.bag(
        &format!("{field}.tax_amount"),
        it.base_tax_amount.as_ref(),
        it.tax_amount.as_ref(),
        true,
    )?;
    let net = gross
        .checked_sub(discount_total)
        .map_err(MapError::amount(field.clone()))?;
    let gift = it.product_type.as_deref() == Some("giftcard");
    Ok(OrderLine {
        line_id: it
            .item_id
            .as_ref()
            .map(|x| x.0.clone())
            .unwrap_or_else(|| i.to_string()),
        sku: if gift {
            None
        } else {
            it.sku.clone().filter(|s| !s.trim().is_empty())
        },
        product_id: it.product_id.as_ref().map(|p| p.0.clone()),
        variant_id: None,
        title: it.name.clone().unwrap_or_default(),
        kind: if gift {
            LineKind::GiftCard
        } else {
            LineKind::Merchandise
        },
        quantity,
        unit_price,
        gross,
        discount_allocations: if discount_total.is_zero() {
            Vec::new()
        } else {
            vec![DiscountAllocation {
                amount: discount_total,
                source: None,
            }]
        },
        discount_total,
        net,
        tax_lines: if tax.is_zero() {
            Vec::new()
        } else {
            vec![TaxLine {
                title: "tax".into(),
                rate: it.tax_percent.as_ref().map(|p| p.0.clone()),
                amount: tax,
            }]
        },
        requires_shipping: !gift && !truthy(&it.is_virtual),
    })
}
