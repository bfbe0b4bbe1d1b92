//! The guarantees under chaos, CI-sized: a seeded workload of orders,
//! returns and cancellations with duplicated and reordered deliveries,
//! throttling, errors, outages, lost answers and crashes, checked against
//! the reference model. `retailflow chaos --orders 10000` is the full size.

use retailflow::chaos::{run_keeping_app, ChaosConfig};

use crate::support;

fn dev_keys() -> std::path::PathBuf {
    support::repo().join("events/dev-keys")
}

#[tokio::test]
async fn a_hostile_run_loses_nothing_doubles_nothing_and_leaves_nothing_to_reconcile() {
    let (report, _) = run_keeping_app(&ChaosConfig::new(200, 7), &dev_keys())
        .await
        .unwrap();
    println!("{report}");
    // It was hostile: every kind of trouble happened.
    assert!(report.duplicates >= 20, "{report}");
    assert!(report.retries >= 100, "{report}");
    assert!(
        report.dead_lettered >= 1 && report.redriven >= 1,
        "{report}"
    );
    for fired in [
        "NetSuite 429 with Retry-After",
        "NetSuite 5xx",
        "NetSuite outage",
        "NetSuite answer lost after the effect",
        "NetSuite permanent refusal",
        "Salesforce 429 with Retry-After",
        "Salesforce outage",
        "Salesforce answer lost after the effect",
    ] {
        assert!(
            report.faults_fired.get(fired).is_some_and(|n| *n > 0),
            "{fired} never hit: {report}"
        );
    }
    assert!(report.crashes >= 10, "{report}");
    assert!(
        report.drift_injected >= 2 && report.replayed >= 200,
        "{report}"
    );
    assert!(
        report.returns >= 60 && report.cancellations >= 5,
        "{report}"
    );
    assert!(report.checkouts_refused >= 1, "{report}");
    assert!(
        report.adobe_later_saves >= 20 && report.adobe_credit_memos >= 10,
        "{report}"
    );
    // And nothing broke.
    assert_eq!(report.violations.total(), 0, "{report}");
    assert_eq!(report.refused_4xx, 0, "{report}");
}

#[tokio::test]
async fn the_model_notices_a_lost_sales_order_and_a_stock_count_that_moved() {
    let (report, finished) = run_keeping_app(&ChaosConfig::new(40, 3), &dev_keys())
        .await
        .unwrap();
    assert_eq!(report.violations.total(), 0, "{report}");
    let lost = finished.app.sims.netsuite_sales_orders()[0]
        .external_id
        .clone();
    finished.app.sims.netsuite_remove_sales_order(&lost);
    use retailflow_core::ports::stock::StockReservations;
    finished.app.stock.set_on_hand("BLB-01", 0).await.unwrap();
    let (v, details) = finished.check().await;
    assert_eq!(v.orders_lost, 1, "{details:?}");
    assert!(v.oversold_units > 0, "{details:?}");
}
