//! stock-commit: SQS-triggered (ReportBatchItemFailures), fed `OrderPlaced`
//! and `OrderCancelled` by EventBridge rules and a one-minute schedule.
//! Takes each order's units out of stock (or gives a cancelled order's
//! back) through [`StockCommit`]; the logic lives there, the batch handling
//! in [`retailflow_aws::lambda::step_batch`]. No connector secret: this step
//! talks to no external system.

use retailflow_aws::lambda::{run_queue_step, FunctionError, Stack, UnbuiltStep};
use retailflow_core::checkout::hot_stock::STEP_BUDGET;
use retailflow_core::idempotency::LeasePolicy;
use retailflow_core::steps::stock_commit::StockCommit;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run_queue_step(UnbuiltStep::InvocationFails, step).await
}

async fn step(stack: &'static Stack) -> Result<StockCommit, FunctionError> {
    Ok(StockCommit::new(
        stack.state_store()?,
        stack.event_bus()?,
        stack.stock(STEP_BUDGET)?,
        stack.catalog()?,
        LeasePolicy::default(),
    ))
}
