//! erp-post: SQS-triggered (ReportBatchItemFailures). Posts each placed
//! order to the configured ERP (NetSuite or Business Central) through
//! [`ErpPosting`]; the logic lives there, the batch handling in
//! [`retailflow_aws::lambda::step_batch`].

use retailflow_aws::lambda::{run_queue_step, setting, FunctionError, Stack, UnbuiltStep};
use retailflow_connectors::from_env::guarded_erp;
use retailflow_core::steps::erp_posting::{ErpPosting, ErpPostingConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run_queue_step(UnbuiltStep::RecordsWait, step).await
}

/// Built on the first batch: reads the connector secret once.
async fn step(stack: &'static Stack) -> Result<ErpPosting, FunctionError> {
    let erp = guarded_erp(setting, &stack.connector_credentials().await?)?;
    Ok(ErpPosting::new(
        stack.state_store()?,
        stack.event_bus()?,
        erp.connector,
        erp.breaker,
        ErpPostingConfig::default(),
    ))
}
