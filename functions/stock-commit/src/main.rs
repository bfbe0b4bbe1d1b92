//! stock-commit: SQS-triggered (ReportBatchItemFailures), fed `OrderPlaced`
//! and `OrderCancelled` by EventBridge rules and a one-minute schedule.
//! Wires the DynamoDB stock and catalog, EventBridge and SQS into
//! [`retailflow_core::steps::stock_commit::StockCommit`]; the logic lives there and
//! in [`retailflow_aws::lambda::stock_step_batch`]. No connector secret: this step
//! talks to no external system.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_aws::adapters::dynamodb_catalog::DynamoDbCatalog;
use retailflow_aws::adapters::sqs::SqsQueueControl;
use retailflow_aws::lambda::{
    aws_sdk_config, claim_checks, env, event_bus, init_tracing, stock, stock_step_batch,
};
use retailflow_core::checkout::hot_stock::STEP_BUDGET;
use retailflow_core::idempotency::LeasePolicy;
use retailflow_core::ports::ClaimChecks;
use retailflow_core::steps::stock_commit::StockCommit;
use tokio::sync::OnceCell;

struct App {
    /// Where events too large for the bus ride (S3).
    claims: Arc<dyn ClaimChecks>,
    queue: SqsQueueControl,
    step: StockCommit,
}

async fn handle(app: &App, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    Ok(stock_step_batch(
        &app.step,
        &app.queue,
        app.claims.as_ref(),
        &event.payload,
        event.context.deadline,
    )
    .await)
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
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let table = env("RETAILFLOW_STATE_TABLE")?;
    let claims = claim_checks(&aws)?;
    Ok(App {
        claims: claims.clone(),
        queue: SqsQueueControl::new(
            aws_sdk_sqs::Client::new(&aws),
            env("RETAILFLOW_QUEUE_URL")?,
            env("RETAILFLOW_DLQ_URL")?,
        ),
        step: StockCommit::new(
            Arc::new(DynamoDbStateStore::new(ddb.clone(), &table)),
            event_bus(&aws, claims.clone())?,
            stock(&aws, &table, STEP_BUDGET)?,
            Arc::new(DynamoDbCatalog::new(ddb, &table)),
            LeasePolicy::default(),
        ),
    })
}
