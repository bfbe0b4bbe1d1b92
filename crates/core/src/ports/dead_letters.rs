//! Dead letters as operators list and re-drive them: SQS dead-letter
//! queues on AWS (`retailflow-aws`), the local app's in process.

use async_trait::async_trait;

use crate::replay::{DeadLetterFilter, DeadLetterView, RedriveReport, ReplayError};

/// A dead-letter queue and the queue its messages came from.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Up to `max` dead letters, left on the queue.
    async fn list(&self, max: usize) -> Result<Vec<DeadLetterView>, ReplayError>;
    /// Sends the matching dead letters (up to `max`) back to the source
    /// queue and removes them from the DLQ.
    async fn redrive(
        &self,
        filter: &DeadLetterFilter,
        max: usize,
    ) -> Result<RedriveReport, ReplayError>;
}
