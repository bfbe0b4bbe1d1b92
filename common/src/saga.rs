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
    pub event_ids: BTreeSet<String>,
    /// When each event type was first recorded.
    pub first_seen: BTreeMap<String, DateTime<Utc>>,
    pub steps: BTreeMap<String, StepRecord>,
    /// What returns need to know of the order, once intake has seen it.
    pub order_facts: Option<OrderFacts>,
    /// The order's admitted refunds.
    pub refund_ledger: RefundLedger,
}

impl SagaRecord {
    pub fn empty(saga_key: &str) -> Self {
        SagaRecord {
            saga_key: saga_key.to_string(),
            started_at: None,
            updated_at: None,
            last_event_type: None,
            event_types: BTreeSet::new(),
            event_ids: BTreeSet::new(),
            first_seen: BTreeMap::new(),
            steps: BTreeMap::new(),
            order_facts: None,
            refund_ledger: RefundLedger::default(),
        }
    }

    /// Applies an update the way the DynamoDB adapter's update expression does.
    pub fn apply(&mut self, u: &SagaUpdate) {
        self.started_at.get_or_insert(u.at);
        self.updated_at = Some(u.at);
        if let Some(e) = &u.event {
            self.last_event_type = Some(e.event_type.clone());
            self.event_types.insert(e.event_type.clone());
            self.event_ids.insert(e.event_id.clone());
            self.first_seen.entry(e.event_type.clone()).or_insert(u.at);
        }
        if u.order_facts.is_some() && (u.replace_order_facts || self.order_facts.is_none()) {
            self.order_facts.clone_from(&u.order_facts);
        }
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
        }
    }

    fn update(total: i64, replace: bool) -> SagaUpdate {
        SagaUpdate {
            saga_key: "k".into(),
            at: DateTime::UNIX_EPOCH,
            event: None,
            order_facts: Some(facts(total)),
            replace_order_facts: replace,
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
