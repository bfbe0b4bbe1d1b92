//! The credit memo mapper's traps, on the fixtures (their figures are
//! re-derived in Python Decimal by `events/payloads/check_totals.py`).

use serde_json::{json, Value};

use crate::events::CanonicalEvent;
use crate::mappers::adobe::{map, AdobeDelivery};
use crate::mappers::MapError;
use crate::model::{AdjustmentKind, Refund, RestockType};

const PARTIAL: &str = include_str!("../../../../../events/payloads/adobe-creditmemo-partial.json");
const FEE: &str =
    include_str!("../../../../../events/payloads/adobe-creditmemo-adjustment-fee.json");

fn edited(body: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap();
    f(&mut v["data"]["value"]);
    v.to_string()
}

fn mapped(body: &str) -> Result<Refund, MapError> {
    let d = AdobeDelivery::parse(body.as_bytes()).unwrap();
    match map("acme-commerce", &d)? {
        CanonicalEvent::RefundIssued(r) => Ok(r.refund),
        other => panic!("not a refund: {other:?}"),
    }
}

fn expected(name: &str) -> Value {
    let path = format!(
        "{}/../../events/payloads/{name}.expected.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn each_credit_memo_maps_to_the_figures_its_fixture_expects() {
    for (body, name) in [
        (PARTIAL, "adobe-creditmemo-partial"),
        (FEE, "adobe-creditmemo-adjustment-fee"),
    ] {
        let r = mapped(body).unwrap();
        let e = expected(name);
        let minor = |b: crate::model::MoneyBag| b.shop.minor;
        let sub: i64 = r.lines.iter().map(|l| l.subtotal.shop.minor).sum();
        let tax: i64 = r.lines.iter().map(|l| l.tax.shop.minor).sum();
        assert_eq!(sub, e["lines_subtotal"], "{name}");
        assert_eq!(tax, e["lines_tax"], "{name}");
        assert_eq!(minor(r.shipping), e["shipping"], "{name}");
        assert_eq!(minor(r.shipping_tax), e["shipping_tax"], "{name}");
        let part = |k| {
            r.adjustment_parts
                .iter()
                .find(|p| p.kind == k)
                .map_or(0, |p| p.amount.shop.minor)
        };
        assert_eq!(
            part(AdjustmentKind::Refund),
            e["adjustment_refund"],
            "{name}"
        );
        assert_eq!(part(AdjustmentKind::Fee), e["adjustment_fee"], "{name}");
        assert_eq!(minor(r.total), e["total"], "{name}");
        let lines: Vec<Value> = r
            .lines
            .iter()
            .map(|l| {
                json!({"order_item_id": l.line_id, "qty": l.quantity,
                       "back_to_stock": l.restock_type == RestockType::Return})
            })
            .collect();
        assert_eq!(Value::Array(lines), e["lines"], "{name}");
        assert_eq!(r.order.order_id, "214");
    }
}

#[test]
fn a_credit_memo_takes_adobes_prorated_tax_not_the_rate_on_the_refunded_net() {
    // One of two units at 29.99 and 8.25 %, invoiced tax 4.95: Adobe's
    // first memo says 2.48; the rate on 29.99 would say 2.47.
    let body = edited(PARTIAL, |v| {
        let it = &mut v["items"][0];
        it["price"] = json!(29.99);
        it["base_price"] = json!("29.9900");
        it["row_total"] = json!(29.99);
        it["base_row_total"] = json!("29.9900");
        it["tax_amount"] = json!(2.48);
        it["base_tax_amount"] = json!("2.4800");
        v["subtotal"] = json!(29.99);
        v["base_subtotal"] = json!("29.9900");
        v["tax_amount"] = json!(2.48);
        v["base_tax_amount"] = json!("2.4800");
        v["grand_total"] = json!(42.47);
        v["base_grand_total"] = json!("42.4700");
    });
    let r = mapped(&body).unwrap();
    assert_eq!(r.lines[0].tax.shop.minor, 248);
    assert_eq!(r.total.shop.minor, 4_247);
}

#[test]
fn the_refund_id_is_the_credit_memo_entity_id_never_its_increment_id_or_an_items_parent_id() {
    let r = mapped(PARTIAL).unwrap();
    assert_eq!(r.refund_id, "41");
    // While being saved an item's parent_id (the memo) can be null.
    let body = edited(PARTIAL, |v| v["items"][0]["parent_id"] = Value::Null);
    assert_eq!(mapped(&body).unwrap().refund_id, "41");
    // Without entity_id, the REST `id`; never the display number.
    let body = edited(PARTIAL, |v| {
        v.as_object_mut().unwrap().remove("entity_id");
        v["id"] = json!(41);
    });
    assert_eq!(mapped(&body).unwrap().refund_id, "41");
    let body = edited(PARTIAL, |v| {
        v.as_object_mut().unwrap().remove("entity_id");
    });
    assert!(matches!(mapped(&body), Err(MapError::MissingField(_))));
}

#[test]
fn an_adjustment_fee_arrives_positive_and_is_taken_off_the_refund() {
    let r = mapped(FEE).unwrap();
    assert_eq!(r.adjustments.shop.minor, -500);
    let body = edited(FEE, |v| {
        v["adjustment_negative"] = json!(-5);
        v["base_adjustment_negative"] = json!("-5.0000");
    });
    assert!(matches!(mapped(&body), Err(MapError::BadValue { .. })));
}

#[test]
fn back_to_stock_true_restocks_and_false_or_absent_does_not() {
    assert_eq!(
        mapped(PARTIAL).unwrap().lines[0].restock_type,
        RestockType::Return
    );
    for flag in [json!(false), json!("0"), Value::Null] {
        let body = edited(PARTIAL, |v| v["items"][0]["back_to_stock"] = flag.clone());
        assert_eq!(
            mapped(&body).unwrap().lines[0].restock_type,
            RestockType::NoRestock,
            "{flag}"
        );
    }
}

#[test]
fn shipping_is_refunded_net_of_its_share_of_the_discount() {
    // 2.00 of the memo's discount is shipping's (no item discount).
    let body = edited(PARTIAL, |v| {
        v["discount_amount"] = json!(-2);
        v["base_discount_amount"] = json!("-2.0000");
        v["grand_total"] = json!(25.32);
        v["base_grand_total"] = json!("25.3200");
    });
    let r = mapped(&body).unwrap();
    assert_eq!(r.shipping.shop.minor, 800);
    assert_eq!(r.total.shop.minor, 2_532);
}

#[test]
fn zero_quantity_items_are_not_refunded_lines_and_may_carry_no_money() {
    let body = edited(FEE, |v| {
        let mut extra = v["items"][1].clone();
        extra["order_item_id"] = json!("533");
        extra["qty"] = json!("0.0000");
        v["items"].as_array_mut().unwrap().push(extra);
    });
    assert_eq!(mapped(&body).unwrap().lines.len(), 2);
    let body = edited(FEE, |v| v["items"][0]["qty"] = json!(0));
    assert!(matches!(mapped(&body), Err(MapError::BadValue { .. })));
}

#[test]
fn a_credit_memo_whose_parts_do_not_make_its_grand_total_is_refused_with_the_computation() {
    let body = edited(PARTIAL, |v| {
        v["grand_total"] = json!(99.99);
        v["base_grand_total"] = json!("99.9900");
    });
    let err = mapped(&body).unwrap_err().to_string();
    assert!(
        err.contains("adjustment fee") && err.contains("27.32") && err.contains("99.99"),
        "{err}"
    );
}

#[test]
fn an_open_or_canceled_credit_memo_is_acknowledged_not_mapped() {
    for state in [json!(1), json!("3")] {
        let body = edited(PARTIAL, |v| v["state"] = state.clone());
        assert!(
            matches!(mapped(&body), Err(MapError::NotARefund(_))),
            "{state}"
        );
    }
}

#[test]
fn a_credit_memo_retailflow_recorded_for_a_till_return_is_its_own_echo() {
    let body = edited(PARTIAL, |v| {
        v["comments"] = json!([{"comment": format!(
            "{}rf-ret-0042", crate::ports::shop::TILL_RETURN_NOTE_PREFIX)}]);
    });
    match mapped(&body) {
        Err(MapError::OwnEcho { reference }) => assert_eq!(reference, "rf-ret-0042"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_credit_memo_commented_with_the_bare_reference_of_an_earlier_build_is_its_own_echo() {
    let reference =
        crate::steps::return_reversal::shop_refund_for(&mapped(PARTIAL).unwrap()).reference;
    assert!(reference.starts_with("rf-adobe_commerce-"), "{reference}");
    let body = edited(PARTIAL, |v| {
        v["comments"] = json!([{ "comment": reference }])
    });
    assert!(matches!(mapped(&body), Err(MapError::OwnEcho { .. })));
    // What a person writes is a comment, even one that starts alike.
    for note in [
        "rf-adobe_commerce-ask the customer",
        "refund approved by Ana",
    ] {
        let body = edited(PARTIAL, |v| v["comments"] = json!([{ "comment": note }]));
        assert!(mapped(&body).is_ok(), "{note}");
    }
}

#[test]
fn amounts_sent_as_padded_strings_and_json_numbers_are_exact() {
    let body = edited(PARTIAL, |v| {
        v["items"][0]["tax_amount"] = json!("1.3200");
        v["grand_total"] = json!("27.3200");
    });
    assert_eq!(mapped(&body).unwrap().total.shop.minor, 2_732);
}
