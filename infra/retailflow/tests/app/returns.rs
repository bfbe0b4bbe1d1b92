//! Returns, refunds and till returns through the whole app in one process:
//! points reversed, credit memos posted and shops updated exactly once, with
//! the end state of the natural order whatever order things arrive in.
//!
//! The order's first event is recorded the way intake records it (a delivery
//! completion with the saga update carrying the order's facts) and
//! `OrderPlaced` / `RefundIssued` are put on the bus, so any order and refund
//! shape can be built here; the webhook → event path is tested in intake.

use chrono::{DateTime, Duration, Utc};
use retailflow::local_app::{LocalApp, RETURN_REVERSAL_QUEUE};
use retailflow_core::events::{
    envelope, EnvelopeMeta, EventDetail, OrderCancelled, OrderPlaced, RefundIssued, INTAKE_SOURCE,
};
use retailflow_core::idempotency::{Completion, IdempotencyKey};
use retailflow_core::intake::IntakeConfig;
use retailflow_core::mappers::shopify::{map, ShopifyTopic};
use retailflow_core::model::{
    Cancellation, LineKind, MoneyBag, Order, Refund, RefundLine, RestockType, TaxLine,
};
use retailflow_core::money::{Currency, Money};
use retailflow_core::ports::{BusEvent, EventBus, StateStore};
use retailflow_core::saga::{SagaEvent, SagaUpdate, SAGA_RETENTION};
use simulators::System;

fn usd(minor: i64) -> MoneyBag {
    MoneyBag::single(Money::new(minor, Currency::from_code("USD").unwrap()))
}

/// A Shopify order of 3 × 20.00 (SKU TEE-3), 8 % tax (4.80), 10.00
/// shipping: 74.80 in all; 60 points on 60.00 of merchandise.
fn three_unit_order(order_id: &str) -> Order {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/payloads/shopify-orders-create-discount-code.json"
    );
    let retailflow_core::events::CanonicalEvent::OrderPlaced(placed) = map(
        ShopifyTopic::OrdersCreate,
        "returns-test.myshopify.com",
        &std::fs::read(path).unwrap(),
    )
    .unwrap() else {
        unreachable!()
    };
    let mut o = placed.order;
    o.order.order_id = order_id.into();
    o.lines.truncate(1);
    let l = &mut o.lines[0];
    l.line_id = "1001".into();
    l.sku = Some("TEE-3".into());
    l.quantity = 3;
    l.unit_price = usd(2000);
    l.gross = usd(6000);
    l.discount_allocations.clear();
    l.discount_total = usd(0);
    l.net = usd(6000);
    l.tax_lines = vec![TaxLine {
        title: "State tax".into(),
        rate: Some("0.08".into()),
        amount: usd(480),
    }];
    o.shipping_lines.truncate(1);
    o.shipping_lines[0].price = usd(1000);
    o.shipping_lines[0].discount_total = usd(0);
    o.shipping_lines[0].tax_lines.clear();
    let t = &mut o.totals;
    t.lines_gross = usd(6000);
    t.line_discounts = usd(0);
    t.shipping = usd(1000);
    t.shipping_discounts = usd(0);
    t.tax = usd(480);
    t.other_charges = usd(0);
    t.total = usd(7480);
    t.merchandise_net = usd(6000);
    t.gift_cards = usd(0);
    o
}

/// A refund of `units` of the order's line (20.00 + 1.60 tax each), plus
/// `shipping`.
fn refund(order: &Order, id: &str, units: u32, shipping: i64) -> Refund {
    let subtotal = 2000 * i64::from(units);
    let tax = 160 * i64::from(units);
    Refund {
        order: order.order.clone(),
        refund_id: id.into(),
        created_at: order.created_at + Duration::days(3),
        lines: vec![RefundLine {
            line_id: "1001".into(),
            sku: Some("TEE-3".into()),
            kind: LineKind::Merchandise,
            quantity: units,
            restock_type: RestockType::Return,
            location_id: Some("store-042".into()),
            subtotal: usd(subtotal),
            tax: usd(tax),
        }],
        shipping: usd(shipping),
        shipping_tax: usd(0),
        adjustments: usd(0),
        adjustment_parts: Vec::new(),
        duties: usd(0),
        total: usd(subtotal + tax + shipping),
    }
}

async fn start() -> LocalApp {
    LocalApp::start(IntakeConfig::default()).await.unwrap()
}

fn bus_event<T: EventDetail + Clone>(
    detail: &T,
    key: &str,
    id: &str,
    source: &str,
    at: DateTime<Utc>,
) -> BusEvent {
    let event_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, id.as_bytes());
    let meta = EnvelopeMeta {
        event_id,
        occurred_at: at,
        source: source.into(),
        causation_id: None,
    };
    BusEvent {
        event_id,
        detail_type: T::EVENT_TYPE.into(),
        source: INTAKE_SOURCE.into(),
        detail: envelope(detail, &meta, key).to_string(),
        time: at,
    }
}

/// The `OrderPlaced` envelope a step receives for `order`.
fn placed_envelope(
    app: &LocalApp,
    order: &Order,
) -> retailflow_core::events::Envelope<OrderPlaced> {
    let event = bus_event(
        &OrderPlaced {
            order: order.clone(),
        },
        &order.order.key(),
        "placed",
        "shopify:x",
        app.clock.now(),
    );
    // The envelope was just serialized from the same type.
    serde_json::from_str(&event.detail).unwrap()
}

/// What intake does for an accepted order webhook: record the delivery with
/// the saga update (and the order's facts), publish `OrderPlaced`.
async fn place(app: &LocalApp, order: &Order) {
    let key = order.order.key();
    let now = app.clock.now();
    let facts = retailflow_core::events::CanonicalEvent::OrderPlaced(OrderPlaced {
        order: order.clone(),
    })
    .order_facts();
    app.store
        .record_completed(
            &IdempotencyKey::delivery(format!("test:{key}")),
            "h",
            &Completion {
                result: None,
                now,
                expires_at: now + Duration::days(1),
                saga: Some(SagaUpdate {
                    saga_key: key.clone(),
                    at: now,
                    event: Some(SagaEvent {
                        event_id: format!("placed-{key}"),
                        event_type: "OrderPlaced".into(),
                        replayable: false,
                    }),
                    order_facts: facts,
                    replace_order_facts: false,
                    case_key: None,
                    expires_at: now + SAGA_RETENTION,
                }),
            },
        )
        .await
        .unwrap();
    let e = bus_event(
        &OrderPlaced {
            order: order.clone(),
        },
        &key,
        &format!("placed-{key}"),
        "shopify:returns-test.myshopify.com",
        now,
    );
    app.bus.publish(&[e]).await.unwrap();
}

/// A refund as intake publishes it; `till` returns come from a store.
async fn refund_issued(app: &LocalApp, r: &Refund, till: bool) {
    let source = if till {
        "point_of_sale:store-042".to_string()
    } else {
        format!("shopify:{}", r.order.shop)
    };
    let e = bus_event(
        &RefundIssued { refund: r.clone() },
        &r.order.key(),
        &format!("refund-{}", r.refund_id),
        &source,
        app.clock.now(),
    );
    app.bus.publish(&[e]).await.unwrap();
}

fn balance(app: &LocalApp) -> i64 {
    let members = app.sims.loyalty_members();
    assert_eq!(members.len(), 1, "one member");
    members[0].points_balance
}

fn credit_memo_totals(app: &LocalApp) -> Vec<i64> {
    let mut v: Vec<i64> = app
        .sims
        .netsuite_credit_memos()
        .iter()
        .map(|m| m.total.minor)
        .collect();
    v.sort();
    v
}

/// The reference ledger: points earned on merchandise, and what refunds of
/// merchandise `refunded` (in any order) leave, computed from the totals
/// alone: a proportional share of the accrual, rounded down, never below 0.
fn reference_balance(accrued: i64, base: i64, refunded: &[i64]) -> i64 {
    let total: i64 = refunded.iter().sum::<i64>().min(base);
    accrued - accrued * total / base
}

#[tokio::test]
async fn a_partial_refund_of_one_of_three_units_credits_and_reverses_exactly() {
    let app = start().await;
    let order = three_unit_order("7001");
    place(&app, &order).await;
    app.drain().await;
    assert_eq!(balance(&app), 60);
    refund_issued(&app, &refund(&order, "r1", 1, 0), false).await;
    let report = app.drain().await;
    assert!(!report.gave_up);
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    // 20.00 + 1.60 tax, and 60 × 20/60 = 20 points back.
    assert_eq!(credit_memo_totals(&app), vec![2160]);
    let memo = &app.sims.netsuite_credit_memos()[0];
    assert_eq!(memo.lines, 2, "the returned line and its tax");
    assert_eq!(memo.dispositions[0].as_deref(), Some("restock"));
    assert_eq!(balance(&app), 40);
    assert_eq!(balance(&app), reference_balance(60, 6000, &[2000]));
    assert!(
        app.sims.shop_refunds().is_empty(),
        "a shop refund is already in the shop"
    );
}

#[tokio::test]
async fn a_full_refund_with_shipping_counts_it_once_and_credits_the_order_total() {
    let app = start().await;
    let order = three_unit_order("7002");
    place(&app, &order).await;
    refund_issued(&app, &refund(&order, "all", 3, 1000), false).await;
    app.drain().await;
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    assert_eq!(credit_memo_totals(&app), vec![7480], "the order total");
    let memo = &app.sims.netsuite_credit_memos()[0];
    assert_eq!(memo.lines, 3, "line, shipping once, tax");
    // The whole order came back in one return: the accrual is cancelled.
    assert_eq!(balance(&app), 0);
    let journals = app.sims.loyalty_journals();
    assert!(journals
        .iter()
        .any(|j| j.kind == "Accrual" && j.status == "Cancelled"));
    assert_eq!(journals.iter().filter(|j| j.kind == "Debit").count(), 0);
}

#[tokio::test]
async fn returns_before_the_order_and_before_its_accrual_end_as_in_the_natural_order() {
    let app = start().await;
    let order = three_unit_order("7003");
    // The return is delivered first; the order arrives an hour later, while
    // the loyalty platform is down for two hours.
    refund_issued(&app, &refund(&order, "early", 1, 0), true).await;
    let until = app.clock.now() + Duration::hours(3);
    app.sims.outage(System::Salesforce, until);
    let r = app.drain_until(app.clock.now() + Duration::hours(1)).await;
    assert!(r.retries > 0, "the return waited for its order");
    place(&app, &order).await;
    app.drain().await;
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    assert_eq!(balance(&app), reference_balance(60, 6000, &[2000]));
    assert!(balance(&app) >= 0);
    assert_eq!(credit_memo_totals(&app), vec![2160]);
    assert_eq!(
        app.sims.shop_refunds().len(),
        1,
        "the till return reached the shop once"
    );
    let debits = app
        .sims
        .loyalty_journals()
        .into_iter()
        .filter(|j| j.kind == "Debit")
        .count();
    assert_eq!(debits, 1);
}

#[tokio::test]
async fn two_partial_returns_delivered_twice_and_out_of_order_match_the_reference_ledger() {
    let app = start().await;
    let order = three_unit_order("7004");
    place(&app, &order).await;
    let a = refund(&order, "a", 1, 0);
    let b = refund(&order, "b", 1, 500);
    for (r, till) in [(&b, true), (&a, false), (&b, true), (&a, false)] {
        refund_issued(&app, r, till).await;
    }
    app.drain().await;
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    assert_eq!(balance(&app), reference_balance(60, 6000, &[2000, 2000]));
    assert_eq!(credit_memo_totals(&app), vec![2160, 2660]);
    let debits: Vec<i64> = app
        .sims
        .loyalty_journals()
        .into_iter()
        .filter(|j| j.kind == "Debit")
        .map(|j| j.points)
        .collect();
    assert_eq!(debits.len(), 2, "one debit per return: {debits:?}");
    assert_eq!(app.sims.shop_refunds().len(), 1, "only the till return");
}

#[tokio::test]
async fn a_refund_past_the_order_total_goes_to_review_and_reaches_no_system() {
    let app = start().await;
    let order = three_unit_order("7005");
    place(&app, &order).await;
    app.drain().await;
    refund_issued(&app, &refund(&order, "first", 3, 0), false).await;
    app.drain().await;
    // 64.80 refunded of 74.80: another 21.60 would be 86.40.
    refund_issued(&app, &refund(&order, "second", 1, 0), false).await;
    app.drain().await;
    let dead = app.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].queue, RETURN_REVERSAL_QUEUE);
    assert!(
        dead[0].reason.contains("needs review"),
        "{}",
        dead[0].reason
    );
    assert!(dead[0].reason.contains("86.40"), "{}", dead[0].reason);
    assert_eq!(
        credit_memo_totals(&app),
        vec![6480],
        "no credit memo for the second"
    );
    assert_eq!(balance(&app), 0);
}

#[tokio::test]
async fn a_till_return_is_recorded_in_the_shop_once_whatever_the_redeliveries() {
    let app = start().await;
    let order = three_unit_order("7006");
    place(&app, &order).await;
    let r = refund(&order, "till-1", 2, 0);
    for _ in 0..3 {
        refund_issued(&app, &r, true).await;
    }
    app.drain().await;
    let shop = app.sims.shop_refunds();
    assert_eq!(shop.len(), 1, "{shop:?}");
    assert_eq!(shop[0].order_id, "7006");
    assert_eq!(
        shop[0].lines,
        vec![("1001".to_string(), 2, "return".to_string())]
    );
    assert_eq!(credit_memo_totals(&app), vec![4320]);
}

async fn cancel(app: &LocalApp, order: &Order) {
    let key = order.order.key();
    let e = bus_event(
        &OrderCancelled {
            cancellation: Cancellation {
                order: order.order.clone(),
                cancelled_at: app.clock.now(),
                reason: Some("customer".into()),
            },
        },
        &key,
        &format!("cancelled-{key}"),
        "shopify:returns-test.myshopify.com",
        app.clock.now(),
    );
    app.bus.publish(&[e]).await.unwrap();
}

fn sales_order(app: &LocalApp, order_id: &str) -> Option<simulators::NetSuiteSalesOrder> {
    app.sims
        .netsuite_sales_orders()
        .into_iter()
        .find(|s| s.external_id.contains(order_id))
}

#[tokio::test]
async fn a_cancellation_after_the_erp_post_cancels_the_sales_order_and_the_points() {
    let app = start().await;
    let order = three_unit_order("7101");
    place(&app, &order).await;
    app.drain().await;
    assert!(!sales_order(&app, "7101").unwrap().closed);
    cancel(&app, &order).await;
    cancel(&app, &order).await;
    app.drain().await;
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    assert!(
        sales_order(&app, "7101").unwrap().closed,
        "sales order cancelled"
    );
    assert_eq!(balance(&app), 0);
    let journals = app.sims.loyalty_journals();
    assert_eq!(
        journals.iter().filter(|j| j.kind == "Cancellation").count(),
        1,
        "{journals:?}"
    );
    assert!(app.sims.netsuite_credit_memos().is_empty());
}

#[tokio::test]
async fn a_second_order_placed_after_the_cancellation_never_reopens_its_sales_order() {
    let app = start().await;
    let order = three_unit_order("7104");
    place(&app, &order).await;
    app.drain().await;
    cancel(&app, &order).await;
    app.drain().await;
    assert!(sales_order(&app, "7104").unwrap().closed);
    // The same OrderPlaced again at receive count 1 (an EventBridge
    // duplicate, or intake publishing a redelivered webhook again), and
    // the first completion write after it lost as if the process died.
    app.bus
        .publish(&[bus_event(
            &OrderPlaced {
                order: order.clone(),
            },
            &order.order.key(),
            &format!("placed-{}", order.order.key()),
            "shopify:returns-test.myshopify.com",
            app.clock.now(),
        )])
        .await
        .unwrap();
    app.store.crash_before_completion_every(1);
    app.drain_until(app.clock.now() + Duration::seconds(1))
        .await;
    app.store.crash_before_completion_every(0);
    app.drain().await;
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    assert!(
        sales_order(&app, "7104").unwrap().closed,
        "the cancelled order's sales order stays closed"
    );
}

#[tokio::test]
async fn a_cancellation_before_the_order_is_processed_accrues_nothing_and_closes_a_raced_post() {
    let app = start().await;
    let order = three_unit_order("7102");
    cancel(&app, &order).await;
    app.drain().await;
    place(&app, &order).await;
    app.drain().await;
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    assert!(
        app.sims.loyalty_journals().is_empty(),
        "the accrual refused to start"
    );
    // NetSuite posts without a claim: its completion sees the cancellation
    // and the step closes what it posted.
    assert!(sales_order(&app, "7102").is_none_or(|s| s.closed));
}

#[tokio::test]
async fn a_claiming_erp_never_creates_the_sales_order_of_an_order_cancelled_first() {
    use retailflow_connectors::business_central::{BusinessCentralConfig, BusinessCentralErp};
    use retailflow_core::resilience::CircuitBreaker;
    use retailflow_core::steps::erp_posting::{ErpPosting, ErpPostingConfig};
    use retailflow_core::steps::{Invocation, StepOutcome};
    use std::sync::Arc;
    let app = start().await;
    let order = three_unit_order("7103");
    cancel(&app, &order).await;
    app.drain().await;
    let bc = ErpPosting::new(
        app.store.clone(),
        app.bus.clone(),
        Arc::new(BusinessCentralErp::new(BusinessCentralConfig {
            company_url: app.sims.business_central_company(),
            auth: app.sims.business_central_auth(),
            local_currency: Currency::from_code("USD").unwrap(),
            timeout: std::time::Duration::from_secs(3),
        })),
        Arc::new(CircuitBreaker::new(
            "bc",
            5,
            std::time::Duration::from_secs(60),
        )),
        ErpPostingConfig::default(),
    );
    let placed = placed_envelope(&app, &order);
    let outcome = bc
        .handle(
            &placed,
            Invocation {
                now: app.clock.now(),
                deadline: None,
                attempt: 1,
            },
        )
        .await;
    assert!(
        matches!(outcome, StepOutcome::Cancelled { .. }),
        "{outcome:?}"
    );
    assert!(app.sims.business_central_sales_orders().is_empty());
}

#[tokio::test]
async fn a_cancellation_after_a_partial_return_takes_back_only_the_rest_and_credits_the_order() {
    let app = start().await;
    let order = three_unit_order("7104");
    place(&app, &order).await;
    refund_issued(&app, &refund(&order, "first", 1, 0), false).await;
    app.drain().await;
    assert_eq!(balance(&app), 40);
    cancel(&app, &order).await;
    app.drain().await;
    assert_eq!(balance(&app), 0, "the cancellation took back the other 40");
    assert!(
        !sales_order(&app, "7104").unwrap().closed,
        "refunds came first: the order is credited, not cancelled"
    );
    // The shop's refund of the cancellation: the other 2 units and shipping.
    refund_issued(&app, &refund(&order, "cancel-refund", 2, 1000), false).await;
    app.drain().await;
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    assert_eq!(credit_memo_totals(&app), vec![2160, 5320]);
    assert_eq!(credit_memo_totals(&app).iter().sum::<i64>(), 7480);
    assert_eq!(balance(&app), 0, "never below zero");
}

#[tokio::test]
async fn refunds_of_an_order_cancelled_before_any_refund_credit_nothing_in_the_erp() {
    let app = start().await;
    let order = three_unit_order("7105");
    place(&app, &order).await;
    app.drain().await;
    cancel(&app, &order).await;
    refund_issued(&app, &refund(&order, "cancel-refund", 3, 1000), false).await;
    app.drain().await;
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    assert!(sales_order(&app, "7105").unwrap().closed);
    assert!(
        app.sims.netsuite_credit_memos().is_empty(),
        "nothing was invoiced"
    );
    assert_eq!(balance(&app), 0);
    let skipped = app
        .bus
        .recorded
        .published()
        .into_iter()
        .filter(|e| e.detail_type == "CreditMemoPosted")
        .filter(|e| e.detail.contains("nothing was invoiced to credit"))
        .count();
    assert_eq!(skipped, 1);
}

#[tokio::test]
async fn a_redelivered_order_after_its_cancellation_leaves_the_sales_order_closed() {
    let app = start().await;
    let order = three_unit_order("7106");
    place(&app, &order).await;
    app.drain().await;
    cancel(&app, &order).await;
    app.drain().await;
    assert!(sales_order(&app, "7106").unwrap().closed);
    // The same OrderPlaced again: NetSuite re-posts (lines replaced, open
    // again), the completion sees the cancellation, the step closes it.
    place(&app, &order).await;
    app.drain().await;
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    assert!(sales_order(&app, "7106").unwrap().closed);
    assert_eq!(balance(&app), 0);
}

#[tokio::test]
async fn a_refund_after_a_cancellation_the_erp_could_not_apply_still_gets_its_credit_memo() {
    let app = start().await;
    let order = three_unit_order("7107");
    place(&app, &order).await;
    app.drain().await;
    // Invoiced meanwhile: no longer an open sales order to cancel.
    let so = sales_order(&app, "7107").unwrap();
    app.sims.netsuite_remove_sales_order(&so.external_id);
    cancel(&app, &order).await;
    app.drain().await;
    refund_issued(&app, &refund(&order, "after", 3, 1000), false).await;
    app.drain().await;
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    assert_eq!(
        credit_memo_totals(&app),
        vec![7480],
        "the invoice is credited"
    );
    assert_eq!(balance(&app), 0);
}

/// The cancellation lands while the accrual is running: just before the
/// accrual records its result.
struct CancelledMidway {
    inner: std::sync::Arc<retailflow_core::adapters::in_process::InProcessStateStore>,
    order_key: String,
}

#[async_trait::async_trait]
impl StateStore for CancelledMidway {
    async fn claim(
        &self,
        r: &retailflow_core::idempotency::ClaimRequest,
    ) -> Result<retailflow_core::idempotency::ClaimOutcome, retailflow_core::ports::StoreError>
    {
        self.inner.claim(r).await
    }
    async fn complete(
        &self,
        c: &retailflow_core::idempotency::Claim,
        x: &Completion,
    ) -> Result<(), retailflow_core::ports::StoreError> {
        let ledger = retailflow_core::refund_ledger::RefundLedger::default()
            .cancel(x.now, Currency::from_code("USD").unwrap())
            .unwrap();
        self.inner
            .write_refund_ledger(&self.order_key, &ledger, x.now)
            .await?;
        self.inner.complete(c, x).await
    }
    async fn record_first(
        &self,
        r: &retailflow_core::idempotency::ClaimRequest,
        x: &Completion,
    ) -> Result<retailflow_core::idempotency::RecordOutcome, retailflow_core::ports::StoreError>
    {
        self.inner.record_first(r, x).await
    }
    async fn record_completed(
        &self,
        k: &IdempotencyKey,
        h: &str,
        x: &Completion,
    ) -> Result<(), retailflow_core::ports::StoreError> {
        self.inner.record_completed(k, h, x).await
    }
    async fn release(
        &self,
        c: &retailflow_core::idempotency::Claim,
    ) -> Result<(), retailflow_core::ports::StoreError> {
        self.inner.release(c).await
    }
    async fn quarantine(
        &self,
        q: &retailflow_core::ports::QuarantinedDelivery,
    ) -> Result<(), retailflow_core::ports::StoreError> {
        self.inner.quarantine(q).await
    }
    async fn saga(
        &self,
        k: &str,
    ) -> Result<Option<retailflow_core::saga::SagaRecord>, retailflow_core::ports::StoreError> {
        self.inner.saga(k).await
    }
    async fn read_cursor(
        &self,
        n: &str,
    ) -> Result<Option<String>, retailflow_core::ports::StoreError> {
        self.inner.read_cursor(n).await
    }
    async fn write_cursor(
        &self,
        n: &str,
        v: &str,
    ) -> Result<(), retailflow_core::ports::StoreError> {
        self.inner.write_cursor(n, v).await
    }
    async fn write_refund_ledger(
        &self,
        k: &str,
        l: &retailflow_core::refund_ledger::RefundLedger,
        at: DateTime<Utc>,
    ) -> Result<bool, retailflow_core::ports::StoreError> {
        self.inner.write_refund_ledger(k, l, at).await
    }
    async fn sagas_started(
        &self,
        hour: chrono::DateTime<chrono::Utc>,
        page: Option<&str>,
    ) -> Result<retailflow_core::ports::SagaPage, retailflow_core::ports::StoreError> {
        self.inner.sagas_started(hour, page).await
    }
    async fn record_redrive(
        &self,
        saga_key: &str,
        step: &str,
        limit: u32,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, retailflow_core::ports::StoreError> {
        self.inner.record_redrive(saga_key, step, limit, at).await
    }
    async fn put_report(
        &self,
        run_id: &str,
        body: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), retailflow_core::ports::StoreError> {
        self.inner.put_report(run_id, body, expires_at).await
    }
    async fn report(
        &self,
        run_id: &str,
    ) -> Result<Option<String>, retailflow_core::ports::StoreError> {
        self.inner.report(run_id).await
    }
}

#[tokio::test]
async fn an_accrual_that_finishes_after_the_cancellation_cancels_its_own_journal() {
    use retailflow_core::resilience::CircuitBreaker;
    use retailflow_core::steps::loyalty_accrual::{LoyaltyAccrual, LoyaltyAccrualConfig};
    use retailflow_core::steps::{Invocation, StepOutcome};
    use std::sync::Arc;
    let app = start().await;
    let order = three_unit_order("7108");
    let store = Arc::new(CancelledMidway {
        inner: app.store.clone(),
        order_key: order.order.key(),
    });
    let step = LoyaltyAccrual::new(
        store.clone(),
        app.bus.clone(),
        app.loyalty.clone(),
        Arc::new(CircuitBreaker::new(
            "sf",
            5,
            std::time::Duration::from_secs(60),
        )),
        LoyaltyAccrualConfig::default(),
    );
    let placed = placed_envelope(&app, &order);
    let inv = Invocation {
        now: app.clock.now(),
        deadline: None,
        attempt: 1,
    };
    let outcome = step.handle(&placed, inv).await;
    assert!(
        matches!(outcome, StepOutcome::Cancelled { .. }),
        "{outcome:?}"
    );
    let journals = app.sims.loyalty_journals();
    assert!(
        journals
            .iter()
            .any(|j| j.kind == "Accrual" && j.status == "Cancelled"),
        "{journals:?}"
    );
    assert_eq!(balance(&app), 0);
    let saga = app.store.saga(&order.order.key()).await.unwrap().unwrap();
    assert!(
        !saga.steps.contains_key("loyalty_accrual"),
        "the claim was given back: the cancellation sees a step that never ran"
    );
}

/// What a shop's cancellation refunds: every unit, unshipped (`cancel`),
/// and the shipping.
fn cancellation_refund(order: &Order, id: &str) -> Refund {
    let mut r = refund(order, id, 3, 1000);
    for l in &mut r.lines {
        l.restock_type = RestockType::Cancel;
    }
    r
}

#[tokio::test]
async fn a_cancellation_and_its_refund_end_the_same_whichever_arrives_first() {
    for refund_first in [true, false] {
        let app = start().await;
        let order = three_unit_order("7109");
        place(&app, &order).await;
        app.drain().await;
        // The shop cancels and refunds now; both webhooks at once.
        let mut r = cancellation_refund(&order, "cancel-refund");
        r.created_at = app.clock.now();
        if refund_first {
            refund_issued(&app, &r, false).await;
            app.drain_until(app.clock.now() + Duration::seconds(5))
                .await;
            cancel(&app, &order).await;
        } else {
            cancel(&app, &order).await;
            app.drain_until(app.clock.now() + Duration::seconds(5))
                .await;
            refund_issued(&app, &r, false).await;
        }
        app.drain().await;
        assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
        assert!(
            sales_order(&app, "7109").unwrap().closed,
            "refund first: {refund_first}"
        );
        assert!(
            app.sims.netsuite_credit_memos().is_empty(),
            "nothing invoiced, nothing credited (refund first: {refund_first})"
        );
        assert_eq!(balance(&app), 0);
    }
}

#[tokio::test]
async fn an_order_the_erp_refuses_to_cancel_goes_to_review_and_its_refunds_are_credited() {
    use simulators::{Fault, FaultKind};
    let app = start().await;
    let order = three_unit_order("7110");
    place(&app, &order).await;
    app.drain().await;
    app.sims.inject(Fault {
        system: System::NetSuite,
        method: Some("PATCH"),
        path_contains: "salesOrder",
        kind: FaultKind::Refuse,
        count: 10,
    });
    cancel(&app, &order).await;
    app.drain().await;
    let dead = app.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].reason.contains("left open and needs review"),
        "{}",
        dead[0].reason
    );
    assert!(!sales_order(&app, "7110").unwrap().closed);
    assert_eq!(balance(&app), 0, "the points are taken back all the same");
    // The shop refunds the money: the order is still open in the ERP, so it
    // is credited.
    let mut r = cancellation_refund(&order, "refund-after-refusal");
    r.created_at = app.clock.now();
    refund_issued(&app, &r, false).await;
    app.drain().await;
    assert_eq!(app.dead_letters().len(), 1, "nothing more to review");
    assert_eq!(credit_memo_totals(&app), vec![7480]);
}

#[tokio::test]
async fn a_redelivered_order_post_looks_before_it_posts_to_an_upserting_erp() {
    use retailflow_core::steps::{Invocation, StepOutcome};
    let app = start().await;
    let order = three_unit_order("7111");
    place(&app, &order).await;
    app.drain().await;
    let upserts = sales_order(&app, "7111").unwrap().upserts;
    let placed = placed_envelope(&app, &order);
    let inv = Invocation {
        now: app.clock.now(),
        deadline: None,
        attempt: 2,
    };
    let outcome = app.erp_posting.handle(&placed, inv).await;
    assert!(matches!(outcome, StepOutcome::Done { .. }), "{outcome:?}");
    assert_eq!(
        sales_order(&app, "7111").unwrap().upserts,
        upserts,
        "found done: not posted again"
    );
    // Cancelled: a redelivery (first delivery or not) does not reopen the
    // order either; it makes sure the order is closed and ends there.
    cancel(&app, &order).await;
    app.drain().await;
    for attempt in [1, 2] {
        let outcome = app
            .erp_posting
            .handle(&placed, Invocation { attempt, ..inv })
            .await;
        assert!(
            matches!(outcome, StepOutcome::Cancelled { .. }),
            "{outcome:?}"
        );
    }
    let so = sales_order(&app, "7111").unwrap();
    assert!(so.closed);
    assert_eq!(so.upserts, upserts);
}
