//! An order payload (`orders/create`, `orders/updated`) to the canonical
//! order: lines, discounts from their allocations, tax inside or on top,
//! shipping, gift cards, and totals checked against Shopify's own.

use super::*;

// ---- orders ----

pub(super) fn map_order(shop: &str, o: &SOrder) -> Result<Order, MapError> {
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
        uncounted_line_ids: Vec::new(),
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
