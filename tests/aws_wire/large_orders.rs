//! Large orders over real AWS APIs (moto, S3 included): a Shopify cart of
//! 500 lines over 150 stocked SKUs and an admin-API order of 2,000 lines
//! ride EventBridge and SQS by claim check (their detail in S3), reach the
//! ERP with every line, accrue points, commit stock in several
//! transactions (DynamoDB takes 100 items in one), and are returned.

use std::sync::Arc;

use chrono::Utc;
use retailflow::large_orders::{shopify_order, shopify_refund, sku};
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_aws::adapters::dynamodb_catalog::DynamoDbCatalog;
use retailflow_aws::adapters::dynamodb_stock::DynamoDbStock;
use retailflow_aws::adapters::eventbridge::EventBridgeBus;
use retailflow_aws::adapters::s3_claim_checks::S3ClaimChecks;
use retailflow_core::claim_check::{resolve, ClaimCheckedBus};
use retailflow_core::intake::{IntakeConfig, OrderIntake, WebhookRequest, WebhookRoute};
use retailflow_core::ports::queue::QueueRecord;
use retailflow_core::ports::stock::{PostedOutcome, StockReservations};
use retailflow_core::ports::{ClaimChecks, EventBus};
use retailflow_core::steps::{Invocation, StepOutcome};
use retailflow_core::webhook::{HmacSecrets, Secret};
use retailflow_e2e::{
    aws_config, create_state_table, poll_once, queue_with_dlq, route, signed_shopify_topic_headers,
    unique, Queue,
};

const SECRET: &str = "large-secret";
const ON_HAND: u32 = 1000;

struct Stack {
    sqs: aws_sdk_sqs::Client,
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    claims: Arc<S3ClaimChecks>,
    intake: OrderIntake,
    erp: retailflow_core::steps::erp_posting::ErpPosting,
    loyalty: retailflow_core::steps::loyalty_accrual::LoyaltyAccrual,
    returns: retailflow_core::steps::return_reversal::ReturnReversal,
    stock_step: retailflow_core::steps::stock_commit::StockCommit,
    stock: Arc<DynamoDbStock>,
    sims: simulators::Simulators,
    queues: [Queue; 4],
}

async fn stack() -> Stack {
    let cfg = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table = create_state_table(&ddb).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&cfg)
            .force_path_style(true)
            .build(),
    );
    let bucket = unique("claims").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let eb = aws_sdk_eventbridge::Client::new(&cfg);
    let bus_name = unique("bus");
    eb.create_event_bus().name(&bus_name).send().await.unwrap();
    let queues = [
        queue_with_dlq(&sqs, 5).await,
        queue_with_dlq(&sqs, 5).await,
        queue_with_dlq(&sqs, 5).await,
        queue_with_dlq(&sqs, 5).await,
    ];
    for (detail_type, q) in [
        ("OrderPlaced", &queues[0]),
        ("OrderPlaced", &queues[1]),
        ("OrderPlaced", &queues[2]),
        ("OrderCancelled", &queues[2]),
        ("RefundIssued", &queues[3]),
    ] {
        route(&eb, &sqs, &bus_name, detail_type, q).await;
    }
    let claims = Arc::new(S3ClaimChecks::new(s3, &bucket));
    let bus: Arc<dyn EventBus> = Arc::new(ClaimCheckedBus::new(
        Arc::new(EventBridgeBus::new(eb, &bus_name)),
        claims.clone(),
    ));
    let store = Arc::new(DynamoDbStateStore::new(ddb.clone(), &table));
    let stock = Arc::new(DynamoDbStock::new(ddb.clone(), &table));
    for n in 0..150 {
        stock.set_on_hand(&sku(n), ON_HAND).await.unwrap();
    }
    let sims = simulators::Simulators::start().await.unwrap();
    let (erp, loyalty) = retailflow_e2e::saga_steps(store.clone(), bus.clone(), &sims);
    Stack {
        intake: OrderIntake::new(
            store.clone(),
            bus.clone(),
            IntakeConfig {
                shopify: Some(HmacSecrets {
                    current: Secret::new(SECRET),
                    previous: None,
                }),
                ..IntakeConfig::default()
            },
        )
        .with_claim_checks(claims.clone()),
        returns: retailflow_e2e::return_step(store.clone(), bus.clone(), &sims),
        stock_step: retailflow_core::steps::stock_commit::StockCommit::new(
            store.clone(),
            bus,
            stock.clone(),
            Arc::new(DynamoDbCatalog::new(ddb.clone(), &table)),
            retailflow_core::idempotency::LeasePolicy::default(),
        ),
        erp,
        loyalty,
        stock,
        sims,
        sqs,
        ddb,
        table,
        claims,
        queues,
    }
}

impl Stack {
    async fn deliver(&self, topic: &str, event_id: &str, body: &str) {
        let h = signed_shopify_topic_headers(SECRET, topic, event_id, body);
        let resp = self
            .intake
            .handle(WebhookRequest {
                route: WebhookRoute::Shopify,
                headers: &h,
                body: body.as_bytes(),
                received_at: Utc::now(),
                gateway_time: None,
                deadline: None,
            })
            .await;
        assert_eq!(resp.status, 200, "{topic}: {}", resp.body);
    }

    /// One batch of queue `i` through its step, each message's detail
    /// fetched from S3 first, as the functions do.
    async fn poll(&self, i: usize) -> usize {
        let claims: &dyn ClaimChecks = self.claims.as_ref();
        poll_once(&self.sqs, &self.queues[i], |r: QueueRecord| async move {
            assert!(r.body.len() < 256 * 1024, "the message fits SQS");
            let body = match resolve(claims, &r.body).await {
                Ok(b) => b.into_owned(),
                Err(e) => return StepOutcome::from(e),
            };
            let inv = Invocation {
                now: Utc::now(),
                deadline: None,
                attempt: r.receive_count,
            };
            match i {
                0 => retailflow_core::steps::handle_message(&self.erp, &body, inv).await,
                1 => retailflow_core::steps::handle_message(&self.loyalty, &body, inv).await,
                2 => {
                    retailflow_core::steps::stock_commit::handle_stock_message(
                        &self.stock_step,
                        &body,
                        inv,
                    )
                    .await
                }
                _ => retailflow_core::steps::handle_return_message(&self.returns, &body, inv).await,
            }
        })
        .await
    }

    async fn available(&self, n: usize) -> u32 {
        self.stock.available(&sku(n), Utc::now()).await.unwrap()
    }

    async fn item_exists(&self, pk: &str) -> bool {
        self.ddb
            .get_item()
            .table_name(&self.table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(pk.to_string()),
            )
            .send()
            .await
            .unwrap()
            .item()
            .is_some()
    }
}

#[tokio::test]
async fn a_500_line_cart_over_150_skus_rides_by_s3_and_commits_its_stock_in_parts_once() {
    let s = stack().await;
    let order = shopify_order(7_100_000_500, 500, 150);
    let body = order.to_string();
    s.deliver("orders/create", "ev-l500", &body).await;
    let sent = retailflow_e2e::peek(&s.sqs, &s.queues[0].url).await;
    assert!(
        sent.contains("detail_ref") && sent.contains("s3://"),
        "by claim check"
    );
    assert_eq!(s.poll(0).await, 1);
    assert_eq!(s.poll(1).await, 1);
    assert_eq!(s.poll(2).await, 1);
    let so = s.sims.netsuite_sales_orders();
    assert_eq!(so[0].lines, 500 + 1, "every line, and the tax line");
    assert_eq!(s.sims.loyalty_journals().len(), 1);
    // 500 units over 150 SKUs: parts of at most 98 SKUs, each once.
    let key = "shopify:acme.myshopify.com:order:7100000500";
    assert!(s.item_exists(&format!("COMMIT#{key}")).await);
    assert!(s.item_exists(&format!("COMMIT#{key}#1")).await);
    assert!(!s.item_exists(&format!("COMMIT#{key}#2")).await);
    assert_eq!(s.available(0).await, ON_HAND - 4);
    assert_eq!(s.available(149).await, ON_HAND - 3);
    // A redelivery takes nothing twice.
    s.deliver("orders/create", "ev-l500", &body).await;
    for q in 0..3 {
        assert_eq!(s.poll(q).await, 1);
    }
    assert_eq!(s.available(149).await, ON_HAND - 3);
    assert_eq!(s.sims.netsuite_sales_orders()[0].upserts, 1);
    // The ERP has it: every part's units leave `unposted`; a part its
    // commit has yet to write is waited for, not skipped.
    let part_1 = aws_sdk_dynamodb::types::AttributeValue::S(format!("COMMIT#{key}#1"));
    let item = s
        .ddb
        .delete_item()
        .table_name(&s.table)
        .key("pk", part_1)
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(
        s.stock.mark_posted(key, Utc::now()).await.unwrap(),
        PostedOutcome::NotCommitted
    );
    s.ddb
        .put_item()
        .table_name(&s.table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.stock.mark_posted(key, Utc::now()).await.unwrap(),
        PostedOutcome::Marked
    );
    assert_eq!(
        s.stock.mark_posted(key, Utc::now()).await.unwrap(),
        PostedOutcome::Unchanged
    );
    // The return of all of it: one credit memo of every line.
    let refund = shopify_refund(&order, 7_100_000_501, 500).to_string();
    s.deliver("refunds/create", "ev-l500-r", &refund).await;
    assert_eq!(s.poll(3).await, 1);
    let memos = s.sims.netsuite_credit_memos();
    assert_eq!(memos.len(), 1);
    assert_eq!(memos[0].total.minor, 500 * 216);
    assert_eq!(s.sims.loyalty_journals().len(), 2, "accrual and reversal");
}

#[tokio::test]
async fn a_cancelled_order_of_150_skus_gets_every_part_of_its_stock_back_once() {
    let s = stack().await;
    let mut order = shopify_order(7_100_000_150, 300, 150);
    s.deliver("orders/create", "ev-l150", &order.to_string())
        .await;
    assert_eq!(s.poll(2).await, 1);
    assert_eq!(s.available(0).await, ON_HAND - 2);
    assert_eq!(s.available(149).await, ON_HAND - 2);
    order["cancelled_at"] = "2026-11-20T11:00:00-05:00".into();
    order["cancel_reason"] = "customer".into();
    s.deliver("orders/cancelled", "ev-l150-c", &order.to_string())
        .await;
    assert_eq!(s.poll(2).await, 1);
    for n in [0, 97, 98, 149] {
        assert_eq!(s.available(n).await, ON_HAND, "{}", sku(n));
    }
}

#[tokio::test]
async fn an_admin_api_order_of_2000_lines_flows_over_real_aws_apis() {
    let s = stack().await;
    let order = shopify_order(7_100_002_000, 2000, 2000);
    let body = order.to_string();
    let started = std::time::Instant::now();
    s.deliver("orders/create", "ev-l2000", &body).await;
    for q in 0..3 {
        assert_eq!(s.poll(q).await, 1);
    }
    let refund = shopify_refund(&order, 7_100_002_001, 2000).to_string();
    s.deliver("refunds/create", "ev-l2000-r", &refund).await;
    assert_eq!(s.poll(3).await, 1);
    println!(
        "large order over moto: 2000 lines, {} bytes, order and return in {:.1} s",
        body.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(s.sims.netsuite_sales_orders()[0].lines, 2000 + 1);
    assert_eq!(s.sims.netsuite_credit_memos()[0].total.minor, 2000 * 216);
    assert_eq!(s.available(0).await, ON_HAND - 1);
    assert_eq!(s.available(149).await, ON_HAND - 1);
}
