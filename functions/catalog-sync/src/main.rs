//! catalog-sync: invoked by an EventBridge schedule. Wires the configured
//! ERP's item feed (NetSuite SuiteQL or Business Central `items`), the
//! DynamoDB price book and stock ledger, and the shops' admin APIs into
//! [`retailflow_core::steps::catalog_sync::CatalogSync`]; the logic lives there.
//!
//! A run that stops (ERP throttled or down, DynamoDB unavailable) fails the
//! invocation with the reason; the next tick starts over, and every write
//! of the pages already read stands (they are idempotent).

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use retailflow_aws::adapters::dynamodb_catalog::DynamoDbCatalog;
use retailflow_aws::lambda::{
    aws_sdk_config, connector_credentials, env, init_tracing, release_budgets,
    scheduled_run_answer, stock, SdkConfig,
};
use retailflow_connectors::from_env::{erp_catalog_from_env, shops_from_env};
use retailflow_core::checkout::hot_stock::STEP_BUDGET;
use retailflow_core::resilience::CircuitBreaker;
use retailflow_core::steps::catalog_sync::CatalogSync;
use retailflow_core::steps::return_reversal::Guarded;
use tokio::sync::OnceCell;

struct App {
    aws: SdkConfig,
    /// Built on the first tick (reads the connector secret once).
    sync: OnceCell<CatalogSync>,
}

impl App {
    async fn sync(&self) -> Result<&CatalogSync, Error> {
        self.sync
            .get_or_try_init(|| async {
                let creds = connector_credentials(&self.aws).await?;
                let (feed, currency) = erp_catalog_from_env(|k| std::env::var(k).ok(), &creds)?;
                let ddb = aws_sdk_dynamodb::Client::new(&self.aws);
                let table = env("RETAILFLOW_STATE_TABLE")?;
                // Every shop with credentials gets the stock levels.
                let shops = shops_from_env(|k| std::env::var(k).ok(), &creds)?
                    .into_iter()
                    .map(|(_, c)| {
                        let breaker =
                            Arc::new(CircuitBreaker::new(c.system(), 5, Duration::from_secs(60)));
                        Guarded::new(c, breaker)
                    })
                    .collect();
                Ok::<_, Error>(CatalogSync::new(
                    feed.clone(),
                    Arc::new(CircuitBreaker::new(
                        feed.system(),
                        5,
                        Duration::from_secs(60),
                    )),
                    shops,
                    Arc::new(DynamoDbCatalog::new(ddb.clone(), &table)),
                    stock(&self.aws, &table, STEP_BUDGET)?,
                    currency,
                    Arc::new(chrono::Utc::now),
                ))
            })
            .await
    }
}

async fn handle(
    app: &App,
    _tick: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, Error> {
    let outcome = app.sync().await?.run().await;
    release_budgets().await;
    Ok(scheduled_run_answer("catalog sync", outcome)?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    // Built on the first event (see retailflow_aws::lambda, "Built on the first event").
    let app = OnceCell::new();
    let app = &app;
    run(service_fn(move |event| async move {
        handle(app.get_or_try_init(build).await?, event).await
    }))
    .await
}

/// The clients and configuration every event of this execution environment shares.
async fn build() -> Result<App, Error> {
    let aws = aws_sdk_config(Duration::from_millis(1500), Duration::from_secs(3)).await;
    Ok(App {
        aws,
        sync: OnceCell::new(),
    })
}
