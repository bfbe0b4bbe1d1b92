//! reconciliation: invoked by its EventBridge schedule, by
//! `ReconciliationRequested` on the bus (`retailflow reconcile --bus`, or
//! itself when a run reaches its deadline), or directly. Wires DynamoDB,
//! EventBridge, the configured ERP and Salesforce Loyalty into
//! [`retailflow_core::reconciliation::Reconciliation`]; the logic lives there.
//!
//! A run paused at its deadline asks for itself again on the bus and goes
//! on from its last page; one paused because a system of record cannot
//! answer fails the invocation with the reason (the errors alarm shows it)
//! and the next tick goes on.

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_aws::adapters::eventbridge::EventBridgeBus;
use retailflow_aws::adapters::eventbridge_archive::EventBridgeArchive;
use retailflow_aws::lambda::{
    aws_sdk_config, connector_credentials, deadline, env, init_tracing, SdkConfig,
};
use retailflow_connectors::from_env::{erp_from_env, salesforce_config};
use retailflow_connectors::salesforce::SalesforceLoyalty;
use retailflow_core::ports::EventBus;
use retailflow_core::reconciliation::request::{config_from_env, requested_window};
use retailflow_core::reconciliation::run::{
    continuation_event, MAX_INVOCATIONS, PAUSED_AT_DEADLINE,
};
use retailflow_core::reconciliation::Reconciliation;
use retailflow_core::resilience::CircuitBreaker;
use retailflow_core::steps::return_reversal::Guarded;
use tokio::sync::OnceCell;

struct App {
    aws: SdkConfig,
    /// Built on the first invocation (reads the connector secret once).
    recon: OnceCell<(Reconciliation, Arc<EventBridgeBus>)>,
}

impl App {
    async fn recon(&self) -> Result<&(Reconciliation, Arc<EventBridgeBus>), Error> {
        self.recon
            .get_or_try_init(|| async {
                let var = |k: &str| std::env::var(k).ok();
                let creds = connector_credentials(&self.aws).await?;
                let erp = erp_from_env(var, &creds)?;
                let loyalty = Arc::new(SalesforceLoyalty::new(salesforce_config(var, &creds)?));
                let bus = Arc::new(EventBridgeBus::new(
                    aws_sdk_eventbridge::Client::new(&self.aws),
                    env("RETAILFLOW_EVENT_BUS")?,
                ));
                let breaker =
                    |name| Arc::new(CircuitBreaker::new(name, 5, Duration::from_secs(60)));
                let archive = EventBridgeArchive::new(
                    aws_sdk_eventbridge::Client::new(&self.aws),
                    env("RETAILFLOW_EVENT_ARCHIVE_ARN")?,
                    env("RETAILFLOW_EVENT_BUS_ARN")?,
                    EventBridgeArchive::parse_rules(&env("RETAILFLOW_STEP_RULES")?)?,
                );
                let recon = Reconciliation::new(
                    Arc::new(DynamoDbStateStore::new(
                        aws_sdk_dynamodb::Client::new(&self.aws),
                        env("RETAILFLOW_STATE_TABLE")?,
                    )),
                    bus.clone(),
                    Arc::new(archive),
                    Some(Guarded {
                        breaker: breaker(erp.system()),
                        connector: erp,
                    }),
                    Some(Guarded {
                        connector: loyalty,
                        breaker: breaker("salesforce-loyalty"),
                    }),
                    config_from_env(var)?,
                    Arc::new(chrono::Utc::now),
                );
                Ok::<_, Error>((recon, bus))
            })
            .await
    }
}

fn lookback() -> chrono::Duration {
    let hours = std::env::var("RETAILFLOW_RECONCILIATION_LOOKBACK_HOURS")
        .ok()
        .and_then(|h| h.trim().parse::<i64>().ok())
        .filter(|h| *h > 0)
        .unwrap_or(24);
    chrono::Duration::hours(hours)
}

async fn handle(
    app: &App,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, Error> {
    let now = chrono::Utc::now();
    let window = requested_window(&event.payload, now, lookback())?;
    let (recon, bus) = app.recon().await?;
    let report = recon.run(window, deadline(event.context.deadline)).await;
    retailflow_aws::lambda::release_budgets().await;
    let report = report?;
    let answer = serde_json::json!({
        "run_id": report.run_id,
        "complete": report.complete,
        "window_from": report.window_from,
        "window_to": report.window_to,
        "sagas_checked": report.sagas_checked,
        "redriven": report.redriven,
        "escalated": report.escalated,
        "counts": report.counts,
        "paused_because": report.paused_because,
    });
    match report.paused_because.as_deref() {
        None => Ok(answer),
        Some(PAUSED_AT_DEADLINE) if report.invocations < MAX_INVOCATIONS => {
            bus.publish(&[continuation_event(&report.run_id, now)])
                .await?;
            tracing::info!(run_id = %report.run_id, "reconciliation paused at its deadline; asked for the rest");
            Ok(answer)
        }
        Some(reason) => Err(format!(
            "reconciliation {} paused, the next tick goes on: {reason}",
            report.run_id
        )
        .into()),
    }
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
        recon: OnceCell::new(),
    })
}
