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

impl DynamoDbStateStore {
    /// Writes a step completion: one UpdateItem when the saga is the same
    /// item, else one transaction with the saga item.
    async fn write_completion(
        &self,
        key: &IdempotencyKey,
        hash: &str,
        c: &Completion,
        guard: Guard<'_>,
    ) -> Result<(), NotWritten> {
        let mut expr = Expr::default();
        let same_item_saga = match (&key.scope, &c.saga) {
            (ClaimScope::Saga(k), Some(u)) if *k == u.saga_key => Some(u),
            _ => None,
        };
        let expires_at = same_item_saga.map_or(c.expires_at, |u| u.expires_at.max(c.expires_at));
        expr.complete_step(key.step, hash, c, expires_at);
        if let Some(u) = same_item_saga {
            expr.saga(u, false);
        }
        match guard {
            Guard::Claim(t) => {
                expr.value(":token", s(t));
            }
            Guard::Open => {}
            Guard::Free(now) => {
                expr.value(":in_progress", s("in_progress"))
                    .value(":now_ms", n(now.timestamp_millis()))
                    .value(":now_s", n(now.timestamp()));
            }
        }
        // A step that claims nothing must not record a result once the order
        // is cancelled (its claiming twin is refused at the claim).
        // Nothing of an order's own steps is recorded once it is cancelled:
        // the step undoes what it did instead.
        let condition = match (guard, &key.scope) {
            (Guard::Claim(_), ClaimScope::Saga(_)) => {
                Some("#token = :token AND attribute_not_exists(cancelled_at)")
            }
            (Guard::Claim(_), ClaimScope::Delivery(_)) => Some("#token = :token"),
            (Guard::Open, ClaimScope::Saga(_)) => Some("attribute_not_exists(cancelled_at)"),
            (Guard::Open, ClaimScope::Delivery(_)) => None,
            (Guard::Free(_), scope) => Some(claim_condition(scope)),
        };
        self.complete_in_place(key, hash, guard, &expr, condition)
            .await?;
        match c.saga.as_ref().filter(|_| same_item_saga.is_none()) {
            None => Ok(()),
            Some(u) => Ok(self.write_saga_updates(u, u.replace_order_facts).await?),
        }
    }

    /// The saga updates of a completion recorded on another item (intake's):
    /// the order's saga, and the return's or cancellation's it opens. Each
    /// is unconditional and idempotent (`if_not_exists`, set additions), so
    /// writing them again is harmless; `replace_facts` false keeps the
    /// order facts standing (an older edit written again never reverts a
    /// newer one).
    async fn write_saga_updates(
        &self,
        u: &SagaUpdate,
        replace_facts: bool,
    ) -> Result<(), StoreError> {
        let u = SagaUpdate {
            replace_order_facts: replace_facts,
            ..u.clone()
        };
        let mut saga_expr = Expr::default();
        saga_expr.saga(&u, true);
        self.update_unconditionally(saga_pk(&u.saga_key), &saga_expr)
            .await?;
        if let Some(case) = &u.case_key {
            let mut case_expr = Expr::default();
            case_expr.open_case(case, &u);
            self.update_unconditionally(saga_pk(case), &case_expr)
                .await?;
        }
        Ok(())
    }

    async fn update_unconditionally(&self, pk: String, expr: &Expr) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .update_expression(expr.expression())
            .set_expression_attribute_names(Some(expr.names.clone()))
            .set_expression_attribute_values(Some(expr.values.clone()))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn complete_in_place(
        &self,
        key: &IdempotencyKey,
        hash: &str,
        guard: Guard<'_>,
        expr: &Expr,
        condition: Option<&str>,
    ) -> Result<(), NotWritten> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(item_pk(&key.scope)))
            .update_expression(expr.expression())
            .set_condition_expression(condition.map(str::to_string))
            .set_expression_attribute_names(Some(expr.names.clone()))
            .set_expression_attribute_values(Some(expr.values.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let Err(e) = result else { return Ok(()) };
        match e.into_service_error() {
            UpdateItemError::ConditionalCheckFailedException(ccf) => {
                // An SDK retry of a write that already landed finds the step
                // completed with our payload: success, not a lost lease.
                let landed = ccf.item().is_some_and(|old| {
                    get_s(old, &format!("{}__status", key.step)) == Some("completed")
                        && get_s(old, &format!("{}__hash", key.step)) == Some(hash)
                });
                let cancelled = ccf
                    .item()
                    .is_some_and(|old| old.contains_key("cancelled_at"));
                // A step without a claim that ran again after the order was
                // cancelled (a redelivery re-posting to an upserting ERP) must
                // hear of it, landed before or not, to undo the re-post. A
                // first record cannot tell its own retry from an earlier
                // record: the standing item answers.
                let error = match guard {
                    Guard::Claim(_) if landed => return Ok(()),
                    Guard::Open if landed && !cancelled => return Ok(()),
                    _ if cancelled => StoreError::OrderCancelled {
                        key: key.describe(),
                    },
                    _ => StoreError::LeaseLost {
                        key: key.describe(),
                    },
                };
                Err(NotWritten {
                    error,
                    standing: ccf.item().cloned(),
                })
            }
            other => Err(StoreError::Unavailable(DisplayErrorContext(&other).to_string()).into()),
        }
    }
}

#[async_trait]
impl StateStore for DynamoDbStateStore {
    async fn claim(&self, req: &ClaimRequest) -> Result<ClaimOutcome, StoreError> {
        let token = Uuid::new_v4().to_string();
        let mut expr = Expr::default();
        expr.slot(req.key.step, &["status", "token", "lease_until", "hash"])
            .set("#status = :in_progress")
            .set("#token = :token")
            .set("#lease_until = :lease")
            .set("#hash = :hash")
            .value(":in_progress", s("in_progress"))
            .value(":token", s(&token))
            .value(":lease", n(req.lease_until.timestamp_millis()))
            .value(":hash", s(&req.payload_hash))
            .value(":now_ms", n(req.now.timestamp_millis()))
            .value(":now_s", n(req.now.timestamp()));
        if matches!(req.key.scope, ClaimScope::Delivery(_)) {
            // Orphaned delivery claims are forgotten; saga items keep their own expiry.
            expr.set("expires_at = :orphan").value(
                ":orphan",
                n((req.lease_until + ORPHANED_CLAIM_TTL).timestamp()),
            );
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(item_pk(&req.key.scope)))
            .update_expression(expr.expression())
            .condition_expression(claim_condition(&req.key.scope))
            .set_expression_attribute_names(Some(expr.names.clone()))
            .set_expression_attribute_values(Some(expr.values.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(ClaimOutcome::Claimed(Claim {
                key: req.key.clone(),
                token,
                payload_hash: req.payload_hash.clone(),
            })),
            Err(e) => match e.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(ccf) => match ccf.item() {
                    Some(old) => existing_outcome(&req.key, old, &req.payload_hash, &token),
                    None => Err(StoreError::Unavailable(format!(
                        "claim on {} failed its condition without the item",
                        req.key.describe()
                    ))),
                },
                other => Err(StoreError::Unavailable(
                    DisplayErrorContext(&other).to_string(),
                )),
            },
        }
    }

    async fn complete(&self, claim: &Claim, c: &Completion) -> Result<(), StoreError> {
        self.write_completion(
            &claim.key,
            &claim.payload_hash,
            c,
            Guard::Claim(&claim.token),
        )
        .await
        .map_err(|n| n.error)
    }

    async fn record_first(
        &self,
        req: &ClaimRequest,
        c: &Completion,
    ) -> Result<RecordOutcome, StoreError> {
        let written = self
            .write_completion(&req.key, &req.payload_hash, c, Guard::Free(req.now))
            .await;
        let standing = match written {
            Ok(()) => return Ok(RecordOutcome::Recorded),
            // The record landed, not every saga update: a retry finds the
            // record and writes them again.
            Err(NotWritten {
                error: StoreError::LeaseLost { .. } | StoreError::OrderCancelled { .. },
                standing,
            }) => standing,
            Err(n) => return Err(n.error),
        };
        // The condition failed: what stands answers, sent back with the
        // failure (a condition fails only on an existing item), as for a claim.
        match standing {
            Some(old) => {
                let existing = existing_outcome(&req.key, &old, &req.payload_hash, "")?;
                // Whoever recorded it may have stopped before its saga
                // updates: written again, never reverting newer facts.
                if let (ClaimOutcome::AlreadyCompleted { .. }, Some(u)) = (&existing, &c.saga) {
                    self.write_saga_updates(u, false).await?;
                }
                Ok(RecordOutcome::Existing(existing))
            }
            None => Err(StoreError::Unavailable(format!(
                "record of {} failed its condition without the item",
                req.key.describe()
            ))),
        }
    }

    async fn record_completed(
        &self,
        key: &IdempotencyKey,
        payload_hash: &str,
        c: &Completion,
    ) -> Result<(), StoreError> {
        self.write_completion(key, payload_hash, c, Guard::Open)
            .await
            .map_err(|n| n.error)
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        expr.slot(claim.key.step, &["status", "token", "lease_until", "hash"])
            .value(":token", s(&claim.token));
        expr.remove
            .extend(["#status", "#token", "#lease_until", "#hash"].map(String::from));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(item_pk(&claim.key.scope)))
            .update_expression(expr.expression())
            .condition_expression("#token = :token")
            .set_expression_attribute_names(Some(expr.names.clone()))
            .set_expression_attribute_values(Some(expr.values.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Not ours any more: nothing to release.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn quarantine(&self, q: &QuarantinedDelivery) -> Result<(), StoreError> {
        let body = retailflow_core::adapters::gzip(&q.body)
            .map_err(|e| StoreError::Unavailable(format!("compressing body: {e}")))?;
        if body.len() > MAX_QUARANTINE_BODY_BYTES {
            return Err(StoreError::TooLarge(format!(
                "quarantined body is {} bytes compressed",
                body.len()
            )));
        }
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("QUARANTINE#{}", q.id)))
            .item("kind", s("quarantine"))
            .item("received_at", s(q.received_at.to_rfc3339()))
            .item("source", s(&q.source))
            .item("reason", s(&q.reason))
            .item("body_gzip", AttributeValue::B(body.into()));
        for (k, v) in [
            ("topic", &q.topic),
            ("shop", &q.shop),
            ("delivery_id", &q.delivery_id),
            ("body_location", &q.body_location),
        ] {
            if let Some(v) = v {
                put = put.item(k, s(v));
            }
        }
        put.send().await.map(|_| ()).map_err(unavailable)
    }

    async fn read_cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("CURSOR#{name}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
        Ok(out
            .item()
            .and_then(|i| i.get("value"))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }

    async fn write_cursor(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("CURSOR#{name}")))
            .item("kind", s("cursor"))
            .item("value", s(value))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }

    async fn saga(&self, saga_key: &str) -> Result<Option<SagaRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(saga_pk(saga_key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item()
            .map(|item| saga_from_item(saga_key, item))
            .transpose()
    }

    async fn sagas_started(
        &self,
        hour: DateTime<Utc>,
        page: Option<&str>,
    ) -> Result<SagaPage, StoreError> {
        saga_index::sagas_started(&self.client, &self.table, hour, page).await
    }

    async fn record_redrive(
        &self,
        saga_key: &str,
        step: &str,
        limit: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        saga_index::record_redrive(&self.client, &self.table, saga_key, step, limit, at).await
    }

    async fn put_report(
        &self,
        run_id: &str,
        body: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        saga_index::put_report(&self.client, &self.table, run_id, body, expires_at).await
    }

    async fn report(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        saga_index::report(&self.client, &self.table, run_id).await
    }

    async fn write_refund_ledger(
        &self,
        saga_key: &str,
        ledger: &RefundLedger,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // Plain data: serializing cannot fail.
        let body = serde_json::to_string(ledger).unwrap_or_default();
        let before = i64::try_from(ledger.version.saturating_sub(1)).unwrap_or(i64::MAX);
        let condition = if before == 0 {
            "attribute_not_exists(refund_ledger_version)"
        } else {
            "refund_ledger_version = :before"
        };
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(saga_pk(saga_key)))
            .update_expression(
                "SET refund_ledger = :ledger, refund_ledger_version = :version, \
                 updated_at = :at, saga_key = :saga_key, \
                 started_at = if_not_exists(started_at, :at), \
                 time_bucket = if_not_exists(time_bucket, :bucket)",
            )
            .condition_expression(condition)
            .expression_attribute_values(":ledger", s(body))
            .expression_attribute_values(":version", n(before + 1))
            .expression_attribute_values(":at", s(at.to_rfc3339()))
            .expression_attribute_values(":saga_key", s(saga_key))
            .expression_attribute_values(":bucket", s(time_bucket(saga_key, at)));
        if before > 0 {
            req = req.expression_attribute_values(":before", n(before));
        }
        if let Some(c) = ledger.cancelled_at {
            req = req
                .update_expression(
                    "SET refund_ledger = :ledger, refund_ledger_version = :version, \
                     updated_at = :at, saga_key = :saga_key, \
                     started_at = if_not_exists(started_at, :at), \
                     time_bucket = if_not_exists(time_bucket, :bucket), cancelled_at = :cancelled",
                )
                .expression_attribute_values(":cancelled", s(c.to_rfc3339()));
        }
        condition_held(req.send().await)
    }
}

fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> Option<i64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn get_time(item: &HashMap<String, AttributeValue>, k: &str) -> Option<DateTime<Utc>> {
    get_s(item, k)
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn saga_from_item(
    saga_key: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<SagaRecord, StoreError> {
    let corrupt = |what: &str, e: serde_json::Error| StoreError::Corrupt {
        key: saga_key.to_string(),
        reason: format!("{what}: {e}"),
    };
    let set = |k: &str| -> BTreeSet<String> {
        item.get(k)
            .and_then(|v| v.as_ss().ok())
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default()
    };
    let mut first_seen = BTreeMap::new();
    let mut steps = BTreeMap::new();
    let mut first_event_ids = BTreeMap::new();
    let mut redrives = BTreeMap::new();
    for (attr, _) in item.iter() {
        if let Some(event_type) = attr.strip_prefix(FIRST_EVENT_PREFIX) {
            if let Some(id) = get_s(item, attr) {
                first_event_ids.insert(event_type.to_string(), id.to_string());
            }
        } else if let Some(step) = attr.strip_prefix(REDRIVE_PREFIX) {
            let count = get_n(item, attr).unwrap_or(0);
            redrives.insert(step.to_string(), u32::try_from(count).unwrap_or(u32::MAX));
        } else if let Some(t) = attr.strip_prefix("first_seen__") {
            if let Some(at) = get_time(item, attr) {
                first_seen.insert(t.to_string(), at);
            }
        } else if let Some(step) = attr.strip_suffix("__status") {
            let status = match get_s(item, attr) {
                Some("completed") => StepStatus::Completed,
                _ => StepStatus::InProgress,
            };
            steps.insert(
                step.to_string(),
                StepRecord {
                    status,
                    completed_at: get_time(item, &format!("{step}__completed_at")),
                    result: get_s(item, &format!("{step}__result"))
                        .and_then(|r| serde_json::from_str(r).ok()),
                    lease_until: get_n(item, &format!("{step}__lease_until"))
                        .and_then(DateTime::from_timestamp_millis),
                },
            );
        }
    }
    let order_facts = get_s(item, "order_facts")
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt("order_facts", e))?;
    let refund_ledger = get_s(item, "refund_ledger")
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt("refund_ledger", e))?
        .unwrap_or_default();
    Ok(SagaRecord {
        saga_key: saga_key.to_string(),
        started_at: get_time(item, "started_at"),
        updated_at: get_time(item, "updated_at"),
        last_event_type: get_s(item, "last_event_type").map(str::to_string),
        event_types: set("event_types"),
        first_seen,
        steps,
        order_facts,
        refund_ledger,
        first_event_ids,
        redrives,
    })
}

/// What an existing record (returned by a failed claim condition) means.
fn existing_outcome(
    key: &IdempotencyKey,
    old: &HashMap<String, AttributeValue>,
    hash: &str,
    token: &str,
) -> Result<ClaimOutcome, StoreError> {
    let attr = |suffix: &str| format!("{}__{suffix}", key.step);
    // An SDK retry of our own claim that already landed.
    if get_s(old, &attr("token")) == Some(token) {
        return Ok(ClaimOutcome::Claimed(Claim {
            key: key.clone(),
            token: token.to_string(),
            payload_hash: hash.to_string(),
        }));
    }
    let completed = get_s(old, &attr("status")) == Some("completed");
    if old.contains_key("cancelled_at") && !completed {
        return Ok(ClaimOutcome::OrderCancelled);
    }
    if get_s(old, &attr("hash")) != Some(hash) {
        let completed = get_s(old, &attr("status")) == Some("completed");
        return Ok(ClaimOutcome::PayloadMismatch { completed });
    }
    match get_s(old, &attr("status")) {
        Some("completed") => {
            let result = get_s(old, &attr("result")).and_then(|r| serde_json::from_str(r).ok());
            Ok(ClaimOutcome::AlreadyCompleted { result })
        }
        Some("in_progress") => Ok(ClaimOutcome::InProgress {
            lease_until: DateTime::from_timestamp_millis(
                get_n(old, &attr("lease_until")).unwrap_or(0),
            )
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }),
        _ => Err(StoreError::Corrupt {
            key: key.describe(),
            reason: "idempotency record without a known status".into(),
        }),
    }
}

/// Reads items by key (consistently), 100 at a time, retrying keys DynamoDB
/// left unprocessed (throttling) a few times.
pub(crate) async fn batch_get(
    client: &Client,
    table: &str,
    pks: Vec<String>,
) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
    let mut found = Vec::new();
    for chunk in pks.chunks(100) {
        let keys: Vec<HashMap<String, AttributeValue>> = chunk
            .iter()
            .map(|pk| HashMap::from([("pk".to_string(), s(pk.clone()))]))
            .collect();
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Unavailable(format!("building a request: {e}")))?,
        );
        for attempt in 0..5u64 {
            let Some(req) = request.take() else { break };
            let out = client
                .batch_get_item()
                .request_items(table, req)
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
            if let Some(items) = out.responses().and_then(|r| r.get(table)) {
                found.extend(items.iter().cloned());
            }
            request = out
                .unprocessed_keys()
                .and_then(|u| u.get(table))
                .filter(|k| !k.keys().is_empty())
                .cloned();
            if request.is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
        }
        if request.is_some() {
            return Err(StoreError::Unavailable("reads kept being throttled".into()));
        }
    }
    Ok(found)
}
