//! The order saga over real AWS APIs (moto): intake publishes to EventBridge,
//! rules route OrderPlaced to both step queues, a harness stands in for the
//! SQS event source mappings (receive, call the function's batch logic,
//! delete what succeeded), and the steps post to the simulators. Every AWS
//! request is counted on the wire: the bill of one order.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_aws::adapters::eventbridge::EventBridgeBus;
use retailflow_core::intake::{IntakeConfig, OrderIntake, WebhookRequest, WebhookRoute};
use retailflow_core::ports::queue::QueueRecord;
use retailflow_core::ports::StateStore;
use retailflow_core::steps::StepOutcome;
use retailflow_core::webhook::{HmacSecrets, Secret};
use retailflow_e2e::{
    aws_config, create_state_table, poll_once, poll_once_with, poll_step, queue_with_dlq, route,
    saga_steps, signed_shopify_headers, unique, RequestCounter,
};
use simulators::Simulators;

const ORDER: &str = include_str!("../../events/payloads/shopify-orders-create-discount-code.json");
const SECRET: &str = "saga-secret";

struct Counted {
    ddb: RequestCounter,
    eb: RequestCounter,
    sqs: RequestCounter,
}

#[tokio::test]
async fn an_order_flows_through_real_aws_apis_to_erp_and_loyalty_once() {
    let cfg = aws_config().await;
    let counted = Counted {
        ddb: RequestCounter::default(),
        eb: RequestCounter::default(),
        sqs: RequestCounter::default(),
    };
    let ddb = retailflow_e2e::counted_dynamodb(&cfg, &counted.ddb);
    let eb = retailflow_e2e::counted_eventbridge(&cfg, &counted.eb);
    let sqs_counted = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&cfg)
            .interceptor(counted.sqs.clone())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::new(&cfg);

    // Topology: the bus, both step queues with DLQs, both rules.
    let table = create_state_table(&aws_sdk_dynamodb::Client::new(&cfg)).await;
    let bus = unique("bus");
    let plain_eb = aws_sdk_eventbridge::Client::new(&cfg);
    plain_eb.create_event_bus().name(&bus).send().await.unwrap();
    let erp_q = queue_with_dlq(&sqs, 5).await;
    let loyalty_q = queue_with_dlq(&sqs, 5).await;
    for q in [&erp_q, &loyalty_q] {
        route(&plain_eb, &sqs, &bus, "OrderPlaced", q).await;
    }

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
            ..IntakeConfig::default()
        },
    );
    let (erp, loyalty) = saga_steps(store.clone(), events.clone(), &sims);
    let (_, _, _) = (counted.ddb.take(), counted.eb.take(), counted.sqs.take());

    // The webhook, delivered once now and once more after the steps.
    let deliver = || async {
        let h = signed_shopify_headers(SECRET, "ev-saga-1", ORDER);
        let resp = intake
            .handle(WebhookRequest {
                route: WebhookRoute::Shopify,
                headers: &h,
                body: ORDER.as_bytes(),
                received_at: Utc::now(),
                gateway_time: None,
                deadline: None,
            })
            .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp
    };
    deliver().await;
    let intake_cost = (counted.ddb.take(), counted.eb.take());
    // Read by bench/costs.py: what each item weighs after each step, since
    // DynamoDB bills a write per KB of the item written (an update: of the
    // larger of before and after).
    let plain_ddb = aws_sdk_dynamodb::Client::new(&cfg);
    print_item_bytes(&plain_ddb, &table, "intake").await;

    assert_eq!(
        poll_step(&sqs, &erp_q, &erp).await,
        1,
        "the rule routed one OrderPlaced to erp-post"
    );
    let erp_cost = (counted.ddb.take(), counted.eb.take());
    print_item_bytes(&plain_ddb, &table, "erp-post").await;
    assert_eq!(
        poll_step(&sqs, &loyalty_q, &loyalty).await,
        1,
        "and one to loyalty-accrual"
    );
    let loyalty_cost = (counted.ddb.take(), counted.eb.take());
    print_item_bytes(&plain_ddb, &table, "loyalty-accrual").await;

    // The redelivery is published again (a delivery recorded by a worker
    // that died before publishing looks the same); the steps find their
    // work done and publish their stored events again, posting nothing.
    assert_eq!(deliver().await.body["duplicate"], true);
    let redelivery_cost = (counted.ddb.take(), counted.eb.take());
    assert_eq!(poll_step(&sqs, &erp_q, &erp).await, 1);
    let erp_again_cost = (counted.ddb.take(), counted.eb.take());
    assert_eq!(poll_step(&sqs, &loyalty_q, &loyalty).await, 1);
    let loyalty_again_cost = (counted.ddb.take(), counted.eb.take());

    for (what, (ddb, eb)) in [
        ("intake", intake_cost),
        ("erp-post", erp_cost),
        ("loyalty-accrual", loyalty_cost),
        ("intake-redelivery", redelivery_cost),
        ("erp-post-redelivered", erp_again_cost),
        ("loyalty-accrual-redelivered", loyalty_again_cost),
    ] {
        println!("bench-requests order {what} dynamodb={ddb} eventbridge={eb}");
    }
    println!(
        "AWS requests per order: intake DynamoDB {} EventBridge {}; erp-post DynamoDB {} EventBridge {}; loyalty-accrual DynamoDB {} EventBridge {}",
        intake_cost.0, intake_cost.1, erp_cost.0, erp_cost.1, loyalty_cost.0, loyalty_cost.1
    );
    assert_eq!(
        intake_cost,
        (2, 1),
        "the conditional record of the delivery, then the saga started (separate writes: a transaction bills each item twice), then one event"
    );
    assert_eq!(
        redelivery_cost,
        (2, 1),
        "a redelivery: the refused write (it hands back the record), the saga written again (its first writer may have stopped before it), that event again"
    );
    assert_eq!(
        erp_again_cost,
        (1, 1),
        "the duplicate OrderPlaced: the saga read finds the posting, its stored event again"
    );
    assert_eq!(
        loyalty_again_cost,
        (1, 1),
        "the duplicate OrderPlaced: the refused claim, the stored event again"
    );
    assert_eq!(
        erp_cost,
        (2, 1),
        "NetSuite upserts: no claim; one saga read (a cancelled order is never posted again), one completion write, one event"
    );
    assert_eq!(loyalty_cost, (2, 1), "claim + completion, one event");

    assert_eq!(sims.netsuite_sales_orders().len(), 1);
    assert_eq!(sims.netsuite_sales_orders()[0].total.minor, 12808);
    assert_eq!(sims.loyalty_journals().len(), 1);
    assert_eq!(sims.loyalty_journals()[0].points, 109);
    let saga = store
        .saga("shopify:acme.myshopify.com:order:5872301948123")
        .await
        .unwrap()
        .unwrap();
    assert!(
        saga.event_types.contains("OrderPostedToErp")
            && saga.event_types.contains("LoyaltyAccrued"),
        "{saga:?}"
    );
    assert_eq!(
        saga.steps["erp_post"].result.as_ref().unwrap()["total"]["minor"],
        12808
    );
    // `retailflow trace` reads the same story back from DynamoDB.
    let trace = retailflow_core::trace::trace_order(
        store.as_ref(),
        "shopify:acme.myshopify.com:order:5872301948123",
    )
    .await
    .unwrap()
    .unwrap();
    let text = retailflow_core::trace::render(&trace);
    let so = &sims.netsuite_sales_orders()[0].tran_id;
    assert!(text.contains(&format!("document_number={so}")), "{text}");
    assert!(trace.open_steps.is_empty(), "{text}");
    // Both queues are empty: nothing was left behind.
    assert_eq!(poll_step(&sqs, &erp_q, &erp).await, 0);
    assert_eq!(poll_step(&sqs, &loyalty_q, &loyalty).await, 0);
    let _ = sqs_counted;
}

#[tokio::test]
async fn permanent_failures_reach_the_dlq_with_their_reason_and_retries_redrive_after_max_receives()
{
    let cfg = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let q = queue_with_dlq(&sqs, 2).await;
    sqs.send_message()
        .queue_url(&q.url)
        .message_body(r#"{"detail-type":"OrderPlaced","detail":{"correlation_id":"c-9"}}"#)
        .send()
        .await
        .unwrap();
    poll_once(&sqs, &q, |_r| async {
        StepOutcome::Reject {
            reason: "order changed after posting".into(),
        }
    })
    .await;
    let dead = sqs
        .receive_message()
        .queue_url(&q.dlq_url)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(dead.len(), 1);
    let attrs = dead[0].message_attributes().unwrap();
    assert_eq!(
        attrs["reason"].string_value(),
        Some("order changed after posting")
    );
    assert_eq!(attrs["correlation_id"].string_value(), Some("c-9"));

    // A record that keeps coming back (reported as a batch failure, never
    // deleted) is redriven by SQS itself once maxReceiveCount is used up.
    sqs.send_message()
        .queue_url(&q.url)
        .message_body("{}")
        .send()
        .await
        .unwrap();
    for _ in 0..3 {
        let _ = sqs
            .receive_message()
            .queue_url(&q.url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let redriven = sqs
        .receive_message()
        .queue_url(&q.dlq_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(
        redriven.len(),
        1,
        "redriven to the DLQ after maxReceiveCount"
    );
}

#[tokio::test]
async fn a_retry_hides_the_message_for_the_policy_delay_then_it_comes_back() {
    let cfg = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let q = queue_with_dlq(&sqs, 5).await;
    sqs.send_message()
        .queue_url(&q.url)
        .message_body("{}")
        .send()
        .await
        .unwrap();
    let policy = retailflow_core::resilience::RetryPolicy {
        base: Duration::from_secs(3),
        max: Duration::from_secs(3),
    };
    let retry = |_r: QueueRecord| async {
        StepOutcome::Retry {
            reason: "429".into(),
            retry_after: None,
        }
    };
    assert_eq!(poll_once_with(&sqs, &q, &policy, retry).await, 1);
    // ChangeMessageVisibility(3 s) through the SQS adapter: not back at once...
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        poll_once_with(&sqs, &q, &policy, retry).await,
        0,
        "hidden for the retry delay"
    );
    // ...but back after the delay, with its receive count up.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let back = sqs
        .receive_message()
        .queue_url(&q.url)
        .message_system_attribute_names(
            aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
        )
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(back.len(), 1);
    let count = back[0].attributes().unwrap()
        [&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount]
        .clone();
    assert_eq!(count, "2");
}

/// Prints `bench-item-bytes order <stage> <kind> <bytes>` for every item.
async fn print_item_bytes(client: &aws_sdk_dynamodb::Client, table: &str, stage: &str) {
    let items = client.scan().table_name(table).send().await.unwrap();
    for item in items.items() {
        let pk = item
            .get("pk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let kind = pk.split('#').next().unwrap_or_default().to_lowercase();
        let bytes: usize = item.iter().map(|(k, v)| k.len() + attribute_bytes(v)).sum();
        println!("bench-item-bytes order {stage} {kind} {bytes}");
    }
}

/// DynamoDB's item size rules, near enough: names and values by their
/// bytes, numbers by digits, containers with their 3-byte overhead.
fn attribute_bytes(v: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => s.len(),
        A::N(n) => n.len().div_ceil(2) + 1,
        A::B(b) => b.as_ref().len(),
        A::Bool(_) | A::Null(_) => 1,
        A::Ss(xs) => xs.iter().map(String::len).sum(),
        A::Ns(xs) => xs.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        A::L(xs) => 3 + xs.iter().map(|x| 1 + attribute_bytes(x)).sum::<usize>(),
        A::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + attribute_bytes(x))
                .sum::<usize>()
        }
        _ => 0,
    }
}
