//! The whole app in one process: orders from signed webhooks to the ERP and
//! loyalty simulators, exactly once, whatever the deliveries and faults.

use chrono::Duration;
use retailflow::local_app::{LocalApp, ERP_POST_QUEUE, LOYALTY_ACCRUAL_QUEUE};

use crate::support;
use retailflow::runtime::{eventbridge_event, lock};
use simulators::{Fault, FaultKind, System};
use support::{assert_exactly_once, deliver, dev_config, ORDERS};

#[tokio::test]
async fn every_sample_order_reaches_the_erp_and_loyalty_once() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    for f in ORDERS {
        assert_eq!(deliver(&app, f).await, 200, "{f}");
    }
    let report = app.drain().await;
    assert_eq!(report.retries, 0);
    assert_exactly_once(&app);
    // Every customer was upserted before its order and enrolled once.
    assert_eq!(app.sims.loyalty_members().len(), 4);
}

#[tokio::test]
async fn duplicated_and_reordered_deliveries_post_once() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    // Webhook redeliveries, in reverse order.
    for f in ORDERS.iter().rev().chain(ORDERS.iter()) {
        deliver(&app, f).await;
    }
    // The bus delivering each event again (at-least-once), before any processing.
    for e in app.bus.recorded.published() {
        app.bus
            .route(&e.detail_type, eventbridge_event(&e))
            .unwrap();
        app.bus
            .route(&e.detail_type, eventbridge_event(&e))
            .unwrap();
    }
    // Each of the 8 deliveries publishes its order's event (the same id for
    // the same order), and the bus delivers each publication twice more.
    assert_eq!(lock(&app.queues)[ERP_POST_QUEUE].len(), 24);
    app.drain().await;
    assert_exactly_once(&app);
    // A late redelivery after everything finished changes nothing.
    for e in app.bus.recorded.published() {
        app.bus
            .route(&e.detail_type, eventbridge_event(&e))
            .unwrap();
    }
    app.drain().await;
    assert_exactly_once(&app);
}

#[tokio::test]
async fn throttling_errors_and_timeouts_are_retried_to_completion() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    let fault = |system, kind, count| Fault {
        system,
        method: None,
        path_contains: "",
        kind,
        count,
    };
    app.sims.inject(fault(
        System::NetSuite,
        FaultKind::Throttle { retry_after: None },
        3,
    ));
    app.sims
        .inject(fault(System::NetSuite, FaultKind::Unavailable, 3));
    app.sims.inject(fault(
        System::Salesforce,
        FaultKind::Throttle {
            retry_after: Some(120),
        },
        3,
    ));
    app.sims
        .inject(fault(System::Salesforce, FaultKind::Unavailable, 2));
    app.sims.inject(fault(
        System::Salesforce,
        FaultKind::Slow(std::time::Duration::from_secs(6)),
        1,
    ));
    for f in ORDERS {
        deliver(&app, f).await;
    }
    let report = app.drain().await;
    assert!(report.retries >= 5, "{report:?}");
    assert_exactly_once(&app);
}

#[tokio::test]
async fn a_response_lost_after_the_effect_does_not_double_it() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    app.sims.inject(Fault {
        system: System::Salesforce,
        method: Some("POST"),
        path_contains: "realtime",
        kind: FaultKind::LoseResponse,
        count: 2,
    });
    app.sims.inject(Fault {
        system: System::NetSuite,
        method: Some("PUT"),
        path_contains: "salesOrder",
        kind: FaultKind::LoseResponse,
        count: 2,
    });
    for f in ORDERS {
        deliver(&app, f).await;
    }
    app.drain().await;
    assert_exactly_once(&app);
}

#[tokio::test]
async fn a_two_hour_erp_outage_loses_nothing_and_dead_letters_nothing() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    let start = app.clock.now();
    app.sims
        .outage(System::NetSuite, start + Duration::hours(2));
    for f in ORDERS {
        deliver(&app, f).await;
    }
    let report = app.drain().await;
    assert!(
        app.clock.now() - start >= Duration::hours(2),
        "the outage was waited out"
    );
    assert!(report.retries > 0);
    assert_exactly_once(&app);
    // Loyalty did not wait for the ERP.
    assert_eq!(lock(&app.queues)[LOYALTY_ACCRUAL_QUEUE].len(), 0);
}

#[tokio::test]
async fn a_permanent_refusal_goes_to_the_dlq_with_its_reason() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    // A message that is not an OrderPlaced event at all.
    lock(&app.queues)
        .get_mut(ERP_POST_QUEUE)
        .unwrap()
        .send("{\"hello\":1}".into(), app.clock.now())
        .unwrap();
    app.drain().await;
    let dead = app.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].queue, ERP_POST_QUEUE);
    assert!(
        dead[0].reason.contains("not the expected event"),
        "{}",
        dead[0].reason
    );
}
