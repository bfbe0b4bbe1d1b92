//! reconciliation: invoked by its EventBridge schedule, by
//! `ReconciliationRequested` on the bus (`retailflow reconcile --bus`, or
//! itself when a run reaches its deadline), or directly. Checks every saga
//! of the window against the configured ERP and Salesforce Loyalty through
//! [`Reconciliation`]; the logic lives there.
//!
//! A run paused at its deadline asks for itself again on the bus and goes
//! on from its last page; one paused because a system of record cannot
//! answer fails the invocation with the reason (the errors alarm shows it)
//! and the next tick goes on.

use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use retailflow_aws::lambda::{
    deadline, release_budgets, run_function, setting, CallTimeouts, FunctionError, Stack,
};
use retailflow_connectors::from_env::{guarded_erp, guarded_loyalty};
use retailflow_core::ports::EventBus;
use retailflow_core::reconciliation::request::{config_from_env, requested_window};
use retailflow_core::reconciliation::run::{
    continuation_event, MAX_INVOCATIONS, PAUSED_AT_DEADLINE,
};
use retailflow_core::reconciliation::Reconciliation;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run_function(CallTimeouts::STEP, reconciliation, handle).await
}

/// Built on the first invocation: reads the connector secret once.
async fn reconciliation(
    stack: &'static Stack,
) -> Result<(Reconciliation, Arc<dyn EventBus>), FunctionError> {
    let creds = stack.connector_credentials().await?;
    // Its events are small: no claim checks (it has no access to the bucket).
    let bus: Arc<dyn EventBus> = stack.bus_without_claim_checks()?;
    let recon = Reconciliation::new(
        stack.state_store()?,
        bus.clone(),
        stack.event_archive()?,
        Some(guarded_erp(setting, &creds)?),
        Some(guarded_loyalty(setting, &creds)?),
        config_from_env(setting)?,
        Arc::new(chrono::Utc::now),
    );
    Ok((recon, bus))
}

fn lookback() -> chrono::Duration {
    let hours = setting("RETAILFLOW_RECONCILIATION_LOOKBACK_HOURS")
        .and_then(|h| h.trim().parse::<i64>().ok())
        .filter(|h| *h > 0)
        .unwrap_or(24);
    chrono::Duration::hours(hours)
}

async fn handle(
    (recon, bus): &'static (Reconciliation, Arc<dyn EventBus>),
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, FunctionError> {
    let now = chrono::Utc::now();
    let window = requested_window(&event.payload, now, lookback())?;
    let report = recon.run(window, deadline(event.context.deadline)).await;
    release_budgets().await;
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
        Some(reason) => Err(FunctionError::retryable(
            "RunStopped",
            format!(
                "reconciliation {} paused, the next tick goes on: {reason}",
                report.run_id
            ),
        )),
    }
}
