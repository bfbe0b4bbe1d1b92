//! loyalty-accrual: SQS-triggered (ReportBatchItemFailures). Accrues each
//! placed order's points in Salesforce Loyalty Management through
//! [`LoyaltyAccrual`]; the logic lives there, the batch handling in
//! [`retailflow_aws::lambda::step_batch`].

use retailflow_aws::lambda::{run_queue_step, setting, FunctionError, Stack, UnbuiltStep};
use retailflow_connectors::from_env::guarded_loyalty;
use retailflow_core::steps::loyalty_accrual::{LoyaltyAccrual, LoyaltyAccrualConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run_queue_step(UnbuiltStep::RecordsWait, step).await
}

/// Built on the first batch: reads the connector secret once.
async fn step(stack: &'static Stack) -> Result<LoyaltyAccrual, FunctionError> {
    let loyalty = guarded_loyalty(setting, &stack.connector_credentials().await?)?;
    Ok(LoyaltyAccrual::new(
        stack.state_store()?,
        stack.event_bus()?,
        loyalty.connector,
        loyalty.breaker,
        LoyaltyAccrualConfig {
            enroll_new_members: setting("RETAILFLOW_LOYALTY_ENROLL").is_some_and(|v| v == "true"),
            ..LoyaltyAccrualConfig::default()
        },
    ))
}
