//! Operators' actions kept in the in-process store (journaled like the
//! rest, so a restarted `serve` still shows them).

use async_trait::async_trait;

use super::InProcessStateStore;
use crate::ports::operator_actions::{OperatorAction, OperatorActions};
use crate::ports::StoreError;

#[async_trait]
impl OperatorActions for InProcessStateStore {
    async fn record(&self, action: &OperatorAction) -> Result<(), StoreError> {
        self.write(|st| {
            let row = serde_json::to_string(action)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let at = action
                .at
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            st.dirty
                .rows
                .push((format!("action/{at}/{}", action.id), Some(row)));
            st.actions.push(action.clone());
            Ok(())
        })
    }

    async fn for_order(&self, order_key: &str) -> Result<Vec<OperatorAction>, StoreError> {
        let mut found: Vec<OperatorAction> = self
            .lock()
            .actions
            .iter()
            .filter(|a| a.order_key.as_deref() == Some(order_key))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.at.cmp(&b.at).then(a.id.cmp(&b.id)));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn action(order: &str, minutes: i64) -> OperatorAction {
        let t0: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-12-08T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        OperatorAction {
            id: uuid::Uuid::new_v4(),
            at: t0 + chrono::Duration::minutes(minutes),
            who: "olga@example.com".into(),
            action: "retry".into(),
            subject: "dead letter 1".into(),
            order_key: Some(order.into()),
            note: None,
            result: "re-driven and done".into(),
        }
    }

    #[tokio::test]
    async fn an_orders_actions_come_back_oldest_first_and_no_other_orders() {
        let store = InProcessStateStore::new();
        let (late, early, other) = (action("a", 5), action("a", 1), action("b", 3));
        for a in [&late, &early, &other] {
            store.record(a).await.unwrap();
        }
        assert_eq!(store.for_order("a").await.unwrap(), vec![early, late]);
        assert!(store.for_order("c").await.unwrap().is_empty());
    }
}
