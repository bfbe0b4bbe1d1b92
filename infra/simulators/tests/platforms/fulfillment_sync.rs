//! The fulfillment sync against the simulators: NetSuite item fulfillments
//! (SuiteQL) onto Shopify fulfillment orders and Adobe Commerce shipments,
//! once each, with tracking; lost answers, throttling and shipments with no
//! retailflow order behind them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use retailflow_connectors::netsuite::{NetSuiteConfig, NetSuiteErp};
use retailflow_connectors::shop::{
    AdobeCommerceAdmin, AdobeCommerceAdminConfig, ShopifyAdmin, ShopifyAdminConfig,
};
use retailflow_core::adapters::in_process::{InProcessEventBus, InProcessStateStore};
use retailflow_core::model::Platform;
use retailflow_core::money::{Currency, Money};
use retailflow_core::ports::erp::{ErpConnector, ErpCustomer, ErpLine, ErpSalesOrder};
use retailflow_core::ports::shop::EcommerceConnector;
use retailflow_core::ports::StateStore;
use retailflow_core::resilience::CircuitBreaker;
use retailflow_core::resilience::Guarded;
use retailflow_core::steps::fulfillment_sync::{FulfillmentSync, CURSOR};
use retailflow_core::steps::{Invocation, StepOutcome};
use simulators::{Fault, FaultKind, Simulators, System};

const SHOP: &str = "north.myshopify.com";

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::from_code("USD").unwrap())
}

fn breaker() -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new("t", 5, Duration::from_secs(60)))
}

fn netsuite(sims: &Simulators) -> Arc<NetSuiteErp> {
    Arc::new(NetSuiteErp::new(NetSuiteConfig {
        base_url: sims.netsuite_base(),
        auth: sims.netsuite_auth(),
        subsidiary_id: None,
        timeout: Duration::from_secs(5),
    }))
}

struct Rig {
    store: Arc<InProcessStateStore>,
    bus: Arc<InProcessEventBus>,
    sync: FulfillmentSync,
}

fn rig(sims: &Simulators) -> Rig {
    let store = Arc::new(InProcessStateStore::new());
    let bus = Arc::new(InProcessEventBus::new());
    let shopify: Arc<dyn EcommerceConnector> = Arc::new(ShopifyAdmin::new(ShopifyAdminConfig {
        base_url: Some(sims.shopify_admin_base()),
        api_version: "2024-10".into(),
        tokens: sims.shopify_tokens(),
        locations: Default::default(),
        default_location: None,
        timeout: Duration::from_secs(5),
    }));
    let adobe: Arc<dyn EcommerceConnector> =
        Arc::new(AdobeCommerceAdmin::new(AdobeCommerceAdminConfig {
            base_url: sims.adobe_rest_base(),
            auth: sims.adobe_auth(),
            timeout: Duration::from_secs(5),
        }));
    let sync = FulfillmentSync::new(
        store.clone(),
        bus.clone(),
        netsuite(sims),
        breaker(),
        vec![
            (Platform::Shopify, Guarded::new(shopify, breaker())),
            (Platform::AdobeCommerce, Guarded::new(adobe, breaker())),
        ],
    );
    Rig { store, bus, sync }
}

fn inv() -> Invocation {
    Invocation {
        now: Utc::now(),
        deadline: None,
        attempt: 1,
    }
}

/// Posts a sales order to the NetSuite simulator as erp-post would.
async fn post(sims: &Simulators, external_id: &str, order_key: Option<&str>, sku: &str, qty: u32) {
    let order = ErpSalesOrder {
        external_id: external_id.into(),
        customer_external_id: "cu-1".into(),
        order_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        memo: "m".into(),
        lines: vec![ErpLine {
            item: sku.into(),
            description: sku.into(),
            quantity: qty,
            unit_price: usd(1000),
            amount: usd(1000 * i64::from(qty)),
            restock: None,
        }],
        total: usd(1000 * i64::from(qty)),
        order_key: order_key.map(str::to_string),
    };
    let erp = netsuite(sims);
    let customer = erp
        .upsert_customer(&ErpCustomer {
            external_id: "cu-1".into(),
            first_name: None,
            last_name: None,
            email: None,
        })
        .await
        .unwrap();
    erp.post_sales_order(&order, &customer).await.unwrap();
}

fn report(out: StepOutcome) -> serde_json::Value {
    match out {
        StepOutcome::Done { summary } => summary,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_netsuite_shipment_becomes_a_shopify_fulfillment_with_tracking_once() {
    let sims = Simulators::start().await.unwrap();
    let key = format!("shopify:{SHOP}:order:1001");
    post(&sims, "so-1001", Some(&key), "TENT-2P", 2).await;
    sims.shopify_add_order(SHOP, 1001, &[(9001, "TENT-2P", 2), (9002, "MUG", 1)]);
    sims.netsuite_ship("so-1001", "UPS", &["1Z999AA10123456784"], &[("TENT-2P", 2)]);
    let r = rig(&sims);

    let rep = report(r.sync.run(inv()).await);
    assert_eq!(rep["recorded"], 1, "{rep}");
    let done = sims.shopify_fulfillments(SHOP, 1001);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].tracking_numbers, vec!["1Z999AA10123456784"]);
    assert_eq!(done[0].carrier.as_deref(), Some("UPS"));
    assert_eq!(done[0].lines, vec![(9001, 2)]);
    let events = r.bus.published();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detail_type, "FulfillmentShipped");

    // Nothing new: the watermark is past it.
    assert_eq!(report(r.sync.run(inv()).await)["shipments"], 0);
    // Read again from the start (a lost watermark): recorded once still.
    r.store.write_cursor(CURSOR, "0").await.unwrap();
    report(r.sync.run(inv()).await);
    assert_eq!(sims.shopify_fulfillments(SHOP, 1001).len(), 1);
}

#[tokio::test]
async fn a_lost_answer_from_shopify_is_found_again_by_its_tracking_number() {
    let sims = Simulators::start().await.unwrap();
    let key = format!("shopify:{SHOP}:order:1002");
    post(&sims, "so-1002", Some(&key), "TENT-2P", 1).await;
    sims.shopify_add_order(SHOP, 1002, &[(9101, "TENT-2P", 1)]);
    sims.netsuite_ship("so-1002", "FedEx", &["7712"], &[("TENT-2P", 1)]);
    sims.inject(Fault {
        system: System::Shopify,
        method: Some("POST"),
        path_contains: "fulfillments.json",
        kind: FaultKind::LoseResponse,
        count: 1,
    });
    let r = rig(&sims);
    assert!(matches!(r.sync.run(inv()).await, StepOutcome::Retry { .. }));
    assert_eq!(sims.shopify_fulfillments(SHOP, 1002).len(), 1, "applied");
    let rep = report(r.sync.run(inv()).await);
    assert_eq!(rep["recorded"], 1, "{rep}");
    assert_eq!(sims.shopify_fulfillments(SHOP, 1002).len(), 1, "not twice");
}

#[tokio::test]
async fn an_adobe_commerce_shipment_is_recorded_with_its_track() {
    let sims = Simulators::start().await.unwrap();
    post(
        &sims,
        "so-214",
        Some("adobe_commerce:store-1:order:214"),
        "MH07-M-Navy",
        1,
    )
    .await;
    sims.adobe_add_order(214, &[(501, "MH07-M-Navy", 1), (502, "24-UG04", 2)]);
    sims.netsuite_ship("so-214", "DHL", &["JD0146"], &[("MH07-M-Navy", 1)]);
    let r = rig(&sims);
    assert_eq!(report(r.sync.run(inv()).await)["recorded"], 1);
    let shipped = sims.adobe_shipments(214);
    assert_eq!(shipped.len(), 1);
    assert_eq!(shipped[0].tracking_numbers, vec!["JD0146"]);
    assert_eq!(shipped[0].lines, vec![(501, 1)]);
}

#[tokio::test]
async fn a_shipment_with_no_retailflow_order_is_quarantined_and_the_sync_moves_on() {
    let sims = Simulators::start().await.unwrap();
    // A sales order keyed in by hand in NetSuite, shipped before ours.
    post(&sims, "manual-1", None, "TENT-2P", 1).await;
    sims.netsuite_ship("manual-1", "UPS", &["1Z1"], &[("TENT-2P", 1)]);
    let key = format!("shopify:{SHOP}:order:1003");
    post(&sims, "so-1003", Some(&key), "TENT-2P", 1).await;
    sims.shopify_add_order(SHOP, 1003, &[(9201, "TENT-2P", 1)]);
    sims.netsuite_ship("so-1003", "UPS", &["1Z2"], &[("TENT-2P", 1)]);
    // And a shipment of more than the shop order has left to fulfil.
    sims.netsuite_ship("so-1003", "UPS", &["1Z3"], &[("TENT-2P", 1)]);
    let r = rig(&sims);
    let rep = report(r.sync.run(inv()).await);
    assert_eq!(rep["recorded"], 1, "{rep}");
    assert_eq!(rep["quarantined"], 2, "{rep}");
    let q = r.store.quarantined();
    assert!(q[0].reason.contains("did not post"), "{}", q[0].reason);
    assert!(q[1].reason.contains("no open line left"), "{}", q[1].reason);
    assert_eq!(sims.shopify_fulfillments(SHOP, 1003).len(), 1);
}

#[tokio::test]
async fn a_throttled_shop_stops_the_sync_at_that_shipment_and_the_next_tick_resumes() {
    let sims = Simulators::start().await.unwrap();
    for (n, order) in [(1, 1101u64), (2, 1102)] {
        let key = format!("shopify:{SHOP}:order:{order}");
        post(&sims, &format!("so-{order}"), Some(&key), "TENT-2P", 1).await;
        sims.shopify_add_order(SHOP, order, &[(order * 10, "TENT-2P", 1)]);
        sims.netsuite_ship(
            &format!("so-{order}"),
            "UPS",
            &[&format!("T{n}")],
            &[("TENT-2P", 1)],
        );
    }
    let r = rig(&sims);
    // The first shipment goes through; Shopify throttles the second.
    sims.inject(Fault {
        system: System::Shopify,
        method: Some("GET"),
        path_contains: "1102/fulfillments.json",
        kind: FaultKind::Throttle {
            retry_after: Some(3),
        },
        count: 1,
    });
    match r.sync.run(inv()).await {
        StepOutcome::Retry { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(3)))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sims.shopify_fulfillments(SHOP, 1101).len(), 1);
    assert!(sims.shopify_fulfillments(SHOP, 1102).is_empty());
    let rep = report(r.sync.run(inv()).await);
    assert_eq!(rep["shipments"], 1, "resumes after the first: {rep}");
    assert_eq!(sims.shopify_fulfillments(SHOP, 1102).len(), 1);
}

#[tokio::test]
async fn a_shipment_still_packing_waits_and_holds_the_watermark_for_itself() {
    let sims = Simulators::start().await.unwrap();
    for order in [1201u64, 1202] {
        let key = format!("shopify:{SHOP}:order:{order}");
        post(&sims, &format!("so-{order}"), Some(&key), "TENT-2P", 1).await;
        sims.shopify_add_order(SHOP, order, &[(order * 10, "TENT-2P", 1)]);
    }
    // 1201's fulfillment is only packed; 1202's is shipped.
    let packed = sims.netsuite_ship("so-1201", "UPS", &[], &[("TENT-2P", 1)]);
    sims.netsuite_fulfillment_status(packed, "B", None);
    sims.netsuite_ship("so-1202", "UPS", &["T2"], &[("TENT-2P", 1)]);
    let r = rig(&sims);
    let rep = report(r.sync.run(inv()).await);
    assert_eq!(rep["waiting"], 1, "{rep}");
    assert_eq!(rep["recorded"], 1, "{rep}");
    assert!(sims.shopify_fulfillments(SHOP, 1201).is_empty());
    assert_eq!(sims.shopify_fulfillments(SHOP, 1202).len(), 1);
    // Shipped, with tracking added: the next run records it, and 1202 once.
    sims.netsuite_fulfillment_status(packed, "C", Some(&["T1"]));
    let rep = report(r.sync.run(inv()).await);
    assert_eq!(rep["recorded"], 2, "{rep}");
    assert_eq!(
        sims.shopify_fulfillments(SHOP, 1201)[0].tracking_numbers,
        vec!["T1"]
    );
    assert_eq!(sims.shopify_fulfillments(SHOP, 1202).len(), 1);
    assert_eq!(report(r.sync.run(inv()).await)["shipments"], 0);
}

#[tokio::test]
async fn an_untracked_shipment_whose_answer_was_lost_is_set_aside_not_sent_again() {
    let sims = Simulators::start().await.unwrap();
    let key = format!("shopify:{SHOP}:order:1301");
    post(&sims, "so-1301", Some(&key), "TENT-2P", 4).await;
    sims.shopify_add_order(SHOP, 1301, &[(13010, "TENT-2P", 4)]);
    sims.netsuite_ship("so-1301", "Own van", &[], &[("TENT-2P", 2)]);
    sims.inject(Fault {
        system: System::Shopify,
        method: Some("POST"),
        path_contains: "fulfillments.json",
        kind: FaultKind::LoseResponse,
        count: 1,
    });
    let r = rig(&sims);
    let rep = report(r.sync.run(inv()).await);
    assert_eq!(rep["quarantined"], 1, "{rep}");
    assert!(r.store.quarantined()[0]
        .reason
        .contains("no tracking number"));
    report(r.sync.run(inv()).await);
    assert_eq!(
        sims.shopify_fulfillments(SHOP, 1301).len(),
        1,
        "recorded once, by the lost request"
    );
}
