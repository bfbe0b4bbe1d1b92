//! [`StockReservations`] on the state table, with DynamoDB's conditional
//! writes doing the counting so no two checkouts can take the same unit.
//!
//! Items:
//! - `STOCK#<sku>`: `on_hand` (the ERP's count) and `available` (on hand
//!   less live holds);
//! - `HOLD#<reservation id>`: the held lines, `hold_expires` (epoch
//!   seconds), `state` (`held`, `committed`, `released`) and `hold_minute`
//!   (`HOLDS#<expiry minute>`), the key of the table's sparse index
//!   [`HOLDS_INDEX`]: expired holds are found by key, never by a scan, and
//!   no item is shared by checkouts of unrelated SKUs;
//! - `COMMIT#<order key>`: a placed order's lines, written in the same
//!   transaction that takes them out of stock, so an order commits once
//!   (`state` `committed`, then `restocked` if it is cancelled; `posted`
//!   once the ERP has its sales order). An order cancelled before its
//!   commit ran gets a `cancelled` record instead, so the commit never
//!   takes its stock.
//!
//! `STOCK#<sku>` also keeps `unposted`, the units of commits the ERP has
//! not received yet, and `posted_at`, when it last received one: an ERP
//! count is applied as its figure less `unposted`, and skipped when read
//! before `posted_at` (it may not include that order).
//!
//! A reservation is one TransactWriteItems: the hold is created (unless its
//! id holds already) and each SKU's `available` goes down under the
//! condition `available >= quantity`. All or nothing, so a cart never holds
//! half its lines. DynamoDB takes at most 100 items in a transaction: a cart
//! of more than 98 distinct SKUs is refused (room is kept for the commit
//! record its order writes with the hold; retailflow does not split carts). The table's TTL (`expires_at`) forgets holds 30 days after they
//! end, long after the sweep has given their units back.
//!
//! An order of more distinct SKUs (made through an admin API, never from a
//! hold) commits in parts of at most [`PART_SKUS`]: `COMMIT#<order key>` is
//! part 0 and names the later parts' lines (`later_parts`), each
//! `COMMIT#<order key>#<n>` is its own record in its own transaction, with
//! the same states. A commit cut short is finished by its retry (a part that
//! exists is skipped); a cancellation restocks every part that landed and
//! leaves a tombstone in place of any that did not, so a late part never
//! takes stock: exactly once, and all or nothing in effect.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use super::dynamodb::store_error;
use retailflow_core::ports::stock::{
    CommitOutcome, CountOutcome, OrderCommit, PostedOutcome, Reservation, ReservationLine,
    ReserveOutcome, StockLevel, StockReservations,
};
use retailflow_core::ports::StoreError;

mod commit;
mod holds;
mod levels;
mod port;
mod restock;

/// Most distinct SKUs in one reservation: 100 transaction items less the
/// hold and the commit record its order will write with them.
pub const MAX_SKUS_PER_HOLD: usize = 98;

/// Most distinct SKUs one commit part takes: with its record and the hold it
/// may end, 100 items, DynamoDB's most per transaction.
pub const PART_SKUS: usize = MAX_SKUS_PER_HOLD;

/// The record of an order's commit part `n` (0: the order's own).
fn part_key(order_key: &str, n: usize) -> String {
    if n == 0 {
        format!("COMMIT#{order_key}")
    } else {
        format!("COMMIT#{order_key}#{n}")
    }
}

/// An order's lines in parts of at most [`PART_SKUS`] distinct SKUs, one
/// line per SKU in SKU order: the same lines always split the same way.
/// At least one part (an order of untracked SKUs commits its record alone).
fn parts(lines: &[ReservationLine]) -> Vec<Vec<ReservationLine>> {
    let skus: Vec<ReservationLine> = per_sku(lines)
        .into_iter()
        .map(|(sku, qty)| ReservationLine {
            sku: sku.to_string(),
            quantity: u32::try_from(qty).unwrap_or(u32::MAX),
        })
        .collect();
    if skus.is_empty() {
        return vec![Vec::new()];
    }
    skus.chunks(PART_SKUS).map(<[_]>::to_vec).collect()
}

/// The later parts' lines part 0 names.
fn later_parts(
    item: &std::collections::HashMap<String, AttributeValue>,
) -> Vec<Vec<ReservationLine>> {
    item.get("later_parts")
        .and_then(|v| v.as_s().ok())
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// The state table's index of holds by expiry minute.
pub const HOLDS_INDEX: &str = "holds-by-minute";

/// Most expiry minutes one sweep call walks (a sweep far behind catches up
/// over several calls instead of outlasting the request).
const SWEEP_MINUTES_PER_CALL: i64 = 60;

/// How long an ended hold is kept before the table's TTL forgets it.
const HOLD_RETENTION: chrono::Duration = chrono::Duration::days(30);

pub struct DynamoDbStock {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn minute(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

fn minute_key(t: DateTime<Utc>) -> String {
    format!("HOLDS#{}", minute(t))
}

fn get_n(item: &std::collections::HashMap<String, AttributeValue>, k: &str) -> Option<i64> {
    item.get(k)?.as_n().ok()?.parse().ok()
}

/// Units per SKU of a cart (a SKU on several lines counts once, summed): what
/// two carts are compared by, whatever the order of their lines.
fn per_sku(lines: &[ReservationLine]) -> BTreeMap<&str, i64> {
    let mut m = BTreeMap::new();
    for l in lines {
        *m.entry(l.sku.as_str()).or_insert(0) += i64::from(l.quantity);
    }
    m
}

/// The lines of a `COMMIT#` item.
fn commit_lines(
    key: &str,
    item: &std::collections::HashMap<String, AttributeValue>,
) -> Result<Vec<ReservationLine>, StoreError> {
    item.get("lines")
        .and_then(|v| v.as_s().ok())
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| StoreError::Corrupt {
            key: key.to_string(),
            reason: "commit without readable lines".into(),
        })
}

/// Whether a cancelled transaction's item `i` failed its condition.
fn condition_failed(reasons: &[CancellationReason], i: usize) -> bool {
    reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
}

/// A cancellation that is no condition's answer: a conflict with another
/// transaction or throttling (contention: try again at once), or anything
/// else DynamoDB refused.
fn cancelled(reasons: &[CancellationReason]) -> StoreError {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
    let text = format!("transaction cancelled: {}", codes.join(", "));
    if codes.iter().any(|c| super::dynamodb::is_contention(c)) {
        StoreError::Contended(text)
    } else {
        unavailable(text)
    }
}

/// How a commit transaction ended.
enum CommitTx {
    Written,
    /// The order was committed before (its `COMMIT#` item exists).
    AlreadyCommitted,
    /// The hold it was to take ended meanwhile (expired, swept).
    HoldGone,
}

/// What restocking one commit part found.
struct PartRestock {
    restocked: bool,
    /// How many parts follow (part 0 names them).
    later_parts: usize,
}

/// A hold as stored.
struct Hold {
    lines: Vec<ReservationLine>,
    /// The lines as stored: writes that give these lines' units back or
    /// take them are conditioned on them (a swap changes them in place).
    lines_raw: String,
    state: String,
    expires: i64,
}

impl DynamoDbStock {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbStock {
            client,
            table: table.into(),
        }
    }

    /// Sends one transaction: `Ok(None)` when it landed, `Ok(Some(reasons))`
    /// when DynamoDB cancelled it (a reason per item, in order: its code,
    /// and the item as it stood when the write asked for it); anything else
    /// is an error.
    async fn transact(
        &self,
        tx: Vec<TransactWriteItem>,
        token: Option<String>,
    ) -> Result<Option<Vec<CancellationReason>>, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_client_request_token(token)
            .set_transact_items(Some(tx))
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(e) => match e.into_service_error() {
                TransactWriteItemsError::TransactionCanceledException(tc) => {
                    Ok(Some(tc.cancellation_reasons().to_vec()))
                }
                other => {
                    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
                    let text = DisplayErrorContext(&other).to_string();
                    Err(match other.code() {
                        Some(code) if super::dynamodb::is_contention(code) => {
                            StoreError::Contended(text)
                        }
                        _ => StoreError::Unavailable(text),
                    })
                }
            },
        }
    }

    fn built<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
        r.map_err(|e| StoreError::Unavailable(format!("building a request: {e}")))
    }

    /// One item by key, read consistently.
    async fn get(
        &self,
        pk: String,
    ) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.item().cloned())
    }
}
