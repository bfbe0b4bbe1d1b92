//! [`StateStore`] on one DynamoDB table (hash key `pk`, TTL attribute
//! `expires_at`).
//!
//! Items: `DELIVERY#<key>` (webhook dedup), `SAGA#<order key>` (an order's
//! saga, holding each step's claim as `<step>__status`, `<step>__token`,
//! `<step>__lease_until`, `<step>__hash`, `<step>__result`,
//! `<step>__completed_at`), `QUARANTINE#<id>` (kept bad input, gzip).
//! A claim is one conditional UpdateItem; a step's completion is one
//! UpdateItem of the saga item. Intake's record is its conditional write,
//! then the saga's update (and a return's or cancellation's own saga's):
//! separate requests, not one transaction, which DynamoDB bills twice; a
//! delivery found recorded has its saga updates written again, so a writer
//! stopped between the two loses nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::dynamodb_saga_index as saga_index;
use retailflow_core::idempotency::{
    Claim, ClaimOutcome, ClaimRequest, ClaimScope, Completion, IdempotencyKey, RecordOutcome,
    ORPHANED_CLAIM_TTL,
};
use retailflow_core::ports::{QuarantinedDelivery, SagaPage, StateStore, StoreError};
use retailflow_core::refund_ledger::RefundLedger;
use retailflow_core::saga::{time_bucket, SagaRecord, SagaUpdate, StepRecord, StepStatus};

use retailflow_core::ports::MAX_QUARANTINE_BODY_BYTES;

mod items;
mod state_store;

pub(crate) use items::{batch_get, saga_from_item};

pub struct DynamoDbStateStore {
    client: Client,
    table: String,
}

impl DynamoDbStateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbStateStore {
            client,
            table: table.into(),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

/// Attribute naming the first event of a type intake recorded on a saga:
/// `event__<event type>` = its id.
const FIRST_EVENT_PREFIX: &str = "event__";

/// A time as the items keep it: RFC 3339, UTC, to the millisecond (every
/// byte of a saga item is billed on each of its writes).
pub(crate) fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
/// Attribute counting a step's re-drives: `redrives__<step>`.
pub(crate) const REDRIVE_PREFIX: &str = "redrives__";

/// A conditional UpdateItem's outcome: written, or refused by its
/// condition (`Ok(false)`), or failed.
pub(crate) fn condition_held<O>(
    result: Result<O, SdkError<UpdateItemError, aws_sdk_dynamodb::config::http::HttpResponse>>,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(unavailable(e)),
    }
}

pub(crate) fn saga_pk(saga_key: &str) -> String {
    format!("SAGA#{saga_key}")
}

fn item_pk(scope: &ClaimScope) -> String {
    match scope {
        ClaimScope::Delivery(k) => format!("DELIVERY#{k}"),
        ClaimScope::Saga(k) => saga_pk(k),
    }
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    store_error(e)
}

/// DynamoDB's codes for "another writer, or too many writes, on this item
/// right now": as exceptions, and as a cancelled transaction's reasons.
pub(crate) fn is_contention(code: &str) -> bool {
    matches!(
        code,
        "TransactionConflict"
            | "TransactionConflictException"
            | "TransactionInProgressException"
            | "ThrottlingError"
            | "ThrottlingException"
            | "ProvisionedThroughputExceeded"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
    )
}

/// A failed call as the ports say it: contention (try again within
/// milliseconds) apart from any other unavailability.
pub(crate) fn store_error<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    let text = DisplayErrorContext(&e).to_string();
    match e.code() {
        Some(code) if is_contention(code) => StoreError::Contended(text),
        _ => StoreError::Unavailable(text),
    }
}

/// An update expression assembled from clauses, with its names and values.
#[derive(Default)]
struct Expr {
    set: Vec<String>,
    remove: Vec<String>,
    add: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn name(&mut self, placeholder: &str, attr: String) -> &mut Self {
        self.names.insert(placeholder.to_string(), attr);
        self
    }
    fn value(&mut self, placeholder: &str, v: AttributeValue) -> &mut Self {
        self.values.insert(placeholder.to_string(), v);
        self
    }
    fn set(&mut self, clause: &str) -> &mut Self {
        self.set.push(clause.to_string());
        self
    }
    fn expression(&self) -> String {
        let mut parts = Vec::new();
        for (kw, clauses) in [
            ("SET", &self.set),
            ("REMOVE", &self.remove),
            ("ADD", &self.add),
        ] {
            if !clauses.is_empty() {
                parts.push(format!("{kw} {}", clauses.join(", ")));
            }
        }
        parts.join(" ")
    }
    /// Registers the step's attribute `<step>__<suffix>` as `#<suffix>`.
    fn slot(&mut self, step: &str, suffixes: &[&str]) -> &mut Self {
        for suffix in suffixes {
            self.name(&format!("#{suffix}"), format!("{step}__{suffix}"));
        }
        self
    }

    /// Marks the step completed (and clears its lease).
    fn complete_step(&mut self, step: &str, hash: &str, c: &Completion, expires_at: DateTime<Utc>) {
        self.slot(
            step,
            &["status", "hash", "completed_at", "token", "lease_until"],
        )
        .set("#status = :completed")
        .set("#hash = :hash")
        .set("#completed_at = :done")
        .set("expires_at = :exp")
        .value(":completed", s("completed"))
        .value(":hash", s(hash))
        .value(":done", s(stamp(c.now)))
        .value(":exp", n(expires_at.timestamp()));
        if let Some(result) = &c.result {
            self.slot(step, &["result"])
                .set("#result = :res")
                .value(":res", s(result.to_string()));
        }
        self.remove
            .extend(["#token".to_string(), "#lease_until".to_string()]);
    }

    /// Remembers the first event of its type intake recorded (see
    /// [`retailflow_core::saga::SagaEvent::replayable`]) and when it was first seen.
    fn first_event(&mut self, e: &retailflow_core::saga::SagaEvent, at_value: &str) {
        self.name("#first", format!("first_seen__{}", e.event_type))
            .set(&format!("#first = if_not_exists(#first, {at_value})"));
        if e.replayable {
            self.name("#first_id", format!("{FIRST_EVENT_PREFIX}{}", e.event_type))
                .set("#first_id = if_not_exists(#first_id, :first_id)")
                .value(":first_id", s(&e.event_id));
        }
    }

    /// Opens a return's or cancellation's saga item for the event that
    /// starts it: started and time-indexed once, its envelope kept.
    fn open_case(&mut self, case_key: &str, u: &SagaUpdate) {
        self.name("#kind", "kind".into())
            .set("#kind = :case_kind")
            .set("saga_key = :case_key")
            .set("started_at = if_not_exists(started_at, :case_at)")
            .set("time_bucket = if_not_exists(time_bucket, :case_bucket)")
            .set("updated_at = :case_at")
            .set("expires_at = if_not_exists(expires_at, :case_exp)")
            .value(":case_kind", s("saga"))
            .value(":case_key", s(case_key))
            .value(":case_at", s(stamp(u.at)))
            .value(":case_bucket", s(time_bucket(case_key, u.at)))
            .value(":case_exp", n(u.expires_at.timestamp()));
        if let Some(e) = &u.event {
            self.first_event(e, ":case_at");
        }
    }

    /// Starts or extends the saga without a condition, so it never fails a
    /// transaction: `if_not_exists` keeps the first start time.
    fn saga(&mut self, u: &SagaUpdate, set_expiry: bool) {
        self.name("#kind", "kind".into())
            .set("#kind = :saga_kind")
            .set("saga_key = :saga_key")
            .set("started_at = if_not_exists(started_at, :saga_at)")
            .set("time_bucket = if_not_exists(time_bucket, :saga_bucket)")
            .set("updated_at = :saga_at")
            .value(":saga_kind", s("saga"))
            .value(":saga_key", s(&u.saga_key))
            .value(":saga_at", s(stamp(u.at)))
            .value(":saga_bucket", s(time_bucket(&u.saga_key, u.at)));
        if set_expiry {
            self.set("expires_at = :saga_exp")
                .value(":saga_exp", n(u.expires_at.timestamp()));
        }
        if let Some(f) = &u.order_facts {
            // Plain data: serializing cannot fail.
            let facts = serde_json::to_string(f).unwrap_or_default();
            if u.replace_order_facts {
                self.set("order_facts = :saga_facts");
            } else {
                self.set("order_facts = if_not_exists(order_facts, :saga_facts)");
            }
            self.value(":saga_facts", s(facts));
        }
        if let Some(e) = &u.event {
            // A return's or cancellation's event is remembered on its own saga.
            let e = retailflow_core::saga::SagaEvent {
                replayable: e.replayable && u.case_key.is_none(),
                ..e.clone()
            };
            self.first_event(&e, ":saga_at");
            self.set("last_event_type = :saga_type")
                .value(":saga_type", s(&e.event_type))
                .value(
                    ":saga_types",
                    AttributeValue::Ss(vec![e.event_type.clone()]),
                );
            self.add.push("event_types :saga_types".to_string());
        }
    }
}

/// What a completion write must still find for it to land.
#[derive(Clone, Copy)]
enum Guard<'a> {
    /// The claim with this token ([`StateStore::complete`]).
    Claim(&'a str),
    /// Nothing but the order open ([`StateStore::record_completed`]).
    Open,
    /// The key free to claim at this time ([`StateStore::record_first`]).
    Free(DateTime<Utc>),
}

/// A completion write that did not land: why, and the record as it stood
/// when the write's condition failed, if DynamoDB sent it back.
struct NotWritten {
    error: StoreError,
    standing: Option<HashMap<String, AttributeValue>>,
}

impl From<StoreError> for NotWritten {
    fn from(error: StoreError) -> Self {
        NotWritten {
            error,
            standing: None,
        }
    }
}

/// When a key may be claimed: free, forgotten, or its lease lapsed with the
/// same payload. An order's own steps do not start once it is cancelled.
fn claim_condition(scope: &ClaimScope) -> &'static str {
    match scope {
        ClaimScope::Saga(_) => {
            "(attribute_not_exists(#status) OR expires_at < :now_s \
             OR (#status = :in_progress AND #lease_until <= :now_ms AND #hash = :hash)) \
             AND attribute_not_exists(cancelled_at)"
        }
        ClaimScope::Delivery(_) => {
            "attribute_not_exists(#status) OR expires_at < :now_s \
             OR (#status = :in_progress AND #lease_until <= :now_ms AND #hash = :hash)"
        }
    }
}
