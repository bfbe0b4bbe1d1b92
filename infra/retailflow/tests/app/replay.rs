//! Replay on the local app: a permanent failure reaches the DLQ with its
//! reason and correlation id; once the fault is fixed, re-driving it
//! converges (one sales order, reconciliation clean); replaying a window's
//! events to one rule's queue doubles nothing.

use retailflow::local_app::LocalApp;
use retailflow_core::ports::dead_letters::DeadLetters;
use retailflow_core::replay::DeadLetterFilter;
use simulators::{Fault, FaultKind, System};

use crate::support;
use support::{deliver, dev_config};

const ORDER: &str = "shopify:acme-outdoor.myshopify.com:order:5872301948123";

#[tokio::test]
async fn a_dead_letter_re_driven_after_the_fix_converges_and_others_stay() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    // NetSuite refuses the sales order (a field it will not take) until fixed.
    app.sims.inject(Fault {
        system: System::NetSuite,
        method: Some("PUT"),
        path_contains: "salesOrder",
        kind: FaultKind::Refuse,
        count: 100,
    });
    assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
    assert_eq!(
        deliver(&app, "04-shopify-orders-create-eur-vat-inclusive.json").await,
        200
    );
    app.drain().await;
    let letters = app.list(100).await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    let first = letters
        .iter()
        .find(|d| d.correlation_id.as_deref() == Some(ORDER))
        .expect("the order's dead letter names its correlation id");
    assert_eq!(first.queue, "erp-post");
    assert_eq!(first.event_type.as_deref(), Some("OrderPlaced"));
    assert!(
        first.reason.as_deref().unwrap_or("").contains("netsuite"),
        "{first:?}"
    );
    assert!(app.sims.netsuite_sales_orders().is_empty());

    // Fixed. Re-drive only the first order's letter.
    app.sims.clear_faults();
    let report = app
        .redrive(
            &DeadLetterFilter {
                correlation_id: Some(ORDER.into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!((report.redriven.len(), report.left), (1, 1));
    app.drain().await;
    assert_eq!(app.sims.netsuite_sales_orders().len(), 1);
    assert_eq!(app.list(100).await.unwrap().len(), 1);

    // Then all that is left; again all: nothing twice.
    let rest = app
        .redrive(&DeadLetterFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(rest.redriven.len(), 1);
    app.drain().await;
    assert_eq!(app.sims.netsuite_sales_orders().len(), 2);
    assert!(app.list(100).await.unwrap().is_empty());
    let report = app.reconcile(chrono::Duration::hours(1)).await.unwrap();
    assert!(
        report.discrepancies.is_empty(),
        "{:#?}",
        report.discrepancies
    );
}

#[tokio::test]
async fn a_window_replayed_to_one_rule_reaches_only_its_queue_and_doubles_nothing() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
    assert_eq!(
        deliver(&app, "08-shopify-refunds-create-partial.json").await,
        200
    );
    app.drain().await;
    let journals = app.sims.loyalty_journals().len();
    let now = app.clock.now();
    let window = (now - chrono::Duration::hours(1), now);
    // OrderPlaced only, to erp-post only: the RefundIssued is not replayed.
    assert_eq!(
        app.replay_window("OrderPlacedToErpPost", window)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        retailflow::runtime::lock(&app.queues)["loyalty-accrual"].len(),
        0
    );
    app.drain().await;
    assert_eq!(app.sims.netsuite_sales_orders().len(), 1);
    assert_eq!(app.sims.loyalty_journals().len(), journals);
    assert_eq!(
        app.replay_window("RefundIssuedToReturnReversal", window)
            .await
            .unwrap(),
        1
    );
    app.drain().await;
    assert_eq!(app.sims.netsuite_credit_memos().len(), 1);
    assert_eq!(app.sims.loyalty_journals().len(), journals);
    // The archive holds the steps' events too: a rule fed by one replays.
    let stock = app.stock_available("MCS-CHR-M").await;
    assert_eq!(
        app.replay_window("OrderPostedToErpToStockCommit", window)
            .await
            .unwrap(),
        1
    );
    app.drain().await;
    assert_eq!(
        app.stock_available("MCS-CHR-M").await,
        stock,
        "nothing taken twice"
    );
    // No such rule: refused with the rules there are.
    let e = app.replay_window("NoSuchRule", window).await.unwrap_err();
    assert!(e.to_string().contains("OrderPlacedToErpPost"), "{e}");
}

#[tokio::test]
async fn a_refusal_quoting_the_customer_from_the_erps_own_records_is_dead_lettered_masked() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    // The sales order request carries no name; NetSuite quotes its record.
    app.sims.inject(Fault {
        system: System::NetSuite,
        method: Some("PUT"),
        path_contains: "salesOrder",
        kind: FaultKind::RefuseQuoting(
            "Customer Thompson, Ava (ava.thompson@example.com) is on credit hold",
        ),
        count: 100,
    });
    assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
    app.drain().await;
    let letters = app.list(100).await.unwrap();
    let reason = letters[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("credit hold"),
        "still says what is wrong: {reason}"
    );
    for personal in ["Thompson", "Ava", "ava.thompson"] {
        assert!(!reason.contains(personal), "{personal} in {reason}");
    }
}
