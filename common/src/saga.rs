//! Saga state of one order: which events it has seen. Later steps (ERP post,
//! loyalty accrual, returns) record their progress in the same item, written
//! together with their idempotency completion.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Recorded with a step's completion, in the same store request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaUpdate {
    /// The order's business key ([`crate::model::OrderRef::key`]).
    pub saga_key: String,
    pub correlation_id: String,
    pub event_id: String,
    pub event_type: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaRecord {
    pub saga_key: String,
    pub correlation_id: String,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_event_type: String,
    pub event_types: BTreeSet<String>,
    pub event_ids: BTreeSet<String>,
}

impl SagaRecord {
    /// Applies an update the way the DynamoDB adapter's update expression does:
    /// first write starts the saga, later ones add to it.
    pub fn apply(existing: Option<SagaRecord>, u: &SagaUpdate) -> SagaRecord {
        let mut rec = existing.unwrap_or_else(|| SagaRecord {
            saga_key: u.saga_key.clone(),
            correlation_id: u.correlation_id.clone(),
            started_at: u.at,
            updated_at: u.at,
            last_event_type: u.event_type.clone(),
            event_types: BTreeSet::new(),
            event_ids: BTreeSet::new(),
        });
        rec.updated_at = u.at;
        rec.last_event_type = u.event_type.clone();
        rec.event_types.insert(u.event_type.clone());
        rec.event_ids.insert(u.event_id.clone());
        rec
    }
}
