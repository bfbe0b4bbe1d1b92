//! return-reversal: SQS-triggered (ReportBatchItemFailures). Reverses each
//! refund and cancellation in the configured ERP, Salesforce Loyalty and the
//! shops' admin APIs (till returns) through [`ReturnReversal`]; the logic
//! lives there, the batch handling in [`retailflow_aws::lambda::step_batch`].

use retailflow_aws::lambda::{run_queue_step, setting, FunctionError, Stack, UnbuiltStep};
use retailflow_connectors::from_env::{guarded_erp, guarded_loyalty, guarded_shops};
use retailflow_core::steps::return_reversal::{ReturnReversal, ReturnReversalConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run_queue_step(UnbuiltStep::RecordsWait, step).await
}

/// Built on the first batch: reads the connector secret once.
async fn step(stack: &'static Stack) -> Result<ReturnReversal, FunctionError> {
    let creds = stack.connector_credentials().await?;
    Ok(ReturnReversal::new(
        stack.state_store()?,
        stack.event_bus()?,
        guarded_erp(setting, &creds)?,
        guarded_loyalty(setting, &creds)?,
        guarded_shops(setting, &creds)?,
        ReturnReversalConfig::default(),
    ))
}
