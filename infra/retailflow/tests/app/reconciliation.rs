//! Reconciliation finds every kind of drift between retailflow's sagas and
//! the systems of record (injected into the simulators), none after a clean
//! run, and re-drives a step whose message was lost.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Duration;
use retailflow::local_app::{
    LocalApp, ERP_POST_QUEUE, MAX_RECEIVE_COUNT, STOCK_COMMIT_QUEUE, VISIBILITY_TIMEOUT,
};
use retailflow::runtime::{lock, Queue};
use retailflow_core::reconciliation::{
    DiscrepancyKind, Reconciliation, ReconciliationConfig, ReconciliationReport,
};
use retailflow_core::resilience::CircuitBreaker;
use retailflow_core::resilience::Guarded;
use retailflow_core::saga::StepStatus;
use simulators::NetSuiteRecord;

use crate::support;
use support::{deliver, dev_config};

const SHOP: &str = "shopify:acme-outdoor.myshopify.com:order:";

fn order(id: &str) -> String {
    format!("{SHOP}{id}")
}

/// Four orders (USD, EUR-priced USD, CAD with a gift card, Adobe) and a
/// partial refund of the first, all through every step.
async fn app_with_orders() -> LocalApp {
    let app = LocalApp::start(dev_config()).await.unwrap();
    for f in [
        "01-shopify-orders-create.json",
        "04-shopify-orders-create-eur-vat-inclusive.json",
        "05-shopify-orders-create-cad-gift-card.json",
        "11-adobe-order-configurable.json",
        "08-shopify-refunds-create-partial.json",
    ] {
        assert_eq!(deliver(&app, f).await, 200, "{f}");
    }
    let drained = app.drain().await;
    assert!(!drained.gave_up);
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    app
}

/// A step's recorded result on a saga.
async fn result(app: &LocalApp, saga_key: &str, step: &str) -> serde_json::Value {
    let saga = app
        .store
        .saga_of(saga_key)
        .unwrap_or_else(|| panic!("no saga {saga_key}"));
    let s = saga
        .steps
        .get(step)
        .unwrap_or_else(|| panic!("no {step} on {saga_key}"));
    assert_eq!(s.status, StepStatus::Completed);
    s.result.clone().unwrap()
}

/// Past the default SLA (6 hours, beyond the steps' own retry patience).
fn past_sla() -> Duration {
    Duration::hours(6) + Duration::minutes(1)
}

fn found(report: &ReconciliationReport) -> BTreeSet<(DiscrepancyKind, String, String)> {
    report
        .discrepancies
        .iter()
        .map(|d| (d.kind, d.order_key.clone(), d.subject.clone()))
        .collect()
}

#[tokio::test]
async fn a_clean_run_finds_nothing_and_reads_each_system_once_per_page() {
    let app = app_with_orders().await;
    let report = app.reconcile(Duration::hours(2)).await.unwrap();
    assert!(report.complete);
    assert!(
        report.discrepancies.is_empty(),
        "{:#?}",
        report.discrepancies
    );
    assert_eq!(report.orders_checked, 4);
    assert_eq!(report.returns_checked, 1);
    // One page: one sales-order read, one credit-memo read, one journal read.
    assert_eq!(
        report.requests.get("erp"),
        Some(&2),
        "{:?}",
        report.requests
    );
    assert_eq!(
        report.requests.get("loyalty"),
        Some(&1),
        "{:?}",
        report.requests
    );
    // The report is kept and named as the latest, and the run published
    // its completion.
    let latest = app
        .store
        .cursor(retailflow_core::reconciliation::LATEST_CURSOR)
        .unwrap();
    assert_eq!(latest, report.run_id);
    let published = app.bus.recorded.published();
    assert!(published
        .iter()
        .any(|e| e.detail_type == "ReconciliationCompleted"));
    assert!(!published
        .iter()
        .any(|e| e.detail_type == "DiscrepancyFound"));
}

#[tokio::test]
async fn every_injected_discrepancy_is_found_with_its_kind() {
    let app = app_with_orders().await;
    let first = order("5872301948123");
    let eur = order("5872310293847");
    let cad = order("5872318847291");
    let refund = format!("{first}:return:1023847561234");

    let so = |key: &str| {
        let app = &app;
        let key = key.to_string();
        async move {
            result(app, &key, "erp_post").await["external_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    // A sales order deleted by hand.
    assert!(app
        .sims
        .netsuite_delete(NetSuiteRecord::SalesOrder, &so(&eur).await));
    // A second sales order keyed by an import script.
    assert!(app
        .sims
        .netsuite_duplicate(NetSuiteRecord::SalesOrder, &so(&cad).await)
        .is_some());
    // A total edited by one cent.
    assert!(app
        .sims
        .netsuite_adjust_total(NetSuiteRecord::SalesOrder, &so(&first).await, 1));
    // The accrual's points lost on the platform.
    let accrual = result(&app, &first, "loyalty_accrual").await;
    let number = accrual["external_transaction_number"].as_str().unwrap();
    assert!(app.sims.loyalty_delete_journals(number) > 0);
    // The refund's credit memo deleted.
    let memo = result(&app, &refund, "credit_memo").await;
    assert!(app.sims.netsuite_delete(
        NetSuiteRecord::CreditMemo,
        memo["external_id"].as_str().unwrap()
    ));

    let report = app.reconcile(Duration::hours(2)).await.unwrap();
    let expected: BTreeSet<(DiscrepancyKind, String, String)> = [
        (
            DiscrepancyKind::Missing,
            eur.clone(),
            "sales order".to_string(),
        ),
        (
            DiscrepancyKind::Duplicate,
            cad.clone(),
            "sales order".into(),
        ),
        (
            DiscrepancyKind::AmountMismatch,
            first.clone(),
            "sales order".into(),
        ),
        (
            DiscrepancyKind::Missing,
            first.clone(),
            "accrual journal".into(),
        ),
        (
            DiscrepancyKind::Missing,
            first.clone(),
            "credit memo for refund 1023847561234".into(),
        ),
    ]
    .into();
    assert_eq!(found(&report), expected, "{:#?}", report.discrepancies);
    assert_eq!(report.counts.values().sum::<u64>(), 5);
    // One event per discrepancy, carrying the order's correlation id.
    let events: Vec<_> = app
        .bus
        .recorded
        .published()
        .into_iter()
        .filter(|e| e.detail_type == "DiscrepancyFound")
        .collect();
    assert_eq!(events.len(), 5);
    assert!(events
        .iter()
        .any(|e| e.detail.contains(&format!("\"correlation_id\":\"{eur}\""))));
}

#[tokio::test]
async fn a_cent_within_the_tolerance_is_a_rounding_variance_and_points_edited_are_a_mismatch() {
    let app = app_with_orders().await;
    let first = order("5872301948123");
    let so = result(&app, &first, "erp_post").await["external_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(app
        .sims
        .netsuite_adjust_total(NetSuiteRecord::SalesOrder, &so, -1));
    let accrual = result(&app, &first, "loyalty_accrual").await;
    let number = accrual["external_transaction_number"].as_str().unwrap();
    assert!(app.sims.loyalty_adjust_points(number, 5) > 0);
    let tolerant = Reconciliation::new(
        app.store.clone(),
        app.bus.clone(),
        app.archive.clone(),
        Some(Guarded {
            connector: app.erp.clone(),
            breaker: Arc::new(CircuitBreaker::new(
                "netsuite",
                5,
                std::time::Duration::from_secs(60),
            )),
        }),
        Some(Guarded {
            connector: app.loyalty.clone(),
            breaker: Arc::new(CircuitBreaker::new(
                "loyalty",
                5,
                std::time::Duration::from_secs(60),
            )),
        }),
        ReconciliationConfig {
            tolerance_minor: 1,
            ..ReconciliationConfig::default()
        },
        {
            let clock = app.clock.clone();
            Arc::new(move || clock.now())
        },
    );
    let now = app.clock.now();
    let report = tolerant
        .run((now - Duration::hours(2), now), None)
        .await
        .unwrap();
    assert!(report.complete);
    let kinds: BTreeSet<(DiscrepancyKind, String)> = report
        .discrepancies
        .iter()
        .map(|d| (d.kind, d.subject.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (DiscrepancyKind::RoundingVariance, "sales order".to_string()),
            (DiscrepancyKind::AmountMismatch, "accrual journal".into()),
        ]
        .into(),
        "{:#?}",
        report.discrepancies
    );
}

#[tokio::test]
async fn a_step_whose_message_was_lost_is_re_driven_and_completes_then_raised_past_the_limit() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
    // The ERP step's message is lost before any delivery.
    lock(&app.queues).insert(
        ERP_POST_QUEUE.into(),
        Queue::new(ERP_POST_QUEUE, VISIBILITY_TIMEOUT, MAX_RECEIVE_COUNT),
    );
    app.drain().await;
    let key = order("5872301948123");
    assert!(!app
        .store
        .saga_of(&key)
        .unwrap()
        .steps
        .contains_key("erp_post"));
    // Not yet due: nothing is stuck.
    let early = app.reconcile(Duration::hours(1)).await.unwrap();
    assert!(early.discrepancies.is_empty(), "{:#?}", early.discrepancies);

    app.clock.advance_to(app.clock.now() + past_sla());
    let report = app.reconcile(Duration::hours(8)).await.unwrap();
    assert_eq!(report.redriven, 1, "{:#?}", report.discrepancies);
    // Sent to the stuck step's queue only: the other steps do not run again.
    assert_eq!(lock(&app.queues)[ERP_POST_QUEUE].len(), 1);
    assert_eq!(lock(&app.queues)["loyalty-accrual"].len(), 0);
    assert_eq!(found(&report).len(), 1);
    assert_eq!(report.discrepancies[0].kind, DiscrepancyKind::StuckStep);
    app.drain().await;
    assert_eq!(
        app.store.saga_of(&key).unwrap().steps["erp_post"].status,
        StepStatus::Completed
    );
    assert_eq!(app.sims.netsuite_sales_orders().len(), 1);
    let after = app.reconcile(Duration::hours(8)).await.unwrap();
    assert!(after.discrepancies.is_empty(), "{:#?}", after.discrepancies);

    // A step that never completes is re-driven up to the limit, then raised.
    let key2 = order("5872310293847");
    assert_eq!(
        deliver(&app, "04-shopify-orders-create-eur-vat-inclusive.json").await,
        200
    );
    let mut escalated = 0;
    for _ in 0..5 {
        lock(&app.queues).insert(
            ERP_POST_QUEUE.into(),
            Queue::new(ERP_POST_QUEUE, VISIBILITY_TIMEOUT, MAX_RECEIVE_COUNT),
        );
        app.drain().await;
        app.clock.advance_to(app.clock.now() + past_sla());
        let r = app.reconcile(Duration::hours(48)).await.unwrap();
        escalated += r.escalated;
    }
    assert!(!app
        .store
        .saga_of(&key2)
        .unwrap()
        .steps
        .contains_key("erp_post"));
    assert_eq!(app.store.saga_of(&key2).unwrap().redrives["erp_post"], 3);
    assert_eq!(escalated, 2);
}

#[tokio::test]
async fn a_lost_refund_of_an_old_order_is_found_from_its_own_saga_and_re_driven_once() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
    app.drain().await;
    // Three days later the refund arrives; its message is lost.
    app.clock.advance_to(app.clock.now() + Duration::days(3));
    assert_eq!(
        deliver(&app, "08-shopify-refunds-create-partial.json").await,
        200
    );
    lock(&app.queues).insert(
        "return-reversal".into(),
        Queue::new("return-reversal", VISIBILITY_TIMEOUT, MAX_RECEIVE_COUNT),
    );
    app.drain().await;
    assert!(app.sims.netsuite_credit_memos().is_empty());
    app.clock.advance_to(app.clock.now() + past_sla());
    // The order is days outside the window; its return is not.
    let report = app.reconcile(Duration::hours(8)).await.unwrap();
    let stuck: BTreeSet<String> = report
        .discrepancies
        .iter()
        .filter(|d| d.kind == DiscrepancyKind::StuckStep)
        .map(|d| d.subject.clone())
        .collect();
    let ret = format!("{}:return:1023847561234", order("5872301948123"));
    assert_eq!(
        stuck,
        [
            format!("credit_memo of {ret}"),
            format!("loyalty_reversal of {ret}")
        ]
        .into(),
        "{:#?}",
        report.discrepancies
    );
    // Both steps share one queue: the refund is sent again once.
    assert_eq!(lock(&app.queues)["return-reversal"].len(), 1);
    app.drain().await;
    assert_eq!(app.sims.netsuite_credit_memos().len(), 1);
    let after = app.reconcile(Duration::hours(8)).await.unwrap();
    assert!(after.discrepancies.is_empty(), "{:#?}", after.discrepancies);
}

#[tokio::test]
async fn a_cancellation_whose_event_never_went_out_is_re_driven_to_its_reversal_and_restock() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    let before = app.stock_available("LSH-WHT-L").await;
    assert_eq!(
        deliver(&app, "04-shopify-orders-create-eur-vat-inclusive.json").await,
        200
    );
    app.drain().await;
    assert_eq!(app.stock_available("LSH-WHT-L").await, before - 2);
    // Recorded, but its event never reached a queue: the worker died
    // between recording and publishing, and the shop stopped retrying.
    assert_eq!(deliver(&app, "09-shopify-orders-cancelled.json").await, 200);
    for q in ["return-reversal", STOCK_COMMIT_QUEUE] {
        lock(&app.queues).insert(
            q.into(),
            Queue::new(q, VISIBILITY_TIMEOUT, MAX_RECEIVE_COUNT),
        );
    }
    app.drain().await;
    assert_eq!(app.stock_available("LSH-WHT-L").await, before - 2);

    app.clock.advance_to(app.clock.now() + past_sla());
    let report = app.reconcile(Duration::hours(8)).await.unwrap();
    assert_eq!(report.redriven, 2, "{:#?}", report.discrepancies);
    // Once to the reversal's queue (both its steps share it), once to
    // stock-commit, which the cancellation's saga does not track.
    assert_eq!(lock(&app.queues)["return-reversal"].len(), 1);
    assert_eq!(lock(&app.queues)[STOCK_COMMIT_QUEUE].len(), 1);
    app.drain().await;
    assert_eq!(app.stock_available("LSH-WHT-L").await, before, "restocked");
    let after = app.reconcile(Duration::hours(8)).await.unwrap();
    assert!(after.discrepancies.is_empty(), "{:#?}", after.discrepancies);
}

/// An archive that refuses every replay (EventBridge's 10 running at once).
struct Busy;

#[async_trait::async_trait]
impl retailflow_core::ports::EventArchive for Busy {
    fn knows(&self, _: &str) -> bool {
        true
    }
    async fn replay(
        &self,
        _: &[String],
        _: &retailflow_core::ports::ReplaySpan,
    ) -> Result<Option<String>, retailflow_core::ports::ArchiveError> {
        Err(retailflow_core::ports::ArchiveError::Unavailable(
            "LimitExceededException: 10 replays running".into(),
        ))
    }
}

#[tokio::test]
async fn a_replay_the_archive_refuses_uses_no_re_drive_and_the_run_tries_again() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    let key = order("5872310293847");
    assert_eq!(
        deliver(&app, "04-shopify-orders-create-eur-vat-inclusive.json").await,
        200
    );
    lock(&app.queues).insert(
        ERP_POST_QUEUE.into(),
        Queue::new(ERP_POST_QUEUE, VISIBILITY_TIMEOUT, MAX_RECEIVE_COUNT),
    );
    app.drain().await;
    app.clock.advance_to(app.clock.now() + past_sla());
    let busy = Reconciliation::new(
        app.store.clone(),
        app.bus.clone(),
        Arc::new(Busy),
        None,
        None,
        ReconciliationConfig::default(),
        {
            let clock = app.clock.clone();
            Arc::new(move || clock.now())
        },
    );
    let now = app.clock.now();
    for _ in 0..4 {
        let refused = busy.run((now - Duration::hours(48), now), None).await;
        assert!(
            matches!(&refused, Err(e) if e.is_retryable()),
            "{refused:?}"
        );
    }
    let saga = app.store.saga_of(&key).unwrap();
    assert!(
        !saga.redrives.contains_key("erp_post"),
        "{:?}",
        saga.redrives
    );
    // Once the archive takes it: one re-drive, and the step done.
    let r = app.reconcile(Duration::hours(48)).await.unwrap();
    assert_eq!(r.redriven, 1, "{:#?}", r.discrepancies);
    assert_eq!(app.store.saga_of(&key).unwrap().redrives["erp_post"], 1);
    app.drain().await;
    assert_eq!(
        app.store.saga_of(&key).unwrap().steps["erp_post"].status,
        StepStatus::Completed
    );
}

#[tokio::test]
async fn adobe_credit_memos_are_read_back_like_the_others_and_one_deleted_in_the_erp_is_found_missing(
) {
    let app = app_with_orders().await;
    for f in [
        "15-adobe-creditmemo-partial.json",
        "17-adobe-creditmemo-adjustment-fee.json",
    ] {
        assert_eq!(deliver(&app, f).await, 200, "{f}");
    }
    assert!(!app.drain().await.gave_up);
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    let clean = app.reconcile(Duration::hours(2)).await.unwrap();
    assert!(clean.discrepancies.is_empty(), "{:#?}", clean.discrepancies);
    assert_eq!(clean.returns_checked, 3, "the Shopify refund and two memos");

    let adobe = app
        .bus
        .recorded
        .published()
        .iter()
        .filter_map(|e| retailflow_core::queue_batch::correlation_id(&e.detail))
        .find(|k| k.starts_with("adobe_commerce:"))
        .unwrap();
    let memo = result(&app, &format!("{adobe}:return:41"), "credit_memo").await;
    assert_eq!(memo["total"]["minor"].as_i64(), Some(2_732), "{memo}");
    assert!(app.sims.netsuite_delete(
        NetSuiteRecord::CreditMemo,
        memo["external_id"].as_str().unwrap()
    ));
    let report = app.reconcile(Duration::hours(2)).await.unwrap();
    let expected: BTreeSet<(DiscrepancyKind, String, String)> = [(
        DiscrepancyKind::Missing,
        adobe.clone(),
        "credit memo for refund 41".to_string(),
    )]
    .into();
    assert_eq!(found(&report), expected, "{:#?}", report.discrepancies);
}
