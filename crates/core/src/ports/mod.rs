//! The ports the step logic talks to, each with its contract. Adapters: on
//! AWS, DynamoDB, EventBridge, SQS and S3 (`retailflow-aws`); over HTTP, the
//! ERPs, the loyalty platform and the shops (`retailflow-connectors`); and
//! in-process twins with the same semantics (`adapters::in_process`) for the
//! local app and fast tests.

pub mod budget;
pub mod catalog;
pub mod dead_letters;
pub mod erp;
pub mod holds;
pub mod journal;
pub mod loyalty;
pub mod operator_actions;
pub mod queue;
pub mod secrets;
pub mod shop;
pub mod stock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::idempotency::{
    Claim, ClaimOutcome, ClaimRequest, Completion, IdempotencyKey, RecordOutcome,
};
use crate::refund_ledger::RefundLedger;
use crate::saga::SagaRecord;

/// EventBridge's limit for one entry (detail-type + detail + source + resources).
pub const MAX_EVENT_ENTRY_BYTES: usize = 256 * 1024;

/// DynamoDB's limit on one item.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// A quarantined body kept in a state item, gzipped, leaves this much of
/// [`MAX_ITEM_BYTES`] to the item's other attributes.
pub const MAX_QUARANTINE_BODY_BYTES: usize = 380 * 1024;

/// Idempotency records, saga state and quarantined input, in one table.
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimOutcome, StoreError>;
    /// Marks the claim done (conditional on still holding it) and records the
    /// saga update in the same request.
    async fn complete(&self, claim: &Claim, completion: &Completion) -> Result<(), StoreError>;
    /// Records a step as done without a claim: for steps whose external
    /// system deduplicates by key itself (NetSuite upsert by external id), so
    /// a repeat is harmless and the claim write can be saved.
    async fn record_completed(
        &self,
        key: &IdempotencyKey,
        payload_hash: &str,
        completion: &Completion,
    ) -> Result<(), StoreError>;
    /// Claims and completes in one conditional write, for work done after
    /// the record that is harmless to repeat: intake's publish, whose event
    /// id is fixed by the delivery. It saves the claim request of
    /// claim-then-complete and records the input before anything acts on it.
    /// The condition is the claim's: a free, expired or lapsed key is
    /// recorded, anything else comes back as it stands. A caller finding its
    /// own payload already recorded does the work again: it cannot know
    /// whether whoever recorded it got that far.
    async fn record_first(
        &self,
        request: &ClaimRequest,
        completion: &Completion,
    ) -> Result<RecordOutcome, StoreError>;
    /// Gives the claim up so a retry can take it at once.
    async fn release(&self, claim: &Claim) -> Result<(), StoreError>;
    /// Keeps input that could not be processed, with the reason.
    async fn quarantine(&self, item: &QuarantinedDelivery) -> Result<(), StoreError>;
    async fn saga(&self, saga_key: &str) -> Result<Option<SagaRecord>, StoreError>;
    /// Where a scheduled reader of another system got to (a watermark).
    async fn read_cursor(&self, name: &str) -> Result<Option<String>, StoreError>;
    async fn write_cursor(&self, name: &str, value: &str) -> Result<(), StoreError>;
    /// One page of the sagas (orders, returns, cancellations) first recorded
    /// in the hour starting at `hour`, read through the time index: what
    /// reconciliation walks instead of scanning the table. `page` is the
    /// `next` of the page before.
    async fn sagas_started(
        &self,
        hour: DateTime<Utc>,
        page: Option<&str>,
    ) -> Result<SagaPage, StoreError>;
    /// Counts one re-drive of a saga's step, unless it has had `limit`
    /// already: `Ok(false)` (and nothing written) then, so the step is
    /// raised for people instead of being re-driven forever.
    async fn record_redrive(
        &self,
        saga_key: &str,
        step: &str,
        limit: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Keeps a reconciliation report (JSON) under its run id, until
    /// `expires_at`.
    async fn put_report(
        &self,
        run_id: &str,
        body: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn report(&self, run_id: &str) -> Result<Option<String>, StoreError>;
    /// Replaces the order's refund ledger with `ledger` if the stored one is
    /// still version `ledger.version - 1` (the version it was computed
    /// from); `Ok(false)` when another writer got there first.
    async fn write_refund_ledger(
        &self,
        saga_key: &str,
        ledger: &RefundLedger,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// A page of sagas from [`StateStore::sagas_started`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SagaPage {
    pub sagas: Vec<SagaRecord>,
    /// Where the next page starts; `None` after the hour's last page.
    pub next: Option<String>,
}

/// Publishes canonical events.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes all or reports failure: a partially failed batch is an error
    /// naming the failed entries (callers re-publish; event ids are stable).
    async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError>;
}

/// One event as the bus carries it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BusEvent {
    pub event_id: Uuid,
    /// EventBridge `DetailType`: the event type, which rules match on.
    pub detail_type: String,
    /// EventBridge `Source`: the retailflow step that emitted it.
    pub source: String,
    /// The whole envelope as JSON.
    pub detail: String,
    pub time: DateTime<Utc>,
}

impl BusEvent {
    /// Size as EventBridge counts it.
    pub fn entry_size(&self) -> usize {
        // EventBridge counts 14 bytes for the Time field.
        self.detail_type.len() + self.detail.len() + self.source.len() + 14
    }
}

/// Refuses events EventBridge would refuse for size, before any call.
pub fn check_entry_sizes(events: &[BusEvent]) -> Result<(), BusError> {
    match events
        .iter()
        .find(|e| e.entry_size() > MAX_EVENT_ENTRY_BYTES)
    {
        Some(e) => Err(BusError::TooLarge {
            event_id: e.event_id,
            bytes: e.entry_size(),
        }),
        None => Ok(()),
    }
}

/// A body kept because it could not be processed, so nothing accepted is lost.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuarantinedDelivery {
    pub id: Uuid,
    pub received_at: DateTime<Utc>,
    /// `shopify` / `adobe_commerce`.
    pub source: String,
    pub topic: Option<String>,
    pub shop: Option<String>,
    pub delivery_id: Option<String>,
    pub reason: String,
    /// The body, unless it is kept by claim check (`body_location`).
    pub body: Vec<u8>,
    /// Where a body too large for a state item is kept ([`ClaimChecks`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_location: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Throttling, timeouts, 5xx: try again.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// Another writer was changing the same item at that moment (DynamoDB's
    /// `TransactionConflict`), or the item took more writes a second than
    /// its partition allows (throttling): nothing was written, and trying
    /// again within milliseconds usually lands.
    #[error("state item contended: {0}")]
    Contended(String),
    /// The claim expired and another worker took it: the completion is not ours.
    #[error("claim on {key} was lost to another worker")]
    LeaseLost { key: String },
    #[error("item too large for the state store: {0}")]
    TooLarge(String),
    /// The order was cancelled before this step's result could be recorded.
    #[error("order of {key} was cancelled")]
    OrderCancelled { key: String },
    /// An item that does not have the shape this code writes.
    #[error("state item {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Contended(_) | StoreError::LeaseLost { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// PutEvents answered but refused some entries (FailedEntryCount > 0).
    #[error("event bus refused {} entr(y/ies): {}", .failed.len(), .failed.iter().map(|f| format!("{} {}: {}", f.event_id, f.code, f.message)).collect::<Vec<_>>().join("; "))]
    Rejected { failed: Vec<FailedEntry> },
    #[error("event {event_id} is {bytes} bytes, over the bus limit")]
    TooLarge { event_id: Uuid, bytes: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub event_id: Uuid,
    pub code: String,
    pub message: String,
}

impl BusError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, BusError::TooLarge { .. })
    }
}

/// An event the bus's archive holds: what a re-drive asks to be sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedEvent {
    pub event_id: String,
    pub event_type: String,
    /// When it was published (its EventBridge `time`): where the archive
    /// finds it.
    pub published_at: DateTime<Utc>,
}

/// What to replay from the archive: the events published in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaySpan {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Only these events, where the archive can pick single events (the
    /// local app's); EventBridge replays the whole span, which the steps'
    /// idempotency absorbs.
    pub only: Option<Vec<String>>,
}

impl ReplaySpan {
    /// The span of these events: from the first one's second to just after
    /// the last one's (EventBridge keeps an event's time to the second).
    pub fn of(events: &[ArchivedEvent]) -> Option<Self> {
        use chrono::DurationRound;
        let second = |t: DateTime<Utc>| t.duration_trunc(chrono::Duration::seconds(1)).unwrap_or(t);
        let from = events.iter().map(|e| e.published_at).min()?;
        let to = events.iter().map(|e| e.published_at).max()?;
        Some(ReplaySpan {
            from: second(from),
            to: second(to) + chrono::Duration::seconds(1),
            only: Some(events.iter().map(|e| e.event_id.clone()).collect()),
        })
    }

    pub fn covers(&self, e: &BusEvent) -> bool {
        e.time >= self.from
            && e.time < self.to
            && self
                .only
                .as_ref()
                .is_none_or(|ids| ids.contains(&e.event_id.to_string()))
    }
}

/// The bus's archive (an EventBridge archive on AWS; the local app's record
/// of what it published): every event published, kept for the archive's
/// retention. Re-drives and operators' replays go back to it, so saga items
/// keep no events and do not grow with deliveries.
#[async_trait]
pub trait EventArchive: Send + Sync {
    /// Whether the archive knows the rules of `target`: a step (the rules
    /// feeding its queue) or one rule by name.
    fn knows(&self, target: &str) -> bool;

    /// Sends the span's events again, to the rules of `targets` only, so
    /// nothing else runs again: one replay for all of them (EventBridge
    /// runs at most 10 at once per account), each event once per queue.
    /// `Ok(None)` when it knows none of the targets; `Ok(Some(what))` names
    /// the replay.
    async fn replay(
        &self,
        targets: &[String],
        span: &ReplaySpan,
    ) -> Result<Option<String>, ArchiveError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// Throttled, too many replays running (EventBridge runs 10 at once per
    /// account), unreachable: try again.
    #[error("event archive unavailable: {0}")]
    Unavailable(String),
    /// The request was refused (no such archive, not allowed): needs a person.
    #[error("event archive refused the replay: {0}")]
    Refused(String),
}

impl ArchiveError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ArchiveError::Unavailable(_))
    }
}

/// Where an event too large for the bus rides (an S3 bucket on AWS; the
/// local app's data directory): the claim check. The event carries the
/// location, the size and the SHA-256 of the bytes kept, and its consumer
/// fetches them ([`crate::claim_check`]).
#[async_trait]
pub trait ClaimChecks: Send + Sync {
    /// Keeps `bytes` under `key`, answering their location. A key names its
    /// content (its hash is in it), so writing it again is harmless.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<String, StoreError>;
    /// The bytes kept at `location`; `None` when nothing is (expired).
    async fn get(&self, location: &str) -> Result<Option<Vec<u8>>, StoreError>;
}
