//! fulfillment-sync: invoked by an EventBridge schedule. Wires the
//! configured ERP's shipment feed (NetSuite item fulfillments over SuiteQL),
//! the shops' admin APIs, DynamoDB (claims, watermark, quarantine) and
//! EventBridge into [`retailflow_core::steps::fulfillment_sync::FulfillmentSync`];
//! the logic lives there.
//!
//! With Business Central configured there is nothing to read (its API does
//! not give shipment tracking): each tick answers so and does nothing.

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_aws::lambda::{
    aws_sdk_config, claim_checks, connector_credentials, env, event_bus, init_tracing,
    release_budgets, scheduled_run_answer, SdkConfig,
};
use retailflow_connectors::from_env::{erp_shipments_from_env, shops_from_env};
use retailflow_core::ports::ClaimChecks;
use retailflow_core::resilience::CircuitBreaker;
use retailflow_core::steps::fulfillment_sync::FulfillmentSync;
use retailflow_core::steps::return_reversal::Guarded;
use retailflow_core::steps::Invocation;
use tokio::sync::OnceCell;

struct App {
    /// Where events too large for the bus ride (S3).
    claims: Arc<dyn ClaimChecks>,
    aws: SdkConfig,
    /// Built on the first tick (reads the connector secret once); `None`
    /// when the ERP's shipments are not read.
    sync: OnceCell<Option<FulfillmentSync>>,
}

fn breaker(system: &'static str) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(system, 5, Duration::from_secs(60)))
}

impl App {
    async fn sync(&self) -> Result<&Option<FulfillmentSync>, Error> {
        self.sync
            .get_or_try_init(|| async {
                let creds = connector_credentials(&self.aws).await?;
                let var = |k: &str| std::env::var(k).ok();
                let Some(feed) = erp_shipments_from_env(var, &creds)? else {
                    return Ok::<_, Error>(None);
                };
                let shops = shops_from_env(var, &creds)?
                    .into_iter()
                    .map(|(platform, c)| {
                        let b = breaker(c.system());
                        (platform, Guarded::new(c, b))
                    })
                    .collect();
                Ok(Some(FulfillmentSync::new(
                    Arc::new(DynamoDbStateStore::new(
                        aws_sdk_dynamodb::Client::new(&self.aws),
                        env("RETAILFLOW_STATE_TABLE")?,
                    )),
                    event_bus(&self.aws, self.claims.clone())?,
                    feed.clone(),
                    breaker(feed.system()),
                    shops,
                )))
            })
            .await
    }
}

async fn handle(
    app: &App,
    tick: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, Error> {
    let Some(sync) = app.sync().await? else {
        return Ok(serde_json::json!({
            "skipped": "the configured ERP's shipments are not read (Business Central)"
        }));
    };
    let inv = Invocation {
        now: chrono::Utc::now(),
        deadline: retailflow_aws::lambda::deadline(tick.context.deadline),
        attempt: 1,
    };
    let outcome = sync.run(inv).await;
    release_budgets().await;
    Ok(scheduled_run_answer("fulfillment sync", outcome)?)
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
        claims: claim_checks(&aws)?,
        aws,
        sync: OnceCell::new(),
    })
}
