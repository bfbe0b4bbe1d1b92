//! The catalog sync against the ERP simulators: NetSuite's SuiteQL and
//! Business Central's `items`, paged, into the price book and the stock
//! ledger; throttling and outages stop a run without half-truths.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use retailflow_connectors::business_central::{BusinessCentralConfig, BusinessCentralErp};
use retailflow_connectors::erp_catalog::NETSUITE_PAGE;
use retailflow_connectors::netsuite::{NetSuiteConfig, NetSuiteErp};
use retailflow_core::adapters::in_process::InProcessCatalog;
use retailflow_core::adapters::in_process::InProcessStock;
use retailflow_core::checkout::pricing::PriceEntry;
use retailflow_core::money::{Currency, Money};
use retailflow_core::ports::catalog::Catalog;
use retailflow_core::ports::erp::ErpCatalogFeed;
use retailflow_core::ports::stock::{OrderCommit, ReservationLine, StockReservations};
use retailflow_core::resilience::{CircuitBreaker, ConnectorError};
use retailflow_core::steps::catalog_sync::CatalogSync;
use retailflow_core::steps::StepOutcome;
use simulators::{Fault, FaultKind, Simulators, System};

fn usd() -> Currency {
    Currency::from_code("USD").unwrap()
}

fn price(minor: i64) -> Money {
    Money::new(minor, usd())
}

fn netsuite(sims: &Simulators) -> Arc<NetSuiteErp> {
    Arc::new(NetSuiteErp::new(NetSuiteConfig {
        base_url: sims.netsuite_base(),
        auth: sims.netsuite_auth(),
        subsidiary_id: None,
        timeout: Duration::from_secs(5),
    }))
}

fn business_central(sims: &Simulators) -> Arc<BusinessCentralErp> {
    Arc::new(BusinessCentralErp::new(BusinessCentralConfig {
        company_url: sims.business_central_company(),
        auth: sims.business_central_auth(),
        local_currency: usd(),
        timeout: Duration::from_secs(5),
    }))
}

struct Rig {
    catalog: Arc<InProcessCatalog>,
    stock: Arc<InProcessStock>,
    sync: CatalogSync,
}

fn rig(feed: Arc<dyn ErpCatalogFeed>) -> Rig {
    let catalog = Arc::new(InProcessCatalog::new());
    let stock = Arc::new(InProcessStock::new());
    let sync = CatalogSync::new(
        feed,
        Arc::new(CircuitBreaker::new("erp", 5, Duration::from_secs(60))),
        Vec::new(),
        catalog.clone(),
        stock.clone(),
        usd(),
        Arc::new(Utc::now),
    );
    Rig {
        catalog,
        stock,
        sync,
    }
}

fn report(out: StepOutcome) -> serde_json::Value {
    match out {
        StepOutcome::Done { summary } => summary,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn netsuite_items_are_read_over_every_suiteql_page() {
    let sims = Simulators::start().await.unwrap();
    let n = NETSUITE_PAGE + 7;
    for i in 0..n {
        sims.set_erp_item(&format!("SKU-{i:05}"), price(1000 + i as i64), 3);
    }
    let feed = netsuite(&sims);
    let first = feed.items_page(None, usd()).await.unwrap();
    assert_eq!(first.items.len(), NETSUITE_PAGE);
    assert_eq!(first.items[0].unit_price, Some(price(1000)));
    assert_eq!(first.items[0].available, Some(3));
    let second = feed.items_page(first.next.as_deref(), usd()).await.unwrap();
    assert_eq!(second.items.len(), 7);
    assert_eq!(second.next, None);

    let r = rig(feed);
    let rep = report(r.sync.run().await);
    assert_eq!(rep["pages"], 2);
    assert_eq!(rep["prices_changed"], n);
    assert_eq!(rep["counts_applied"], n);
    let prices = r.catalog.prices(&["SKU-00005".into()]).await.unwrap();
    assert_eq!(prices["SKU-00005"].price, price(1005));
    assert_eq!(prices["SKU-00005"].version, 1);
    assert_eq!(r.stock.available("SKU-00005", Utc::now()).await.unwrap(), 3);
}

#[tokio::test]
async fn an_unchanged_price_keeps_its_version_and_a_changed_one_gets_the_next() {
    let sims = Simulators::start().await.unwrap();
    sims.set_erp_item("TENT-2P", price(19900), 10);
    sims.set_erp_item("MAT-R", price(4500), 10);
    let r = rig(netsuite(&sims));
    r.catalog
        .put_price(&PriceEntry {
            sku: "TENT-2P".into(),
            price: price(19900),
            version: 4,
            collections: ["camping".to_string()].into(),
        })
        .await
        .unwrap();
    report(r.sync.run().await);
    // A price in another currency is not this book's price.
    let eur = Currency::from_code("EUR").unwrap();
    sims.set_erp_item("BAG-EU", Money::new(2500, eur), 3);
    let rep = report(r.sync.run().await);
    assert_eq!(rep["items_without_price"], 1, "{rep}");
    assert!(r
        .catalog
        .prices(&["BAG-EU".into()])
        .await
        .unwrap()
        .is_empty());
    sims.set_erp_item("MAT-R", price(3900), 10);
    let rep = report(r.sync.run().await);
    assert_eq!(rep["prices_changed"], 1, "{rep}");
    let prices = r
        .catalog
        .prices(&["TENT-2P".into(), "MAT-R".into()])
        .await
        .unwrap();
    assert_eq!(prices["TENT-2P"].version, 4, "unchanged");
    assert!(prices["TENT-2P"].collections.contains("camping"));
    assert_eq!(prices["MAT-R"].price, price(3900));
    assert_eq!(prices["MAT-R"].version, 2);
}

#[tokio::test]
async fn an_erp_count_never_brings_back_units_the_erp_has_not_seen_sold() {
    let sims = Simulators::start().await.unwrap();
    sims.set_erp_item("DROP", price(9900), 100);
    let r = rig(netsuite(&sims));
    report(r.sync.run().await);
    // retailflow sells 30; the ERP has not received those orders yet.
    r.stock
        .commit_order(
            &OrderCommit {
                order_key: "o1".into(),
                reservation_id: None,
                lines: vec![ReservationLine {
                    sku: "DROP".into(),
                    quantity: 30,
                }],
            },
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(r.stock.available("DROP", Utc::now()).await.unwrap(), 70);
    // The ERP still counts 100 free: applied as 100 - 30.
    report(r.sync.run().await);
    assert_eq!(r.stock.available("DROP", Utc::now()).await.unwrap(), 70);
    // The ERP receives the order and counts 70.
    r.stock.mark_posted("o1", Utc::now()).await.unwrap();
    sims.set_erp_item("DROP", price(9900), 70);
    report(r.sync.run().await);
    assert_eq!(r.stock.available("DROP", Utc::now()).await.unwrap(), 70);
    // Goods received in the warehouse: the ERP counts 90.
    sims.set_erp_item("DROP", price(9900), 90);
    report(r.sync.run().await);
    assert_eq!(r.stock.available("DROP", Utc::now()).await.unwrap(), 90);
}

#[tokio::test]
async fn a_count_read_before_the_erp_received_an_order_is_skipped_as_stale() {
    let stock = InProcessStock::new();
    let t0 = Utc::now();
    stock.set_on_hand("A", 10).await.unwrap();
    stock
        .commit_order(
            &OrderCommit {
                order_key: "o1".into(),
                reservation_id: None,
                lines: vec![ReservationLine {
                    sku: "A".into(),
                    quantity: 4,
                }],
            },
            t0,
        )
        .await
        .unwrap();
    // The ERP received the order at t0 + 2 s; a count read at t0 + 1 s may
    // or may not include it.
    stock
        .mark_posted("o1", t0 + chrono::Duration::seconds(2))
        .await
        .unwrap();
    let out = stock
        .apply_erp_count("A", 10, t0 + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(out, retailflow_core::ports::stock::CountOutcome::Stale);
    assert_eq!(stock.available("A", t0).await.unwrap(), 6, "not undone");
}

#[tokio::test]
async fn business_central_prices_are_read_over_its_next_links_and_its_stock_is_left_alone() {
    let sims = Simulators::start().await.unwrap();
    for (i, sku) in ["B1", "B2", "B3", "B4", "B5"].iter().enumerate() {
        sims.set_erp_item(sku, price(100 * (i as i64 + 1)), 9);
    }
    let r = rig(business_central(&sims));
    let rep = report(r.sync.run().await);
    assert_eq!(rep["pages"], 3, "{rep}");
    assert_eq!(rep["prices_changed"], 5);
    assert_eq!(rep["counts_applied"], 0, "BC inventory is not a free count");
    let prices = r.catalog.prices(&["B5".into()]).await.unwrap();
    assert_eq!(prices["B5"].price, price(500));
    assert_eq!(r.stock.available("B5", Utc::now()).await.unwrap(), 0);
}

#[tokio::test]
async fn a_throttled_or_down_erp_stops_the_run_with_its_retry_hint() {
    let sims = Simulators::start().await.unwrap();
    sims.set_erp_item("A", price(100), 1);
    let feed = netsuite(&sims);
    sims.inject(Fault {
        system: System::NetSuite,
        method: None,
        path_contains: "suiteql",
        kind: FaultKind::Throttle {
            retry_after: Some(9),
        },
        count: 1,
    });
    match feed.items_page(None, usd()).await {
        Err(ConnectorError::Throttled { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(9)))
        }
        other => panic!("{other:?}"),
    }
    sims.inject(Fault {
        system: System::NetSuite,
        method: None,
        path_contains: "suiteql",
        kind: FaultKind::Unavailable,
        count: 1,
    });
    let r = rig(feed);
    assert!(matches!(r.sync.run().await, StepOutcome::Retry { .. }));
    assert!(r.catalog.prices(&["A".into()]).await.unwrap().is_empty());
    // The next tick reads it all.
    report(r.sync.run().await);
    assert_eq!(r.catalog.prices(&["A".into()]).await.unwrap().len(), 1);
}

fn shops(
    sims: &Simulators,
) -> Vec<retailflow_core::resilience::Guarded<dyn retailflow_core::ports::shop::EcommerceConnector>>
{
    use retailflow_connectors::shop::{
        AdobeCommerceAdmin, AdobeCommerceAdminConfig, ShopifyAdmin, ShopifyAdminConfig,
    };
    use retailflow_core::ports::shop::EcommerceConnector;
    use retailflow_core::resilience::Guarded;
    let shopify: Arc<dyn EcommerceConnector> = Arc::new(ShopifyAdmin::new(ShopifyAdminConfig {
        base_url: Some(sims.shopify_admin_base()),
        api_version: "2024-10".into(),
        tokens: sims.shopify_tokens(),
        locations: Default::default(),
        default_location: Some("7001".into()),
        timeout: Duration::from_secs(5),
    }));
    let adobe: Arc<dyn EcommerceConnector> =
        Arc::new(AdobeCommerceAdmin::new(AdobeCommerceAdminConfig {
            base_url: sims.adobe_rest_base(),
            auth: sims.adobe_auth(),
            timeout: Duration::from_secs(5),
        }));
    let breaker = || Arc::new(CircuitBreaker::new("shop", 5, Duration::from_secs(60)));
    vec![
        Guarded::new(shopify, breaker()),
        Guarded::new(adobe, breaker()),
    ]
}

#[tokio::test]
async fn counted_stock_less_live_holds_is_pushed_to_shopify_and_adobe_commerce() {
    use retailflow_core::ports::stock::Reservation;
    let sims = Simulators::start().await.unwrap();
    // One Shopify shop in the connector secret: its stock is pushed.
    let mut doc = Simulators::dev_connector_secret();
    doc.shopify_admin_tokens
        .retain(|shop, _| shop == "north.myshopify.com");
    sims.store_connector_document(&doc);
    sims.set_erp_item("TENT-2P", price(19900), 12);
    sims.set_erp_item("NOT-IN-SHOPIFY", price(500), 4);
    sims.shopify_add_variant("north.myshopify.com", "TENT-2P", 44001);
    let catalog = Arc::new(InProcessCatalog::new());
    let stock = Arc::new(InProcessStock::new());
    let sync = CatalogSync::new(
        netsuite(&sims),
        Arc::new(CircuitBreaker::new("erp", 5, Duration::from_secs(60))),
        shops(&sims),
        catalog.clone(),
        stock.clone(),
        usd(),
        Arc::new(Utc::now),
    );
    report(sync.run().await);
    assert_eq!(
        sims.shopify_available("north.myshopify.com", 44001, 7001),
        Some(12)
    );
    assert_eq!(sims.adobe_source_item("TENT-2P", "default"), Some((12, 1)));
    // A checkout holds 2, and the warehouse receives 1 (the ERP counts 13):
    // the shops show the 11 free after the next sync.
    stock
        .reserve(
            &Reservation {
                id: "checkout:c1".into(),
                lines: vec![ReservationLine {
                    sku: "TENT-2P".into(),
                    quantity: 2,
                }],
                expires_at: Utc::now() + chrono::Duration::minutes(15),
            },
            Utc::now(),
        )
        .await
        .unwrap();
    sims.set_erp_item("TENT-2P", price(19900), 13);
    sims.set_erp_item("NOT-IN-SHOPIFY", price(500), 0);
    let rep = report(sync.run().await);
    assert_eq!(
        sims.shopify_available("north.myshopify.com", 44001, 7001),
        Some(11)
    );
    assert_eq!(sims.adobe_source_item("TENT-2P", "default"), Some((11, 1)));
    assert_eq!(
        sims.adobe_source_item("NOT-IN-SHOPIFY", "default"),
        Some((0, 0)),
        "sold out: out of stock"
    );
    assert_eq!(rep["shop_unknown_skus"], 1, "{rep}");
    assert_eq!(rep["shop_levels_set"], 3, "{rep}");
    // An unchanged count is not pushed again.
    let rep = report(sync.run().await);
    assert_eq!(rep["shop_levels_set"], 0, "{rep}");

    // Shopify throttles: the ERP read goes on (prices, counts, Adobe), the
    // failure is counted, and the level goes out with the SKU's next change.
    sims.inject(Fault {
        system: System::Shopify,
        method: None,
        path_contains: "inventory_levels",
        kind: FaultKind::Throttle {
            retry_after: Some(2),
        },
        count: 1,
    });
    sims.set_erp_item("TENT-2P", price(20900), 20);
    let rep = report(sync.run().await);
    assert_eq!(rep["shop_push_failures"], 1, "{rep}");
    assert_eq!(rep["prices_changed"], 1, "{rep}");
    assert_eq!(sims.adobe_source_item("TENT-2P", "default"), Some((18, 1)));
    sims.set_erp_item("TENT-2P", price(20900), 21);
    report(sync.run().await);
    assert_eq!(
        sims.shopify_available("north.myshopify.com", 44001, 7001),
        Some(19)
    );
}
