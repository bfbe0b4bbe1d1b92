//! Orders of hundreds and thousands of lines flow like any other through
//! the local app: accepted, sent by claim check (too large for the bus),
//! posted to the ERP with every line, points accrued, stock of more SKUs
//! than one DynamoDB transaction takes committed, and a return against each
//! credited. The AWS-wire twin is tests/aws_wire/large_orders.rs.

use crate::support;

use retailflow::large_orders::{shopify_order, shopify_refund, sku};
use retailflow::local_app::LocalApp;
use retailflow_core::ports::stock::StockReservations;
use support::{deliver_shopify, dev_config};

const ON_HAND: u32 = 1000;

async fn stocked(app: &LocalApp, skus: usize) {
    for n in 0..skus {
        app.stock.set_on_hand(&sku(n), ON_HAND).await.unwrap();
    }
}

/// Delivers the order and a refund of all its lines; returns the bytes of
/// the order's body.
async fn order_and_return(app: &LocalApp, id: u64, lines: usize, skus: usize) -> usize {
    let order = shopify_order(id, lines, skus);
    let body = order.to_string();
    let resp = deliver_shopify(app, "orders/create", &format!("ev-{id}"), &body).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    app.drain().await;
    // Sold: each of the first SKUs once per line it is on.
    let per_sku = lines.div_ceil(skus);
    assert_eq!(
        app.stock_available(&sku(0)).await,
        ON_HAND - u32::try_from(per_sku).unwrap(),
        "taken"
    );
    let refund = shopify_refund(&order, id + 1, lines).to_string();
    let resp = deliver_shopify(app, "refunds/create", &format!("ev-{id}-r"), &refund).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    app.drain().await;
    body.len()
}

#[tokio::test]
async fn a_cart_of_500_lines_over_150_stocked_skus_is_posted_accrued_committed_and_returned() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    stocked(&app, 150).await;
    let bytes = order_and_return(&app, 7_000_000_500, 500, 150).await;
    assert!(bytes > 256 * 1024, "{bytes} bytes: over the bus's limit");

    // It rode by reference: the event on the bus is small.
    let placed = app
        .bus
        .recorded
        .published()
        .into_iter()
        .find(|e| e.detail_type == "OrderPlaced")
        .unwrap();
    assert!(placed.detail.contains("detail_ref"), "claim-checked");
    assert!(placed.entry_size() < 4096, "{}", placed.entry_size());

    let so = app.sims.netsuite_sales_orders();
    assert_eq!(so.len(), 1);
    assert_eq!(so[0].lines, 500 + 1, "every line posted, and the tax line");
    assert_eq!(so[0].total.minor, 500 * 216);
    let journals = app.sims.loyalty_journals();
    assert_eq!(journals.len(), 2, "the accrual and the return's reversal");
    let memos = app.sims.netsuite_credit_memos();
    assert_eq!(memos.len(), 1);
    assert_eq!(memos[0].total.minor, 500 * 216, "every line credited");
    // 500 units over 150 SKUs left stock (more SKUs than one DynamoDB
    // transaction takes). Returned units come back through the ERP's own
    // count, not retailflow's.
    for (n, units) in [(0, 4), (49, 4), (50, 3), (98, 3), (149, 3)] {
        assert_eq!(
            app.stock_available(&sku(n)).await,
            ON_HAND - units,
            "{}",
            sku(n)
        );
    }
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
}

#[tokio::test]
async fn stock_of_150_skus_is_taken_once_and_all_of_it_comes_back_on_cancellation() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    stocked(&app, 150).await;
    let mut order = shopify_order(7_000_000_150, 300, 150);
    let body = order.to_string();
    for _ in 0..2 {
        // The second is a redelivery: nothing is taken twice.
        let resp = deliver_shopify(&app, "orders/create", "ev-150", &body).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        app.drain().await;
    }
    for n in [0, 97, 98, 149] {
        assert_eq!(
            app.stock_available(&sku(n)).await,
            ON_HAND - 2,
            "{}",
            sku(n)
        );
    }
    order["cancelled_at"] = "2026-11-20T11:00:00-05:00".into();
    order["cancel_reason"] = "customer".into();
    let resp = deliver_shopify(&app, "orders/cancelled", "ev-150-c", &order.to_string()).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    app.drain().await;
    for n in [0, 97, 98, 149] {
        assert_eq!(app.stock_available(&sku(n)).await, ON_HAND, "{}", sku(n));
    }
}

#[tokio::test]
async fn an_admin_api_order_of_2000_lines_flows_like_any_other() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    stocked(&app, 150).await;
    let started = std::time::Instant::now();
    let bytes = order_and_return(&app, 7_000_002_000, 2000, 2000).await;
    println!(
        "large order: 2000 lines, {bytes} bytes, through the local app (order and return) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        app.sims.netsuite_sales_orders()[0].lines,
        2000 + 1,
        "and the tax line"
    );
    assert_eq!(app.sims.netsuite_credit_memos()[0].total.minor, 2000 * 216);
    assert_eq!(app.sims.loyalty_journals().len(), 2);
    assert_eq!(app.stock_available(&sku(149)).await, ON_HAND - 1);
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
}
