//! return-reversal: SQS-triggered (ReportBatchItemFailures). Wires DynamoDB,
//! EventBridge, SQS, the configured ERP, Salesforce Loyalty and the shops'
//! admin APIs into [`retailflow_core::steps::return_reversal::ReturnReversal`]; the
//! logic lives there and in [`retailflow_aws::lambda::return_step_batch`].

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_aws::adapters::sqs::SqsQueueControl;
use retailflow_aws::lambda::{
    aws_sdk_config, claim_checks, connector_credentials, env, event_bus, init_tracing,
    return_step_batch, unstarted_batch, SdkConfig,
};
use retailflow_connectors::from_env::{erp_from_env, salesforce_config, shops_from_env};
use retailflow_connectors::salesforce::SalesforceLoyalty;
use retailflow_core::ports::ClaimChecks;
use retailflow_core::resilience::CircuitBreaker;
use retailflow_core::steps::return_reversal::{Guarded, ReturnReversal, ReturnReversalConfig};
use tokio::sync::OnceCell;

struct App {
    /// Where events too large for the bus ride (S3).
    claims: Arc<dyn ClaimChecks>,
    aws: SdkConfig,
    queue: SqsQueueControl,
    /// Built on the first batch (reads the connector secret once).
    step: OnceCell<ReturnReversal>,
}

/// A breaker per system, living as long as the execution environment.
fn breaker(system: &'static str) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(system, 5, Duration::from_secs(60)))
}

impl App {
    async fn step(&self) -> Result<&ReturnReversal, Error> {
        self.step
            .get_or_try_init(|| async {
                let creds = connector_credentials(&self.aws).await?;
                let var = |k: &str| std::env::var(k).ok();
                let erp = erp_from_env(var, &creds)?;
                let loyalty = Arc::new(SalesforceLoyalty::new(salesforce_config(var, &creds)?));
                let shops = shops_from_env(var, &creds)?
                    .into_iter()
                    .map(|(platform, c)| {
                        let b = breaker(c.system());
                        (platform, Guarded::new(c, b))
                    })
                    .collect();
                Ok::<_, Error>(ReturnReversal::new(
                    Arc::new(DynamoDbStateStore::new(
                        aws_sdk_dynamodb::Client::new(&self.aws),
                        env("RETAILFLOW_STATE_TABLE")?,
                    )),
                    event_bus(&self.aws, self.claims.clone())?,
                    Guarded::new(erp.clone(), breaker(erp.system())),
                    Guarded::new(loyalty, breaker("salesforce-loyalty")),
                    shops,
                    ReturnReversalConfig::default(),
                ))
            })
            .await
    }
}

async fn handle(app: &App, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let step = match app.step().await {
        Ok(step) => step,
        // Not the records' fault: they wait with backoff, receives spared.
        Err(e) => return Ok(unstarted_batch(&app.queue, &event.payload, &e.to_string()).await),
    };
    Ok(return_step_batch(
        step,
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
    Ok(App {
        claims: claim_checks(&aws)?,
        queue: SqsQueueControl::new(
            aws_sdk_sqs::Client::new(&aws),
            env("RETAILFLOW_QUEUE_URL")?,
            env("RETAILFLOW_DLQ_URL")?,
        ),
        aws,
        step: OnceCell::new(),
    })
}
