//! Every function's `main`: logs, the runtime loop, and its clients built
//! on the first event (see "Built on the first event" in the module above),
//! once per execution environment. A function gives only how to build what
//! it runs from the [`Stack`] and how to answer one event with it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::OnceCell;

use retailflow_core::config::{ConfigError, ConnectorCredentials};
use retailflow_core::ports::stock::StockReservations;
use retailflow_core::ports::{ClaimChecks, EventBus};

use super::batch::unstarted_batch;
use super::{
    aws_sdk_config, claim_checks, connector_credentials, env, event_bus, init_tracing, read_secret,
    step_batch, stock, FunctionError, QueueStep, SdkConfig,
};
use crate::adapters::dynamodb::DynamoDbStateStore;
use crate::adapters::dynamodb_catalog::DynamoDbCatalog;
use crate::adapters::eventbridge::EventBridgeBus;
use crate::adapters::eventbridge_archive::EventBridgeArchive;
use crate::adapters::sqs::SqsQueueControl;

/// How long one AWS call may take, by who is waiting on the function: a
/// slow dependency becomes a retryable error well inside its time, never a
/// hang.
#[derive(Debug, Clone, Copy)]
pub struct CallTimeouts {
    pub attempt: Duration,
    pub operation: Duration,
}

impl CallTimeouts {
    /// A shopper waits on checkout.
    pub const CHECKOUT: Self = CallTimeouts {
        attempt: Duration::from_millis(500),
        operation: Duration::from_millis(1200),
    };
    /// A platform waits on a webhook's answer and retries it if late.
    pub const WEBHOOK: Self = CallTimeouts {
        attempt: Duration::from_millis(1000),
        operation: Duration::from_millis(1500),
    };
    /// A queued or scheduled step has its invocation's minutes.
    pub const STEP: Self = CallTimeouts {
        attempt: Duration::from_millis(1500),
        operation: Duration::from_secs(3),
    };
}

/// The stack's resources, as the function's environment names them, on one
/// AWS configuration: what every function builds its step from.
pub struct Stack {
    pub aws: SdkConfig,
}

impl Stack {
    pub async fn load(timeouts: CallTimeouts) -> Self {
        Stack {
            aws: aws_sdk_config(timeouts.attempt, timeouts.operation).await,
        }
    }

    /// Where events too large for the bus ride (the stack's S3 bucket,
    /// `RETAILFLOW_CLAIM_CHECK_BUCKET`), for the functions that publish or
    /// consume them.
    pub fn claim_checks(&self) -> Result<Arc<dyn ClaimChecks>, ConfigError> {
        claim_checks(&self.aws)
    }

    /// The state table (`RETAILFLOW_STATE_TABLE`).
    pub fn table(&self) -> Result<String, ConfigError> {
        env("RETAILFLOW_STATE_TABLE")
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.aws)
    }

    pub fn state_store(&self) -> Result<Arc<DynamoDbStateStore>, ConfigError> {
        Ok(Arc::new(DynamoDbStateStore::new(
            self.dynamodb(),
            self.table()?,
        )))
    }

    /// Checkout's catalog (prices, promotions) on the state table.
    pub fn catalog(&self) -> Result<Arc<DynamoDbCatalog>, ConfigError> {
        Ok(Arc::new(DynamoDbCatalog::new(
            self.dynamodb(),
            self.table()?,
        )))
    }

    /// Stock on the state table, hot SKUs sharded, contention ridden out
    /// within `budget` a call (see [`super::stock`]).
    pub fn stock(&self, budget: Duration) -> Result<Arc<dyn StockReservations>, ConfigError> {
        stock(&self.aws, &self.table()?, budget)
    }

    /// The stack's bus, events too large for it sent by reference.
    pub fn event_bus(&self) -> Result<Arc<dyn EventBus>, ConfigError> {
        event_bus(&self.aws, self.claim_checks()?)
    }

    /// The stack's bus itself (`RETAILFLOW_EVENT_BUS`), for a function whose
    /// events are always small and that has no access to the claim-check
    /// bucket (reconciliation).
    pub fn bus_without_claim_checks(&self) -> Result<Arc<EventBridgeBus>, ConfigError> {
        Ok(Arc::new(EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(&self.aws),
            env("RETAILFLOW_EVENT_BUS")?,
        )))
    }

    /// The bus's archive and the rules that feed each step
    /// (`RETAILFLOW_EVENT_ARCHIVE_ARN`, `RETAILFLOW_EVENT_BUS_ARN`,
    /// `RETAILFLOW_STEP_RULES`), for reconciliation's replays.
    pub fn event_archive(&self) -> Result<Arc<EventBridgeArchive>, ConfigError> {
        Ok(Arc::new(EventBridgeArchive::new(
            aws_sdk_eventbridge::Client::new(&self.aws),
            env("RETAILFLOW_EVENT_ARCHIVE_ARN")?,
            env("RETAILFLOW_EVENT_BUS_ARN")?,
            EventBridgeArchive::parse_rules(&env("RETAILFLOW_STEP_RULES")?)?,
        )))
    }

    /// The function's own queue and its dead-letter queue
    /// (`RETAILFLOW_QUEUE_URL`, `RETAILFLOW_DLQ_URL`).
    pub fn queue(&self) -> Result<SqsQueueControl, ConfigError> {
        Ok(SqsQueueControl::new(
            aws_sdk_sqs::Client::new(&self.aws),
            env("RETAILFLOW_QUEUE_URL")?,
            env("RETAILFLOW_DLQ_URL")?,
        ))
    }

    /// The connector credentials and the accounts' budgets (see
    /// [`super::connector_credentials`]).
    pub async fn connector_credentials(&self) -> Result<ConnectorCredentials, ConfigError> {
        connector_credentials(&self.aws).await
    }

    /// The JSON text of the secret `arn`.
    pub async fn secret(&self, arn: &str) -> Result<String, ConfigError> {
        let client = aws_sdk_secretsmanager::Client::new(&self.aws);
        read_secret(&client, arn).await
    }
}

/// What a function builds on its first event and keeps for the execution
/// environment's life; a failed build is tried again on the next event.
struct FirstEvent<A, B> {
    timeouts: CallTimeouts,
    stack: OnceCell<Stack>,
    app: OnceCell<A>,
    build: B,
}

impl<A, B, BF> FirstEvent<A, B>
where
    B: Fn(&'static Stack) -> BF,
    BF: Future<Output = Result<A, FunctionError>>,
{
    /// Kept for the process's life: Lambda runs one function per process.
    fn leak(timeouts: CallTimeouts, build: B) -> &'static Self {
        Box::leak(Box::new(FirstEvent {
            timeouts,
            stack: OnceCell::new(),
            app: OnceCell::new(),
            build,
        }))
    }

    async fn app(&'static self) -> Result<&'static A, FunctionError> {
        let stack = self.stack.get_or_init(|| Stack::load(self.timeouts)).await;
        self.app.get_or_try_init(|| (self.build)(stack)).await
    }
}

/// Runs a function invoked with events of type `E` (a schedule's tick, a
/// request) and answering `R`.
pub async fn run_function<A, E, R, B, BF, H, HF>(
    timeouts: CallTimeouts,
    build: B,
    handle: H,
) -> Result<(), lambda_runtime::Error>
where
    A: 'static,
    E: DeserializeOwned,
    R: Serialize,
    B: Fn(&'static Stack) -> BF + 'static,
    BF: Future<Output = Result<A, FunctionError>>,
    H: Fn(&'static A, LambdaEvent<E>) -> HF + 'static,
    HF: Future<Output = Result<R, FunctionError>>,
{
    init_tracing();
    let first = FirstEvent::leak(timeouts, build);
    let handle: &'static H = Box::leak(Box::new(handle));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<E>| async move {
        handle(first.app().await?, event).await
    }))
    .await
}

/// [`run_function`] behind API Gateway (HTTP API).
pub async fn run_http_function<A, B, BF, H, HF>(
    timeouts: CallTimeouts,
    build: B,
    handle: H,
) -> Result<(), lambda_http::Error>
where
    A: Send + Sync + 'static,
    B: Fn(&'static Stack) -> BF + Send + Sync + 'static,
    BF: Future<Output = Result<A, FunctionError>> + Send,
    H: Fn(&'static A, lambda_http::Request) -> HF + Send + Sync + 'static,
    HF: Future<Output = Result<lambda_http::Response<lambda_http::Body>, FunctionError>> + Send,
{
    init_tracing();
    let first = FirstEvent::leak(timeouts, build);
    let handle: &'static H = Box::leak(Box::new(handle));
    lambda_http::run(lambda_http::service_fn(
        move |req: lambda_http::Request| async move { handle(first.app().await?, req).await },
    ))
    .await
}

/// A queued function: its queue, and its step built on the first batch.
struct QueuedStep<S> {
    stack: &'static Stack,
    claims: Arc<dyn ClaimChecks>,
    queue: SqsQueueControl,
    step: OnceCell<S>,
}

/// What a queued function does with its batch when its step cannot be
/// built; the build is tried again on the next batch either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnbuiltStep {
    /// Every record waits with the retry policy's backoff, receives spared:
    /// for steps that read the connector secret, so a two-hour Secrets
    /// Manager outage dead-letters nothing.
    RecordsWait,
    /// The invocation fails, so the function's errors show it (a step that
    /// reads only its settings: a wrong one is fixed by a deploy).
    InvocationFails,
}

/// Runs a queued step's function (SQS, `ReportBatchItemFailures`).
pub async fn run_queue_step<S, B, BF>(
    unbuilt: UnbuiltStep,
    build: B,
) -> Result<(), lambda_runtime::Error>
where
    S: QueueStep + 'static,
    B: Fn(&'static Stack) -> BF + 'static,
    BF: Future<Output = Result<S, FunctionError>>,
{
    let build: &'static B = Box::leak(Box::new(build));
    run_function(
        CallTimeouts::STEP,
        |stack| async move {
            Ok(QueuedStep {
                stack,
                claims: stack.claim_checks()?,
                queue: stack.queue()?,
                step: OnceCell::new(),
            })
        },
        move |app: &'static QueuedStep<S>, event: LambdaEvent<SqsEvent>| async move {
            let step = match app.step.get_or_try_init(|| build(app.stack)).await {
                Ok(step) => step,
                Err(e) if unbuilt == UnbuiltStep::RecordsWait => {
                    return Ok::<SqsBatchResponse, FunctionError>(
                        unstarted_batch(&app.queue, &event.payload, &e.to_string()).await,
                    )
                }
                Err(e) => return Err(e),
            };
            Ok(step_batch(
                step,
                &app.queue,
                app.claims.as_ref(),
                &event.payload,
                event.context.deadline,
            )
            .await)
        },
    )
    .await
}
