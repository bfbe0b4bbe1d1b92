//! AWS-wire specifications: the DynamoDB and EventBridge adapters through the
//! real aws-sdk-rust clients against moto server on loopback.

use std::io::Read;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use http::HeaderMap;
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_aws::adapters::eventbridge::EventBridgeBus;
use retailflow_core::idempotency::{
    ClaimOutcome, ClaimRequest, Completion, IdempotencyKey, RecordOutcome,
};
use retailflow_core::intake::{IntakeConfig, OrderIntake, WebhookRequest, WebhookRoute};
use retailflow_core::ports::{
    BusError, BusEvent, EventBus, QuarantinedDelivery, StateStore, StoreError,
};
use retailflow_core::saga::{SagaEvent, SagaUpdate, StepStatus, SAGA_RETENTION};
use retailflow_core::webhook::{HmacSecrets, Secret};
use retailflow_e2e::{
    aws_config, create_routed_bus, create_state_table, drain, signed_shopify_headers,
};

const ORDER: &str = include_str!("../../events/payloads/shopify-orders-create-discount-code.json");
const SECRET: &str = "wire-secret";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn store() -> (DynamoDbStateStore, aws_sdk_dynamodb::Client) {
    let cfg = aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&cfg);
    let table = create_state_table(&client).await;
    (DynamoDbStateStore::new(client.clone(), table), client)
}

fn claim_req(key: &str, hash: &str, now: DateTime<Utc>) -> ClaimRequest {
    ClaimRequest {
        key: IdempotencyKey::delivery(key),
        payload_hash: hash.into(),
        now,
        lease_until: now + Duration::seconds(30),
    }
}

fn step_req(saga: &str, step: &'static str, hash: &str, now: DateTime<Utc>) -> ClaimRequest {
    ClaimRequest {
        key: IdempotencyKey::saga_step(saga, step),
        payload_hash: hash.into(),
        now,
        lease_until: now + Duration::seconds(30),
    }
}

fn completion(now: DateTime<Utc>, saga: Option<SagaUpdate>) -> Completion {
    Completion {
        result: Some(serde_json::json!({"event_id": "e-1"})),
        now,
        expires_at: now + Duration::days(7),
        saga,
    }
}

#[tokio::test]
async fn dynamodb_claim_is_exclusive_until_completed() {
    let (store, _) = store().await;
    let ClaimOutcome::Claimed(claim) = store.claim(&claim_req("k1", "h1", t0())).await.unwrap()
    else {
        panic!("first claim must win")
    };
    assert!(matches!(
        store.claim(&claim_req("k1", "h1", t0())).await.unwrap(),
        ClaimOutcome::InProgress { .. }
    ));
    store
        .complete(&claim, &completion(t0(), None))
        .await
        .unwrap();
    match store
        .claim(&claim_req("k1", "h1", t0() + Duration::hours(1)))
        .await
        .unwrap()
    {
        ClaimOutcome::AlreadyCompleted { result } => assert_eq!(result.unwrap()["event_id"], "e-1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .claim(&claim_req("k1", "other-hash", t0()))
            .await
            .unwrap(),
        ClaimOutcome::PayloadMismatch { completed: true }
    );
}

#[tokio::test]
async fn dynamodb_an_expired_lease_is_taken_over_and_the_old_worker_cannot_complete() {
    let (store, _) = store().await;
    let ClaimOutcome::Claimed(old) = store.claim(&claim_req("k2", "h", t0())).await.unwrap() else {
        panic!()
    };
    let later = t0() + Duration::seconds(31);
    let ClaimOutcome::Claimed(new) = store.claim(&claim_req("k2", "h", later)).await.unwrap()
    else {
        panic!("an expired lease must be claimable")
    };
    assert_ne!(old.token, new.token);
    assert!(matches!(
        store.complete(&old, &completion(later, None)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    store
        .complete(&new, &completion(later, None))
        .await
        .unwrap();
}

#[tokio::test]
async fn dynamodb_release_lets_a_retry_claim_at_once() {
    let (store, _) = store().await;
    let ClaimOutcome::Claimed(c) = store.claim(&claim_req("k3", "h", t0())).await.unwrap() else {
        panic!()
    };
    store.release(&c).await.unwrap();
    assert!(matches!(
        store.claim(&claim_req("k3", "h", t0())).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
}

#[tokio::test]
async fn dynamodb_concurrent_claims_have_exactly_one_winner() {
    let (store, _) = store().await;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.claim(&claim_req("k4", "h", t0())).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            ClaimOutcome::Claimed(_) => won += 1,
            ClaimOutcome::InProgress { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn dynamodb_record_first_records_once_with_its_saga_and_reports_what_stands() {
    let (store, client) = store().await;
    let saga = SagaUpdate {
        saga_key: "shopify:s:order:rf".into(),
        at: t0(),
        event: Some(SagaEvent {
            event_id: "e-rf".into(),
            event_type: "OrderPlaced".into(),
            replayable: true,
        }),
        order_facts: None,
        replace_order_facts: false,
        case_key: None,
        expires_at: t0() + SAGA_RETENTION,
    };
    let record = |hash: &'static str, at| {
        let store = &store;
        let saga = saga.clone();
        async move {
            store
                .record_first(&claim_req("rf1", hash, at), &completion(at, Some(saga)))
                .await
                .unwrap()
        }
    };
    assert_eq!(record("h", t0()).await, RecordOutcome::Recorded);
    let recorded = store.saga("shopify:s:order:rf").await.unwrap().unwrap();
    assert_eq!(
        recorded
            .first_event_ids
            .get("OrderPlaced")
            .map(String::as_str),
        Some("e-rf"),
        "{recorded:?}"
    );
    // The record and the saga are separate writes: a worker that stopped
    // between them left no saga, and the redelivery writes it.
    client
        .delete_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("SAGA#shopify:s:order:rf".into()),
        )
        .send()
        .await
        .unwrap();
    match record("h", t0() + Duration::minutes(1)).await {
        RecordOutcome::Existing(ClaimOutcome::AlreadyCompleted { result }) => {
            assert_eq!(result.unwrap()["event_id"], "e-1")
        }
        other => panic!("{other:?}"),
    }
    let rewritten = store.saga("shopify:s:order:rf").await.unwrap().unwrap();
    assert_eq!(
        rewritten
            .first_event_ids
            .get("OrderPlaced")
            .map(String::as_str),
        Some("e-rf")
    );
    assert_eq!(
        record("other-hash", t0()).await,
        RecordOutcome::Existing(ClaimOutcome::PayloadMismatch { completed: true })
    );
    // A live claim of the same key (claim-then-complete) stands until its
    // lease lapses; then the record takes its place.
    let ClaimOutcome::Claimed(_) = store.claim(&claim_req("rf2", "h", t0())).await.unwrap() else {
        panic!()
    };
    assert!(matches!(
        store
            .record_first(&claim_req("rf2", "h", t0()), &completion(t0(), None))
            .await
            .unwrap(),
        RecordOutcome::Existing(ClaimOutcome::InProgress { .. })
    ));
    let later = t0() + Duration::seconds(31);
    assert_eq!(
        store
            .record_first(&claim_req("rf2", "h", later), &completion(later, None))
            .await
            .unwrap(),
        RecordOutcome::Recorded
    );
}

#[tokio::test]
async fn dynamodb_saga_starts_with_the_completion_and_keeps_its_start() {
    let (store, _) = store().await;
    let upd = |event_id: &str, t: &str, at| SagaUpdate {
        saga_key: "shopify:s:order:1".into(),
        at,
        event: Some(SagaEvent {
            event_id: event_id.into(),
            event_type: t.into(),
            replayable: false,
        }),
        order_facts: None,
        replace_order_facts: false,
        case_key: None,
        expires_at: at + SAGA_RETENTION,
    };
    let ClaimOutcome::Claimed(c1) = store.claim(&claim_req("k5a", "h", t0())).await.unwrap() else {
        panic!()
    };
    store
        .complete(&c1, &completion(t0(), Some(upd("e1", "OrderPlaced", t0()))))
        .await
        .unwrap();
    let later = t0() + Duration::minutes(5);
    let ClaimOutcome::Claimed(c2) = store.claim(&claim_req("k5b", "h", later)).await.unwrap()
    else {
        panic!()
    };
    store
        .complete(
            &c2,
            &completion(later, Some(upd("e2", "RefundIssued", later))),
        )
        .await
        .unwrap();
    let saga = store.saga("shopify:s:order:1").await.unwrap().unwrap();
    assert_eq!(saga.started_at, Some(t0()));
    assert_eq!(saga.updated_at, Some(later));
    assert_eq!(saga.last_event_type.as_deref(), Some("RefundIssued"));
    assert_eq!(saga.event_types.len(), 2);
    assert_eq!(saga.first_seen["OrderPlaced"], t0());
    assert_eq!(saga.first_seen["RefundIssued"], later);
    assert!(store.saga("shopify:s:order:404").await.unwrap().is_none());
}

#[tokio::test]
async fn dynamodb_steps_claim_and_complete_inside_the_saga_item() {
    let (store, _) = store().await;
    let saga = "shopify:s:order:2";
    let ClaimOutcome::Claimed(erp) = store
        .claim(&step_req(saga, "erp_post", "h", t0()))
        .await
        .unwrap()
    else {
        panic!()
    };
    // A second step of the same order claims independently.
    let ClaimOutcome::Claimed(loyalty) = store
        .claim(&step_req(saga, "loyalty_accrual", "h", t0()))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(matches!(
        store
            .claim(&step_req(saga, "erp_post", "h", t0()))
            .await
            .unwrap(),
        ClaimOutcome::InProgress { .. }
    ));
    let step_done = |result: serde_json::Value| Completion {
        result: Some(result),
        now: t0(),
        expires_at: t0() + Duration::days(7),
        saga: Some(SagaUpdate {
            saga_key: saga.into(),
            at: t0(),
            event: None,
            order_facts: None,
            replace_order_facts: false,
            case_key: None,
            expires_at: t0() + SAGA_RETENTION,
        }),
    };
    store
        .complete(&loyalty, &step_done(serde_json::json!({"points": 109})))
        .await
        .unwrap();
    store
        .complete(&erp, &step_done(serde_json::json!({"document": "SO-1"})))
        .await
        .unwrap();
    let record = store.saga(saga).await.unwrap().unwrap();
    assert_eq!(record.steps["erp_post"].status, StepStatus::Completed);
    assert_eq!(
        record.steps["erp_post"].result.as_ref().unwrap()["document"],
        "SO-1"
    );
    assert_eq!(
        record.steps["loyalty_accrual"].result.as_ref().unwrap()["points"],
        109
    );
    assert!(matches!(
        store
            .claim(&step_req(saga, "erp_post", "h", t0()))
            .await
            .unwrap(),
        ClaimOutcome::AlreadyCompleted { .. }
    ));
    // A step recorded without a claim (natively idempotent system).
    store
        .record_completed(
            &IdempotencyKey::saga_step(saga, "shop_status"),
            "h",
            &step_done(serde_json::json!({})),
        )
        .await
        .unwrap();
    assert_eq!(store.saga(saga).await.unwrap().unwrap().steps.len(), 3);
}

#[tokio::test]
async fn dynamodb_quarantine_keeps_the_raw_body() {
    let (store, client) = store().await;
    let id = uuid::Uuid::new_v4();
    store
        .quarantine(&QuarantinedDelivery {
            body_location: None,
            id,
            received_at: t0(),
            source: "shopify".into(),
            topic: Some("orders/create".into()),
            shop: None,
            delivery_id: Some("ev-1".into()),
            reason: "does not parse".into(),
            body: b"{not json".to_vec(),
        })
        .await
        .unwrap();
    let item = client
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("QUARANTINE#{id}")),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let gz = item["body_gzip"].as_b().unwrap().as_ref().to_vec();
    let mut body = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut body)
        .unwrap();
    assert_eq!(body, b"{not json");
    assert_eq!(item["reason"].as_s().unwrap(), "does not parse");
}

fn signed_headers(event_id: &str, body: &str) -> HeaderMap {
    signed_shopify_headers(SECRET, event_id, body)
}

async fn wire_intake(bus_name: &str) -> (Arc<OrderIntake>, DynamoDbStateStore) {
    let cfg = aws_config().await;
    let table = create_state_table(&aws_sdk_dynamodb::Client::new(&cfg)).await;
    wire_intake_on(bus_name, &table).await
}

async fn wire_intake_on(bus_name: &str, table: &str) -> (Arc<OrderIntake>, DynamoDbStateStore) {
    let cfg = aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let intake = OrderIntake::new(
        Arc::new(DynamoDbStateStore::new(ddb.clone(), table)),
        Arc::new(EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(&cfg),
            bus_name,
        )),
        IntakeConfig {
            shopify: Some(HmacSecrets {
                current: Secret::new(SECRET),
                previous: None,
            }),
            ..IntakeConfig::default()
        },
    );
    (Arc::new(intake), DynamoDbStateStore::new(ddb, table))
}

async fn deliver(intake: &OrderIntake, headers: &HeaderMap, body: &str) -> u16 {
    intake
        .handle(WebhookRequest {
            route: WebhookRoute::Shopify,
            headers,
            body: body.as_bytes(),
            received_at: Utc::now(),
            gateway_time: None,
            deadline: Some(Utc::now() + Duration::seconds(5)),
        })
        .await
        .status
}

#[tokio::test]
async fn intake_on_aws_routes_one_event_id_to_sqs_for_duplicate_and_concurrent_deliveries() {
    let cfg = aws_config().await;
    let routed = create_routed_bus(&cfg, &["OrderPlaced"]).await;
    let (intake, store) = wire_intake(&routed.bus).await;
    let headers = signed_headers("ev-wire-1", ORDER);

    // Two deliveries at once, then a redelivery.
    let (a, b) = tokio::join!(
        deliver(&intake, &headers, ORDER),
        deliver(&intake, &headers, ORDER)
    );
    assert!([a, b].contains(&200), "{a} {b}");
    assert!([a, b].iter().all(|s| *s == 200 || *s == 503), "{a} {b}");
    assert_eq!(deliver(&intake, &headers, ORDER).await, 200);

    // Each accepted delivery publishes, always the same event (a delivery
    // recorded but not yet published looks like one published).
    let messages = drain(&cfg, &routed.queue_url).await;
    assert!(!messages.is_empty());
    let ids: std::collections::BTreeSet<_> = messages
        .iter()
        .map(|m| m["detail"]["event_id"].to_string())
        .collect();
    assert_eq!(ids.len(), 1, "one event id routed: {messages:?}");
    let m = &messages[0];
    assert_eq!(m["detail-type"], "OrderPlaced");
    assert_eq!(m["source"], "retailflow.intake");
    assert_eq!(m["detail"]["event_type"], "OrderPlaced");
    assert_eq!(
        m["detail"]["correlation_id"],
        "shopify:acme.myshopify.com:order:5872301948123"
    );
    assert_eq!(
        m["detail"]["detail"]["order"]["totals"]["total"]["shop"]["minor"],
        12808
    );
    let saga = store
        .saga("shopify:acme.myshopify.com:order:5872301948123")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        saga.first_event_ids.get("OrderPlaced").map(String::as_str),
        m["detail"]["event_id"].as_str(),
        "what a re-drive asks the archive for"
    );
}

#[tokio::test]
async fn intake_on_aws_answers_503_when_publishing_fails_and_the_retry_publishes() {
    let cfg = aws_config().await;
    let routed = create_routed_bus(&cfg, &["OrderPlaced"]).await;
    // A bus that does not exist: PutEvents fails.
    let (broken, store) = wire_intake("no-such-bus").await;
    let headers = signed_headers("ev-wire-2", ORDER);
    assert_eq!(deliver(&broken, &headers, ORDER).await, 503);
    // The retry, on the same state table once the bus works: the failed
    // attempt's record does not swallow it.
    let (intake, _) = wire_intake_on(&routed.bus, store.table()).await;
    assert_eq!(deliver(&intake, &headers, ORDER).await, 200);
    assert_eq!(drain(&cfg, &routed.queue_url).await.len(), 1);
}

#[tokio::test]
async fn eventbridge_publish_to_a_missing_bus_is_a_retryable_error() {
    let cfg = aws_config().await;
    let bus = EventBridgeBus::new(aws_sdk_eventbridge::Client::new(&cfg), "no-such-bus");
    let err = bus
        .publish(&[BusEvent {
            event_id: uuid::Uuid::new_v4(),
            detail_type: "OrderPlaced".into(),
            source: "retailflow.intake".into(),
            detail: "{}".into(),
            time: Utc::now(),
        }])
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(matches!(
        err,
        BusError::Unavailable(_) | BusError::Rejected { .. }
    ));
}

#[tokio::test]
async fn eventbridge_refuses_oversized_entries_before_calling() {
    let cfg = aws_config().await;
    let bus = EventBridgeBus::new(aws_sdk_eventbridge::Client::new(&cfg), "any");
    let err = bus
        .publish(&[BusEvent {
            event_id: uuid::Uuid::new_v4(),
            detail_type: "OrderPlaced".into(),
            source: "retailflow.intake".into(),
            detail: "x".repeat(300 * 1024),
            time: Utc::now(),
        }])
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::TooLarge { .. }));
}

#[tokio::test]
async fn one_webhook_costs_one_dynamodb_request_and_one_put_events() {
    use retailflow_e2e::RequestCounter;
    let cfg = aws_config().await;
    let routed = create_routed_bus(&cfg, &["OrderPlaced"]).await;
    let ddb_count = RequestCounter::default();
    let eb_count = RequestCounter::default();
    let ddb = retailflow_e2e::counted_dynamodb(&cfg, &ddb_count);
    let table = create_state_table(&ddb).await;
    let eb = retailflow_e2e::counted_eventbridge(&cfg, &eb_count);
    let intake = OrderIntake::new(
        Arc::new(DynamoDbStateStore::new(ddb, &table)),
        Arc::new(EventBridgeBus::new(eb, &routed.bus)),
        IntakeConfig {
            shopify: Some(HmacSecrets {
                current: Secret::new(SECRET),
                previous: None,
            }),
            ..IntakeConfig::default()
        },
    );
    ddb_count.take();
    let headers = signed_headers("ev-cost-1", ORDER);

    assert_eq!(deliver(&intake, &headers, ORDER).await, 200);
    let (new_ddb, new_eb) = (ddb_count.take(), eb_count.take());
    assert_eq!(deliver(&intake, &headers, ORDER).await, 200);
    let (dup_ddb, dup_eb) = (ddb_count.take(), eb_count.take());
    let bad_headers = signed_headers("ev-cost-2", "{not json");
    assert_eq!(deliver(&intake, &bad_headers, "{not json").await, 400);
    let (bad_ddb, bad_eb) = (ddb_count.take(), eb_count.take());

    println!("requests per webhook: new DynamoDB {new_ddb} EventBridge {new_eb}; redelivery DynamoDB {dup_ddb} EventBridge {dup_eb}; bad body DynamoDB {bad_ddb} EventBridge {bad_eb}");
    assert_eq!(
        (new_ddb, new_eb),
        (2, 1),
        "the record, then the saga (separate writes: a transaction bills each item twice), and one PutEvents"
    );
    assert_eq!(
        (dup_ddb, dup_eb),
        (2, 1),
        "a redelivery: the refused write (it hands back the record), the saga written again (its first writer may have stopped before it), the event again"
    );
    assert_eq!(
        (bad_ddb, bad_eb),
        (1, 0),
        "bad input costs one quarantine put"
    );
}
