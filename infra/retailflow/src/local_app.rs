//! The whole app in one process: the same step logic as the Lambdas, wired to
//! in-process adapters instead of DynamoDB and EventBridge.

use std::sync::Arc;

use common::adapters::in_process::{InProcessEventBus, InProcessStateStore};
use common::intake::{IntakeConfig, OrderIntake};

pub struct LocalApp {
    pub store: Arc<InProcessStateStore>,
    pub bus: Arc<InProcessEventBus>,
    pub intake: OrderIntake,
}

impl LocalApp {
    pub fn new(config: IntakeConfig) -> Self {
        let store = Arc::new(InProcessStateStore::new());
        let bus = Arc::new(InProcessEventBus::new());
        let intake = OrderIntake::new(store.clone(), bus.clone(), config);
        LocalApp { store, bus, intake }
    }

    /// What a person asks of the local app: every published event, saga and
    /// quarantined delivery.
    pub fn snapshot(&self) -> serde_json::Value {
        let events: Vec<serde_json::Value> = self
            .bus
            .published()
            .iter()
            .map(|e| {
                serde_json::json!({
                    "event_id": e.event_id.to_string(),
                    "detail_type": e.detail_type,
                    "source": e.source,
                    "detail": serde_json::from_str::<serde_json::Value>(&e.detail).unwrap_or_default(),
                })
            })
            .collect();
        let quarantine: Vec<serde_json::Value> = self
            .store
            .quarantined()
            .iter()
            .map(|q| {
                serde_json::json!({
                    "id": q.id.to_string(), "source": q.source, "topic": q.topic,
                    "delivery_id": q.delivery_id, "reason": q.reason, "bytes": q.body.len(),
                })
            })
            .collect();
        serde_json::json!({
            "events": events,
            "sagas": self.store.sagas(),
            "quarantine": quarantine,
        })
    }
}
