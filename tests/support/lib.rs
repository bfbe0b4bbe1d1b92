//! Test support: a moto server on loopback for the AWS-wire tests, and AWS
//! SDK clients pointed at it.
//!
//! Uses `RETAILFLOW_MOTO_ENDPOINT` if set; otherwise starts moto (serialized,
//! from `.venv-tools/moto/`, or `RETAILFLOW_MOTO_SERVER`) on a free loopback
//! port, once per test binary, with a watchdog that stops it when the test
//! process exits.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use retailflow_aws::adapters::sqs::SqsQueueControl;
use retailflow_core::ports::queue::QueueRecord;
use retailflow_core::queue_batch::process_batch;
use retailflow_core::resilience::RetryPolicy;
use retailflow_core::steps::StepOutcome;

pub struct Moto {
    pub endpoint: String,
    /// The watchdog shell that owns moto_server; it exits with the test process.
    _watchdog: Option<std::process::Child>,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// The moto command: the moto venv's python running `moto_serialized.py`
/// (one request at a time, so conditional writes are atomic as on AWS, or
/// with DynamoDB's contention rules when `extra` says so), or
/// `RETAILFLOW_MOTO_SERVER` if set (and `extra` is empty).
fn moto_command(port: u16, extra: &str) -> String {
    if let (Ok(p), true) = (std::env::var("RETAILFLOW_MOTO_SERVER"), extra.is_empty()) {
        return format!("'{p}' -H 127.0.0.1 -p {port}");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("../.venv-tools/moto/bin/python");
    let script = root.join("deploy/moto_serialized.py");
    format!(
        "'{}' '{}' 127.0.0.1 {port} {extra}",
        python.display(),
        script.display()
    )
}

fn http_get_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1)?.parse().ok()
}

/// Starts a moto server on a free loopback port, with a watchdog shell that
/// stops it when this test process is gone.
fn start_moto(extra: &str) -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let command = moto_command(port, extra);
    let me = std::process::id();
    let script = format!(
        "{command} >/dev/null 2>&1 & m=$!; \
         while kill -0 {me} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; kill $m 2>/dev/null"
    );
    let watchdog = Command::new("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .spawn()
        .expect("starting moto_server; install it with infra/scripts/tools.sh moto");
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while http_get_status(&addr, "/moto-api/") != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "moto ({command}) did not answer on {addr}; install it with infra/scripts/tools.sh moto"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Moto {
        endpoint: format!("http://{addr}"),
        _watchdog: Some(watchdog),
    }
}

/// The shared moto endpoint, started on first use.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(|| {
        if let Ok(endpoint) = std::env::var("RETAILFLOW_MOTO_ENDPOINT") {
            return Moto {
                endpoint,
                _watchdog: None,
            };
        }
        start_moto("")
    })
}

/// A moto of its own that meets DynamoDB's contention rules
/// (`deploy/moto_serialized.py --contention`): a transaction keeps its items
/// busy `transaction_ms`, and an item takes `item_wcu` write units a second
/// (0: no limit).
pub fn contended_moto(transaction_ms: u64, item_wcu: u32) -> Moto {
    start_moto(&format!(
        "--contention {transaction_ms} --item-wcu {item_wcu}"
    ))
}

impl Moto {
    /// What the contention model refused so far: (conflicts, throttled).
    pub fn contention_counts(&self) -> (u64, u64) {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).expect("moto is up");
        write!(
            s,
            "GET /_contention HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(body).expect("contention counts");
        (
            v["conflicts"].as_u64().unwrap_or(0),
            v["throttled"].as_u64().unwrap_or(0),
        )
    }

    /// SDK configuration for this moto: real clients, test credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(retailflow_aws::lambda::aws_https_client())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "moto",
            ))
            .load()
            .await
    }
}

/// SDK configuration for moto: real clients, loopback endpoint, test credentials.
pub async fn aws_config() -> aws_config::SdkConfig {
    moto().sdk_config().await
}

/// A fresh name per test, so tests share one moto without sharing state.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates a state table shaped like template.yaml's StateTable.
pub async fn create_state_table(client: &aws_sdk_dynamodb::Client) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let name = unique("state");
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("hold_minute")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("time_bucket")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("started_at")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        // As template.yaml: sagas by the hour they started.
        .global_secondary_indexes(
            aws_sdk_dynamodb::types::GlobalSecondaryIndex::builder()
                .index_name(retailflow_aws::adapters::dynamodb_saga_index::SAGAS_INDEX)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("time_bucket")
                        .key_type(KeyType::Hash)
                        .build()
                        .unwrap(),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("started_at")
                        .key_type(KeyType::Range)
                        .build()
                        .unwrap(),
                )
                .projection(
                    aws_sdk_dynamodb::types::Projection::builder()
                        .projection_type(aws_sdk_dynamodb::types::ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        // As template.yaml: stock holds by expiry minute.
        .global_secondary_indexes(
            aws_sdk_dynamodb::types::GlobalSecondaryIndex::builder()
                .index_name(retailflow_aws::adapters::dynamodb_stock::HOLDS_INDEX)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("hold_minute")
                        .key_type(KeyType::Hash)
                        .build()
                        .unwrap(),
                )
                .projection(
                    aws_sdk_dynamodb::types::Projection::builder()
                        .projection_type(aws_sdk_dynamodb::types::ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    name
}

/// A bus with one rule routing `detail_type` events from the intake to a new queue.
pub struct RoutedBus {
    pub bus: String,
    pub queue_url: String,
}

pub async fn create_routed_bus(config: &aws_config::SdkConfig, detail_types: &[&str]) -> RoutedBus {
    let eb = aws_sdk_eventbridge::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    let bus = unique("bus");
    eb.create_event_bus().name(&bus).send().await.unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("q"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let pattern = serde_json::json!({
        "source": [retailflow_core::events::INTAKE_SOURCE],
        "detail-type": detail_types,
    });
    let rule = unique("rule");
    eb.put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    RoutedBus { bus, queue_url }
}

/// Drains the queue until it stays empty, returning every message body.
pub async fn drain(config: &aws_config::SdkConfig, queue_url: &str) -> Vec<serde_json::Value> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut out = Vec::new();
    loop {
        let resp = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let msgs = resp.messages.unwrap_or_default();
        if msgs.is_empty() {
            return out;
        }
        for m in msgs {
            out.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// Counts the HTTP requests an SDK client actually transmits (retries
/// included): the AWS bill of a step, measured on the wire.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl RequestCounter {
    pub fn take(&self) -> usize {
        self.0.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
}

/// A DynamoDB client whose requests `counter` counts.
pub fn counted_dynamodb(
    cfg: &aws_config::SdkConfig,
    counter: &RequestCounter,
) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(cfg)
            .interceptor(counter.clone())
            .build(),
    )
}

/// An EventBridge client whose requests `counter` counts.
pub fn counted_eventbridge(
    cfg: &aws_config::SdkConfig,
    counter: &RequestCounter,
) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(cfg)
            .interceptor(counter.clone())
            .build(),
    )
}

impl aws_sdk_dynamodb::config::Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _ctx: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// A step queue and its DLQ, by URL.
pub struct Queue {
    pub url: String,
    pub dlq_url: String,
}

pub async fn arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone()
}

/// Stands in for an SQS event source mapping: receives a batch, runs the
/// function's batch logic, deletes what it did not report as failed.
pub async fn poll_once<F, Fut>(sqs: &aws_sdk_sqs::Client, q: &Queue, handle: F) -> usize
where
    F: Fn(QueueRecord) -> Fut,
    Fut: std::future::Future<Output = StepOutcome>,
{
    poll_once_with(sqs, q, &RetryPolicy::default(), handle).await
}

/// [`poll_once`] with a given retry policy (short delays keep tests fast).
pub async fn poll_once_with<F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    q: &Queue,
    policy: &RetryPolicy,
    handle: F,
) -> usize
where
    F: Fn(QueueRecord) -> Fut,
    Fut: std::future::Future<Output = StepOutcome>,
{
    let resp = sqs
        .receive_message()
        .queue_url(&q.url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap();
    let msgs = resp.messages.unwrap_or_default();
    let records: Vec<QueueRecord> = msgs
        .iter()
        .map(|m| QueueRecord {
            message_id: m.message_id().unwrap_or_default().to_string(),
            receipt_handle: m.receipt_handle().unwrap_or_default().to_string(),
            body: m.body().unwrap_or_default().to_string(),
            receive_count: m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
        })
        .collect();
    let control = SqsQueueControl::new(sqs.clone(), &q.url, &q.dlq_url);
    let failed = process_batch(&records, &control, policy, handle).await;
    for r in records.iter().filter(|r| !failed.contains(&r.message_id)) {
        sqs.delete_message()
            .queue_url(&q.url)
            .receipt_handle(&r.receipt_handle)
            .send()
            .await
            .unwrap();
    }
    records.len()
}

/// NetSuite on the simulators.
pub fn netsuite(sims: &simulators::Simulators) -> retailflow_connectors::netsuite::NetSuiteErp {
    use retailflow_connectors::netsuite::{NetSuiteConfig, NetSuiteErp};
    NetSuiteErp::new(NetSuiteConfig {
        base_url: sims.netsuite_base(),
        auth: sims.netsuite_auth(),
        subsidiary_id: None,
        timeout: Duration::from_secs(3),
    })
}

/// Salesforce Loyalty on the simulators.
pub fn salesforce(
    sims: &simulators::Simulators,
) -> retailflow_connectors::salesforce::SalesforceLoyalty {
    use retailflow_connectors::salesforce::{SalesforceLoyalty, SalesforceLoyaltyConfig};
    SalesforceLoyalty::new(SalesforceLoyaltyConfig {
        base_url: sims.salesforce_base(),
        api_version: "v62.0".into(),
        program_name: "P".into(),
        journal_subtype: "Purchase".into(),
        debit_process: "DebitPointsFromMembers".into(),
        auth: sims.salesforce_auth(),
        timeout: Duration::from_secs(3),
    })
}

/// The two saga steps wired to real AWS adapters and the simulators.
pub fn saga_steps(
    store: std::sync::Arc<retailflow_aws::adapters::dynamodb::DynamoDbStateStore>,
    bus: std::sync::Arc<dyn retailflow_core::ports::EventBus>,
    sims: &simulators::Simulators,
) -> (
    retailflow_core::steps::erp_posting::ErpPosting,
    retailflow_core::steps::loyalty_accrual::LoyaltyAccrual,
) {
    use retailflow_core::resilience::CircuitBreaker;
    use std::sync::Arc;
    let erp = retailflow_core::steps::erp_posting::ErpPosting::new(
        store.clone(),
        bus.clone(),
        Arc::new(netsuite(sims)),
        Arc::new(CircuitBreaker::new("netsuite", 5, Duration::from_secs(60))),
        retailflow_core::steps::erp_posting::ErpPostingConfig::default(),
    );
    let loyalty = retailflow_core::steps::loyalty_accrual::LoyaltyAccrual::new(
        store,
        bus,
        Arc::new(salesforce(sims)),
        Arc::new(CircuitBreaker::new(
            "salesforce-loyalty",
            5,
            Duration::from_secs(60),
        )),
        retailflow_core::steps::loyalty_accrual::LoyaltyAccrualConfig::default(),
    );
    (erp, loyalty)
}

/// The return step wired to real AWS adapters and the simulators (NetSuite,
/// Salesforce Loyalty, the Shopify Admin API).
pub fn return_step(
    store: std::sync::Arc<retailflow_aws::adapters::dynamodb::DynamoDbStateStore>,
    bus: std::sync::Arc<dyn retailflow_core::ports::EventBus>,
    sims: &simulators::Simulators,
) -> retailflow_core::steps::return_reversal::ReturnReversal {
    use retailflow_connectors::shop::{ShopifyAdmin, ShopifyAdminConfig};
    use retailflow_core::resilience::CircuitBreaker;
    use retailflow_core::resilience::Guarded;
    use retailflow_core::steps::return_reversal::ReturnReversal;
    use std::sync::Arc;
    let breaker = |n| Arc::new(CircuitBreaker::new(n, 5, Duration::from_secs(60)));
    ReturnReversal::new(
        store,
        bus,
        Guarded::new(Arc::new(netsuite(sims)), breaker("netsuite")),
        Guarded::new(Arc::new(salesforce(sims)), breaker("salesforce-loyalty")),
        vec![(
            retailflow_core::model::Platform::Shopify,
            Guarded::new(
                Arc::new(ShopifyAdmin::new(ShopifyAdminConfig {
                    base_url: Some(sims.shopify_admin_base()),
                    api_version: "2024-10".into(),
                    tokens: sims.shopify_tokens(),
                    locations: Default::default(),
                    default_location: Some("1001".into()),
                    timeout: Duration::from_secs(3),
                })),
                breaker("shopify-admin"),
            ),
        )],
        Default::default(),
    )
}

/// [`poll_step`] for the return step.
pub async fn poll_return_step(
    sqs: &aws_sdk_sqs::Client,
    q: &Queue,
    step: &retailflow_core::steps::return_reversal::ReturnReversal,
) -> usize {
    poll_once(sqs, q, |r: QueueRecord| async move {
        let inv = retailflow_core::steps::Invocation {
            now: chrono::Utc::now(),
            deadline: None,
            attempt: r.receive_count,
        };
        retailflow_core::steps::handle_return_message(step, &r.body, inv).await
    })
    .await
}

/// Deploys template.yaml itself into moto (SAM translated to CloudFormation
/// by `tests/deploy/deploy_to_moto.py`, run with the aws-sam-cli venv) and
/// returns the stack outputs.
pub fn deploy_template(stack: &str) -> serde_json::Map<String, serde_json::Value> {
    let python = std::env::var("RETAILFLOW_SAM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-tools/sam/bin/python")
        });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/deploy_to_moto.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&moto().endpoint)
        .arg(stack)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {}: {e}; install it with infra/scripts/tools.sh sam",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "deploying template.yaml into moto failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stack outputs as JSON")
}

/// Stands in for a step function's event source: one batch from `q`
/// through `step`, as the Lambda would run it.
pub async fn poll_step(
    sqs: &aws_sdk_sqs::Client,
    q: &Queue,
    step: &dyn retailflow_core::steps::OrderStep,
) -> usize {
    poll_once(sqs, q, |r: QueueRecord| async move {
        let inv = retailflow_core::steps::Invocation {
            now: chrono::Utc::now(),
            deadline: None,
            attempt: r.receive_count,
        };
        retailflow_core::steps::handle_message(step, &r.body, inv).await
    })
    .await
}

/// Headers of a Shopify `orders/create` delivery signed with `secret`.
pub fn signed_shopify_headers(secret: &str, event_id: &str, body: &str) -> http::HeaderMap {
    signed_shopify_topic_headers(secret, "orders/create", event_id, body)
}

/// Headers of a Shopify delivery of `topic` signed with `secret`.
pub fn signed_shopify_topic_headers(
    secret: &str,
    topic: &str,
    event_id: &str,
    body: &str,
) -> http::HeaderMap {
    use http::HeaderValue;
    let mut h = http::HeaderMap::new();
    h.insert("x-shopify-topic", HeaderValue::from_str(topic).unwrap());
    h.insert(
        "x-shopify-shop-domain",
        HeaderValue::from_static("acme.myshopify.com"),
    );
    h.insert(
        "x-shopify-event-id",
        HeaderValue::from_str(event_id).unwrap(),
    );
    let sig = retailflow_core::webhook::shopify_signature(
        &retailflow_core::webhook::Secret::new(secret),
        body.as_bytes(),
    );
    h.insert(
        "x-shopify-hmac-sha256",
        HeaderValue::from_str(&sig).unwrap(),
    );
    h
}

/// A queue with its DLQ after `max_receive` receives (1 s visibility, so
/// retries come back fast).
pub async fn queue_with_dlq(sqs: &aws_sdk_sqs::Client, max_receive: u32) -> Queue {
    let dlq_url = sqs
        .create_queue()
        .queue_name(unique("dlq"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = arn(sqs, &dlq_url).await;
    let redrive =
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive})
            .to_string();
    let url = sqs
        .create_queue()
        .queue_name(unique("q"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Queue { url, dlq_url }
}

/// A rule on `bus` sending `detail_type` from the intake to `q`.
pub async fn route(
    eb: &aws_sdk_eventbridge::Client,
    sqs: &aws_sdk_sqs::Client,
    bus: &str,
    detail_type: &str,
    q: &Queue,
) {
    let name = unique("rule");
    let pattern =
        serde_json::json!({"source": ["retailflow.intake"], "detail-type": [detail_type]});
    eb.put_rule()
        .name(&name)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule(&name)
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(arn(sqs, &q.url).await)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// The body of a message on `url`, left on the queue (visible again at once).
pub async fn peek(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .wait_time_seconds(1)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    out.messages()
        .first()
        .and_then(|m| m.body())
        .unwrap_or_default()
        .to_string()
}
