//! A step compares the hash intake recorded with the event, not one it
//! computes from how this build serializes the order: a deploy that changes
//! the canonical model's serialization never turns a redelivery of a
//! finished order into a conflict, and a changed order is still caught.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::adapters::in_process::{InProcessEventBus, InProcessStateStore};
use common::connectors::salesforce::{SalesforceLoyalty, SalesforceLoyaltyConfig};
use common::events::{delivery_event_id, EnvelopeMeta};
use common::mappers::shopify::{map, ShopifyTopic};
use common::resilience::CircuitBreaker;
use common::steps::loyalty_accrual::{LoyaltyAccrual, LoyaltyAccrualConfig};
use common::steps::{handle_message, Invocation, StepOutcome};
use simulators::Simulators;

#[tokio::test]
async fn a_redelivery_is_judged_by_the_hash_recorded_at_intake_not_by_this_builds_serialization() {
    let sims = Simulators::start().await.unwrap();
    let step = LoyaltyAccrual::new(
        Arc::new(InProcessStateStore::new()),
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
    );
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
        common::idempotency::payload_hash(after_upgrade["detail"].to_string().as_bytes()).into();
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
