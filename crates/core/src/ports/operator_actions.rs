//! What operators did from the console (who, when, what, on what, how it
//! went), kept with the order so its page tells the whole story, and so
//! support can answer "who retried this, and when?". Entries are only ever
//! added.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// One thing an operator did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAction {
    pub id: uuid::Uuid,
    pub at: DateTime<Utc>,
    /// The signed-in user (their login name, never a customer's).
    pub who: String,
    /// `retry`, `bulk_retry`, `check`, `resolve`, `dismiss`, `reconcile`.
    pub action: String,
    /// What it was done to: a dead letter's id, a quarantined delivery's, a
    /// filter, a window.
    pub subject: String,
    /// The order it was about, when one.
    pub order_key: Option<String>,
    /// The operator's note (resolve, dismiss).
    pub note: Option<String>,
    /// How it went, in words.
    pub result: String,
}

#[async_trait]
pub trait OperatorActions: Send + Sync {
    async fn record(&self, action: &OperatorAction) -> Result<(), StoreError>;
    /// The order's actions, oldest first.
    async fn for_order(&self, order_key: &str) -> Result<Vec<OperatorAction>, StoreError>;
}
