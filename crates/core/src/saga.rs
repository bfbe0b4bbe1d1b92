//! Saga state of one order: the events it has seen and each step's progress.
//! Steps keep their idempotency claims in the same item, so reading the saga
//! tells where every order is.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::refund_ledger::{OrderFacts, RefundLedger};

/// An event recorded on the saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaEvent {
    pub event_id: String,
    pub event_type: String,
    /// An event intake published, which starts steps: the first of its type
    /// is remembered by id (with its time, `first_seen`), which is how a
    /// re-drive finds it in the bus's archive. The event itself is not kept
    /// on the saga: the item would grow with every delivery (an Adobe order
    /// is saved again and again) and every step's write would be billed for
    /// it.
    pub replayable: bool,
}

/// Saga items of one hour are spread over this many index partitions, so a
/// sales peak does not write one hot partition of the time index.
pub const TIME_BUCKET_SHARDS: u32 = 8;

/// The time-index partition a saga started at `started_at` belongs to:
/// `2026-11-26T22#3` (hour, then a shard from the key). Reconciliation reads
/// one hour by querying its [`TIME_BUCKET_SHARDS`] partitions: no scan.
pub fn time_bucket(saga_key: &str, started_at: DateTime<Utc>) -> String {
    format!(
        "{}#{}",
        hour_of(started_at),
        bucket_shard(saga_key) % TIME_BUCKET_SHARDS
    )
}

/// The start of the hour `at` falls in: where a time-bucket walk begins.
pub fn hour_start(at: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::DurationRound;
    // An hour always divides a UTC timestamp: rounding cannot fail.
    at.duration_trunc(chrono::Duration::hours(1)).unwrap_or(at)
}

/// `2026-11-26T22`: the hour part of a time bucket.
pub fn hour_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H").to_string()
}

fn bucket_shard(saga_key: &str) -> u32 {
    // FNV-1a: stable across builds and platforms (unlike std's hasher).
    saga_key.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Recorded with a step's completion, in the same store request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaUpdate {
    /// The order's business key ([`crate::model::OrderRef::key`]); also its
    /// correlation id.
    pub saga_key: String,
    pub at: DateTime<Utc>,
    pub event: Option<SagaEvent>,
    /// The order's facts, with an event carrying the whole order: kept as
    /// first recorded, or replaced (`replace_order_facts`) by an order edit.
    pub order_facts: Option<OrderFacts>,
    pub replace_order_facts: bool,
    /// The return's or cancellation's own saga this event opens
    /// (`<order>:return:<id>`, `<order>:cancellation`): started and
    /// time-indexed in the same write, and keeping the event's envelope (not
    /// the order), so reconciliation finds a return whose steps never ran,
    /// however old its order. Honoured for completions whose claim is not on
    /// the saga item (intake's).
    pub case_key: Option<String>,
    /// When the saga may be forgotten (kept well past the returns window).
    pub expires_at: DateTime<Utc>,
}

/// How long a saga is kept after its last update: past any returns window.
pub const SAGA_RETENTION: chrono::Duration = chrono::Duration::days(400);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    InProgress,
    Completed,
}

/// One step's progress, as kept in the saga item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub status: StepStatus,
    pub completed_at: Option<DateTime<Utc>>,
    /// What the step produced (ERP document id, points, ...).
    pub result: Option<serde_json::Value>,
    /// While in progress: until when its worker holds it (after that the
    /// worker is presumed dead).
    #[serde(default)]
    pub lease_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaRecord {
    pub saga_key: String,
    /// When anything was first recorded for this order; `None` while only a
    /// claim exists (a step can claim before intake records its event).
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub last_event_type: Option<String>,
    pub event_types: BTreeSet<String>,
    /// When each event type was first recorded.
    pub first_seen: BTreeMap<String, DateTime<Utc>>,
    pub steps: BTreeMap<String, StepRecord>,
    /// What returns need to know of the order, once intake has seen it.
    pub order_facts: Option<OrderFacts>,
    /// The order's admitted refunds.
    pub refund_ledger: RefundLedger,
    /// The first event of each type intake recorded for this saga, by
    /// type: what a re-drive asks the bus's archive for, at its
    /// `first_seen` time. One per type, so the item does not grow with
    /// deliveries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub first_event_ids: BTreeMap<String, String>,
    /// Times reconciliation re-drove each step (it stops at its limit).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub redrives: BTreeMap<String, u32>,
}

impl SagaRecord {
    pub fn empty(saga_key: &str) -> Self {
        SagaRecord {
            saga_key: saga_key.to_string(),
            started_at: None,
            updated_at: None,
            last_event_type: None,
            event_types: BTreeSet::new(),
            first_seen: BTreeMap::new(),
            steps: BTreeMap::new(),
            order_facts: None,
            refund_ledger: RefundLedger::default(),
            first_event_ids: BTreeMap::new(),
            redrives: BTreeMap::new(),
        }
    }

    /// Applies an update the way the DynamoDB adapter's update expression does.
    pub fn apply(&mut self, u: &SagaUpdate) {
        self.started_at.get_or_insert(u.at);
        self.updated_at = Some(u.at);
        if let Some(e) = &u.event {
            self.last_event_type = Some(e.event_type.clone());
            self.event_types.insert(e.event_type.clone());
            self.first_seen.entry(e.event_type.clone()).or_insert(u.at);
            // A return's or cancellation's event is found on its own saga.
            if e.replayable && u.case_key.is_none() {
                self.remember_first(e);
            }
        }
        if u.order_facts.is_some() && (u.replace_order_facts || self.order_facts.is_none()) {
            self.order_facts.clone_from(&u.order_facts);
        }
    }

    /// Opens the case saga an update names (see [`SagaUpdate::case_key`]),
    /// the way the DynamoDB adapter's case write does.
    pub fn open_case(&mut self, u: &SagaUpdate) {
        self.started_at.get_or_insert(u.at);
        self.updated_at = Some(u.at);
        if let Some(e) = &u.event {
            self.first_seen.entry(e.event_type.clone()).or_insert(u.at);
            if e.replayable {
                self.remember_first(e);
            }
        }
    }

    /// The first kept stays, as DynamoDB's `if_not_exists` keeps it.
    fn remember_first(&mut self, e: &SagaEvent) {
        self.first_event_ids
            .entry(e.event_type.clone())
            .or_insert_with(|| e.event_id.clone());
    }

    pub fn step(&self, step: &str) -> Option<&StepRecord> {
        self.steps.get(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{Currency, Money};

    fn facts(total: i64) -> OrderFacts {
        OrderFacts {
            total: Money::new(total, Currency::from_code("USD").unwrap()),
            taxes_included: false,
            placed_at: DateTime::UNIX_EPOCH,
            uncounted_line_ids: None,
        }
    }

    fn update(total: i64, replace: bool) -> SagaUpdate {
        SagaUpdate {
            saga_key: "k".into(),
            at: DateTime::UNIX_EPOCH,
            event: None,
            order_facts: Some(facts(total)),
            replace_order_facts: replace,
            case_key: None,
            expires_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn order_facts_are_kept_from_the_first_event_unless_an_edit_replaces_them() {
        let mut s = SagaRecord::empty("k");
        s.apply(&update(100, false));
        s.apply(&update(50, false));
        assert_eq!(s.order_facts, Some(facts(100)), "a redelivered placement");
        s.apply(&update(150, true));
        assert_eq!(s.order_facts, Some(facts(150)), "an edit");
    }
}
