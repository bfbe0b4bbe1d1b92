//! The one event envelope every retailflow event travels in, and the event types.
//!
//! Each event type has a JSON Schema generated from these types and committed
//! under `common/schemas/`; a test regenerates them and checks both that the
//! committed files are current and that what the code emits validates.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{Cancellation, Order, OrderRef, Refund};

/// EventBridge `Source` of events published by the intake step.
pub const INTAKE_SOURCE: &str = "retailflow.intake";

/// Common header of every event. `correlation_id` follows the business
/// transaction (the order) from its first webhook to its last ERP call;
/// `causation_id` names what directly caused this event (a webhook delivery,
/// or an earlier event's id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope<T> {
    /// Deterministic: the same platform delivery always yields the same id, so
    /// a re-publish after a crash is recognisably the same event.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    /// The originating system, e.g. `shopify:acme.myshopify.com`.
    pub source: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub detail: T,
}

/// A payload type that can ride in an [`Envelope`].
pub trait EventDetail: Serialize + JsonSchema {
    const EVENT_TYPE: &'static str;
    const SCHEMA_VERSION: u32;
}

macro_rules! event_detail {
    ($(#[$doc:meta])* $name:ident { $field:ident : $ty:ty }, $version:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        pub struct $name {
            pub $field: $ty,
        }
        impl EventDetail for $name {
            const EVENT_TYPE: &'static str = stringify!($name);
            const SCHEMA_VERSION: u32 = $version;
        }
    };
}

event_detail!(
    /// A new order was accepted by the shop.
    OrderPlaced { order: Order }, 1
);
event_detail!(
    /// An existing order changed (edit, note, address); carries the full order.
    OrderUpdated { order: Order }, 1
);
event_detail!(
    /// The shop cancelled an order.
    OrderCancelled { cancellation: Cancellation }, 1
);
event_detail!(
    /// Money went back to the buyer, with or without returned goods.
    RefundIssued { refund: Refund }, 1
);

/// What a platform payload maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanonicalEvent {
    OrderPlaced(OrderPlaced),
    OrderUpdated(OrderUpdated),
    OrderCancelled(OrderCancelled),
    RefundIssued(RefundIssued),
}

/// Envelope fields that come from the delivery rather than the payload.
#[derive(Debug, Clone)]
pub struct EnvelopeMeta {
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub source: String,
    pub causation_id: Option<String>,
}

impl CanonicalEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            CanonicalEvent::OrderPlaced(_) => OrderPlaced::EVENT_TYPE,
            CanonicalEvent::OrderUpdated(_) => OrderUpdated::EVENT_TYPE,
            CanonicalEvent::OrderCancelled(_) => OrderCancelled::EVENT_TYPE,
            CanonicalEvent::RefundIssued(_) => RefundIssued::EVENT_TYPE,
        }
    }

    /// The order this event is about: its saga and correlation id.
    pub fn order_ref(&self) -> &OrderRef {
        match self {
            CanonicalEvent::OrderPlaced(e) => &e.order.order,
            CanonicalEvent::OrderUpdated(e) => &e.order.order,
            CanonicalEvent::OrderCancelled(e) => &e.cancellation.order,
            CanonicalEvent::RefundIssued(e) => &e.refund.order,
        }
    }

    /// When the business fact happened, as the platform says.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            CanonicalEvent::OrderPlaced(e) => e.order.created_at,
            CanonicalEvent::OrderUpdated(e) => e.order.created_at,
            CanonicalEvent::OrderCancelled(e) => e.cancellation.cancelled_at,
            CanonicalEvent::RefundIssued(e) => e.refund.created_at,
        }
    }

    /// The full envelope as JSON, ready for the bus.
    pub fn to_envelope(&self, meta: &EnvelopeMeta) -> serde_json::Value {
        match self {
            CanonicalEvent::OrderPlaced(d) => envelope_json(d, meta, self.order_ref()),
            CanonicalEvent::OrderUpdated(d) => envelope_json(d, meta, self.order_ref()),
            CanonicalEvent::OrderCancelled(d) => envelope_json(d, meta, self.order_ref()),
            CanonicalEvent::RefundIssued(d) => envelope_json(d, meta, self.order_ref()),
        }
    }
}

fn envelope_json<T: EventDetail + Clone>(
    detail: &T,
    meta: &EnvelopeMeta,
    order: &OrderRef,
) -> serde_json::Value {
    let env = Envelope {
        event_id: meta.event_id,
        event_type: T::EVENT_TYPE.to_string(),
        schema_version: T::SCHEMA_VERSION,
        occurred_at: meta.occurred_at,
        source: meta.source.clone(),
        correlation_id: order.key(),
        causation_id: meta.causation_id.clone(),
        detail: detail.clone(),
    };
    // Serializing plain data structs with string keys cannot fail.
    serde_json::to_value(env).unwrap_or(serde_json::Value::Null)
}

/// Deterministic event id for a platform delivery: the same delivery always
/// maps to the same id.
pub fn delivery_event_id(platform: &str, shop: &str, topic: &str, delivery_id: &str) -> Uuid {
    let name = format!("{platform}\n{shop}\n{topic}\n{delivery_id}");
    Uuid::new_v5(&Uuid::NAMESPACE_URL, name.as_bytes())
}

/// JSON Schemas of every event type, keyed by file name
/// (`<EventType>.v<version>.schema.json`).
pub fn event_schemas() -> Vec<(String, serde_json::Value)> {
    fn one<T: EventDetail>() -> (String, serde_json::Value) {
        let schema = schemars::schema_for!(Envelope<T>);
        (
            format!("{}.v{}.schema.json", T::EVENT_TYPE, T::SCHEMA_VERSION),
            schema.to_value(),
        )
    }
    vec![
        one::<OrderPlaced>(),
        one::<OrderUpdated>(),
        one::<OrderCancelled>(),
        one::<RefundIssued>(),
    ]
}
