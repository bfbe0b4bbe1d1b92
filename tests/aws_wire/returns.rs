//! Returns over real AWS APIs (moto): the RefundIssued rule routes to the
//! return-reversal queue, the step's state writes are conditional so a
//! redelivered return reverses nothing twice, and every AWS request of a
//! return is counted on the wire.

use std::sync::Arc;

use chrono::{Duration, Utc};
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_aws::adapters::eventbridge::EventBridgeBus;
use retailflow_core::intake::{IntakeConfig, OrderIntake, WebhookRequest, WebhookRoute};
use retailflow_core::money::{Currency, Money};
use retailflow_core::ports::StateStore;
use retailflow_core::refund_ledger::{AdmittedRefund, OrderFacts, RefundLedger};
use retailflow_core::webhook::{HmacSecrets, Secret};
use retailflow_e2e::{
    aws_config, create_state_table, poll_return_step, poll_step, queue_with_dlq, return_step,
    route, saga_steps, signed_shopify_headers, signed_shopify_topic_headers, unique,
    RequestCounter,
};
use simulators::Simulators;

const ORDER: &str = include_str!("../../events/payloads/shopify-orders-create-discount-code.json");
const REFUND: &str =
    include_str!("../../events/payloads/shopify-refunds-create-partial-with-shipping.json");
const SECRET: &str = "returns-secret";
const CANCELLED: &str = include_str!("../../events/payloads/shopify-orders-cancelled.json");
const POS_RETURN: &str = include_str!("../../events/payloads/pos/return-store-042.json");
const STORE_SECRET: &str = "store-042-secret";

#[tokio::test]
async fn a_refund_is_routed_to_the_return_queue_and_reversed_once_over_real_aws_apis() {
    let cfg = aws_config().await;
    let ddb_count = RequestCounter::default();
    let eb_count = RequestCounter::default();
    let ddb = retailflow_e2e::counted_dynamodb(&cfg, &ddb_count);
    let eb = retailflow_e2e::counted_eventbridge(&cfg, &eb_count);
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let plain_eb = aws_sdk_eventbridge::Client::new(&cfg);
    let table = create_state_table(&aws_sdk_dynamodb::Client::new(&cfg)).await;
    let bus = unique("bus");
    plain_eb.create_event_bus().name(&bus).send().await.unwrap();
    let (erp_q, loyalty_q, return_q) = (
        queue_with_dlq(&sqs, 5).await,
        queue_with_dlq(&sqs, 5).await,
        queue_with_dlq(&sqs, 5).await,
    );
    route(&plain_eb, &sqs, &bus, "OrderPlaced", &erp_q).await;
    route(&plain_eb, &sqs, &bus, "OrderPlaced", &loyalty_q).await;
    route(&plain_eb, &sqs, &bus, "RefundIssued", &return_q).await;
    route(&plain_eb, &sqs, &bus, "OrderCancelled", &return_q).await;

    let sims = Simulators::start().await.unwrap();
    let store = Arc::new(DynamoDbStateStore::new(ddb, &table));
    let events = Arc::new(EventBridgeBus::new(eb, &bus));
    let intake = OrderIntake::new(
        store.clone(),
        events.clone(),
        IntakeConfig {
            shopify: Some(HmacSecrets {
                current: Secret::new(SECRET),
                previous: None,
            }),
            pos_stores: [(
                "store-042".to_string(),
                HmacSecrets {
                    current: Secret::new(STORE_SECRET),
                    previous: None,
                },
            )]
            .into(),
            ..IntakeConfig::default()
        },
    );
    let (erp, loyalty) = saga_steps(store.clone(), events.clone(), &sims);
    let returns = return_step(store.clone(), events.clone(), &sims);
    let deliver = |topic: &'static str, id: &'static str, body: &'static str| {
        let intake = &intake;
        async move {
            let h = if topic == "orders/create" {
                signed_shopify_headers(SECRET, id, body)
            } else {
                signed_shopify_topic_headers(SECRET, topic, id, body)
            };
            intake
                .handle(WebhookRequest {
                    route: WebhookRoute::Shopify,
                    headers: &h,
                    body: body.as_bytes(),
                    received_at: Utc::now(),
                    gateway_time: None,
                    deadline: None,
                })
                .await
                .status
        }
    };
    assert_eq!(deliver("orders/create", "ev-ret-order", ORDER).await, 200);
    assert_eq!(poll_step(&sqs, &erp_q, &erp).await, 1);
    assert_eq!(poll_step(&sqs, &loyalty_q, &loyalty).await, 1);
    assert_eq!(
        deliver("refunds/create", "ev-ret-refund", REFUND).await,
        200
    );
    let (_, _) = (ddb_count.take(), eb_count.take());

    // Keep the routed message to deliver it again afterwards.
    let received = sqs
        .receive_message()
        .queue_url(&return_q.url)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let messages = received.messages();
    assert_eq!(messages.len(), 1, "the rule routed one RefundIssued");
    let body = messages[0].body().unwrap().to_string();
    sqs.change_message_visibility()
        .queue_url(&return_q.url)
        .receipt_handle(messages[0].receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    assert_eq!(poll_return_step(&sqs, &return_q, &returns).await, 1);
    let cost = (ddb_count.take(), eb_count.take());
    println!(
        "AWS requests per return (Shopify refund, NetSuite, Salesforce): DynamoDB {} EventBridge {}",
        cost.0, cost.1
    );
    println!(
        "bench-requests refund return-reversal dynamodb={} eventbridge={}",
        cost.0, cost.1
    );
    assert_eq!(
        cost,
        (7, 2),
        "saga read, ledger write, loyalty claim + completion, credit memo claim, \
         saga read again (a cancellation since?), completion; two events"
    );

    // The same message again (SQS delivers at least once), and Shopify's
    // redelivery of the refund webhook, published again as recorded.
    sqs.send_message()
        .queue_url(&return_q.url)
        .message_body(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(poll_return_step(&sqs, &return_q, &returns).await, 1);
    assert_eq!(
        deliver("refunds/create", "ev-ret-refund", REFUND).await,
        200
    );
    assert_eq!(poll_return_step(&sqs, &return_q, &returns).await, 1);
    let journals = sims.loyalty_journals();
    let debits: Vec<_> = journals.iter().filter(|j| j.kind == "Debit").collect();
    assert_eq!(debits.len(), 1, "{journals:?}");
    // 109 points on 109.33; 22.49 refunded → 22 points.
    assert_eq!(debits[0].points, -22);
    let memos = sims.netsuite_credit_memos();
    assert_eq!(memos.len(), 1);
    assert_eq!(
        memos[0].total.minor, 3429,
        "22.49 + 1.80 tax + 10.00 shipping"
    );
    // Found done: not posted again.
    assert_eq!(memos[0].upserts, 1);
    let saga = store
        .saga("shopify:acme.myshopify.com:order:5872301948123")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saga.refund_ledger.refunds.len(), 1);
    assert_eq!(saga.refund_ledger.refunds[0].total.minor, 3429);
    assert_eq!(saga.order_facts.unwrap().total.minor, 12808);

    // A return at the till of the other sock: also recorded in the shop.
    let body = POS_RETURN.replace("acme-outdoor.myshopify.com", "acme.myshopify.com");
    let mut h = http::HeaderMap::new();
    for (k, v) in retailflow_core::mappers::pos::signed_headers(
        "store-042",
        &Secret::new(STORE_SECRET),
        Utc::now(),
        &uuid::Uuid::new_v4().to_string(),
        body.as_bytes(),
    ) {
        h.insert(k, v.parse().unwrap());
    }
    let (_, _) = (ddb_count.take(), eb_count.take());
    let status = intake
        .handle(WebhookRequest {
            route: WebhookRoute::PosReturn,
            headers: &h,
            body: body.as_bytes(),
            received_at: Utc::now(),
            gateway_time: None,
            deadline: None,
        })
        .await
        .status;
    assert_eq!(status, 200);
    let (ddb, eb) = (ddb_count.take(), eb_count.take());
    println!("bench-requests till-return intake dynamodb={ddb} eventbridge={eb}");
    assert_eq!(
        (ddb, eb),
        (4, 1),
        "the nonce's claim, the delivery's record, the order's saga, the return's own saga; one event"
    );
    // The same request captured and sent again: its nonce is held in DynamoDB.
    let replay = intake
        .handle(WebhookRequest {
            route: WebhookRoute::PosReturn,
            headers: &h,
            body: body.as_bytes(),
            received_at: Utc::now(),
            gateway_time: None,
            deadline: None,
        })
        .await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert!(replay.body["error"]
        .as_str()
        .unwrap()
        .contains("nonce already used"));
    let (_, _) = (ddb_count.take(), eb_count.take());
    assert_eq!(poll_return_step(&sqs, &return_q, &returns).await, 1);
    let till_cost = (ddb_count.take(), eb_count.take());
    println!(
        "AWS requests per till return (NetSuite, Salesforce, Shopify): DynamoDB {} EventBridge {}",
        till_cost.0, till_cost.1
    );
    println!(
        "bench-requests till-return return-reversal dynamodb={} eventbridge={}",
        till_cost.0, till_cost.1
    );
    assert_eq!(
        till_cost,
        (9, 3),
        "the refund's seven, plus the shop refund's claim and completion; three events"
    );
    assert_eq!(sims.shop_refunds().len(), 1);
    assert_eq!(sims.netsuite_credit_memos().len(), 2);

    // Then the order is cancelled: routed to the same queue; refunds came
    // first, so the ERP order is left to their credit memos and the points
    // left are taken back.
    assert_eq!(
        deliver("orders/cancelled", "ev-ret-cancel", CANCELLED).await,
        200
    );
    let (_, _) = (ddb_count.take(), eb_count.take());
    assert_eq!(poll_return_step(&sqs, &return_q, &returns).await, 1);
    let cancel_cost = (ddb_count.take(), eb_count.take());
    println!(
        "AWS requests per cancellation (NetSuite, Salesforce): DynamoDB {} EventBridge {}",
        cancel_cost.0, cancel_cost.1
    );
    println!(
        "bench-requests cancellation return-reversal dynamodb={} eventbridge={}",
        cancel_cost.0, cancel_cost.1
    );
    assert_eq!(
        cancel_cost,
        (8, 2),
        "saga read, ledger write, saga read again, loyalty claim + completion, \
         one earlier refund's saga read (its credit memo is posted: credited), ERP claim + completion"
    );
    assert!(
        !sims.netsuite_sales_orders()[0].closed,
        "credited, not cancelled"
    );
    let net: i64 = sims.loyalty_journals().iter().map(|j| j.points).sum();
    assert_eq!(
        net, 0,
        "109 accrued, 22 + 22 for the returns, 65 for the cancellation"
    );
}

#[tokio::test]
async fn dynamodb_refund_ledger_writes_are_conditional_on_its_version() {
    let cfg = aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table = create_state_table(&ddb).await;
    let store = DynamoDbStateStore::new(ddb, &table);
    let usd = |m| Money::new(m, Currency::from_code("USD").unwrap());
    let facts = OrderFacts {
        total: usd(10_000),
        taxes_included: false,
        placed_at: Utc::now(),
        uncounted_line_ids: None,
    };
    let entry = |id: &str| AdmittedRefund {
        refund_id: id.into(),
        total: usd(4_000),
        loyalty_base: usd(3_000),
        admitted_at: Utc::now(),
        takes_rest: false,
    };
    let key = "shopify:s:order:ledger-1";
    let empty = RefundLedger::default();
    let first = empty.admit(&facts, entry("a")).unwrap();
    let rival = empty.admit(&facts, entry("b")).unwrap();
    assert!(store
        .write_refund_ledger(key, &first, Utc::now())
        .await
        .unwrap());
    assert!(
        !store
            .write_refund_ledger(key, &rival, Utc::now())
            .await
            .unwrap(),
        "a ledger computed from the old version is refused"
    );
    let read = store.saga(key).await.unwrap().unwrap().refund_ledger;
    assert_eq!(read, first);
    let second = read.admit(&facts, entry("b")).unwrap();
    assert!(store
        .write_refund_ledger(key, &second, Utc::now() + Duration::seconds(1))
        .await
        .unwrap());
    assert_eq!(
        store
            .saga(key)
            .await
            .unwrap()
            .unwrap()
            .refund_ledger
            .refunds
            .len(),
        2
    );
}

#[tokio::test]
async fn dynamodb_refuses_an_order_step_once_the_order_is_cancelled() {
    use retailflow_core::idempotency::{ClaimOutcome, ClaimRequest, Completion, IdempotencyKey};
    use retailflow_core::ports::StoreError;
    let cfg = aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table = create_state_table(&ddb).await;
    let store = DynamoDbStateStore::new(ddb, &table);
    let key = "shopify:s:order:cancel-1";
    let now = Utc::now();
    let claim = |step: &'static str| ClaimRequest {
        key: IdempotencyKey::saga_step(key, step),
        payload_hash: "h".into(),
        now,
        lease_until: now + Duration::seconds(30),
    };
    let done = Completion {
        result: Some(serde_json::json!({"ok": true})),
        now,
        expires_at: now + Duration::days(1),
        saga: None,
    };
    // The ERP post finished before the cancellation; the accrual was still
    // running when it came.
    let ClaimOutcome::Claimed(posted) = store.claim(&claim("erp_post")).await.unwrap() else {
        panic!("erp claim")
    };
    store.complete(&posted, &done).await.unwrap();
    let ClaimOutcome::Claimed(running) = store.claim(&claim("loyalty_accrual")).await.unwrap()
    else {
        panic!("accrual claim")
    };
    let cancelled = RefundLedger::default()
        .cancel(now, Currency::from_code("USD").unwrap())
        .unwrap();
    assert!(store
        .write_refund_ledger(key, &cancelled, now)
        .await
        .unwrap());
    assert!(
        matches!(
            store.complete(&running, &done).await,
            Err(StoreError::OrderCancelled { .. })
        ),
        "a step that was running cannot record its result after the cancellation"
    );
    store.release(&running).await.unwrap();
    assert_eq!(
        store.claim(&claim("loyalty_accrual")).await.unwrap(),
        ClaimOutcome::OrderCancelled,
        "nor start again"
    );
    assert!(
        matches!(
            store
                .record_completed(&IdempotencyKey::saga_step(key, "erp_post"), "h", &done)
                .await,
            Err(StoreError::OrderCancelled { .. })
        ),
        "a step without a claim (a re-post) hears of the cancellation even when done before"
    );
    let saga = store.saga(key).await.unwrap().unwrap();
    assert!(saga.refund_ledger.cancelled_at.is_some());
    assert!(!saga.steps.contains_key("loyalty_accrual"));
    // A step completed before the cancellation is answered from its record.
    assert!(matches!(
        store.claim(&claim("erp_post")).await.unwrap(),
        ClaimOutcome::AlreadyCompleted { .. }
    ));
}
