//! fulfillment-sync: invoked by an EventBridge schedule. Records the
//! configured ERP's shipments (NetSuite item fulfillments over SuiteQL) on
//! the shops' orders, through [`FulfillmentSync`]; the logic lives there.
//!
//! With Business Central configured there is nothing to read (its API does
//! not give shipment tracking): each tick answers so and does nothing.

use lambda_runtime::LambdaEvent;
use retailflow_aws::lambda::{
    deadline, run_function, scheduled_run, setting, CallTimeouts, FunctionError, Stack,
};
use retailflow_connectors::from_env::{erp_shipments_from_env, guarded_shops};
use retailflow_core::resilience::CircuitBreaker;
use retailflow_core::steps::fulfillment_sync::FulfillmentSync;
use retailflow_core::steps::Invocation;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run_function(CallTimeouts::STEP, sync, handle).await
}

/// Built on the first tick: reads the connector secret once. `None` when
/// the ERP's shipments are not read.
async fn sync(stack: &'static Stack) -> Result<Option<FulfillmentSync>, FunctionError> {
    let creds = stack.connector_credentials().await?;
    let Some(feed) = erp_shipments_from_env(setting, &creds)? else {
        return Ok(None);
    };
    Ok(Some(FulfillmentSync::new(
        stack.state_store()?,
        stack.event_bus()?,
        feed.clone(),
        CircuitBreaker::for_system(feed.system()),
        guarded_shops(setting, &creds)?,
    )))
}

async fn handle(
    sync: &'static Option<FulfillmentSync>,
    tick: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, FunctionError> {
    let Some(sync) = sync else {
        return Ok(serde_json::json!({
            "skipped": "the configured ERP's shipments are not read (Business Central)"
        }));
    };
    let inv = Invocation {
        now: chrono::Utc::now(),
        deadline: deadline(tick.context.deadline),
        attempt: 1,
    };
    scheduled_run("fulfillment sync", sync.run(inv)).await
}
