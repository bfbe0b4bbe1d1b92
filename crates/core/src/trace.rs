//! Where an order is: its business timeline read back from the saga store,
//! the same on DynamoDB (`retailflow trace --table`) and in the local app
//! (`GET /local/trace/{key}`).
//!
//! An order's saga item holds its events (when each was first seen) and its
//! steps (status, when done, the result: ERP document, journal, stock); each
//! return and the cancellation have their own saga item, found through the
//! order's refund ledger. Shipments are keyed by the ERP's shipment id and
//! are not listed here (their `FulfillmentShipped` events carry the order).
//!
//! What the saga store cannot show, [`with_stuck`] adds: the order's dead
//! letters (held for review or not) and its quarantined deliveries, so a
//! refund refused before its ledger took it is on the order's trace too.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ports::{QuarantinedDelivery, StateStore, StoreError};
use crate::refund_ledger::CANCELLATION_ID;
use crate::replay::{held_for_review, DeadLetterView};
use crate::saga::{SagaRecord, StepStatus};

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TracedStep {
    /// The saga item it belongs to (the order, a return, the cancellation).
    pub saga_key: String,
    pub step: String,
    pub status: StepStatus,
    pub completed_at: Option<DateTime<Utc>>,
    /// While in progress: until when its worker holds it.
    pub lease_until: Option<DateTime<Utc>>,
    /// What the step recorded (ERP document ids, points, stock).
    pub result: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TracedEvent {
    pub at: DateTime<Utc>,
    pub event_type: String,
    /// The saga item it belongs to: a return's and the cancellation's
    /// events are on theirs, so two refunds are two lines.
    pub saga_key: String,
    /// What it said (ERP document, points, totals), where the caller has
    /// the published events to tell (the local app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct OrderTrace {
    /// The order's key, also the correlation id of all its events.
    pub order_key: String,
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Each event of the order, its returns and cancellation, with when it
    /// was first seen, oldest first.
    pub events: Vec<TracedEvent>,
    pub steps: Vec<TracedStep>,
    /// Refund ids admitted to the order's ledger, in order.
    pub refunds: Vec<String>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Steps not completed (in progress, or claimed and given back).
    pub open_steps: Vec<String>,
    /// What of the order waits for a person (see [`with_stuck`]).
    #[serde(default)]
    pub stuck: Vec<StuckItem>,
    /// Every step done and nothing stuck.
    #[serde(default)]
    pub complete: bool,
}

/// Part of an order's story that is not moving on by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StuckItem {
    pub kind: StuckKind,
    /// What is stuck: the event and the queue it died on, or the delivery.
    pub subject: String,
    pub reason: String,
    /// The dead letter's id (`replay redrive --id`), or the quarantined
    /// delivery's (`GET /local/state` shows it; fix the data, resend).
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StuckKind {
    /// On a dead-letter queue for a person to decide: re-driving it as it
    /// is fails again.
    HeldForReview,
    /// On a dead-letter queue after its retries: fix the cause, re-drive.
    DeadLettered,
    /// A delivery refused and kept: the platform's data needs fixing.
    Quarantined,
}

impl StuckKind {
    pub fn label(self) -> &'static str {
        match self {
            StuckKind::HeldForReview => "held for review",
            StuckKind::DeadLettered => "dead-lettered",
            StuckKind::Quarantined => "quarantined",
        }
    }
}

/// The trace with what of the order is dead-lettered (held for review or
/// not) or quarantined; `complete` only if nothing is.
pub fn with_stuck(
    mut t: OrderTrace,
    letters: &[DeadLetterView],
    quarantined: &[QuarantinedDelivery],
) -> OrderTrace {
    for d in letters
        .iter()
        .filter(|d| d.correlation_id.as_deref() == Some(t.order_key.as_str()))
    {
        let kind = if held_for_review(d.reason.as_deref()) {
            StuckKind::HeldForReview
        } else {
            StuckKind::DeadLettered
        };
        t.stuck.push(StuckItem {
            kind,
            subject: format!(
                "{} on {}",
                d.event_type.as_deref().unwrap_or("a message"),
                d.queue
            ),
            reason: d
                .reason
                .clone()
                .unwrap_or_else(|| "received too many times without an answer".into()),
            id: d.id.clone(),
        });
    }
    for q in quarantined
        .iter()
        .filter(|q| quarantined_order_key(q).as_deref() == Some(t.order_key.as_str()))
    {
        t.stuck.push(StuckItem {
            kind: StuckKind::Quarantined,
            subject: format!(
                "{} delivery {}",
                q.topic.as_deref().unwrap_or("a"),
                q.delivery_id.as_deref().unwrap_or("(no id)")
            ),
            reason: q.reason.clone(),
            id: q.id.to_string(),
        });
    }
    t.complete = t.open_steps.is_empty() && t.stuck.is_empty();
    t
}

/// The trace of an order the saga store does not know but whose delivery
/// was quarantined or whose message died: what support needs when a
/// customer asks about an order that never got in. `None` if nothing is.
pub fn only_stuck(
    order_key: &str,
    letters: &[DeadLetterView],
    quarantined: &[QuarantinedDelivery],
) -> Option<OrderTrace> {
    let empty = OrderTrace {
        order_key: order_key.to_string(),
        started_at: None,
        updated_at: None,
        events: Vec::new(),
        steps: Vec::new(),
        refunds: Vec::new(),
        cancelled_at: None,
        open_steps: Vec::new(),
        stuck: Vec::new(),
        complete: false,
    };
    let t = with_stuck(empty, letters, quarantined);
    (!t.stuck.is_empty()).then_some(t)
}

/// The order a quarantined Shopify or till delivery was about, read from
/// its body (Adobe's bodies name the order only once mapped).
pub fn quarantined_order_key(q: &QuarantinedDelivery) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(&q.body).ok()?;
    let id_text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match q.source.as_str() {
        "shopify" => {
            let shop = q.shop.as_deref()?;
            let topic = q.topic.as_deref()?;
            let id = if topic.starts_with("orders/") {
                id_text(&body["id"])?
            } else {
                id_text(&body["order_id"])?
            };
            Some(format!("shopify:{shop}:order:{id}"))
        }
        "point_of_sale" => {
            let o = &body["order"];
            Some(format!(
                "{}:{}:order:{}",
                o["platform"].as_str()?,
                o["shop"].as_str()?,
                id_text(&o["order_id"])?
            ))
        }
        _ => None,
    }
}

/// Where an event stands in an order's flow, for events seen at the same
/// instant: what came in before what it caused.
fn flow_rank(event_type: &str) -> u8 {
    match event_type {
        "OrderPlaced" => 0,
        "OrderUpdated" => 1,
        "OrderPostedToErp" => 2,
        "LoyaltyAccrued" => 3,
        "StockCommitted" => 4,
        "RefundIssued" | "OrderCancelled" => 5,
        "CreditMemoPosted" => 6,
        "LoyaltyReversed" => 7,
        "ShopRefundRecorded" => 8,
        _ => 9,
    }
}

fn steps_of(record: &SagaRecord) -> Vec<TracedStep> {
    record
        .steps
        .iter()
        .map(|(name, s)| TracedStep {
            saga_key: record.saga_key.clone(),
            step: name.clone(),
            status: s.status,
            completed_at: s.completed_at,
            lease_until: s.lease_until,
            result: s.result.clone(),
        })
        .collect()
}

/// The order's trace; `None` when the store knows nothing of the key.
pub async fn trace_order(
    store: &dyn StateStore,
    order_key: &str,
) -> Result<Option<OrderTrace>, StoreError> {
    let Some(order) = store.saga(order_key).await? else {
        return Ok(None);
    };
    let events_of = |r: &SagaRecord| -> Vec<TracedEvent> {
        r.first_seen
            .iter()
            .map(|(t, at)| TracedEvent {
                at: *at,
                event_type: t.clone(),
                saga_key: r.saga_key.clone(),
                summary: None,
            })
            .collect()
    };
    let mut events = events_of(&order);
    let mut steps = steps_of(&order);
    let refunds: Vec<String> = order
        .refund_ledger
        .refunds
        .iter()
        .map(|r| r.refund_id.clone())
        .collect();
    let mut related: Vec<String> = refunds
        .iter()
        .map(|id| format!("{order_key}:return:{id}"))
        .collect();
    if order.refund_ledger.cancelled_at.is_some() {
        related.push(format!("{order_key}:{CANCELLATION_ID}"));
    }
    for key in related {
        if let Some(r) = store.saga(&key).await? {
            // A return's event is on its order's saga too: its own wins.
            for e in events_of(&r) {
                events.retain(|o| {
                    o.saga_key != order_key || (o.at, &o.event_type) != (e.at, &e.event_type)
                });
                events.push(e);
            }
            steps.extend(steps_of(&r));
        }
    }
    // By time; at the same instant, as the flow goes (then by name).
    events.sort_by(|a, b| {
        (a.at, flow_rank(&a.event_type), &a.event_type, &a.saga_key).cmp(&(
            b.at,
            flow_rank(&b.event_type),
            &b.event_type,
            &b.saga_key,
        ))
    });
    steps.sort_by(|a, b| {
        (
            a.completed_at.is_none(),
            a.completed_at,
            &a.saga_key,
            &a.step,
        )
            .cmp(&(
                b.completed_at.is_none(),
                b.completed_at,
                &b.saga_key,
                &b.step,
            ))
    });
    let open_steps: Vec<String> = steps
        .iter()
        .filter(|s| s.status != StepStatus::Completed)
        .map(|s| format!("{} {}", s.saga_key, s.step))
        .collect();
    Ok(Some(OrderTrace {
        order_key: order_key.to_string(),
        started_at: order.started_at,
        updated_at: order.updated_at,
        events,
        steps,
        refunds,
        cancelled_at: order.refund_ledger.cancelled_at,
        complete: open_steps.is_empty(),
        open_steps,
        stuck: Vec::new(),
    }))
}

/// The people-readable form: one line per event and step, with the
/// external ids a step recorded.
pub fn render(t: &OrderTrace) -> String {
    let mut out = format!("order {} (correlation id)\n", t.order_key);
    let whose = |saga_key: &str| {
        saga_key
            .strip_prefix(&t.order_key)
            .filter(|rest| !rest.is_empty())
            .map(|rest| format!(" [{}]", rest.trim_start_matches(':')))
            .unwrap_or_default()
    };
    for e in &t.events {
        let said = e
            .summary
            .as_deref()
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {}  event  {}{}{said}\n",
            e.at.to_rfc3339(),
            e.event_type,
            whose(&e.saga_key)
        ));
    }
    for s in &t.steps {
        let when = s
            .completed_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "(not done)".into());
        let whose = whose(&s.saga_key);
        let ids = s
            .result
            .as_ref()
            .map(|r| {
                [
                    "document_number",
                    "document_id",
                    "journal_id",
                    "external_id",
                    "platform_refund_id",
                    "shop_fulfillment_id",
                    "skipped_reason",
                ]
                .iter()
                .filter_map(|k| r[*k].as_str().map(|v| format!("{k}={v}")))
                .collect::<Vec<_>>()
                .join(" ")
            })
            .unwrap_or_default();
        let status = match s.status {
            StepStatus::Completed => "done",
            StepStatus::InProgress => "in progress",
        };
        out.push_str(&format!(
            "  {when}  step   {}{whose}: {status} {ids}\n",
            s.step
        ));
    }
    if let Some(at) = t.cancelled_at {
        out.push_str(&format!("  cancelled at {}\n", at.to_rfc3339()));
    }
    for item in &t.stuck {
        out.push_str(&format!(
            "  {}: {}: {} (id {})\n",
            item.kind.label(),
            item.subject,
            item.reason,
            item.id
        ));
    }
    if !t.open_steps.is_empty() {
        out.push_str(&format!("  not done: {}\n", t.open_steps.join(", ")));
    }
    if t.complete {
        out.push_str("  every recorded step is done\n");
    } else {
        out.push_str("  NOT DONE: the order waits on what is listed above\n");
    }
    out
}
