//! SQS batches in, batch responses out: what every queued function's
//! handler does with its records, whatever its step.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::Utc;

use retailflow_core::ports::queue::{QueueControl, QueueRecord};
use retailflow_core::ports::ClaimChecks;
use retailflow_core::queue_batch::process_batch;
use retailflow_core::resilience::RetryPolicy;
use retailflow_core::steps::erp_posting::ErpPosting;
use retailflow_core::steps::loyalty_accrual::LoyaltyAccrual;
use retailflow_core::steps::return_reversal::ReturnReversal;
use retailflow_core::steps::stock_commit::{handle_stock_message, StockCommit};
use retailflow_core::steps::{handle_message, handle_return_message, Invocation, StepOutcome};

use super::{deadline, release_budgets};

/// A workflow step fed by an SQS queue: one message body in, its outcome
/// out. Implemented here for each queued step (a blanket impl over
/// `OrderStep` would forbid the others: the core crate could add it).
#[async_trait]
pub trait QueueStep: Send + Sync {
    async fn handle(&self, body: String, inv: Invocation) -> StepOutcome;
}

#[async_trait]
impl QueueStep for ErpPosting {
    async fn handle(&self, body: String, inv: Invocation) -> StepOutcome {
        handle_message(self, &body, inv).await
    }
}

#[async_trait]
impl QueueStep for LoyaltyAccrual {
    async fn handle(&self, body: String, inv: Invocation) -> StepOutcome {
        handle_message(self, &body, inv).await
    }
}

#[async_trait]
impl QueueStep for ReturnReversal {
    async fn handle(&self, body: String, inv: Invocation) -> StepOutcome {
        handle_return_message(self, &body, inv).await
    }
}

#[async_trait]
impl QueueStep for StockCommit {
    async fn handle(&self, body: String, inv: Invocation) -> StepOutcome {
        handle_stock_message(self, &body, inv).await
    }
}

/// The answer to a batch the function could not start on (its secret
/// unreadable, its configuration incomplete): every record waits with the
/// retry policy's backoff instead of coming back at the queue's
/// visibility timeout, so a two-hour Secrets Manager outage uses about a
/// dozen of the 24 receives and dead-letters nothing.
pub(super) async fn unstarted_batch(
    queue: &dyn QueueControl,
    event: &SqsEvent,
    reason: &str,
) -> SqsBatchResponse {
    tracing::error!(%reason, "the function could not start on its batch; records wait");
    retailflow_core::observability::count("Records", ("Outcome", "unstarted"));
    let policy = RetryPolicy::default();
    let mut failed = Vec::new();
    for r in sqs_records(event) {
        let wait = policy.delay(r.receive_count, None);
        if let Err(e) = queue.delay(&r.receipt_handle, wait).await {
            tracing::warn!(error = %e, "could not delay a record; it returns at the queue's visibility timeout");
        }
        failed.push(r.message_id);
    }
    batch_response(failed)
}

/// SQS records as the batch logic sees them.
pub(super) fn sqs_records(event: &SqsEvent) -> Vec<QueueRecord> {
    event
        .records
        .iter()
        .map(|m| QueueRecord {
            message_id: m.message_id.clone().unwrap_or_default(),
            receipt_handle: m.receipt_handle.clone().unwrap_or_default(),
            body: m.body.clone().unwrap_or_default(),
            receive_count: m
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
        })
        .collect()
}

/// One SQS batch through a queued step: records concurrently, retries
/// delayed, permanent failures dead-lettered, the rest reported as batch
/// item failures. The whole body of every queued function's handler.
pub async fn step_batch(
    step: &dyn QueueStep,
    queue: &dyn QueueControl,
    claims: &dyn ClaimChecks,
    event: &SqsEvent,
    deadline_ms: u64,
) -> SqsBatchResponse {
    let deadline = deadline(deadline_ms);
    let records = sqs_records(event);
    let failed = process_batch(&records, queue, &RetryPolicy::default(), |r| async move {
        let inv = Invocation {
            now: Utc::now(),
            deadline,
            attempt: retailflow_core::replay::attempt_of(&r.body, r.receive_count),
        };
        // An event that came by reference gets its detail back first.
        let body = match retailflow_core::claim_check::resolve(claims, &r.body).await {
            Ok(body) => body.into_owned(),
            Err(e) => return retailflow_core::steps::StepOutcome::from(e),
        };
        // The budget's waits end in time for the invocation to answer.
        retailflow_core::budget::within_deadline(deadline, step.handle(body, inv)).await
    })
    .await;
    release_budgets().await;
    batch_response(failed)
}

/// The partial batch response for `ReportBatchItemFailures`.
pub(super) fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut resp = SqsBatchResponse::default();
    for id in failed {
        resp.add_failure(id);
    }
    resp
}
