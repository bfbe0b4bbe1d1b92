//! Business Central: the connector against its simulator, and the ERP step
//! on an ERP without native dedup (claim, look up, then post).

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use retailflow_connectors::business_central::{BusinessCentralConfig, BusinessCentralErp};
use retailflow_core::adapters::in_process::{InProcessEventBus, InProcessStateStore};
use retailflow_core::events::{delivery_event_id, CanonicalEvent, EnvelopeMeta};
use retailflow_core::mappers::shopify::{map, ShopifyTopic};
use retailflow_core::money::{Currency, Money};
use retailflow_core::ports::erp::{ErpConnector, ErpCustomer, ErpLine, ErpSalesOrder};
use retailflow_core::resilience::{CircuitBreaker, ConnectorError};
use retailflow_core::steps::erp_posting::{ErpPosting, ErpPostingConfig};
use retailflow_core::steps::{envelope_from_message, Invocation, StepOutcome};
use simulators::{Fault, FaultKind, Simulators, System};

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::from_code("USD").unwrap())
}

fn bc(sims: &Simulators) -> BusinessCentralErp {
    BusinessCentralErp::new(BusinessCentralConfig {
        company_url: sims.business_central_company(),
        auth: sims.business_central_auth(),
        local_currency: Currency::from_code("USD").unwrap(),
        timeout: Duration::from_secs(2),
    })
}

fn order() -> ErpSalesOrder {
    ErpSalesOrder {
        external_id: "so-shopify-1001-abcd1234".into(),
        customer_external_id: "cu-shopify-7-abcd1234".into(),
        order_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        memo: "m".into(),
        lines: vec![
            ErpLine {
                item: "SKU-1".into(),
                description: "Tee".into(),
                quantity: 2,
                unit_price: usd(1999),
                amount: usd(3598),
                restock: None,
            },
            ErpLine {
                item: "SKU-2".into(),
                description: "Cap".into(),
                quantity: 1,
                unit_price: usd(1500),
                amount: usd(1350),
                restock: None,
            },
        ],
        total: usd(4948),
        order_key: None,
    }
}

#[tokio::test]
async fn business_central_customers_upsert_and_orders_are_found_by_external_document_number() {
    let sims = Simulators::start().await.unwrap();
    let erp = bc(&sims);
    let customer = ErpCustomer {
        external_id: "cu-shopify-7-abcd1234".into(),
        first_name: None,
        last_name: None,
        email: None,
    };
    let c1 = erp.upsert_customer(&customer).await.unwrap();
    assert_eq!(erp.upsert_customer(&customer).await.unwrap(), c1);
    assert!(c1.len() <= 20);
    assert!(erp
        .find_sales_order(&order().external_id)
        .await
        .unwrap()
        .is_none());
    let doc = erp.post_sales_order(&order(), &c1).await.unwrap();
    assert_eq!(
        doc.total,
        usd(4948),
        "line discounts carried as discountAmount"
    );
    assert_eq!(
        erp.find_sales_order(&order().external_id).await.unwrap(),
        Some(doc)
    );
    // BC does not enforce uniqueness: a blind second POST is a second order.
    erp.post_sales_order(&order(), &c1).await.unwrap();
    assert_eq!(sims.business_central_sales_orders().len(), 2);
}

#[tokio::test]
async fn business_central_throttling_carries_retry_after() {
    let sims = Simulators::start().await.unwrap();
    let erp = bc(&sims);
    sims.inject(Fault {
        system: System::BusinessCentral,
        method: None,
        path_contains: "customers",
        kind: FaultKind::Throttle {
            retry_after: Some(3),
        },
        count: 1,
    });
    let customer = ErpCustomer {
        external_id: "x".into(),
        first_name: None,
        last_name: None,
        email: None,
    };
    let e = erp.upsert_customer(&customer).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Throttled { .. }), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn erp_step_on_business_central_posts_once_despite_lost_responses_and_duplicates() {
    let sims = Simulators::start().await.unwrap();
    let store = Arc::new(InProcessStateStore::new());
    let bus = Arc::new(InProcessEventBus::new());
    let step = ErpPosting::new(
        store.clone(),
        bus.clone(),
        Arc::new(bc(&sims)),
        Arc::new(CircuitBreaker::new(
            "business-central",
            5,
            Duration::from_secs(60),
        )),
        ErpPostingConfig::default(),
    );
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/payloads/shopify-orders-create-discount-code.json"
    ))
    .unwrap();
    let CanonicalEvent::OrderPlaced(placed) =
        map(ShopifyTopic::OrdersCreate, "acme.myshopify.com", &body).unwrap()
    else {
        panic!()
    };
    let meta = EnvelopeMeta {
        event_id: delivery_event_id("shopify", "acme", "orders/create", "1"),
        occurred_at: Utc::now(),
        source: "shopify:acme".into(),
        causation_id: None,
    };
    let env_json = CanonicalEvent::OrderPlaced(placed)
        .to_envelope(&meta)
        .to_string();
    let event = envelope_from_message(&env_json).unwrap();
    let inv = || Invocation {
        now: Utc::now(),
        deadline: None,
        attempt: 1,
    };

    // The POST lands but its answer is lost: the retry looks up and finds it.
    sims.inject(Fault {
        system: System::BusinessCentral,
        method: Some("POST"),
        path_contains: "salesOrders",
        kind: FaultKind::LoseResponse,
        count: 1,
    });
    assert!(matches!(
        step.handle(&event, inv()).await,
        StepOutcome::Retry { .. }
    ));
    // Duplicate deliveries at once: one claims, the other waits.
    let (a, b) = tokio::join!(step.handle(&event, inv()), step.handle(&event, inv()));
    assert!(
        matches!(a, StepOutcome::Done { .. }) || matches!(b, StepOutcome::Done { .. }),
        "{a:?} {b:?}"
    );
    assert!(matches!(
        step.handle(&event, inv()).await,
        StepOutcome::Done { .. }
    ));
    let orders = sims.business_central_sales_orders();
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0].total.minor, 12808);
    // Two writes per completed step at most: claim and completion (plus the
    // released claim of the lost-response try and the waiting duplicate's refusal).
    assert!(store.writes() <= 6, "{}", store.writes());
}

#[tokio::test]
async fn business_central_ledger_reads_batch_by_external_number_find_invoiced_orders_and_show_duplicates(
) {
    use retailflow_core::ports::erp::{ErpDocumentKind, LedgerQuery};
    let sims = Simulators::start().await.unwrap();
    let erp = bc(&sims);
    let customer = erp
        .upsert_customer(&ErpCustomer {
            external_id: "cu-shopify-7-abcd1234".into(),
            first_name: None,
            last_name: None,
            email: None,
        })
        .await
        .unwrap();
    let mut wanted = Vec::new();
    for i in 0..12 {
        let mut o = order();
        o.external_id = format!("so-shopify-{i}-abcd1234");
        erp.post_sales_order(&o, &customer).await.unwrap();
        wanted.push(LedgerQuery {
            external_id: o.external_id.clone(),
            order_key: format!("shopify:s:order:{i}"),
            currency: Currency::from_code("USD").unwrap(),
        });
    }
    // A second order keyed the same (BC does not deduplicate), and one
    // shipped and invoiced (gone from salesOrders).
    let mut dup = order();
    dup.external_id = "so-shopify-3-abcd1234".into();
    erp.post_sales_order(&dup, &customer).await.unwrap();
    assert!(sims.business_central_invoice_order("so-shopify-7-abcd1234"));
    let before = sims.calls(System::BusinessCentral);
    let docs = erp
        .ledger_documents(ErpDocumentKind::SalesOrder, &wanted)
        .await
        .unwrap();
    // Two filtered reads of 10 and 2, one invoice read for the order not found.
    assert_eq!(sims.calls(System::BusinessCentral) - before, 3);
    assert_eq!(docs.len(), 13);
    let of = |ext: &str| {
        docs.iter()
            .filter(|d| d.external_id.as_deref() == Some(ext))
            .collect::<Vec<_>>()
    };
    assert_eq!(of("so-shopify-3-abcd1234").len(), 2);
    let invoiced = of("so-shopify-7-abcd1234");
    assert_eq!(invoiced.len(), 1);
    assert!(
        invoiced[0].document.number.starts_with("SI"),
        "{invoiced:?}"
    );
    assert_eq!(invoiced[0].document.total, usd(4948));
    assert_eq!(invoiced[0].order_key.as_deref(), Some("shopify:s:order:7"));
}
