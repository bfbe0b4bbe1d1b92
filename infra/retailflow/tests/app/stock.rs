//! Stock after checkout, on the local app: a paid checkout's hold becomes
//! its order's for good (once, whatever the redeliveries), the order's
//! promotion counts towards the customer's limit, a cancellation restocks,
//! and the schedule's tick gives abandoned holds back.

use chrono::Duration;
use retailflow::local_app::LocalApp;
use retailflow_core::checkout::validation::{CheckoutRequest, CheckoutResponse};
use retailflow_core::events::{envelope, Envelope, EnvelopeMeta, OrderCancelled};
use retailflow_core::model::{Cancellation, OrderRef, Platform};
use retailflow_core::steps::stock_commit::handle_stock_message;
use retailflow_core::steps::{Invocation, StepOutcome};

use crate::support;
use support::{deliver, dev_config, sample};

/// The sample checkout (events/14): the cart of sample order #1042, under
/// the checkout token that order carries.
fn sample_checkout() -> CheckoutRequest {
    serde_json::from_slice(&sample("14-checkout-validate.json").body).unwrap()
}

fn inv(app: &LocalApp) -> Invocation {
    Invocation {
        now: app.clock.now(),
        deadline: None,
        attempt: 1,
    }
}

async fn available(app: &LocalApp) -> [u32; 3] {
    [
        app.stock_available("MCS-CHR-M").await,
        app.stock_available("CWB-OLV").await,
        app.stock_available("BLB-01").await,
    ]
}

#[tokio::test]
async fn a_paid_checkout_commits_its_hold_once_and_counts_its_promotion() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    assert_eq!(available(&app).await, [120, 30, 400]);
    let checkout = sample_checkout();
    let resp = app.checkout.validate(&checkout, app.clock.now()).await;
    assert!(
        matches!(resp, CheckoutResponse::Accepted { .. }),
        "{resp:?}"
    );
    assert_eq!(available(&app).await, [118, 29, 399], "held");

    // The order arrives (and is redelivered) with the checkout's token.
    assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
    assert_eq!(
        deliver(&app, "02-shopify-orders-create-redelivery.json").await,
        200
    );
    let report = app.drain().await;
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    assert!(!report.gave_up);
    // The redelivery publishes the order again and stock-commit answers
    // with its stored event: one commit, however often it is published.
    let by_id: std::collections::BTreeMap<String, serde_json::Value> = app
        .bus
        .recorded
        .published()
        .iter()
        .filter(|e| e.detail_type == "StockCommitted")
        .map(|e| {
            let env = serde_json::from_str::<serde_json::Value>(&e.detail).unwrap();
            (e.event_id.to_string(), env["detail"].clone())
        })
        .collect();
    let committed: Vec<serde_json::Value> = by_id.into_values().collect();
    assert_eq!(committed.len(), 1, "one commit: {committed:?}");
    assert_eq!(committed[0]["from_hold"], true);
    assert_eq!(committed[0]["checkout_id"], "sample-checkout-1");
    assert_eq!(committed[0]["promotion_uses"][0], "WELCOME10");
    assert_eq!(available(&app).await, [118, 29, 399], "sold once");

    // Long after the hold's expiry its units stay sold: nothing to sweep.
    app.clock
        .advance_to(app.clock.now() + Duration::minutes(30));
    match app.sweep_holds().await {
        StepOutcome::Done { summary } => assert_eq!(summary["holds_expired"], 0),
        other => panic!("{other:?}"),
    }
    assert_eq!(available(&app).await, [118, 29, 399]);

    // The same customer's next checkout cannot use WELCOME10 again.
    let mut again = sample_checkout();
    again.checkout_id = "sample-checkout-2".into();
    let resp = app.checkout.validate(&again, app.clock.now()).await;
    let CheckoutResponse::Rejected { problems, .. } = &resp else {
        panic!("{resp:?}")
    };
    assert!(
        problems
            .iter()
            .any(|p| p.code == "promotion_not_eligible" && p.message.contains("WELCOME10")),
        "{problems:?}"
    );

    // The order is cancelled: its units come back, once.
    let order = OrderRef {
        platform: Platform::Shopify,
        shop: "acme-outdoor.myshopify.com".into(),
        order_id: "5872301948123".into(),
    };
    let meta = EnvelopeMeta {
        event_id: uuid::Uuid::new_v4(),
        occurred_at: app.clock.now(),
        source: "shopify:acme-outdoor.myshopify.com".into(),
        causation_id: None,
    };
    let cancellation = OrderCancelled {
        cancellation: Cancellation {
            order: order.clone(),
            cancelled_at: app.clock.now(),
            reason: Some("customer".into()),
        },
    };
    let cancel: Envelope<OrderCancelled> =
        serde_json::from_value(envelope(&cancellation, &meta, &order.key())).unwrap();
    for _ in 0..2 {
        let out = app
            .stock_commit
            .handle_cancellation(&cancel, inv(&app))
            .await;
        assert!(matches!(out, StepOutcome::Done { .. }), "{out:?}");
    }
    assert_eq!(available(&app).await, [120, 30, 400], "restocked once");
}

#[tokio::test]
async fn the_schedule_tick_gives_abandoned_holds_back() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    let resp = app
        .checkout
        .validate(&sample_checkout(), app.clock.now())
        .await;
    assert!(matches!(resp, CheckoutResponse::Accepted { .. }));
    // The customer walked away; the schedule ticks after the hold expired.
    app.clock
        .advance_to(app.clock.now() + Duration::minutes(16));
    let tick = serde_json::json!({
        "version": "0",
        "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": app.clock.now(),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/HoldSweepSchedule"],
        "detail": {}
    });
    let out = handle_stock_message(&app.stock_commit, &tick.to_string(), inv(&app)).await;
    match out {
        StepOutcome::Done { summary } => assert_eq!(summary["holds_expired"], 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(available(&app).await, [120, 30, 400]);
}

#[tokio::test]
async fn the_stock_queue_refuses_events_it_does_not_take() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    let body = serde_json::json!({
        "detail-type": "RefundIssued",
        "detail": {"event_type": "RefundIssued"}
    });
    let out = handle_stock_message(&app.stock_commit, &body.to_string(), inv(&app)).await;
    assert!(matches!(out, StepOutcome::Reject { .. }), "{out:?}");
}

fn usd(minor: i64) -> retailflow_core::money::Money {
    retailflow_core::money::Money::new(
        minor,
        retailflow_core::money::Currency::from_code("USD").unwrap(),
    )
}

fn sync_report(out: StepOutcome) -> serde_json::Value {
    match out {
        StepOutcome::Done { summary } => summary,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_erp_price_change_reaches_checkout_and_an_erp_count_never_resells_sold_units() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    // The ERP starts where the seed does: a sync changes nothing.
    let rep = sync_report(app.catalog_sync.run().await);
    assert_eq!(rep["prices_changed"], 0, "{rep}");
    assert_eq!(available(&app).await, [120, 30, 400]);

    // The ERP raises the bottle from 59.00 to 65.00.
    app.sims.set_erp_item("CWB-OLV", usd(6500), 30);
    let rep = sync_report(app.catalog_sync.run().await);
    assert_eq!(rep["prices_changed"], 1, "{rep}");
    let resp = app
        .checkout
        .validate(&sample_checkout(), app.clock.now())
        .await;
    let CheckoutResponse::Rejected { problems, .. } = &resp else {
        panic!("{resp:?}")
    };
    assert!(
        problems
            .iter()
            .any(|p| p.code == "price_changed" && p.sku.as_deref() == Some("CWB-OLV")),
        "{problems:?}"
    );

    // The shop sells order #1042 anyway (no live hold): 1 bottle leaves
    // stock. Before the ERP has it, its count of 30 must not bring it back.
    assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
    sync_report(app.catalog_sync.run().await);
    assert_eq!(app.stock_available("CWB-OLV").await, 30, "not drained yet");
    app.drain().await;
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    assert_eq!(app.stock_available("CWB-OLV").await, 29);
    // The ERP posted the order (its available count is 29 now) and
    // retailflow saw it posted: the count applies as is.
    let rep = sync_report(app.catalog_sync.run().await);
    assert_eq!(rep["counts_stale"], 0, "{rep}");
    assert_eq!(app.stock_available("CWB-OLV").await, 29);
    assert_eq!(available(&app).await, [118, 29, 399]);
}

#[tokio::test]
async fn an_order_cancelled_before_its_stock_committed_takes_nothing() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    let resp = app
        .checkout
        .validate(&sample_checkout(), app.clock.now())
        .await;
    assert!(matches!(resp, CheckoutResponse::Accepted { .. }));
    let order = OrderRef {
        platform: Platform::Shopify,
        shop: "acme-outdoor.myshopify.com".into(),
        order_id: "5872301948123".into(),
    };
    let meta = EnvelopeMeta {
        event_id: uuid::Uuid::new_v4(),
        occurred_at: app.clock.now(),
        source: "shopify:acme-outdoor.myshopify.com".into(),
        causation_id: None,
    };
    let cancellation = OrderCancelled {
        cancellation: Cancellation {
            order: order.clone(),
            cancelled_at: app.clock.now(),
            reason: None,
        },
    };
    let cancel: Envelope<OrderCancelled> =
        serde_json::from_value(envelope(&cancellation, &meta, &order.key())).unwrap();
    // The cancellation's message is handled before the order's.
    let out = app
        .stock_commit
        .handle_cancellation(&cancel, inv(&app))
        .await;
    assert!(matches!(out, StepOutcome::Done { .. }), "{out:?}");
    assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
    app.drain().await;
    assert!(
        !app.bus
            .recorded
            .published()
            .iter()
            .any(|e| e.detail_type == "StockCommitted"),
        "nothing committed"
    );
    assert_eq!(available(&app).await, [120, 30, 400], "hold given back");
}

#[tokio::test]
async fn the_sync_shows_the_shops_what_is_free_after_checkout_holds() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    app.sims
        .shopify_add_variant(retailflow::local_app::SAMPLE_SHOP, "CWB-OLV", 55001);
    let resp = app
        .checkout
        .validate(&sample_checkout(), app.clock.now())
        .await;
    assert!(matches!(resp, CheckoutResponse::Accepted { .. }));
    // The warehouse receives 5 bottles: the shops show the 34 of 35 not
    // held by the checkout.
    app.sims.set_erp_item("CWB-OLV", usd(5900), 35);
    let rep = sync_report(app.catalog_sync.run().await);
    assert_eq!(
        app.sims
            .shopify_available(retailflow::local_app::SAMPLE_SHOP, 55001, 1001),
        Some(34),
        "{rep}"
    );
    assert_eq!(
        app.sims.adobe_source_item("CWB-OLV", "default"),
        Some((34, 1))
    );
    assert_eq!(
        app.sims.adobe_source_item("MCS-CHR-M", "default"),
        None,
        "unchanged counts are not pushed"
    );
}

#[tokio::test]
async fn a_netsuite_shipment_of_a_sample_order_reaches_shopify_with_its_tracking() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
    app.drain().await;
    let order = OrderRef {
        platform: Platform::Shopify,
        shop: retailflow::local_app::SAMPLE_SHOP.into(),
        order_id: "5872301948123".into(),
    };
    app.sims.shopify_add_order(
        retailflow::local_app::SAMPLE_SHOP,
        5872301948123,
        &[
            (14820035190875, "MCS-CHR-M", 2),
            (14820035223643, "CWB-OLV", 1),
            (14820035256411, "BLB-01", 1),
        ],
    );
    // The warehouse ships the socks first, the rest later.
    let so = retailflow_core::steps::erp_posting::sales_order_external_id(&order);
    app.sims
        .netsuite_ship(&so, "UPS", &["1Z999AA1"], &[("MCS-CHR-M", 2)]);
    app.sims
        .netsuite_ship(&so, "UPS", &["1Z999AA2"], &[("CWB-OLV", 1), ("BLB-01", 1)]);
    let out = app.fulfillment_sync.run(inv(&app)).await;
    let StepOutcome::Done { summary } = out else {
        panic!("{out:?}")
    };
    assert_eq!(summary["recorded"], 2, "{summary}");
    let shipped = app
        .sims
        .shopify_fulfillments(retailflow::local_app::SAMPLE_SHOP, 5872301948123);
    assert_eq!(shipped.len(), 2);
    assert_eq!(shipped[0].tracking_numbers, vec!["1Z999AA1"]);
    assert_eq!(shipped[0].lines, vec![(14820035190875, 2)]);
    let timeline = retailflow::timeline::timelines(&app);
    let t = timeline
        .iter()
        .find(|t| t.correlation_id == order.key())
        .unwrap();
    assert_eq!(
        t.entries
            .iter()
            .filter(|e| e.event_type == "FulfillmentShipped")
            .count(),
        2
    );
}
