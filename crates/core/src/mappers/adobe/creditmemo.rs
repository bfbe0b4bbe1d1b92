//! Adobe Commerce credit memos (`observer.sales_order_creditmemo_save_after`):
//! a refund made in the Adobe admin or through its REST API, as
//! `RefundIssued`.
//!
//! Traps handled here, each with a test:
//! - amounts are the document's own, as Adobe computed them: item tax is
//!   prorated from the tax invoiced (the last memo takes the rest), so it is
//!   never recomputed from a rate on the refunded net, which can be a cent off;
//! - the refund's id is the credit memo's `entity_id` (else `id`), never its
//!   display `increment_id`, and never an item's `parent_id`, which is the
//!   credit memo itself (null while it is being saved);
//! - `adjustment_negative` (an adjustment fee) arrives positive and is taken
//!   off; `adjustment_positive` adds; each is its own adjustment;
//! - `back_to_stock` true restocks the item; false or absent does not;
//! - the memo's `discount_amount` is negative and covers the items' and
//!   shipping's discounts: shipping is refunded net of its share;
//! - a configurable product's child is listed with its parent, carrying no
//!   money: it is a line of the refund, and the order's facts say the parent
//!   counts it (the credit memo posts it once);
//! - only a refunded memo (state 2) is a refund: an open or canceled one is
//!   acknowledged, not mapped, and one without a state is refused;
//! - one retailflow recorded for a till return (its comment names the till
//!   return: [`crate::ports::shop::till_return_reference`]) is its own echo;
//!   intake also matches the memo's id against the till returns' recorded
//!   credit memos, for a memo announced before its comment was saved.

use serde::Deserialize;

use super::{parse_time, truthy, AdobeDelivery, Currencies};
use crate::events::{CanonicalEvent, RefundIssued};
use crate::mappers::decimal::{DecimalText, IdText};
use crate::mappers::{check_reconciled, MapError};
use crate::model::{
    AdjustmentKind, LineKind, MoneyBag, OrderRef, Platform, Refund, RefundAdjustment, RefundLine,
    RestockType,
};
use crate::money::Currency;

/// Magento's `Creditmemo::STATE_REFUNDED`.
const STATE_REFUNDED: i64 = 2;

#[derive(Deserialize)]
struct AMemoItem {
    order_item_id: Option<IdText>,
    sku: Option<String>,
    qty: Option<DecimalText>,
    row_total: Option<DecimalText>,
    base_row_total: Option<DecimalText>,
    discount_amount: Option<DecimalText>,
    base_discount_amount: Option<DecimalText>,
    tax_amount: Option<DecimalText>,
    base_tax_amount: Option<DecimalText>,
    discount_tax_compensation_amount: Option<DecimalText>,
    base_discount_tax_compensation_amount: Option<DecimalText>,
    back_to_stock: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct AMemo {
    entity_id: Option<IdText>,
    id: Option<IdText>,
    order_id: Option<IdText>,
    state: Option<DecimalText>,
    created_at: Option<String>,
    base_currency_code: Option<String>,
    order_currency_code: Option<String>,
    discount_amount: Option<DecimalText>,
    base_discount_amount: Option<DecimalText>,
    shipping_amount: Option<DecimalText>,
    base_shipping_amount: Option<DecimalText>,
    shipping_tax_amount: Option<DecimalText>,
    base_shipping_tax_amount: Option<DecimalText>,
    shipping_discount_tax_compensation_amount: Option<DecimalText>,
    base_shipping_discount_tax_compensation_amount: Option<DecimalText>,
    adjustment_positive: Option<DecimalText>,
    base_adjustment_positive: Option<DecimalText>,
    adjustment_negative: Option<DecimalText>,
    base_adjustment_negative: Option<DecimalText>,
    grand_total: Option<DecimalText>,
    base_grand_total: Option<DecimalText>,
    #[serde(default)]
    items: Vec<AMemoItem>,
    #[serde(default)]
    comments: Vec<serde_json::Value>,
}

/// What a credit memo is: a refund, or something to acknowledge.
pub(super) fn map(shop: &str, delivery: &AdobeDelivery) -> Result<CanonicalEvent, MapError> {
    let m: AMemo = serde_json::from_value(delivery.value.clone())
        .map_err(|e| MapError::Malformed(format!("data.value: {e}")))?;
    let refund_id = m
        .entity_id
        .as_ref()
        .or(m.id.as_ref())
        .map(|i| i.0.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| MapError::MissingField("entity_id (the credit memo's id)".into()))?;
    let order_id = m
        .order_id
        .as_ref()
        .map(|i| i.0.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| MapError::MissingField("order_id".into()))?;
    for c in &m.comments {
        let text = c["comment"].as_str().or(c.as_str()).unwrap_or_default();
        if let Some(reference) = crate::ports::shop::till_return_reference(text) {
            return Err(MapError::OwnEcho {
                reference: reference.to_string(),
            });
        }
    }
    // Without its state a memo may be open: refunding it could pay out
    // what Adobe never did. A subscription whose field list leaves `state`
    // out is a setup error, so it is kept for review, not ignored.
    let state = m
        .state
        .as_ref()
        .ok_or_else(|| MapError::MissingField("state (refunded is 2)".into()))?;
    if state.whole().map(i64::from) != Some(STATE_REFUNDED) {
        return Err(MapError::NotARefund(format!(
            "credit memo {refund_id} is in state {} (open or canceled): no money moved yet",
            state.0
        )));
    }
    let base = Currency::from_code(
        m.base_currency_code
            .as_deref()
            .ok_or_else(|| MapError::MissingField("base_currency_code".into()))?,
    )
    .map_err(MapError::amount("base_currency_code"))?;
    let order_cur = match m.order_currency_code.as_deref() {
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
        m.created_at
            .as_deref()
            .ok_or_else(|| MapError::MissingField("created_at".into()))?,
    )?;
    let sum = |what: &str, bags: &[MoneyBag]| -> Result<MoneyBag, MapError> {
        bags.iter()
            .try_fold(zero, |acc, b| acc.checked_add(*b))
            .map_err(MapError::amount(what))
    };

    let mut lines = Vec::new();
    let mut item_discounts = zero;
    for (i, it) in m.items.iter().enumerate() {
        let field = format!("items[{i}]");
        let quantity = it
            .qty
            .as_ref()
            .map_or(Some(0), DecimalText::whole)
            .ok_or_else(|| MapError::BadValue {
                field: format!("{field}.qty"),
                reason: "not a whole quantity".into(),
            })?;
        let row = c.bag(
            &format!("{field}.row_total"),
            it.base_row_total.as_ref(),
            it.row_total.as_ref(),
            true,
        )?;
        let discount = c.bag(
            &format!("{field}.discount_amount"),
            it.base_discount_amount.as_ref(),
            it.discount_amount.as_ref(),
            true,
        )?;
        let tax = sum(
            &format!("{field}.tax_amount"),
            &[
                c.bag(
                    &format!("{field}.tax_amount"),
                    it.base_tax_amount.as_ref(),
                    it.tax_amount.as_ref(),
                    true,
                )?,
                c.bag(
                    &format!("{field}.discount_tax_compensation_amount"),
                    it.base_discount_tax_compensation_amount.as_ref(),
                    it.discount_tax_compensation_amount.as_ref(),
                    true,
                )?,
            ],
        )?;
        let subtotal = row
            .checked_sub(discount)
            .map_err(MapError::amount(field.clone()))?;
        if quantity == 0 {
            // Listed but not refunded: it must carry nothing, not even a
            // row its discount cancels (that discount would then be
            // missing from the shipping discount derived below).
            if !(row.shop.is_zero() && discount.shop.is_zero() && tax.shop.is_zero()) {
                return Err(MapError::BadValue {
                    field,
                    reason: "a quantity of 0 with money refunded".into(),
                });
            }
            continue;
        }
        item_discounts = sum("discount_amount", &[item_discounts, discount])?;
        let line_id = it
            .order_item_id
            .as_ref()
            .map(|i| i.0.clone())
            .ok_or_else(|| MapError::MissingField(format!("{field}.order_item_id")))?;
        lines.push(RefundLine {
            line_id,
            sku: it.sku.clone(),
            kind: LineKind::Merchandise,
            quantity,
            restock_type: if truthy(&it.back_to_stock) {
                RestockType::Return
            } else {
                RestockType::NoRestock
            },
            location_id: None,
            subtotal,
            tax,
        });
    }
    // The memo's discount is negative and covers items and shipping.
    let memo_discount = c.bag(
        "discount_amount",
        m.base_discount_amount.as_ref(),
        m.discount_amount.as_ref(),
        true,
    )?;
    let shipping_discount = zero
        .checked_sub(memo_discount)
        .and_then(|d| d.checked_sub(item_discounts))
        .map_err(MapError::amount("discount_amount"))?;
    let shipping = c
        .bag(
            "shipping_amount",
            m.base_shipping_amount.as_ref(),
            m.shipping_amount.as_ref(),
            true,
        )?
        .checked_sub(shipping_discount)
        .map_err(MapError::amount("shipping_amount"))?;
    let shipping_tax = sum(
        "shipping_tax_amount",
        &[
            c.bag(
                "shipping_tax_amount",
                m.base_shipping_tax_amount.as_ref(),
                m.shipping_tax_amount.as_ref(),
                true,
            )?,
            c.bag(
                "shipping_discount_tax_compensation_amount",
                m.base_shipping_discount_tax_compensation_amount.as_ref(),
                m.shipping_discount_tax_compensation_amount.as_ref(),
                true,
            )?,
        ],
    )?;
    let refund_part = c.bag(
        "adjustment_positive",
        m.base_adjustment_positive.as_ref(),
        m.adjustment_positive.as_ref(),
        true,
    )?;
    let fee = c.bag(
        "adjustment_negative",
        m.base_adjustment_negative.as_ref(),
        m.adjustment_negative.as_ref(),
        true,
    )?;
    if fee.shop.minor < 0 || refund_part.shop.minor < 0 {
        return Err(MapError::BadValue {
            field: "adjustment_positive / adjustment_negative".into(),
            reason: "adjustments arrive as positive amounts".into(),
        });
    }
    let fee = zero
        .checked_sub(fee)
        .map_err(MapError::amount("adjustment_negative"))?;
    let adjustments = sum("adjustment", &[refund_part, fee])?;
    let total = c.bag(
        "grand_total",
        m.base_grand_total.as_ref(),
        m.grand_total.as_ref(),
        false,
    )?;
    let mut parts = vec![shipping, shipping_tax, adjustments];
    parts.extend(lines.iter().flat_map(|l| [l.subtotal, l.tax]));
    check_reconciled(
        "refunded lines (row - discount) + their tax + shipping (net of its discount) + shipping tax + adjustment refund - adjustment fee",
        sum("grand_total", &parts)?,
        "grand_total",
        total,
    )?;
    Ok(CanonicalEvent::RefundIssued(RefundIssued {
        refund: Refund {
            order: OrderRef {
                platform: Platform::AdobeCommerce,
                shop: shop.to_string(),
                order_id,
            },
            refund_id,
            created_at,
            lines,
            shipping,
            shipping_tax,
            adjustments,
            adjustment_parts: vec![
                RefundAdjustment {
                    kind: AdjustmentKind::Refund,
                    amount: refund_part,
                },
                RefundAdjustment {
                    kind: AdjustmentKind::Fee,
                    amount: fee,
                },
            ],
            duties: zero,
            total,
        },
    }))
}

#[cfg(test)]
#[path = "creditmemo_tests.rs"]
mod tests;
