//! Mapper specifications, on documented-shape payloads in `events/payloads/`.

use serde_json::{json, Value};

use super::{adobe, shopify, MapError};
use crate::events::CanonicalEvent;
use crate::model::{LineKind, MoneyBag, Order, Refund, RestockType};

const DISCOUNT_CODE: &str =
    include_str!("../../../../events/payloads/shopify-orders-create-discount-code.json");
const EUR_VAT: &str = include_str!(
    "../../../../events/payloads/shopify-orders-create-eur-presentment-vat-inclusive.json"
);
const CAD_GIFT: &str =
    include_str!("../../../../events/payloads/shopify-orders-create-cad-gift-card.json");
const CANCELLED: &str = include_str!("../../../../events/payloads/shopify-orders-cancelled.json");
const REFUND: &str =
    include_str!("../../../../events/payloads/shopify-refunds-create-partial-with-shipping.json");
const ADOBE: &str = include_str!("../../../../events/payloads/adobe-order-configurable.json");

const SHOP: &str = "acme.myshopify.com";

fn shopify_order(body: &str) -> Result<Order, MapError> {
    match shopify::map(shopify::ShopifyTopic::OrdersCreate, SHOP, body.as_bytes())? {
        CanonicalEvent::OrderPlaced(e) => Ok(e.order),
        other => panic!("unexpected {other:?}"),
    }
}

fn shopify_refund(body: &str) -> Result<Refund, MapError> {
    match shopify::map(shopify::ShopifyTopic::RefundsCreate, SHOP, body.as_bytes())? {
        CanonicalEvent::RefundIssued(e) => Ok(e.refund),
        other => panic!("unexpected {other:?}"),
    }
}

fn adobe_event(body: &str) -> Result<CanonicalEvent, MapError> {
    let d = adobe::AdobeDelivery::parse(body.as_bytes())?;
    adobe::map("acme-commerce", &d)
}

fn edit(body: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap();
    f(&mut v);
    v.to_string()
}

fn minor(b: MoneyBag) -> (i64, i64) {
    (b.shop.minor, b.presentment.minor)
}

/// Expected figures written beside each fixture, checked independently by
/// `events/payloads/check_totals.py` with Python's decimal module.
fn expected(name: &str) -> Value {
    let path = format!(
        "{}/../../events/payloads/{name}.expected.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn assert_totals_match_expected(order: &Order, name: &str) {
    let e = expected(name);
    let t = &order.totals;
    for (side, pick) in [("shop", 0usize), ("presentment", 1usize)] {
        let get = |b: MoneyBag| {
            if pick == 0 {
                b.shop.minor
            } else {
                b.presentment.minor
            }
        };
        let x = &e[side];
        assert_eq!(
            get(t.lines_gross),
            x["lines_gross"],
            "{name} {side} lines_gross"
        );
        assert_eq!(
            get(t.line_discounts),
            x["discounts"],
            "{name} {side} discounts"
        );
        assert_eq!(get(t.shipping), x["shipping"], "{name} {side} shipping");
        assert_eq!(
            get(t.shipping_discounts),
            x["shipping_discounts"],
            "{name} {side} shipping_discounts"
        );
        assert_eq!(get(t.tax), x["tax"], "{name} {side} tax");
        assert_eq!(get(t.total), x["total"], "{name} {side} total");
        assert_eq!(
            get(t.merchandise_net),
            x["merchandise_net"],
            "{name} {side} merchandise_net"
        );
        assert_eq!(
            get(t.gift_cards),
            x["gift_cards"],
            "{name} {side} gift_cards"
        );
    }
    assert_eq!(order.shop_currency.code(), e["currency_shop"]);
    assert_eq!(order.presentment_currency.code(), e["currency_presentment"]);
    assert_eq!(order.taxes_included, e["taxes_included"]);
    assert_eq!(order.lines.len() as u64, e["line_count"]);
}

#[test]
fn code_discount_only_in_line_allocations_is_counted() {
    let order = shopify_order(DISCOUNT_CODE).unwrap();
    assert_totals_match_expected(&order, "shopify-orders-create-discount-code");
    // The payload's total_discounts says 0.00; the allocations carry 10 %.
    let v: Value = serde_json::from_str(DISCOUNT_CODE).unwrap();
    assert_eq!(v["total_discounts"], "0.00");
    assert_eq!(order.totals.line_discounts.shop.minor, 1215);
    assert!(order
        .lines
        .iter()
        .all(|l| !l.discount_allocations.is_empty()));
    assert!(order
        .lines
        .iter()
        .all(|l| l.discount_allocations[0].source.is_some()));
    // 8 % tax on the discounted lines, untaxed shipping.
    assert!(order.shipping_lines.iter().all(|s| s.tax_lines.is_empty()));
}

#[test]
fn ignoring_the_allocations_would_not_reconcile() {
    let body = edit(DISCOUNT_CODE, |v| {
        for li in v["line_items"].as_array_mut().unwrap() {
            li["discount_allocations"] = json!([]);
        }
    });
    let err = shopify_order(&body).unwrap_err();
    assert!(
        matches!(err, MapError::TotalsMismatch { ref stated_field, .. } if stated_field == "total_price"),
        "{err}"
    );
}

#[test]
fn vat_inclusive_prices_do_not_add_tax_on_top() {
    let order = shopify_order(EUR_VAT).unwrap();
    assert!(order.taxes_included);
    assert_totals_match_expected(
        &order,
        "shopify-orders-create-eur-presentment-vat-inclusive",
    );
    // The same figures read as tax-exclusive do not add up.
    let body = edit(EUR_VAT, |v| v["taxes_included"] = json!(false));
    assert!(matches!(
        shopify_order(&body),
        Err(MapError::TotalsMismatch { .. })
    ));
}

#[test]
fn shop_and_presentment_money_each_come_from_their_own_set() {
    let order = shopify_order(EUR_VAT).unwrap();
    assert_eq!(order.shop_currency.code(), "USD");
    assert_eq!(order.presentment_currency.code(), "EUR");
    assert_eq!(minor(order.totals.total), (14011, 12890));
    // Each line's two sides are the payload's, not a conversion of each other.
    let v: Value = serde_json::from_str(EUR_VAT).unwrap();
    let li = &v["line_items"][0]["price_set"];
    let line = &order.lines[0];
    assert_eq!(
        line.unit_price.shop.to_decimal_string(),
        li["shop_money"]["amount"].as_str().unwrap()
    );
    assert_eq!(
        line.unit_price.presentment.to_decimal_string(),
        li["presentment_money"]["amount"].as_str().unwrap()
    );
}

#[test]
fn a_presentment_amount_that_does_not_add_up_is_named() {
    let body = edit(EUR_VAT, |v| {
        v["total_price_set"]["presentment_money"]["amount"] = json!("128.91");
    });
    match shopify_order(&body).unwrap_err() {
        MapError::TotalsMismatch {
            currency,
            computed,
            stated,
            ..
        } => {
            assert_eq!(currency, "EUR");
            assert_eq!(computed, "128.90");
            assert_eq!(stated, "128.91");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn multi_currency_without_sets_is_refused_not_reconverted() {
    let body = edit(EUR_VAT, |v| {
        v["line_items"][0]
            .as_object_mut()
            .unwrap()
            .remove("price_set");
    });
    let err = shopify_order(&body).unwrap_err();
    assert!(
        matches!(&err, MapError::MissingField(f) if f.contains("line_items[0].price_set")),
        "{err}"
    );
}

#[test]
fn gift_card_lines_are_not_merchandise() {
    let order = shopify_order(CAD_GIFT).unwrap();
    assert_totals_match_expected(&order, "shopify-orders-create-cad-gift-card");
    let gift = order
        .lines
        .iter()
        .find(|l| l.kind == LineKind::GiftCard)
        .unwrap();
    assert_eq!(gift.sku, None);
    assert!(!gift.requires_shipping);
    assert_eq!(order.totals.gift_cards.shop.minor, 5000);
    assert_eq!(order.totals.merchandise_net.shop.minor, 8999);
    // Shipping is taxed here: its tax is part of the order tax.
    assert!(order.shipping_lines.iter().any(|s| !s.tax_lines.is_empty()));
    assert_eq!(order.shop_currency.code(), "CAD");
}

#[test]
fn line_tax_that_disagrees_with_total_tax_is_refused() {
    let body = edit(CAD_GIFT, |v| {
        v["total_tax"] = json!("13.66");
        v["total_tax_set"]["shop_money"]["amount"] = json!("13.66");
        v["total_tax_set"]["presentment_money"]["amount"] = json!("13.66");
    });
    let err = shopify_order(&body).unwrap_err();
    assert!(
        matches!(&err, MapError::TotalsMismatch { stated_field, .. } if stated_field == "total_tax"),
        "{err}"
    );
}

#[test]
fn a_total_that_does_not_reconcile_names_the_mismatch() {
    let body = edit(DISCOUNT_CODE, |v| {
        v["total_price_set"]["shop_money"]["amount"] = json!("128.09");
        v["total_price_set"]["presentment_money"]["amount"] = json!("128.09");
    });
    let err = shopify_order(&body).unwrap_err().to_string();
    assert!(
        err.contains("128.08") && err.contains("128.09") && err.contains("total_price"),
        "{err}"
    );
}

#[test]
fn malformed_bodies_are_reported_not_panicked_on() {
    for body in [
        "",
        "{",
        "[]",
        "{\"id\": 1}",
        "null",
        "{\"id\":1,\"line_items\":\"x\"}",
    ] {
        assert!(
            shopify::map(shopify::ShopifyTopic::OrdersCreate, SHOP, body.as_bytes()).is_err(),
            "{body:?}"
        );
        assert!(
            shopify::map(shopify::ShopifyTopic::RefundsCreate, SHOP, body.as_bytes()).is_err(),
            "{body:?}"
        );
        assert!(
            adobe::AdobeDelivery::parse(body.as_bytes()).is_err(),
            "{body:?}"
        );
    }
    let too_precise = edit(DISCOUNT_CODE, |v| {
        v["line_items"][0]["price_set"]["shop_money"]["amount"] = json!("1.005")
    });
    assert!(matches!(
        shopify_order(&too_precise),
        Err(MapError::BadAmount { .. })
    ));
}

#[test]
fn cancellation_maps_to_order_cancelled() {
    let ev = shopify::map(
        shopify::ShopifyTopic::OrdersCancelled,
        SHOP,
        CANCELLED.as_bytes(),
    )
    .unwrap();
    let CanonicalEvent::OrderCancelled(c) = ev else {
        panic!()
    };
    assert_eq!(c.cancellation.reason.as_deref(), Some("customer"));
    assert_eq!(c.cancellation.order.order_id, "5872301948123");
}

#[test]
fn refund_shipping_in_both_places_is_counted_once() {
    let r = shopify_refund(REFUND).unwrap();
    let e = expected("shopify-refunds-create-partial-with-shipping");
    assert_eq!(r.shipping.shop.minor, e["shipping"]);
    assert_eq!(r.total.shop.minor, e["total"]);
    assert_eq!(r.total.shop.minor, 3429);
    assert_eq!(r.lines.len(), 1);
    assert_eq!(r.lines[0].quantity, 1);
    assert_eq!(r.lines[0].restock_type, RestockType::Return);
    assert_eq!(r.lines[0].subtotal.shop.minor, e["lines_subtotal"]);
    assert_eq!(r.lines[0].tax.shop.minor, e["lines_tax"]);
}

#[test]
fn refund_shipping_only_in_order_adjustments_still_counts() {
    let body = edit(REFUND, |v| v["refund_shipping_lines"] = json!([]));
    let r = shopify_refund(&body).unwrap();
    assert_eq!(r.shipping.shop.minor, 1000);
    assert_eq!(r.total.shop.minor, 3429);
}

#[test]
fn refund_numbers_sent_as_json_numbers_are_exact() {
    let body = edit(REFUND, |v| {
        let rl = &mut v["refund_line_items"][0];
        rl.as_object_mut().unwrap().remove("subtotal_set");
        rl.as_object_mut().unwrap().remove("total_tax_set");
        assert!(
            rl["subtotal"].is_number(),
            "fixture sends subtotal as a JSON number"
        );
    });
    let r = shopify_refund(&body).unwrap();
    assert_eq!(r.lines[0].subtotal.shop.minor, 2249);
    assert_eq!(r.lines[0].tax.shop.minor, 180);
}

#[test]
fn refund_whose_transactions_disagree_is_refused() {
    let body = edit(REFUND, |v| v["transactions"][0]["amount"] = json!("44.29"));
    let err = shopify_refund(&body).unwrap_err().to_string();
    assert!(err.contains("34.29") && err.contains("44.29"), "{err}");
}

#[test]
fn adobe_configurable_product_counts_its_line_once() {
    let CanonicalEvent::OrderPlaced(e) = adobe_event(ADOBE).unwrap() else {
        panic!()
    };
    let order = e.order;
    assert_totals_match_expected(&order, "adobe-order-configurable");
    let v: Value = serde_json::from_str(ADOBE).unwrap();
    let items = v["data"]["value"]["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        3,
        "fixture has parent, child and a simple item"
    );
    assert_eq!(order.lines.len(), 2);
    assert!(order.lines.iter().all(|l| l.unit_price.shop.minor > 0));
    // The child the parent counts is named, so a credit memo that lists
    // it too credits the hoodie once.
    let child = items
        .iter()
        .find(|i| !i["parent_item_id"].is_null())
        .unwrap();
    assert_eq!(
        order.uncounted_line_ids,
        vec![child["item_id"]
            .as_str()
            .map_or_else(|| child["item_id"].to_string(), str::to_string)]
    );
    assert!(!order
        .lines
        .iter()
        .any(|l| order.uncounted_line_ids.contains(&l.line_id)));
}

#[test]
fn adobe_order_discount_is_negative_and_checked() {
    let v: Value = serde_json::from_str(ADOBE).unwrap();
    assert!(v["data"]["value"]["discount_amount"]
        .to_string()
        .contains('-'));
    let flipped = edit(ADOBE, |v| {
        let o = &mut v["data"]["value"];
        o["discount_amount"] = json!(5.2);
        o["base_discount_amount"] = json!(5.2);
    });
    let err = adobe_event(&flipped).unwrap_err();
    assert!(
        matches!(&err, MapError::TotalsMismatch { stated_field, .. } if stated_field == "discount_amount"),
        "{err}"
    );
}

#[test]
fn adobe_counting_the_child_line_too_would_not_reconcile() {
    // A child priced like its parent (a payload counted twice) must not pass.
    let body = edit(ADOBE, |v| {
        let items = v["data"]["value"]["items"].as_array_mut().unwrap();
        let parent = items
            .iter()
            .find(|i| i["parent_item_id"].is_null() && i["product_type"] == "configurable")
            .unwrap()
            .clone();
        for it in items.iter_mut() {
            if !it["parent_item_id"].is_null() {
                it["parent_item_id"] = Value::Null;
                it["row_total"] = parent["row_total"].clone();
                it["base_row_total"] = parent["base_row_total"].clone();
                it["price"] = parent["price"].clone();
                it["base_price"] = parent["base_price"].clone();
            }
        }
    });
    assert!(matches!(
        adobe_event(&body),
        Err(MapError::TotalsMismatch { .. })
    ));
}

#[test]
fn adobe_canceled_state_maps_to_order_cancelled() {
    let body = edit(ADOBE, |v| v["data"]["value"]["state"] = json!("canceled"));
    assert!(matches!(
        adobe_event(&body).unwrap(),
        CanonicalEvent::OrderCancelled(_)
    ));
}

#[test]
fn adobe_delivery_reads_the_io_events_envelope() {
    let d = adobe::AdobeDelivery::parse(ADOBE.as_bytes()).unwrap();
    assert_eq!(d.event_code, "observer.sales_order_save_after");
    assert!(d.is_mapped());
    assert!(!d.event_id.is_empty());
    let other = edit(ADOBE, |v| {
        v["type"] = json!("com.adobe.commerce.observer.catalog_product_save_after")
    });
    assert!(!adobe::AdobeDelivery::parse(other.as_bytes())
        .unwrap()
        .is_mapped());
}

#[test]
fn a_cancellation_needs_cancelled_at() {
    // The topic header is not signed: a live order's body must not cancel it.
    let err = shopify::map(
        shopify::ShopifyTopic::OrdersCancelled,
        SHOP,
        DISCOUNT_CODE.as_bytes(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, MapError::MissingField(f) if f.starts_with("cancelled_at")),
        "{err}"
    );
}

#[test]
fn refund_adjustments_without_a_kind_are_discrepancies() {
    // API 2024-10+: no `kind`, shipping only in refund_shipping_lines.
    let body = edit(REFUND, |v| {
        v["order_adjustments"] = json!([{
            "id": 1, "amount": "-2.00", "tax_amount": "0.00",
            "amount_set": {"shop_money": {"amount": "-2.00", "currency_code": "USD"},
                           "presentment_money": {"amount": "-2.00", "currency_code": "USD"}}
        }]);
        v["transactions"][0]["amount"] = json!("36.29");
    });
    let r = shopify_refund(&body).unwrap();
    assert_eq!(
        r.shipping.shop.minor, 1000,
        "shipping from refund_shipping_lines"
    );
    assert_eq!(r.adjustments.shop.minor, 200);
    assert_eq!(r.total.shop.minor, 3629);
}

#[test]
fn refunded_duties_count_in_the_refund_total() {
    let body = edit(REFUND, |v| {
        v["total_duties_set"] = json!({"shop_money": {"amount": "3.00", "currency_code": "USD"},
                                       "presentment_money": {"amount": "3.00", "currency_code": "USD"}});
        v["transactions"][0]["amount"] = json!("37.29");
    });
    let r = shopify_refund(&body).unwrap();
    assert_eq!(r.duties.shop.minor, 300);
    assert_eq!(r.total.shop.minor, 3729);
}

#[test]
fn a_tip_outside_the_lines_counts_once_and_only_exactly() {
    let tipped = |tip: &str, total: &str| {
        edit(DISCOUNT_CODE, |v| {
            v["total_tip_received"] = json!(tip);
            v["total_price"] = json!(total);
            v["total_price_set"]["shop_money"]["amount"] = json!(total);
            v["total_price_set"]["presentment_money"]["amount"] = json!(total);
        })
    };
    let o = shopify_order(&tipped("5.00", "133.08")).unwrap();
    assert_eq!(o.totals.other_charges.shop.minor, 500);
    assert_eq!(
        o.totals.merchandise_net.shop.minor, 10933,
        "a tip is not merchandise"
    );
    // A tip already inside the lines (total unchanged) is not added again.
    let o = shopify_order(&tipped("5.00", "128.08")).unwrap();
    assert_eq!(o.totals.other_charges.shop.minor, 0);
    // A total the tip does not explain is still a mismatch.
    assert!(matches!(
        shopify_order(&tipped("5.00", "134.08")),
        Err(MapError::TotalsMismatch { .. })
    ));
}
