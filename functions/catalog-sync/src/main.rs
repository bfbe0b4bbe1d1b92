//! catalog-sync: invoked by an EventBridge schedule. Reads the configured
//! ERP's item feed (NetSuite SuiteQL or Business Central `items`) into the
//! DynamoDB price book and stock ledger and pushes stock levels to the
//! shops, through [`CatalogSync`]; the logic lives there.
//!
//! A run that stops (ERP throttled or down, DynamoDB unavailable) fails the
//! invocation with the reason; the next tick starts over, and every write
//! of the pages already read stands (they are idempotent).

use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use retailflow_aws::lambda::{
    run_function, scheduled_run, setting, CallTimeouts, FunctionError, Stack,
};
use retailflow_connectors::from_env::{erp_catalog_from_env, guarded_shops};
use retailflow_core::checkout::hot_stock::STEP_BUDGET;
use retailflow_core::resilience::CircuitBreaker;
use retailflow_core::steps::catalog_sync::CatalogSync;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run_function(
        CallTimeouts::STEP,
        sync,
        |sync: &'static CatalogSync, _tick: LambdaEvent<serde_json::Value>| {
            scheduled_run("catalog sync", sync.run())
        },
    )
    .await
}

/// Built on the first tick: reads the connector secret once.
async fn sync(stack: &'static Stack) -> Result<CatalogSync, FunctionError> {
    let creds = stack.connector_credentials().await?;
    let (feed, currency) = erp_catalog_from_env(setting, &creds)?;
    // Every shop with credentials gets the stock levels.
    let shops = guarded_shops(setting, &creds)?
        .into_iter()
        .map(|(_, shop)| shop)
        .collect();
    Ok(CatalogSync::new(
        feed.clone(),
        CircuitBreaker::for_system(feed.system()),
        shops,
        stack.catalog()?,
        stack.stock(STEP_BUDGET)?,
        currency,
        Arc::new(chrono::Utc::now),
    ))
}
