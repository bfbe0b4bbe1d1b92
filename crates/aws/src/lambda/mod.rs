//! What every Lambda entrypoint shares, so each `main.rs` only wires its
//! step: logging setup, AWS clients with bounded call times, secrets read
//! once per execution environment, and SQS events in and batch responses out.
//!
//! # Built on the first event
//!
//! Every function builds its clients on its first event, not at start.
//! Loading the AWS SDK configuration builds an HTTPS stack that reads the
//! system's CA certificates: about 5 ms, against 2–3 ms for a whole
//! hello-world start. Done in `main`, it would make every cold start's init
//! three times a bare runtime's; done on the first event (a `OnceCell` the
//! handler fills), init is the runtime's own and the first answer carries
//! the same work once. A configuration error (a missing variable) fails that
//! first invocation with its message, and the next one tries again.
//! Measured by `infra/scripts/bench.sh`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use retailflow_core::config::ConfigError;
use retailflow_core::ports::ClaimChecks;

mod batch;
mod error;
mod function;
mod http;

pub use aws_config::SdkConfig;
pub use batch::{step_batch, QueueStep};
pub use error::FunctionError;
pub use function::{
    run_function, run_http_function, run_queue_step, CallTimeouts, Stack, UnbuiltStep,
};
pub use http::{gateway_time, json_response, request_deadline};

/// JSON logs to stdout (CloudWatch), level from `RUST_LOG`.
pub fn init_tracing() {
    let subscriber = retailflow_core::observability::json_subscriber(
        std::io::stdout,
        tracing_subscriber::EnvFilter::from_default_env(),
    );
    // Only fails when a subscriber is set already: the first one stays.
    let _ = tracing::subscriber::set_global_default(subscriber);
    retailflow_core::observability::metrics_to_stdout();
}

/// AWS configuration with every call bounded: a slow dependency becomes a
/// retryable error well inside the function's timeout, never a hang.
pub async fn aws_sdk_config(attempt: Duration, operation: Duration) -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500))
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws_https_client())
        .timeout_config(timeouts)
        .load()
        .await
}

/// The one HTTPS client every AWS SDK client uses: hyper 1 and rustls with
/// ring, the crypto `reqwest` brings for the connectors anyway. The SDK's
/// default client would add aws-lc beside it, about a megabyte more in
/// every function's zip (`infra/scripts/bench.sh` measures the zips).
pub fn aws_https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// An optional setting of the function's environment, as the connectors'
/// and steps' `from_env` builders read them.
pub fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A required setting of the function's environment; blank is unset.
pub fn env(name: &str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ConfigError::Unset(name.to_string()))
}

/// The secret's JSON text. Call it once per execution environment (behind a
/// `OnceCell`): secrets are not re-read per request.
pub async fn read_secret(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<String, ConfigError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| ConfigError::Secret {
            arn: arn.to_string(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        })?;
    Ok(out.secret_string().unwrap_or("{}").to_string())
}

/// A secret in Secrets Manager, read again whenever the credentials cache
/// asks (after its TTL, after a refusal).
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

#[async_trait::async_trait]
impl retailflow_core::ports::secrets::SecretSource for SecretsManagerSource {
    async fn read(&self) -> Result<String, retailflow_core::ports::secrets::SecretUnreadable> {
        read_secret(&self.client, &self.arn)
            .await
            .map_err(|e| retailflow_core::ports::secrets::SecretUnreadable(e.to_string()))
    }
}

/// This execution environment's connector credentials: the secret named
/// by `RETAILFLOW_CONNECTOR_SECRETS_ARN`, kept for
/// [`retailflow_core::credentials::SECRET_TTL`] and read again after a refusal, so a
/// rotation reaches warm containers.
pub async fn connector_credentials(
    aws: &SdkConfig,
) -> Result<retailflow_core::config::ConnectorCredentials, ConfigError> {
    let arn = env("RETAILFLOW_CONNECTOR_SECRETS_ARN")?;
    let source = SecretsManagerSource {
        client: aws_sdk_secretsmanager::Client::new(aws),
        arn: arn.clone(),
    };
    let live = std::sync::Arc::new(retailflow_core::credentials::ConnectorSecrets::new(
        std::sync::Arc::new(source),
        retailflow_core::credentials::system_clock(),
    ));
    let creds = retailflow_core::config::ConnectorCredentials::read(live)
        .await
        .map_err(|e| ConfigError::Secret {
            arn,
            reason: e.to_string(),
        })?;
    let budgets = match CONTAINER_BUDGETS.get() {
        Some(b) => b.clone(),
        None => {
            let slots = std::sync::Arc::new(crate::adapters::dynamodb::DynamoDbStateStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                env("RETAILFLOW_STATE_TABLE")?,
            ));
            let b = retailflow_core::config::Budgets::from_env(
                |k| std::env::var(k).ok(),
                slots,
                retailflow_core::credentials::system_clock(),
            )
            .map_err(|e| ConfigError::BadSetting(e.to_string()))?;
            CONTAINER_BUDGETS.get_or_init(|| b).clone()
        }
    };
    Ok(creds.with_budgets(budgets))
}

/// This container's places in the accounts' budgets: one holder per
/// container, whatever its connectors.
static CONTAINER_BUDGETS: std::sync::OnceLock<retailflow_core::config::Budgets> =
    std::sync::OnceLock::new();

/// Gives back the budget slots this container holds: at the end of every
/// invocation, since a frozen container must not keep them.
pub async fn release_budgets() {
    if let Some(b) = CONTAINER_BUDGETS.get() {
        b.release_all().await;
    }
}

/// The invocation's deadline as a time; `None` when the runtime did not give
/// a wall-clock one (emulators send 0 or the timeout in ms), so leases fall
/// back to their default instead of refusing all work as out of time.
pub fn deadline(deadline_ms: u64) -> Option<DateTime<Utc>> {
    // 2001-01-01T00:00:00Z: anything earlier is not an epoch deadline.
    const PLAUSIBLE_MS: u64 = 978_307_200_000;
    if deadline_ms < PLAUSIBLE_MS {
        return None;
    }
    i64::try_from(deadline_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
}

/// A scheduled step's run, answered: the budget places it held given back,
/// then its report when done, else an error with the reason, so the
/// function's errors alarm sees it. Its schedule runs it again; nothing is
/// retried by Lambda.
pub async fn scheduled_run(
    what: &str,
    run: impl std::future::Future<Output = retailflow_core::steps::StepOutcome>,
) -> Result<serde_json::Value, FunctionError> {
    use retailflow_core::steps::StepOutcome;
    let outcome = run.await;
    release_budgets().await;
    match outcome {
        StepOutcome::Done { summary } => Ok(summary),
        StepOutcome::Retry { reason, .. } => Err(FunctionError::retryable(
            "RunStopped",
            format!("{what} stopped, the next tick goes on: {reason}"),
        )),
        StepOutcome::Reject { reason } | StepOutcome::Cancelled { reason } => Err(
            FunctionError::not_retryable("RunRefused", format!("{what} refused: {reason}")),
        ),
    }
}

/// The stack's claim-check bucket (`RETAILFLOW_CLAIM_CHECK_BUCKET`): where
/// events too large for the bus ride, for every function that publishes or
/// consumes them.
pub fn claim_checks(aws: &SdkConfig) -> Result<Arc<dyn ClaimChecks>, ConfigError> {
    Ok(Arc::new(
        crate::adapters::s3_claim_checks::S3ClaimChecks::new(
            aws_sdk_s3::Client::new(aws),
            env("RETAILFLOW_CLAIM_CHECK_BUCKET")?,
        ),
    ))
}

/// Stock on the state table, its hot SKUs (`RETAILFLOW_HOT_SKUS`, none when
/// unset) sharded and its contention ridden out for up to `budget` a call.
/// The SDK's own retries are off for it: they wait up to a second on
/// throttling (ten times a checkout's budget), the stock retries contention
/// within milliseconds itself, and a count's change applied twice by a
/// retry of a write that landed would be units that are not there. Other
/// failures go back to the caller (a step's message is retried whole).
pub fn stock(
    aws: &SdkConfig,
    table: &str,
    budget: Duration,
) -> Result<Arc<dyn retailflow_core::ports::stock::StockReservations>, ConfigError> {
    use retailflow_core::checkout::hot_stock::{HotSkus, HotStock};
    let hot = HotSkus::from_settings(setting)?;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(aws)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
            .build(),
    );
    let table_stock = crate::adapters::dynamodb_stock::DynamoDbStock::new(client, table);
    Ok(Arc::new(
        HotStock::new(Arc::new(table_stock), hot).with_budget(budget),
    ))
}

/// The stack's event bus (`RETAILFLOW_EVENT_BUS`), sending events too
/// large for it by reference through `claims`.
pub fn event_bus(
    aws: &SdkConfig,
    claims: Arc<dyn ClaimChecks>,
) -> Result<Arc<dyn retailflow_core::ports::EventBus>, ConfigError> {
    let bus = crate::adapters::eventbridge::EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(aws),
        env("RETAILFLOW_EVENT_BUS")?,
    );
    Ok(Arc::new(
        retailflow_core::claim_check::ClaimCheckedBus::new(Arc::new(bus), claims),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_that_is_not_a_wall_clock_time_is_unknown_not_expired() {
        assert_eq!(deadline(0), None);
        assert_eq!(deadline(600_000), None, "cargo lambda sends the timeout");
        assert_eq!(
            deadline(1_795_694_400_000).unwrap().timestamp(),
            1_795_694_400
        );
    }
}
