//! Redeliveries a step must recognise. A worker that dies between the
//! loyalty platform's effect and the completion write: its claim stays in
//! progress, a redelivery waits out the lease, then takes over, finds the
//! journal by its external transaction number and posts nothing twice. And
//! a redelivery after a deploy is judged by the hash intake recorded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use retailflow_connectors::salesforce::{SalesforceLoyalty, SalesforceLoyaltyConfig};
use retailflow_core::adapters::in_process::{InProcessEventBus, InProcessStateStore};
use retailflow_core::events::{delivery_event_id, CanonicalEvent, EnvelopeMeta};
use retailflow_core::idempotency::{Claim, ClaimOutcome, ClaimRequest, Completion, IdempotencyKey};
use retailflow_core::mappers::shopify::{map, ShopifyTopic};
use retailflow_core::ports::{QuarantinedDelivery, StateStore, StoreError};
use retailflow_core::resilience::CircuitBreaker;
use retailflow_core::saga::SagaRecord;
use retailflow_core::steps::loyalty_accrual::{LoyaltyAccrual, LoyaltyAccrualConfig};
use retailflow_core::steps::{handle_message, Invocation, StepOutcome};
use simulators::Simulators;

/// The completion write never lands while `crashed` is set (the worker died).
struct DiesBeforeCompleting {
    inner: InProcessStateStore,
    crashed: AtomicBool,
}

#[async_trait]
impl StateStore for DiesBeforeCompleting {
    async fn claim(&self, r: &ClaimRequest) -> Result<ClaimOutcome, StoreError> {
        self.inner.claim(r).await
    }
    async fn complete(&self, c: &Claim, x: &Completion) -> Result<(), StoreError> {
        if self.crashed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("worker died".into()));
        }
        self.inner.complete(c, x).await
    }
    async fn record_first(
        &self,
        r: &ClaimRequest,
        x: &Completion,
    ) -> Result<retailflow_core::idempotency::RecordOutcome, StoreError> {
        if self.crashed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("worker died".into()));
        }
        self.inner.record_first(r, x).await
    }
    async fn record_completed(
        &self,
        k: &IdempotencyKey,
        h: &str,
        x: &Completion,
    ) -> Result<(), StoreError> {
        self.inner.record_completed(k, h, x).await
    }
    async fn release(&self, c: &Claim) -> Result<(), StoreError> {
        self.inner.release(c).await
    }
    async fn quarantine(&self, q: &QuarantinedDelivery) -> Result<(), StoreError> {
        self.inner.quarantine(q).await
    }
    async fn saga(&self, k: &str) -> Result<Option<SagaRecord>, StoreError> {
        self.inner.saga(k).await
    }
    async fn read_cursor(&self, n: &str) -> Result<Option<String>, StoreError> {
        self.inner.read_cursor(n).await
    }
    async fn write_cursor(&self, n: &str, v: &str) -> Result<(), StoreError> {
        self.inner.write_cursor(n, v).await
    }
    async fn write_refund_ledger(
        &self,
        k: &str,
        l: &retailflow_core::refund_ledger::RefundLedger,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.write_refund_ledger(k, l, at).await
    }
    async fn sagas_started(
        &self,
        hour: chrono::DateTime<chrono::Utc>,
        page: Option<&str>,
    ) -> Result<retailflow_core::ports::SagaPage, StoreError> {
        self.inner.sagas_started(hour, page).await
    }
    async fn record_redrive(
        &self,
        saga_key: &str,
        step: &str,
        limit: u32,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.record_redrive(saga_key, step, limit, at).await
    }
    async fn put_report(
        &self,
        run_id: &str,
        body: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        self.inner.put_report(run_id, body, expires_at).await
    }
    async fn report(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        self.inner.report(run_id).await
    }
}

/// LoyaltyAccrual on `store` and the Salesforce simulator.
fn loyalty_step(store: Arc<dyn StateStore>, sims: &Simulators) -> LoyaltyAccrual {
    LoyaltyAccrual::new(
        store,
        Arc::new(InProcessEventBus::new()),
        Arc::new(SalesforceLoyalty::new(SalesforceLoyaltyConfig {
            base_url: sims.salesforce_base(),
            api_version: "v62.0".into(),
            program_name: "P".into(),
            journal_subtype: "Purchase".into(),
            debit_process: "DebitPointsFromMembers".into(),
            auth: sims.salesforce_auth(),
            timeout: Duration::from_secs(2),
        })),
        Arc::new(CircuitBreaker::new(
            "salesforce-loyalty",
            5,
            Duration::from_secs(60),
        )),
        LoyaltyAccrualConfig::default(),
    )
}

/// The sample Shopify order as intake maps it, and its delivery's envelope fields.
fn sample_order() -> (CanonicalEvent, EnvelopeMeta) {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/payloads/shopify-orders-create-discount-code.json"
    ))
    .unwrap();
    let event = map(ShopifyTopic::OrdersCreate, "acme.myshopify.com", &body).unwrap();
    let meta = EnvelopeMeta {
        event_id: delivery_event_id("shopify", "acme", "orders/create", "1"),
        occurred_at: Utc::now(),
        source: "shopify:acme".into(),
        causation_id: None,
    };
    (event, meta)
}

#[tokio::test]
async fn a_crash_after_the_journal_posts_is_recovered_without_a_second_journal() {
    let sims = Simulators::start().await.unwrap();
    let store = Arc::new(DiesBeforeCompleting {
        inner: InProcessStateStore::new(),
        crashed: AtomicBool::new(true),
    });
    let step = loyalty_step(store.clone(), &sims);
    let (event, meta) = sample_order();
    let CanonicalEvent::OrderPlaced(_) = &event else {
        panic!()
    };
    let message = event.to_envelope(&meta).to_string();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
    let at = |secs: i64| Invocation {
        now: t0 + chrono::Duration::seconds(secs),
        deadline: Some(t0 + chrono::Duration::seconds(secs + 20)),
        attempt: 1,
    };

    // The journal posts, then the worker dies before recording it.
    assert!(matches!(
        handle_message(&step, &message, at(0)).await,
        StepOutcome::Retry { .. }
    ));
    assert_eq!(sims.loyalty_journals().len(), 1);
    store.crashed.store(false, Ordering::SeqCst);

    // A redelivery inside the dead worker's lease waits; it does not post.
    match handle_message(&step, &message, at(5)).await {
        StepOutcome::Retry { retry_after, .. } => {
            assert!(retry_after.unwrap() <= Duration::from_secs(15))
        }
        other => panic!("{other:?}"),
    }
    // After the lease (it ended with the dead invocation), the retry takes
    // over, finds the journal and completes.
    assert!(matches!(
        handle_message(&step, &message, at(30)).await,
        StepOutcome::Done { .. }
    ));
    assert_eq!(sims.loyalty_journals().len(), 1, "no second journal");
    // And a late duplicate is a no-op.
    assert!(matches!(
        handle_message(&step, &message, at(60)).await,
        StepOutcome::Done { .. }
    ));
    assert_eq!(sims.loyalty_journals().len(), 1);
}

/// A step compares the hash intake recorded with the event, not one it
/// computes from how this build serializes the order: a deploy that changes
/// the canonical model's serialization never turns a redelivery of a
/// finished order into a conflict, and a changed order is still caught.
#[tokio::test]
async fn a_redelivery_is_judged_by_the_hash_recorded_at_intake_not_by_this_builds_serialization() {
    let sims = Simulators::start().await.unwrap();
    let step = loyalty_step(Arc::new(InProcessStateStore::new()), &sims);
    let (event, meta) = sample_order();
    // As an earlier build recorded it: its bytes (and so its hash) were not
    // what this build would write for the same order.
    let recorded_by_earlier_build = |hash: Option<&str>| {
        let mut env = event.to_envelope(&meta);
        if let Some(h) = hash {
            env["detail_sha256"] = h.into();
        }
        env.to_string()
    };
    let earlier = "e".repeat(64);
    let at = |secs: i64| Invocation {
        now: Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
            + chrono::Duration::seconds(secs),
        deadline: None,
        attempt: 1,
    };

    let first = handle_message(&step, &recorded_by_earlier_build(Some(&earlier)), at(0)).await;
    assert!(matches!(first, StepOutcome::Done { .. }), "{first:?}");
    // The redelivery, after a deploy: the same recorded hash, so the step
    // finds its work done and posts nothing.
    let again = handle_message(&step, &recorded_by_earlier_build(Some(&earlier)), at(60)).await;
    assert!(matches!(again, StepOutcome::Done { .. }), "{again:?}");
    assert_eq!(sims.loyalty_journals().len(), 1, "one journal");

    // Done before intake recorded hashes (the step hashed the order), then
    // delivered again carrying its recorded hash: the same order, no
    // conflict.
    let other_order = {
        let mut env = event.to_envelope(&EnvelopeMeta {
            event_id: delivery_event_id("shopify", "acme", "orders/create", "2"),
            ..meta.clone()
        });
        env["detail"]["order"]["order"]["order_id"] = "5872301948999".into();
        env
    };
    let before_upgrade = other_order.to_string();
    let done = handle_message(&step, &before_upgrade, at(0)).await;
    assert!(matches!(done, StepOutcome::Done { .. }), "{done:?}");
    let mut after_upgrade = other_order.clone();
    after_upgrade["detail_sha256"] =
        retailflow_core::idempotency::payload_hash(after_upgrade["detail"].to_string().as_bytes())
            .into();
    let again = handle_message(&step, &after_upgrade.to_string(), at(60)).await;
    assert!(matches!(again, StepOutcome::Done { .. }), "{again:?}");
    assert_eq!(sims.loyalty_journals().len(), 2, "one journal per order");

    // Hashing this build's bytes instead would have called it a conflict;
    // and an event recorded with another payload's hash is one.
    for other in [None, Some("f".repeat(64))] {
        let outcome =
            handle_message(&step, &recorded_by_earlier_build(other.as_deref()), at(120)).await;
        assert!(
            matches!(&outcome, StepOutcome::Reject { reason } if reason.contains("different version")),
            "{other:?}: {outcome:?}"
        );
    }
    assert_eq!(sims.loyalty_journals().len(), 2);
}
