//! A step's own queue and dead-letter queue, as its batch handling uses
//! them: SQS on AWS (`retailflow-aws`), in-process queues locally.

use std::time::Duration;

use async_trait::async_trait;

/// One queue message, independent of the Lambda event types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecord {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// SQS `ApproximateReceiveCount` (1 on first delivery).
    pub receive_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue call failed: {0}")]
pub struct QueueError(pub String);

/// What a handler can do to its own queue and DLQ.
#[async_trait]
pub trait QueueControl: Send + Sync {
    /// Keeps the message invisible for `by` (ChangeMessageVisibility).
    async fn delay(&self, receipt_handle: &str, by: Duration) -> Result<(), QueueError>;
    /// Sends the message to the DLQ with the reason.
    async fn dead_letter(&self, record: &QueueRecord, reason: &str) -> Result<(), QueueError>;
}
