//! Order intake specifications, on the in-process adapters (the same
//! semantics as DynamoDB/EventBridge; the AWS-wire tests in `tests/` repeat the
//! key ones against moto).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use http::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::*;
use crate::adapters::in_process::{BusFault, InProcessEventBus, InProcessStateStore};
use crate::webhook::{adobe_signature, shopify_signature, AdobeKeys, HmacSecrets, Secret};

mod adobe;
mod pos;

use adobe::{adobe, with_client};

const ORDER: &str =
    include_str!("../../../../../events/payloads/shopify-orders-create-discount-code.json");
const ADOBE: &str = include_str!("../../../../../events/payloads/adobe-order-configurable.json");
const PRIV1: &str = include_str!("../../../../../events/dev-keys/adobe-private-1.pem");
const PUB1: &str = include_str!("../../../../../events/dev-keys/adobe-public-1.pem");
const SECRET: &str = "test-secret";

struct Harness {
    store: Arc<InProcessStateStore>,
    bus: Arc<InProcessEventBus>,
    intake: OrderIntake,
}

fn harness() -> Harness {
    harness_with(|_| {})
}

fn harness_with(f: impl FnOnce(&mut IntakeConfig)) -> Harness {
    let store = Arc::new(InProcessStateStore::new());
    let bus = Arc::new(InProcessEventBus::new());
    let mut config = IntakeConfig {
        shopify: Some(HmacSecrets {
            current: Secret::new(SECRET),
            previous: None,
        }),
        adobe: Some(AdobeKeys::from_pem(PUB1, "client-1").unwrap()),
        ..IntakeConfig::default()
    };
    f(&mut config);
    let intake = OrderIntake::new(store.clone(), bus.clone(), config);
    Harness { store, bus, intake }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn shopify_headers(topic: &str, event_id: &str, body: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-shopify-topic", HeaderValue::from_str(topic).unwrap());
    h.insert(
        "x-shopify-shop-domain",
        HeaderValue::from_static("acme.myshopify.com"),
    );
    h.insert(
        "x-shopify-event-id",
        HeaderValue::from_str(event_id).unwrap(),
    );
    let sig = shopify_signature(&Secret::new(SECRET), body);
    h.insert(
        "x-shopify-hmac-sha256",
        HeaderValue::from_str(&sig).unwrap(),
    );
    h
}

impl Harness {
    async fn shopify_at(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        at: DateTime<Utc>,
    ) -> WebhookResponse {
        self.intake
            .handle(WebhookRequest {
                route: WebhookRoute::Shopify,
                headers,
                body,
                received_at: at,
                gateway_time: None,
                deadline: None,
            })
            .await
    }

    async fn shopify(&self, topic: &str, event_id: &str, body: &str) -> WebhookResponse {
        let h = shopify_headers(topic, event_id, body.as_bytes());
        self.shopify_at(&h, body.as_bytes(), t0()).await
    }

    /// Shopify delivery `ev-1` of ORDER recorded with `summary` and no saga
    /// write: as an earlier build, or a worker that stopped, left it.
    async fn recorded_without_saga(&self, summary: Value) -> RecordOutcome {
        self.store
            .record_first(
                &ClaimRequest {
                    key: IdempotencyKey::delivery("shopify:acme.myshopify.com:orders/create:ev-1"),
                    payload_hash: payload_hash(ORDER.as_bytes()),
                    now: t0(),
                    lease_until: t0() + Duration::seconds(30),
                },
                &Completion {
                    result: Some(summary),
                    now: t0(),
                    expires_at: t0() + Duration::days(7),
                    saga: None,
                },
            )
            .await
            .unwrap()
    }

    fn published_ids(&self) -> Vec<String> {
        self.bus
            .published()
            .iter()
            .map(|e| e.event_id.to_string())
            .collect()
    }

    /// The events published, however often each: a duplicate delivery
    /// publishes its event again, never a new one.
    fn distinct_published_ids(&self) -> std::collections::BTreeSet<String> {
        self.published_ids().into_iter().collect()
    }
}

#[tokio::test]
async fn a_signed_order_is_published_once_and_starts_its_saga() {
    let h = harness();
    let resp = h.shopify("orders/create", "ev-1", ORDER).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let published = h.bus.published();
    assert_eq!(published.len(), 1);
    let e = &published[0];
    assert_eq!(e.detail_type, "OrderPlaced");
    assert_eq!(e.source, "retailflow.intake");
    let env: Value = serde_json::from_str(&e.detail).unwrap();
    assert_eq!(env["event_id"], e.event_id.to_string());
    assert_eq!(
        env["correlation_id"],
        "shopify:acme.myshopify.com:order:5872301948123"
    );
    assert_eq!(env["causation_id"], "shopify-delivery:ev-1");
    assert_eq!(
        env["detail_sha256"],
        payload_hash(env["detail"].to_string().as_bytes()),
        "the hash the steps compare, of the detail as recorded"
    );
    assert_eq!(
        env["detail"]["order"]["totals"]["total"]["shop"]["minor"],
        12808
    );
    let saga = h.store.sagas();
    assert_eq!(saga.len(), 1);
    assert!(saga[0].event_types.contains("OrderPlaced"));
    assert_eq!(
        saga[0].first_event_ids.get("OrderPlaced"),
        Some(&e.event_id.to_string()),
        "what a re-drive asks the archive for"
    );
}

#[tokio::test]
async fn a_redelivery_answers_200_and_publishes_the_same_event_again() {
    let h = harness();
    let first = h.shopify("orders/create", "ev-1", ORDER).await;
    let again = h.shopify("orders/create", "ev-1", ORDER).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["event_id"], first.body["event_id"]);
    // Recorded deliveries are published again: one recorded by a worker
    // that stopped before publishing looks the same.
    let ids = h.published_ids();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        ids[0], ids[1],
        "the same event id, which consumers dedup on"
    );
    assert_eq!(h.store.sagas()[0].first_event_ids.len(), 1);
}

#[tokio::test]
async fn a_redelivery_after_the_republish_window_publishes_nothing() {
    let h = harness();
    h.shopify("orders/create", "ev-1", ORDER).await;
    let headers = shopify_headers("orders/create", "ev-1", ORDER.as_bytes());
    let late = h
        .shopify_at(&headers, ORDER.as_bytes(), t0() + Duration::hours(25))
        .await;
    assert_eq!(late.status, 200, "{}", late.body);
    assert_eq!(late.body["duplicate"], true);
    assert_eq!(h.bus.published().len(), 1, "left to reconciliation");
}

#[tokio::test]
async fn a_redelivery_carries_the_hash_first_recorded_not_the_one_of_its_mapping_now() {
    let h = harness();
    // An earlier build recorded this delivery, with the hash of the detail
    // as it serialized it then.
    let earlier = "e".repeat(64);
    let event_id =
        crate::events::delivery_event_id("shopify", "acme.myshopify.com", "orders/create", "ev-1");
    let recorded = h
        .recorded_without_saga(serde_json::json!({
            "event_id": event_id.to_string(),
            "recorded_at": t0().to_rfc3339(),
            "detail_sha256": earlier,
        }))
        .await;
    assert_eq!(recorded, RecordOutcome::Recorded);
    let resp = h.shopify("orders/create", "ev-1", ORDER).await;
    assert_eq!(resp.body["duplicate"], true, "{}", resp.body);
    let published = h.bus.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].event_id, event_id);
    let env: Value = serde_json::from_str(&published[0].detail).unwrap();
    assert_eq!(
        env["detail_sha256"],
        earlier.as_str(),
        "what the steps compare"
    );
}

#[tokio::test]
async fn a_redelivery_writes_the_saga_again_in_case_its_first_writer_stopped_before_it() {
    let h = harness();
    let event_id =
        crate::events::delivery_event_id("shopify", "acme.myshopify.com", "orders/create", "ev-1");
    // The record landed; the saga write after it did not (the worker died).
    h.recorded_without_saga(serde_json::json!({
        "event_id": event_id.to_string(),
        "recorded_at": t0().to_rfc3339(),
    }))
    .await;
    assert!(h.store.sagas().is_empty());
    let resp = h.shopify("orders/create", "ev-1", ORDER).await;
    assert_eq!(resp.body["duplicate"], true, "{}", resp.body);
    let sagas = h.store.sagas();
    assert_eq!(sagas.len(), 1, "the retry started the saga");
    assert!(sagas[0].order_facts.is_some());
    assert_eq!(
        sagas[0].first_event_ids.get("OrderPlaced"),
        Some(&event_id.to_string())
    );
}

#[tokio::test]
async fn an_adobe_order_saved_200_times_publishes_one_order_placed_and_keeps_a_small_saga_item() {
    let h = harness();
    let mut sizes = Vec::new();
    for save in 0..200 {
        let mut v: Value = serde_json::from_str(&with_client(ADOBE, "client-1")).unwrap();
        v["id"] = Value::String(format!("7c9e6679-7425-40de-944b-{save:012}"));
        // What a later save changes and retailflow does not keep.
        v["data"]["value"]["status"] = Value::String(format!("status-{}", save % 3));
        let resp = adobe(&h, &v.to_string()).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        if save > 0 {
            assert_eq!(resp.body["duplicate"], true, "{}", resp.body);
        }
        let sagas = h.store.sagas();
        assert_eq!(sagas.len(), 1);
        sizes.push(crate::adapters::in_process::saga_item_bytes(&sagas[0]));
    }
    assert_eq!(
        h.distinct_published_ids().len(),
        1,
        "the first save places the order; the others are saves of it"
    );
    assert!(
        sizes.iter().all(|s| *s == sizes[0]),
        "the item does not grow with deliveries: {:?}",
        &sizes[..3]
    );
    assert!(sizes[0] < 1024, "{} bytes", sizes[0]);
}

#[tokio::test]
async fn a_different_delivery_of_the_same_order_is_its_own_event() {
    let h = harness();
    h.shopify("orders/create", "ev-1", ORDER).await;
    h.shopify("orders/updated", "ev-2", ORDER).await;
    let ids = h.published_ids();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    assert_eq!(
        h.store.sagas().len(),
        1,
        "both events belong to one order saga"
    );
}

#[tokio::test]
async fn a_tampered_body_is_401_and_publishes_nothing() {
    let h = harness();
    let headers = shopify_headers("orders/create", "ev-1", ORDER.as_bytes());
    let tampered = ORDER.replace("\"quantity\": 1", "\"quantity\": 9");
    assert_ne!(tampered, ORDER);
    let resp = h.shopify_at(&headers, tampered.as_bytes(), t0()).await;
    assert_eq!(resp.status, 401);
    let mut unsigned = headers.clone();
    unsigned.remove("x-shopify-hmac-sha256");
    assert_eq!(
        h.shopify_at(&unsigned, ORDER.as_bytes(), t0()).await.status,
        401
    );
    assert!(h.bus.published().is_empty());
    assert!(
        h.store.quarantined().is_empty(),
        "unauthenticated bodies are not stored"
    );
}

#[tokio::test]
async fn a_failed_publish_answers_503_and_the_retry_publishes() {
    for fault in [BusFault::Unavailable, BusFault::RejectEntries] {
        let h = harness();
        h.bus.inject([fault.clone()]);
        let resp = h.shopify("orders/create", "ev-1", ORDER).await;
        assert_eq!(resp.status, 503, "{fault:?}");
        assert_eq!(resp.retry_after_secs, Some(5));
        assert!(h.bus.published().is_empty());
        assert_eq!(
            h.store.sagas().len(),
            1,
            "the order is held before it is published"
        );
        let retry = h.shopify("orders/create", "ev-1", ORDER).await;
        assert_eq!(retry.status, 200, "{fault:?}: {}", retry.body);
        assert_eq!(
            h.bus.published().len(),
            1,
            "the retry publishes what the first attempt recorded"
        );
        assert_eq!(h.store.sagas().len(), 1);
    }
}

#[tokio::test]
async fn a_crash_after_recording_publishes_on_the_platforms_retry() {
    let h = harness();
    let order2 = ORDER.replace("5872301948123", "5872301948124");
    let headers2 = shopify_headers("orders/create", "ev-2", order2.as_bytes());
    let failing = CrashAfterRecord::wrap(h.store.clone());
    let intake = OrderIntake::new(
        failing.clone(),
        h.bus.clone(),
        IntakeConfig {
            shopify: Some(HmacSecrets {
                current: Secret::new(SECRET),
                previous: None,
            }),
            ..IntakeConfig::default()
        },
    );
    let req = |at| WebhookRequest {
        route: WebhookRoute::Shopify,
        headers: &headers2,
        body: order2.as_bytes(),
        received_at: at,
        gateway_time: None,
        deadline: None,
    };
    let crashed = intake.handle(req(t0())).await;
    assert_eq!(crashed.status, 503);
    assert!(h.bus.published().is_empty(), "it died before publishing");
    assert_eq!(h.store.sagas().len(), 1, "the order was recorded");
    // Shopify retries at once: the delivery is found recorded and published.
    failing.heal();
    let retry = intake.handle(req(t0() + Duration::seconds(5))).await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.body["duplicate"], true);
    assert_eq!(h.published_ids().len(), 1);
    assert_eq!(h.store.sagas()[0].first_event_ids.len(), 1);
}

/// A store whose record lands but answers an error until healed: a worker
/// dying between recording a delivery and publishing it.
struct CrashAfterRecord {
    inner: Arc<InProcessStateStore>,
    failing: std::sync::atomic::AtomicBool,
}

impl CrashAfterRecord {
    fn wrap(inner: Arc<InProcessStateStore>) -> Arc<Self> {
        Arc::new(CrashAfterRecord {
            inner,
            failing: true.into(),
        })
    }
    fn heal(&self) {
        self.failing
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl StateStore for CrashAfterRecord {
    async fn claim(
        &self,
        r: &crate::idempotency::ClaimRequest,
    ) -> Result<ClaimOutcome, crate::ports::StoreError> {
        self.inner.claim(r).await
    }
    async fn record_first(
        &self,
        r: &crate::idempotency::ClaimRequest,
        x: &Completion,
    ) -> Result<crate::idempotency::RecordOutcome, crate::ports::StoreError> {
        let outcome = self.inner.record_first(r, x).await;
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::ports::StoreError::Unavailable("crashed".into()));
        }
        outcome
    }
    async fn complete(
        &self,
        c: &crate::idempotency::Claim,
        x: &Completion,
    ) -> Result<(), crate::ports::StoreError> {
        self.inner.complete(c, x).await
    }
    async fn record_completed(
        &self,
        k: &crate::idempotency::IdempotencyKey,
        h: &str,
        x: &Completion,
    ) -> Result<(), crate::ports::StoreError> {
        self.inner.record_completed(k, h, x).await
    }
    async fn release(&self, c: &crate::idempotency::Claim) -> Result<(), crate::ports::StoreError> {
        self.inner.release(c).await
    }
    async fn quarantine(&self, q: &QuarantinedDelivery) -> Result<(), crate::ports::StoreError> {
        self.inner.quarantine(q).await
    }
    async fn read_cursor(&self, n: &str) -> Result<Option<String>, crate::ports::StoreError> {
        self.inner.read_cursor(n).await
    }
    async fn write_cursor(&self, n: &str, v: &str) -> Result<(), crate::ports::StoreError> {
        self.inner.write_cursor(n, v).await
    }
    async fn saga(
        &self,
        k: &str,
    ) -> Result<Option<crate::saga::SagaRecord>, crate::ports::StoreError> {
        self.inner.saga(k).await
    }
    async fn write_refund_ledger(
        &self,
        k: &str,
        l: &crate::refund_ledger::RefundLedger,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, crate::ports::StoreError> {
        self.inner.write_refund_ledger(k, l, at).await
    }
    async fn sagas_started(
        &self,
        hour: chrono::DateTime<chrono::Utc>,
        page: Option<&str>,
    ) -> Result<crate::ports::SagaPage, crate::ports::StoreError> {
        self.inner.sagas_started(hour, page).await
    }
    async fn record_redrive(
        &self,
        saga_key: &str,
        step: &str,
        limit: u32,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, crate::ports::StoreError> {
        self.inner.record_redrive(saga_key, step, limit, at).await
    }
    async fn put_report(
        &self,
        run_id: &str,
        body: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), crate::ports::StoreError> {
        self.inner.put_report(run_id, body, expires_at).await
    }
    async fn report(&self, run_id: &str) -> Result<Option<String>, crate::ports::StoreError> {
        self.inner.report(run_id).await
    }
}

#[tokio::test]
async fn two_deliveries_at_once_publish_one_event() {
    let h = Arc::new(harness());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.shopify("orders/create", "ev-1", ORDER).await.status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(h.distinct_published_ids().len(), 1);
    assert_eq!(h.store.sagas()[0].first_event_ids.len(), 1);
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200));
}

#[tokio::test]
async fn an_unknown_topic_is_acknowledged_and_not_published() {
    let h = harness();
    let resp = h.shopify("customers/create", "ev-1", "{\"id\":1}").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body["ignored"], true);
    assert!(h.bus.published().is_empty());
}

#[tokio::test]
async fn the_shops_echo_of_a_till_return_retailflow_recorded_is_acknowledged_not_published() {
    let h = harness();
    let refund = include_str!(
        "../../../../../events/payloads/shopify-refunds-create-partial-with-shipping.json"
    );
    let mut v: serde_json::Value = serde_json::from_str(refund).unwrap();
    v["note"] = serde_json::json!(format!(
        "{}rf-pos-1-abcd1234",
        crate::ports::shop::TILL_RETURN_NOTE_PREFIX
    ));
    let resp = h.shopify("refunds/create", "ev-echo", &v.to_string()).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["ignored"], true);
    assert!(h.bus.published().is_empty());
    // The same refund with a person's note is a refund like any other.
    v["note"] = serde_json::json!("retailflow till returns are great");
    let resp = h
        .shopify("refunds/create", "ev-other", &v.to_string())
        .await;
    assert_eq!(resp.body["event_type"], "RefundIssued", "{}", resp.body);
}

#[tokio::test]
async fn a_body_that_does_not_parse_is_400_and_kept() {
    let h = harness();
    let resp = h.shopify("orders/create", "ev-1", "{not json").await;
    assert_eq!(resp.status, 400);
    assert!(resp.body["error"]
        .as_str()
        .unwrap()
        .contains("not the expected JSON"));
    let q = h.store.quarantined();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].body, b"{not json");
    assert_eq!(q[0].delivery_id.as_deref(), Some("ev-1"));
    assert_eq!(resp.body["quarantine_id"], q[0].id.to_string());
    assert!(h.bus.published().is_empty());
}

#[tokio::test]
async fn totals_that_do_not_reconcile_are_400_with_the_reason_and_kept() {
    let h = harness();
    let bad = ORDER.replace("\"128.08\"", "\"128.09\"");
    let resp = h.shopify("orders/create", "ev-1", &bad).await;
    assert_eq!(resp.status, 400);
    let reason = resp.body["error"].as_str().unwrap();
    assert!(
        reason.contains("total_price") && reason.contains("128.09"),
        "{reason}"
    );
    assert_eq!(h.store.quarantined()[0].body, bad.as_bytes());
}

#[tokio::test]
async fn bad_input_that_cannot_be_kept_is_503_not_400() {
    let h = harness();
    h.store.fail_next(1);
    let resp = h.shopify("orders/create", "ev-1", "{not json").await;
    assert_eq!(
        resp.status, 503,
        "the platform must keep retrying until it can be kept"
    );
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let h = harness_with(|c| c.max_body_bytes = 1000);
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2000));
    let resp = h.shopify("orders/create", "ev-1", &big).await;
    assert_eq!(resp.status, 413);
    assert!(h.bus.published().is_empty());
}

#[tokio::test]
async fn missing_delivery_headers_are_400() {
    let h = harness();
    let mut headers = shopify_headers("orders/create", "ev-1", ORDER.as_bytes());
    headers.remove("x-shopify-event-id");
    let resp = h.shopify_at(&headers, ORDER.as_bytes(), t0()).await;
    assert_eq!(resp.status, 400);
    assert!(resp.body["error"]
        .as_str()
        .unwrap()
        .contains("X-Shopify-Event-Id"));
}

#[tokio::test]
async fn another_subscription_body_of_a_published_event_is_a_duplicate() {
    let h = harness();
    let first = h.shopify("orders/create", "ev-1", ORDER).await;
    // Same event id, different body (another API version's subscription).
    let other = ORDER.replace(
        "\"taxes_included\": false",
        "\"taxes_included\": false, \"x\": 1",
    );
    assert_ne!(other, ORDER);
    let resp = h.shopify("orders/create", "ev-1", &other).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body["duplicate"], true);
    assert_eq!(resp.body["event_id"], first.body["event_id"]);
    assert_eq!(h.bus.published().len(), 1);
}

#[tokio::test]
async fn no_claim_is_made_without_time_left() {
    let h = harness();
    let headers = shopify_headers("orders/create", "ev-1", ORDER.as_bytes());
    let req = WebhookRequest {
        route: WebhookRoute::Shopify,
        headers: &headers,
        body: ORDER.as_bytes(),
        received_at: t0(),
        gateway_time: None,
        deadline: Some(t0() + Duration::milliseconds(100)),
    };
    assert_eq!(h.intake.handle(req).await.status, 503);
    // Nothing was claimed: a retry with time publishes at once.
    assert_eq!(h.shopify("orders/create", "ev-1", ORDER).await.status, 200);
}

#[tokio::test]
async fn an_unconfigured_source_is_503_not_accepted() {
    let h = harness_with(|c| c.shopify = None);
    assert_eq!(h.shopify("orders/create", "ev-1", ORDER).await.status, 503);
    assert!(h.bus.published().is_empty());
}
