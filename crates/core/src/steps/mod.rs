//! The order saga's steps after intake: `ErpPosting`, `LoyaltyAccrual`,
//! `StockCommit` and the returns' `ReturnReversal`.
//! Each takes ports, so the same logic runs behind SQS on AWS and in the
//! local app. A step's whole answer is a [`StepOutcome`]: done, retry later
//! (with the delay hint), or reject to the DLQ with the reason.

pub mod catalog_sync;
pub mod erp_posting;
pub mod fulfillment_sync;
pub mod loyalty_accrual;
pub mod return_reversal;
pub mod stock_commit;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::events::{envelope, step_event_id, Envelope, EnvelopeMeta, EventDetail};
use crate::idempotency::{
    Claim, ClaimOutcome, ClaimRequest, Completion, IdempotencyKey, LeasePolicy,
};
use crate::ports::{BusError, BusEvent, EventBus, StateStore, StoreError};
use crate::resilience::ConnectorError;
use crate::saga::{SagaEvent, SagaUpdate, SAGA_RETENTION};

/// How long a completed step's idempotency record is kept (its saga item
/// keeps it for [`SAGA_RETENTION`]).
pub const STEP_RECORD_TTL: chrono::Duration = chrono::Duration::days(30);

#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Done now, or found done before: the message can be deleted.
    Done { summary: serde_json::Value },
    /// Try again later: the message goes back with a delay.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will never succeed as is: to the DLQ with the reason.
    Reject { reason: String },
    /// The order was cancelled before this step could start or record its
    /// result: nothing more to do here (the message can be deleted); a step
    /// that already acted undoes it first.
    Cancelled { reason: String },
}

impl StepOutcome {
    /// The outcome's class, for metrics: `done`, `cancelled`, `retry`,
    /// `rejected`.
    pub fn class(&self) -> &'static str {
        match self {
            StepOutcome::Done { .. } => "done",
            StepOutcome::Cancelled { .. } => "cancelled",
            StepOutcome::Retry { .. } => "retry",
            StepOutcome::Reject { .. } => "rejected",
        }
    }

    /// One line for the log: the class and, for a retry or refusal, why.
    pub fn summary(&self) -> String {
        match self {
            StepOutcome::Retry { reason, .. } => format!("retry: {reason}"),
            StepOutcome::Reject { reason } => format!("rejected: {reason}"),
            other => other.class().to_string(),
        }
    }

    fn retry(reason: impl std::fmt::Display, retry_after: Option<Duration>) -> Self {
        StepOutcome::Retry {
            reason: reason.to_string(),
            retry_after,
        }
    }
}

impl From<ConnectorError> for StepOutcome {
    fn from(e: ConnectorError) -> Self {
        if e.is_retryable() {
            StepOutcome::retry(&e, e.retry_after())
        } else {
            StepOutcome::Reject {
                reason: e.to_string(),
            }
        }
    }
}

impl From<StoreError> for StepOutcome {
    fn from(e: StoreError) -> Self {
        if let StoreError::OrderCancelled { .. } = e {
            return StepOutcome::Cancelled {
                reason: e.to_string(),
            };
        }
        if e.is_retryable() {
            StepOutcome::retry(&e, None)
        } else {
            StepOutcome::Reject {
                reason: e.to_string(),
            }
        }
    }
}

impl From<crate::claim_check::ClaimCheckError> for StepOutcome {
    fn from(e: crate::claim_check::ClaimCheckError) -> Self {
        if e.is_retryable() {
            StepOutcome::retry(&e, None)
        } else {
            StepOutcome::Reject {
                reason: e.to_string(),
            }
        }
    }
}

impl From<BusError> for StepOutcome {
    fn from(e: BusError) -> Self {
        if e.is_retryable() {
            StepOutcome::retry(&e, None)
        } else {
            StepOutcome::Reject {
                reason: e.to_string(),
            }
        }
    }
}

/// A queue message that is not the event its step takes: never retried,
/// dead-lettered with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnreadableMessage {
    #[error("message is not JSON: {0}")]
    NotJson(String),
    #[error("message is not the expected event: {0}")]
    NotTheEvent(String),
}

/// Reads a step's input event from a queue message: the EventBridge event
/// (`{"detail-type": …, "detail": <envelope>}`) or a bare envelope.
pub fn envelope_from_message<T: DeserializeOwned>(
    body: &str,
) -> Result<Envelope<T>, UnreadableMessage> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| UnreadableMessage::NotJson(e.to_string()))?;
    let env = if v.get("detail-type").is_some() {
        v["detail"].clone()
    } else {
        v
    };
    serde_json::from_value(env).map_err(|e| UnreadableMessage::NotTheEvent(e.to_string()))
}

/// A step of the order saga fed by `OrderPlaced`: what the SQS functions,
/// the local app and the tests all drive the same way.
#[async_trait::async_trait]
pub trait OrderStep: Send + Sync {
    async fn handle(
        &self,
        event: &Envelope<crate::events::OrderPlaced>,
        inv: Invocation,
    ) -> StepOutcome;
}

#[async_trait::async_trait]
impl OrderStep for erp_posting::ErpPosting {
    async fn handle(
        &self,
        event: &Envelope<crate::events::OrderPlaced>,
        inv: Invocation,
    ) -> StepOutcome {
        erp_posting::ErpPosting::handle(self, event, inv).await
    }
}

#[async_trait::async_trait]
impl OrderStep for loyalty_accrual::LoyaltyAccrual {
    async fn handle(
        &self,
        event: &Envelope<crate::events::OrderPlaced>,
        inv: Invocation,
    ) -> StepOutcome {
        loyalty_accrual::LoyaltyAccrual::handle(self, event, inv).await
    }
}

/// Runs one queue message through a step; a message that is not an
/// `OrderPlaced` event is rejected (to the DLQ with the reason).
pub async fn handle_message(step: &dyn OrderStep, body: &str, inv: Invocation) -> StepOutcome {
    match envelope_from_message::<crate::events::OrderPlaced>(body) {
        Ok(event) => step.handle(&event, inv).await,
        Err(e) => StepOutcome::Reject {
            reason: e.to_string(),
        },
    }
}

/// Runs one queue message through the return step: a `RefundIssued` or an
/// `OrderCancelled`; anything else is rejected (to the DLQ with the reason).
pub async fn handle_return_message(
    step: &return_reversal::ReturnReversal,
    body: &str,
    inv: Invocation,
) -> StepOutcome {
    use crate::events::{OrderCancelled, RefundIssued};
    let kind = envelope_from_message::<serde_json::Value>(body).map(|e| e.event_type);
    let reason = match kind.as_deref() {
        Ok(RefundIssued::EVENT_TYPE) => match envelope_from_message::<RefundIssued>(body) {
            Ok(e) => return step.handle(&e, inv).await,
            Err(e) => e.to_string(),
        },
        Ok(OrderCancelled::EVENT_TYPE) => match envelope_from_message::<OrderCancelled>(body) {
            Ok(e) => return step.handle_cancellation(&e, inv).await,
            Err(e) => e.to_string(),
        },
        Ok(other) => format!("return-reversal does not take {other} events"),
        Err(e) => e.to_string(),
    };
    StepOutcome::Reject { reason }
}

/// What a step needs from its invocation.
#[derive(Debug, Clone, Copy)]
pub struct Invocation {
    pub now: DateTime<Utc>,
    pub deadline: Option<DateTime<Utc>>,
    /// Which delivery of the message this is (SQS ApproximateReceiveCount;
    /// 1 = first): steps that skip a claim look before acting on a redelivery.
    pub attempt: u32,
}

/// Everything a step run needs to know besides its work.
pub(crate) struct StepRun<'a> {
    pub store: &'a dyn StateStore,
    pub bus: &'a dyn EventBus,
    pub key: IdempotencyKey,
    pub payload_hash: String,
    /// The hash an earlier build recorded for the same payload (of the
    /// part the step acts on, as it serialized it), accepted too: a
    /// record written before intake carried `detail_sha256` is not a
    /// conflict ([`crate::events::Envelope::legacy_hash`]).
    pub legacy_hash: Option<String>,
    /// False for systems that deduplicate natively: no claim write.
    pub claim: bool,
    pub lease: &'a LeasePolicy,
    pub source: &'a str,
    pub causation_id: String,
    /// The order's key: step events of an order and of its returns share it.
    pub correlation_id: &'a str,
    pub inv: Invocation,
}

/// The one shape of every saga step: claim (or not), do the work, record the
/// result and publish its event; a step found done re-publishes its stored
/// event; a failed attempt gives its claim back so a retry can start at once.
pub(crate) async fn run_step<T, F, Fut>(run: StepRun<'_>, work: F) -> StepOutcome
where
    T: EventDetail + Clone + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, StepOutcome>>,
{
    let claim = match start(
        run.store,
        &run.key,
        (&run.payload_hash, run.legacy_hash.as_deref()),
        run.claim,
        run.lease,
        run.inv,
    )
    .await
    {
        Ok(Start::Go(claim)) => claim,
        Ok(Start::Done(stored)) => {
            return republish::<T>(
                run.bus,
                &run.key,
                stored,
                run.source,
                (&run.causation_id, run.correlation_id),
                run.inv.now,
            )
            .await
        }
        Err(outcome) => return outcome,
    };
    match work().await {
        Ok(detail) => {
            finish(
                run.store,
                run.bus,
                &run.key,
                &run.payload_hash,
                claim.as_ref(),
                &detail,
                run.source,
                (&run.causation_id, run.correlation_id),
                run.inv,
            )
            .await
        }
        Err(outcome) => {
            if let Some(c) = &claim {
                if let Err(e) = run.store.release(c).await {
                    tracing::warn!(error = %e, "claim not released; its lease runs out by itself");
                }
            }
            outcome
        }
    }
}

/// Where a step stands after trying to start.
pub(crate) enum Start {
    /// This worker does the work (with a claim, or without one for
    /// natively idempotent systems).
    Go(Option<Claim>),
    /// Already done: the stored result.
    Done(serde_json::Value),
}

/// Claims the step (unless `claim` is false), mapping every other outcome
/// to what the message should do.
pub(crate) async fn start(
    store: &dyn StateStore,
    key: &IdempotencyKey,
    (payload_hash, legacy_hash): (&str, Option<&str>),
    claim: bool,
    lease: &LeasePolicy,
    inv: Invocation,
) -> Result<Start, StepOutcome> {
    if !claim {
        return Ok(Start::Go(None));
    }
    let lease_until = lease
        .lease_until(inv.now, inv.deadline)
        .map_err(|e| StepOutcome::retry(e, None))?;
    let mut req = ClaimRequest {
        key: key.clone(),
        payload_hash: payload_hash.to_string(),
        now: inv.now,
        lease_until,
    };
    let mut outcome = store.claim(&req).await?;
    // Recorded by an earlier build, under the hash it computed then.
    if let (ClaimOutcome::PayloadMismatch { .. }, Some(legacy)) = (&outcome, legacy_hash) {
        req.payload_hash = legacy.to_string();
        outcome = store.claim(&req).await?;
    }
    match outcome {
        ClaimOutcome::Claimed(c) => Ok(Start::Go(Some(c))),
        ClaimOutcome::AlreadyCompleted { result } => Ok(Start::Done(result.unwrap_or_default())),
        ClaimOutcome::InProgress { lease_until } => {
            let wait = (lease_until - inv.now)
                .to_std()
                .unwrap_or(Duration::from_secs(1));
            Err(StepOutcome::retry(
                format!("{} is in progress elsewhere", key.describe()),
                Some(wait),
            ))
        }
        ClaimOutcome::OrderCancelled => Err(StepOutcome::Cancelled {
            reason: format!("{}: the order was cancelled first", key.describe()),
        }),
        ClaimOutcome::PayloadMismatch { .. } => Err(StepOutcome::Reject {
            reason: format!(
                "{} was done for a different version of this order; changed orders need review",
                key.describe()
            ),
        }),
    }
}

/// Records the step done (its event detail is the stored result, with the
/// saga update in the same write), then publishes the step's event. A failed
/// publish retries the message; the retry finds the step done and publishes
/// the stored event again ([`republish`], same event id).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn finish<T: EventDetail + Clone>(
    store: &dyn StateStore,
    bus: &dyn EventBus,
    key: &IdempotencyKey,
    payload_hash: &str,
    claim: Option<&Claim>,
    detail: &T,
    source: &str,
    (causation_id, correlation_id): (&str, &str),
    inv: Invocation,
) -> StepOutcome {
    let saga_key = saga_key(key);
    let event_id = step_event_id(&saga_key, key.step);
    // Plain data with string keys: serializing cannot fail.
    let result = serde_json::to_value(detail).unwrap_or_default();
    let completion = Completion {
        result: Some(result.clone()),
        now: inv.now,
        expires_at: inv.now + STEP_RECORD_TTL,
        saga: Some(SagaUpdate {
            saga_key: saga_key.clone(),
            at: inv.now,
            event: Some(SagaEvent {
                event_id: event_id.to_string(),
                event_type: T::EVENT_TYPE.to_string(),
                replayable: false,
            }),
            order_facts: None,
            replace_order_facts: false,
            case_key: None,
            expires_at: inv.now + SAGA_RETENTION,
        }),
    };
    let written = match claim {
        Some(c) => store.complete(c, &completion).await,
        None => store.record_completed(key, payload_hash, &completion).await,
    };
    if let Err(e) = written {
        // The order was cancelled while this step ran: give the claim back so
        // the cancellation sees at once that the step never completed.
        if let (StoreError::OrderCancelled { .. }, Some(c)) = (&e, claim) {
            if let Err(re) = store.release(c).await {
                tracing::warn!(error = %re, "claim not released; its lease runs out by itself");
            }
        }
        return e.into();
    }
    match publish(
        bus,
        detail,
        event_id,
        correlation_id,
        source,
        causation_id,
        inv.now,
    )
    .await
    {
        Ok(()) => {
            crate::observability::count("StepsCompleted", ("EventType", T::EVENT_TYPE));
            StepOutcome::Done { summary: result }
        }
        Err(e) => e.into(),
    }
}

/// Publishes again the event of a step found done (its stored result).
pub(crate) async fn republish<T: EventDetail + Clone + DeserializeOwned>(
    bus: &dyn EventBus,
    key: &IdempotencyKey,
    stored: serde_json::Value,
    source: &str,
    (causation_id, correlation_id): (&str, &str),
    at: DateTime<Utc>,
) -> StepOutcome {
    let Ok(detail) = serde_json::from_value::<T>(stored.clone()) else {
        return StepOutcome::Reject {
            reason: format!(
                "{} is done but its stored result is unreadable",
                key.describe()
            ),
        };
    };
    let saga_key = saga_key(key);
    let event_id = step_event_id(&saga_key, key.step);
    match publish(
        bus,
        &detail,
        event_id,
        correlation_id,
        source,
        causation_id,
        at,
    )
    .await
    {
        Ok(()) => StepOutcome::Done { summary: stored },
        Err(e) => e.into(),
    }
}

fn saga_key(key: &IdempotencyKey) -> String {
    match &key.scope {
        crate::idempotency::ClaimScope::Saga(k) | crate::idempotency::ClaimScope::Delivery(k) => {
            k.clone()
        }
    }
}

/// Publishes a step event with its deterministic id.
pub(crate) async fn publish<T: EventDetail + Clone>(
    bus: &dyn EventBus,
    detail: &T,
    event_id: uuid::Uuid,
    correlation_id: &str,
    source: &str,
    causation_id: &str,
    at: DateTime<Utc>,
) -> Result<(), BusError> {
    let meta = EnvelopeMeta {
        event_id,
        occurred_at: at,
        source: source.to_string(),
        causation_id: Some(causation_id.to_string()),
    };
    let event = BusEvent {
        event_id,
        detail_type: T::EVENT_TYPE.to_string(),
        source: source.to_string(),
        detail: envelope(detail, &meta, correlation_id).to_string(),
        time: at,
    };
    bus.publish(std::slice::from_ref(&event)).await
}
