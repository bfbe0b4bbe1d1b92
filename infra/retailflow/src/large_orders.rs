//! Large Shopify orders and their refunds, as the platform delivers them:
//! what the tests, `retailflow large-order` and the benchmarks feed the app
//! to prove that an order of hundreds or thousands of lines flows like any
//! other. Built from the documented sample payloads, with consistent totals
//! (each line one unit at 2.00 USD with 8% state tax, 0.16, no discount or
//! shipping), so the mapper's checks hold.

use serde_json::{json, Value};

const ORDER: &str =
    include_str!("../../../events/payloads/shopify-orders-create-discount-code.json");
const REFUND: &str =
    include_str!("../../../events/payloads/shopify-refunds-create-partial-with-shipping.json");

/// Unit price of every generated line, in cents, and its tax.
pub const LINE_PRICE_MINOR: i64 = 200;
pub const LINE_TAX_MINOR: i64 = 16;

/// The SKU of the `n`-th distinct SKU of a generated order.
pub fn sku(n: usize) -> String {
    format!("BULK-{n:05}")
}

fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

fn set(minor: i64) -> Value {
    let amount = money(minor);
    json!({"shop_money": {"amount": amount, "currency_code": "USD"},
           "presentment_money": {"amount": amount, "currency_code": "USD"}})
}

/// An orders/create body of `lines` lines spread over `skus` distinct SKUs
/// (`BULK-00000`…), one unit each.
pub fn shopify_order(order_id: u64, lines: usize, skus: usize) -> Value {
    // The sample is a documented Shopify payload: it parses.
    let mut o: Value = serde_json::from_str(ORDER).unwrap_or_default();
    let template = o["line_items"][0].clone();
    let items: Vec<Value> = (0..lines)
        .map(|i| {
            let mut li = template.clone();
            let id = 30_000_000_000_000u64 + order_id % 1_000_000 * 10_000 + i as u64;
            li["id"] = json!(id);
            li["admin_graphql_api_id"] = json!(format!("gid://shopify/LineItem/{id}"));
            li["sku"] = json!(sku(i % skus.max(1)));
            li["name"] = json!(format!("Bulk item {}", i % skus.max(1)));
            li["quantity"] = json!(1);
            li["current_quantity"] = json!(1);
            li["fulfillable_quantity"] = json!(1);
            li["price"] = json!(money(LINE_PRICE_MINOR));
            li["price_set"] = set(LINE_PRICE_MINOR);
            li["total_discount"] = json!("0.00");
            li["total_discount_set"] = set(0);
            li["tax_lines"] = json!([{"price": money(LINE_TAX_MINOR), "rate": 0.08,
                "title": "State Tax", "price_set": set(LINE_TAX_MINOR), "channel_liable": false}]);
            li["discount_allocations"] = json!([]);
            li
        })
        .collect();
    let subtotal = LINE_PRICE_MINOR * lines as i64;
    let tax = LINE_TAX_MINOR * lines as i64;
    let total = subtotal + tax;
    o["id"] = json!(order_id);
    o["admin_graphql_api_id"] = json!(format!("gid://shopify/Order/{order_id}"));
    o["name"] = json!(format!("#L{order_id}"));
    o["checkout_token"] = Value::Null;
    o["line_items"] = Value::Array(items);
    o["discount_codes"] = json!([]);
    o["discount_applications"] = json!([]);
    o["shipping_lines"] = json!([]);
    o["tax_lines"] = json!([{"price": money(tax), "rate": 0.08, "title": "State Tax",
        "price_set": set(tax), "channel_liable": false}]);
    for (field, minor) in [
        ("subtotal_price", subtotal),
        ("total_discounts", 0),
        ("total_line_items_price", subtotal),
        ("total_price", total),
        ("total_tax", tax),
        ("total_outstanding", 0),
    ] {
        o[field] = json!(money(minor));
        o[format!("{field}_set")] = set(minor);
    }
    o["total_shipping_price_set"] = set(0);
    o["total_tip_received"] = json!("0.00");
    o
}

/// A refunds/create body returning one unit of each of the first
/// `returned` lines of `order` (restocked), with its one refund transaction.
pub fn shopify_refund(order: &Value, refund_id: u64, returned: usize) -> Value {
    // The sample is a documented Shopify payload: it parses.
    let mut r: Value = serde_json::from_str(REFUND).unwrap_or_default();
    let template = r["refund_line_items"][0].clone();
    let lines: Vec<Value> = order["line_items"]
        .as_array()
        .map(|v| v.iter().take(returned).cloned().collect())
        .unwrap_or_default();
    let refund_lines: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, li)| {
            let mut rl = template.clone();
            rl["id"] = json!(40_000_000_000_000u64 + refund_id % 1_000_000 * 10_000 + i as u64);
            rl["line_item_id"] = li["id"].clone();
            rl["quantity"] = json!(1);
            rl["subtotal"] = json!(LINE_PRICE_MINOR as f64 / 100.0);
            rl["subtotal_set"] = set(LINE_PRICE_MINOR);
            rl["total_tax"] = json!(LINE_TAX_MINOR as f64 / 100.0);
            rl["total_tax_set"] = set(LINE_TAX_MINOR);
            rl["line_item"] = li.clone();
            rl
        })
        .collect();
    let total = (LINE_PRICE_MINOR + LINE_TAX_MINOR) * refund_lines.len() as i64;
    r["id"] = json!(refund_id);
    r["order_id"] = order["id"].clone();
    r["admin_graphql_api_id"] = json!(format!("gid://shopify/Refund/{refund_id}"));
    r["refund_line_items"] = Value::Array(refund_lines);
    r["refund_shipping_lines"] = json!([]);
    r["order_adjustments"] = json!([]);
    if let Some(t) = r["transactions"].get_mut(0) {
        t["order_id"] = order["id"].clone();
        t["amount"] = json!(money(total));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use retailflow_core::events::CanonicalEvent;
    use retailflow_core::mappers::shopify::{map, ShopifyTopic};

    #[test]
    fn a_generated_order_and_its_refund_map_with_every_line() {
        let order = shopify_order(7_000_000_500, 500, 150);
        let body = order.to_string();
        assert!(body.len() > 500_000, "{} bytes", body.len());
        let CanonicalEvent::OrderPlaced(placed) = map(
            ShopifyTopic::OrdersCreate,
            "acme.myshopify.com",
            body.as_bytes(),
        )
        .unwrap() else {
            panic!("not an order")
        };
        assert_eq!(placed.order.lines.len(), 500);
        let refund = shopify_refund(&order, 9_100_000_500, 500);
        let CanonicalEvent::RefundIssued(r) = map(
            ShopifyTopic::RefundsCreate,
            "acme.myshopify.com",
            refund.to_string().as_bytes(),
        )
        .unwrap() else {
            panic!("not a refund")
        };
        assert_eq!(r.refund.lines.len(), 500);
    }
}
