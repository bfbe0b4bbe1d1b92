//! A `refunds/create` payload to the canonical refund: lines with their
//! restock type, shipping counted once (refund shipping lines or the
//! shipping-refund adjustment), other adjustments, the money returned.

use super::*;

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
pub(super) struct SRefund {
    id: IdText,
    order_id: IdText,
    pub(super) note: Option<String>,
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

pub(super) fn map_refund(shop: &str, r: &SRefund) -> Result<Refund, MapError> {
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
        adjustment_parts: Vec::new(),
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
