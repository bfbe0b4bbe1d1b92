//! The one event envelope every retailflow event travels in, and the event types.
//!
//! Each event type has a JSON Schema generated from these types and committed
//! under `crates/core/schemas/`; a test regenerates them and checks both that the
//! committed files are current and that what the code emits validates.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{Cancellation, Order, OrderRef, Refund};
use crate::money::Money;

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
    /// SHA-256 (hex) of `detail` as intake first recorded it: what a step
    /// compares to tell a redelivery from a changed order. Carried, never
    /// recomputed, so a deploy that serializes the canonical model
    /// differently does not turn a redelivery into a conflict. Absent on
    /// events recorded before it existed and on steps' own events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_sha256: Option<String>,
    pub detail: T,
}

impl<T> Envelope<T> {
    /// For an event carrying its recorded hash: the hash an earlier build
    /// would have recorded for `part` (it hashed the part as serialized),
    /// so a step done before the upgrade is not taken for a changed order.
    pub fn legacy_hash<P: Serialize>(&self, part: &P) -> Option<String> {
        self.detail_sha256.as_ref().map(|_| {
            // Plain data with string keys: serializing cannot fail.
            crate::idempotency::payload_hash(&serde_json::to_vec(part).unwrap_or_default())
        })
    }

    /// The hash a step compares for this event's payload: the one intake
    /// recorded, or, for an event recorded without one, the hash of `part`
    /// (the part of the detail the step acts on) as this build serializes it.
    pub fn recorded_hash<P: Serialize>(&self, part: &P) -> String {
        match &self.detail_sha256 {
            Some(h) => h.clone(),
            // Plain data with string keys: serializing cannot fail.
            None => crate::idempotency::payload_hash(&serde_json::to_vec(part).unwrap_or_default()),
        }
    }
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

/// The ERP recorded the order's sales order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderPostedToErp {
    pub order: OrderRef,
    pub erp_system: String,
    /// The idempotency key the ERP knows the order by.
    pub external_id: String,
    pub document_id: String,
    pub document_number: String,
    /// The total as the ERP computed it.
    pub total: Money,
    /// The ERP's customer the order was posted to (credit memos go to it).
    #[serde(default)]
    pub customer_id: Option<String>,
}

impl EventDetail for OrderPostedToErp {
    const EVENT_TYPE: &'static str = "OrderPostedToErp";
    const SCHEMA_VERSION: u32 = 1;
}

/// Points were accrued for an order, or it earned none and says why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyAccrued {
    pub order: OrderRef,
    pub loyalty_system: String,
    pub membership_number: Option<String>,
    /// Also the idempotency key of the journal.
    pub external_transaction_number: Option<String>,
    pub journal_id: Option<String>,
    /// Points retailflow's rules give the order.
    pub points: i64,
    /// Points the loyalty platform reported crediting, when it says.
    pub points_credited: Option<i64>,
    /// The shop-currency amount the points were earned on.
    pub eligible: Money,
    /// Why no journal was posted (guest checkout, not a member, zero points).
    pub skipped_reason: Option<String>,
}

impl EventDetail for LoyaltyAccrued {
    const EVENT_TYPE: &'static str = "LoyaltyAccrued";
    const SCHEMA_VERSION: u32 = 1;
}

/// A return's points came back off the member: a debit of retailflow's
/// computed share for a partial return, the accrual cancelled whole when the
/// whole order came back, or nothing and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyReversed {
    pub order: OrderRef,
    pub refund_id: String,
    pub loyalty_system: String,
    pub membership_number: Option<String>,
    /// `debit` or `cancel_accrual`; `None` when skipped.
    pub method: Option<String>,
    /// Idempotency key of a debit journal.
    pub external_transaction_number: Option<String>,
    pub journal_id: Option<String>,
    /// Points taken back (positive).
    pub points: i64,
    /// Merchandise refunded that the points were earned on.
    pub refunded_base: Money,
    pub skipped_reason: Option<String>,
}

impl EventDetail for LoyaltyReversed {
    const EVENT_TYPE: &'static str = "LoyaltyReversed";
    const SCHEMA_VERSION: u32 = 1;
}

/// One credit memo line, as posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CreditMemoLine {
    pub item: String,
    pub quantity: u32,
    pub amount: Money,
    /// Stock disposition of a returned item.
    pub restock: Option<crate::model::RestockType>,
}

/// The ERP recorded a return's credit memo, of exactly the refunded amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CreditMemoPosted {
    pub order: OrderRef,
    pub refund_id: String,
    pub erp_system: String,
    pub external_id: String,
    pub document_id: String,
    pub document_number: String,
    /// The total as the ERP computed it.
    pub total: Money,
    pub lines: Vec<CreditMemoLine>,
    /// Why no credit memo was posted (the order was cancelled before it was
    /// invoiced); the document fields are then empty.
    #[serde(default)]
    pub skipped_reason: Option<String>,
}

impl EventDetail for CreditMemoPosted {
    const EVENT_TYPE: &'static str = "CreditMemoPosted";
    const SCHEMA_VERSION: u32 = 1;
}

/// The ERP side of an order's cancellation: its sales order `cancelled`,
/// `credited` (refunds before the cancellation post credit memos against
/// it), `not_posted` (the ERP has no open order: never posted, or invoiced
/// meanwhile), or `left_open` (the ERP refused; needs review).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderCancelledInErp {
    pub order: OrderRef,
    pub erp_system: String,
    pub external_id: String,
    pub document_id: Option<String>,
    pub method: String,
    /// Why the ERP kept the order open (`left_open`).
    #[serde(default)]
    pub note: Option<String>,
}

impl EventDetail for OrderCancelledInErp {
    const EVENT_TYPE: &'static str = "OrderCancelledInErp";
    const SCHEMA_VERSION: u32 = 1;
}

/// The shop now shows a return that happened outside it (at the till).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShopRefundRecorded {
    pub order: OrderRef,
    pub refund_id: String,
    pub platform_refund_id: String,
    pub total: Money,
}

impl EventDetail for ShopRefundRecorded {
    const EVENT_TYPE: &'static str = "ShopRefundRecorded";
    const SCHEMA_VERSION: u32 = 1;
}

/// A unit count per SKU in a stock event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StockUnits {
    pub sku: String,
    pub quantity: u32,
}

/// A placed order's units left stock for good, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StockCommitted {
    pub order: OrderRef,
    /// The storefront checkout whose hold the order used, if any.
    pub checkout_id: Option<String>,
    /// True when the checkout's hold became the order's; false when the
    /// units were taken from free stock (no hold, expired, cart changed).
    pub from_hold: bool,
    pub lines: Vec<StockUnits>,
    /// Units sold beyond free stock: the shop oversold these.
    pub oversold: Vec<StockUnits>,
    /// SKUs retailflow keeps no stock count for: left alone.
    pub untracked: Vec<String>,
    /// Promotion codes counted towards the customer's per-customer limits.
    pub promotion_uses: Vec<String>,
}

impl EventDetail for StockCommitted {
    const EVENT_TYPE: &'static str = "StockCommitted";
    const SCHEMA_VERSION: u32 = 1;
}

/// A cancelled order's stock came back: its hold was given back, or its
/// committed units were put back on hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StockRestocked {
    pub order: OrderRef,
    /// False when there was nothing to give back (never committed, or
    /// restocked before).
    pub restocked: bool,
}

impl EventDetail for StockRestocked {
    const EVENT_TYPE: &'static str = "StockRestocked";
    const SCHEMA_VERSION: u32 = 1;
}

/// The ERP shipped (part of) an order and the shop now shows it, with
/// tracking for the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FulfillmentShipped {
    pub order: OrderRef,
    pub erp_system: String,
    /// The ERP's shipment (item fulfillment) id and document number.
    pub shipment_id: String,
    pub document_number: String,
    pub carrier: Option<String>,
    pub tracking_numbers: Vec<String>,
    pub lines: Vec<StockUnits>,
    /// The shop's fulfillment (shipment) id.
    pub shop_fulfillment_id: String,
}

impl EventDetail for FulfillmentShipped {
    const EVENT_TYPE: &'static str = "FulfillmentShipped";
    const SCHEMA_VERSION: u32 = 1;
}

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

    /// What returns of the order need to know, from an event carrying the
    /// whole order.
    pub fn order_facts(&self) -> Option<crate::refund_ledger::OrderFacts> {
        let order = match self {
            CanonicalEvent::OrderPlaced(e) => &e.order,
            CanonicalEvent::OrderUpdated(e) => &e.order,
            _ => return None,
        };
        Some(crate::refund_ledger::OrderFacts {
            total: order.totals.total.shop,
            taxes_included: order.taxes_included,
            placed_at: order.created_at,
            uncounted_line_ids: Some(order.uncounted_line_ids.clone()),
        })
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
    envelope(detail, meta, &order.key())
}

/// Wraps any event detail in the one envelope, as JSON.
pub fn envelope<T: EventDetail + Clone>(
    detail: &T,
    meta: &EnvelopeMeta,
    correlation_id: &str,
) -> serde_json::Value {
    let env = Envelope {
        event_id: meta.event_id,
        event_type: T::EVENT_TYPE.to_string(),
        schema_version: T::SCHEMA_VERSION,
        occurred_at: meta.occurred_at,
        source: meta.source.clone(),
        correlation_id: correlation_id.to_string(),
        causation_id: meta.causation_id.clone(),
        detail_sha256: None,
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

/// Deterministic id of the event a saga step emits: a re-run of the step
/// emits the same event.
pub fn step_event_id(saga_key: &str, step: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("{saga_key}\n{step}").as_bytes(),
    )
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
        one::<OrderPostedToErp>(),
        one::<LoyaltyAccrued>(),
        one::<LoyaltyReversed>(),
        one::<CreditMemoPosted>(),
        one::<ShopRefundRecorded>(),
        one::<OrderCancelledInErp>(),
        one::<StockCommitted>(),
        one::<StockRestocked>(),
        one::<FulfillmentShipped>(),
        one::<crate::reconciliation::DiscrepancyFound>(),
        one::<crate::reconciliation::ReconciliationCompleted>(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mappers::{adobe, shopify};

    fn schema_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
    }

    /// The committed schemas are what the code generates. Set
    /// `RETAILFLOW_UPDATE_SCHEMAS=1` to rewrite them after changing a type.
    #[test]
    fn committed_schemas_match_the_rust_types() {
        let update = std::env::var("RETAILFLOW_UPDATE_SCHEMAS").is_ok_and(|v| v == "1");
        for (file, schema) in event_schemas() {
            let path = schema_dir().join(&file);
            let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            if update {
                std::fs::create_dir_all(schema_dir()).unwrap();
                std::fs::write(&path, &generated).unwrap();
                continue;
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_else(|_| {
                panic!("{file} is missing: run with RETAILFLOW_UPDATE_SCHEMAS=1")
            });
            assert_eq!(
                committed, generated,
                "{file} is stale: run with RETAILFLOW_UPDATE_SCHEMAS=1"
            );
        }
    }

    fn emitted() -> Vec<serde_json::Value> {
        let p = |name: &str| {
            std::fs::read(format!(
                "{}/../../events/payloads/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        use shopify::ShopifyTopic as T;
        let shop = "acme.myshopify.com";
        let events = [
            shopify::map(
                T::OrdersCreate,
                shop,
                &p("shopify-orders-create-discount-code.json"),
            )
            .unwrap(),
            shopify::map(
                T::OrdersCreate,
                shop,
                &p("shopify-orders-create-eur-presentment-vat-inclusive.json"),
            )
            .unwrap(),
            shopify::map(
                T::OrdersCreate,
                shop,
                &p("shopify-orders-create-cad-gift-card.json"),
            )
            .unwrap(),
            shopify::map(T::OrdersUpdated, shop, &p("shopify-orders-updated.json")).unwrap(),
            shopify::map(
                T::OrdersCancelled,
                shop,
                &p("shopify-orders-cancelled.json"),
            )
            .unwrap(),
            shopify::map(
                T::RefundsCreate,
                shop,
                &p("shopify-refunds-create-partial-with-shipping.json"),
            )
            .unwrap(),
            adobe::map(
                "acme",
                &adobe::AdobeDelivery::parse(&p("adobe-order-configurable.json")).unwrap(),
            )
            .unwrap(),
        ];
        events
            .iter()
            .map(|e| {
                e.to_envelope(&EnvelopeMeta {
                    event_id: delivery_event_id("shopify", shop, e.event_type(), "d-1"),
                    occurred_at: e.occurred_at(),
                    source: format!("shopify:{shop}"),
                    causation_id: Some("shopify-delivery:d-1".into()),
                })
            })
            .collect()
    }

    #[test]
    fn emitted_events_validate_against_their_published_schema() {
        let schemas: std::collections::HashMap<String, serde_json::Value> =
            event_schemas().into_iter().collect();
        let mut seen = std::collections::BTreeSet::new();
        for env in emitted() {
            let t = env["event_type"].as_str().unwrap().to_string();
            let schema = &schemas[&format!("{t}.v{}.schema.json", env["schema_version"])];
            let validator = jsonschema::validator_for(schema).unwrap();
            let errors: Vec<String> = validator.iter_errors(&env).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{t}: {errors:?}");
            seen.insert(t);
        }
        assert_eq!(seen.len(), 4, "every event type is exercised: {seen:?}");
    }

    #[test]
    fn a_schema_rejects_an_event_that_breaks_it() {
        let schemas: std::collections::HashMap<String, serde_json::Value> =
            event_schemas().into_iter().collect();
        let validator = jsonschema::validator_for(&schemas["OrderPlaced.v1.schema.json"]).unwrap();
        let mut env = emitted().remove(0);
        env["detail"]["order"]["totals"]["total"]["shop"]["minor"] = serde_json::json!("12808");
        assert!(!validator.is_valid(&env));
        let mut env = emitted().remove(0);
        env["detail"]["order"]["shop_currency"] = serde_json::json!("usd");
        assert!(!validator.is_valid(&env));
    }

    #[test]
    fn envelope_ids_are_deterministic_per_delivery() {
        let a = delivery_event_id("shopify", "s", "orders/create", "d-1");
        assert_eq!(a, delivery_event_id("shopify", "s", "orders/create", "d-1"));
        assert_ne!(a, delivery_event_id("shopify", "s", "orders/create", "d-2"));
        assert_ne!(
            a,
            delivery_event_id("shopify", "s", "orders/updated", "d-1")
        );
    }
}
