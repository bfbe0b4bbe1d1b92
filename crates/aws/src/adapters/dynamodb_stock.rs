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
use retailflow_core::checkout::stock::{
    CommitOutcome, CountOutcome, OrderCommit, PostedOutcome, Reservation, ReservationLine,
    ReserveOutcome, StockLevel, StockReservations,
};
use retailflow_core::ports::StoreError;

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

    async fn hold(&self, id: &str) -> Result<Option<Hold>, StoreError> {
        let out = self.get(format!("HOLD#{id}")).await?;
        let Some(item) = out.as_ref() else {
            return Ok(None);
        };
        let lines = item
            .get("lines")
            .and_then(|v| v.as_s().ok())
            .and_then(|t| serde_json::from_str(t).ok())
            .ok_or_else(|| StoreError::Corrupt {
                key: format!("HOLD#{id}"),
                reason: "hold without readable lines".into(),
            })?;
        Ok(Some(Hold {
            lines,
            lines_raw: item
                .get("lines")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default(),
            state: item
                .get("state")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default(),
            expires: get_n(item, "hold_expires").unwrap_or(0),
        }))
    }

    /// Moves a held hold to `to` (released: its units come back; committed:
    /// they leave stock for good). With `expired_by`, only a hold that
    /// expired by then (the sweep: an index entry may be a hold extended
    /// since). False when it was not ended here.
    async fn end_hold(
        &self,
        id: &str,
        to: &str,
        expired_by: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let Some(hold) = self.hold(id).await? else {
            return Ok(false);
        };
        if hold.state != "held" {
            return Ok(false);
        }
        let mut end = Update::builder()
            .table_name(&self.table)
            .key("pk", s(format!("HOLD#{id}")))
            .update_expression("SET #state = :to REMOVE hold_minute")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(to))
            .expression_attribute_values(":held", s("held"))
            .expression_attribute_values(":lines", s(hold.lines_raw.clone()))
            .expression_attribute_names("#lines", "lines");
        end = match expired_by {
            Some(t) => end
                .condition_expression("#state = :held AND #lines = :lines AND hold_expires <= :by")
                .expression_attribute_values(":by", n(t.timestamp())),
            None => end.condition_expression("#state = :held AND #lines = :lines"),
        };
        let mut tx = vec![TransactWriteItem::builder()
            .update(Self::built(end.build())?)
            .build()];
        for (sku, qty) in per_sku(&hold.lines) {
            let u = Update::builder()
                .table_name(&self.table)
                .key("pk", s(format!("STOCK#{sku}")));
            let u = if to == "committed" {
                u.update_expression("ADD on_hand :d")
                    .expression_attribute_values(":d", n(-qty))
            } else {
                u.update_expression("ADD available :d")
                    .expression_attribute_values(":d", n(qty))
            };
            tx.push(
                TransactWriteItem::builder()
                    .update(Self::built(u.build())?)
                    .build(),
            );
        }
        // An SDK retry of a transaction that landed is then a success, not
        // a failed condition; the hold's expiry keeps a later hold under the
        // same id apart.
        let token = &retailflow_core::idempotency::payload_hash(
            format!(
                "{id}\n{to}\n{}\n{}\n{}",
                hold.expires,
                expired_by.map_or(0, |t| t.timestamp()),
                hold.lines_raw
            )
            .as_bytes(),
        )[..36];
        match self.transact(tx, Some(token.to_string())).await? {
            None => Ok(true),
            // Ended meanwhile by another worker (expired, released), or
            // extended past `expired_by`.
            Some(reasons) if condition_failed(&reasons, 0) => Ok(false),
            Some(reasons) => Err(cancelled(&reasons)),
        }
    }

    /// Gives back the units of every hold that expired up to `now`, minute
    /// by minute from the last sweep (at most [`SWEEP_MINUTES_PER_CALL`]
    /// minutes a call); returns how many holds it ended.
    pub async fn sweep_expired_holds(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let marker = self.get("SWEEP#stock".into()).await?;
        let last = marker
            .as_ref()
            .and_then(|i| get_n(i, "swept_to_minute"))
            // First sweep: holds last minutes, an hour back covers them.
            .unwrap_or(minute(now) - 60);
        // Minutes strictly before the current one are complete.
        let upto = (minute(now) - 1).min(last + SWEEP_MINUTES_PER_CALL);
        let mut ended = 0;
        for m in (last + 1)..=upto {
            let mut start = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(HOLDS_INDEX)
                    .key_condition_expression("hold_minute = :m")
                    .expression_attribute_values(":m", s(format!("HOLDS#{m}")))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(store_error)?;
                for item in out.items() {
                    let Some(id) = item
                        .get("pk")
                        .and_then(|v| v.as_s().ok())
                        .and_then(|pk| pk.strip_prefix("HOLD#"))
                    else {
                        continue;
                    };
                    if self.end_hold(id, "released", Some(now)).await? {
                        ended += 1;
                    }
                }
                match out.last_evaluated_key() {
                    Some(k) if !k.is_empty() => start = Some(k.clone()),
                    _ => break,
                }
            }
            // Progress is kept minute by minute: a sweep cut short resumes.
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", s("SWEEP#stock"))
                .item("swept_to_minute", n(m))
                .send()
                .await
                .map_err(store_error)?;
        }
        Ok(ended)
    }

    /// One transaction: the order's `COMMIT#` item (only if none exists),
    /// the hold it consumes (only if still held) and each SKU's counts. From
    /// a hold only `on_hand` goes down (its units were already out of
    /// `available`); without one both do, and `available` may go below zero:
    /// the shop sold units retailflow did not have free.
    async fn commit_tx(
        &self,
        order_key: &str,
        (part, all): (usize, &[Vec<ReservationLine>]),
        hold: Option<(&str, &Hold)>,
        now: DateTime<Utc>,
    ) -> Result<CommitTx, StoreError> {
        let own = all.get(part).map(Vec::as_slice).unwrap_or_default();
        let skus = per_sku(own);
        if skus.len() + 1 + usize::from(hold.is_some()) > 100 {
            return Err(StoreError::TooLarge(format!(
                "a commit part of {} distinct SKUs is over DynamoDB's 100 items per transaction",
                skus.len()
            )));
        }
        // Plain data: serializing cannot fail.
        let lines = serde_json::to_string(own).unwrap_or_default();
        let mut record = Put::builder()
            .table_name(&self.table)
            .item("pk", s(part_key(order_key, part)))
            .item("lines", s(lines));
        if part == 0 && all.len() > 1 {
            record = record.item(
                "later_parts",
                s(serde_json::to_string(&all[1..]).unwrap_or_default()),
            );
        }
        let mut tx = vec![TransactWriteItem::builder()
            .put(Self::built(
                record
                    .item("state", s("committed"))
                    .item("from_hold", AttributeValue::Bool(hold.is_some()))
                    .item("posted", AttributeValue::Bool(false))
                    // Kept as long as the order's saga: a cancellation or a
                    // replay months later still finds it.
                    .item(
                        "expires_at",
                        n((now + retailflow_core::saga::SAGA_RETENTION).timestamp()),
                    )
                    .condition_expression("attribute_not_exists(pk)")
                    .build(),
            )?)
            .build()];
        if let Some((id, read)) = hold {
            // The very hold that was read: one ended and made again, or
            // swapped to other lines, since does not match.
            let end = Update::builder()
                .table_name(&self.table)
                .key("pk", s(format!("HOLD#{id}")))
                .update_expression("SET #state = :to REMOVE hold_minute")
                .condition_expression("#state = :held AND hold_expires = :exp AND #lines = :lines")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":to", s("committed"))
                .expression_attribute_values(":held", s("held"))
                .expression_attribute_values(":exp", n(read.expires))
                .expression_attribute_values(":lines", s(read.lines_raw.clone()))
                .expression_attribute_names("#lines", "lines");
            tx.push(
                TransactWriteItem::builder()
                    .update(Self::built(end.build())?)
                    .build(),
            );
        }
        for (sku, qty) in &skus {
            let u = Update::builder()
                .table_name(&self.table)
                .key("pk", s(format!("STOCK#{sku}")));
            // Until the ERP has the order, its units are also `unposted`:
            // an ERP count read meanwhile does not know they are sold.
            let u = if hold.is_some() {
                u.update_expression("ADD on_hand :d, unposted :u")
            } else {
                u.update_expression("ADD on_hand :d, available :d, unposted :u")
            };
            tx.push(
                TransactWriteItem::builder()
                    .update(Self::built(
                        u.expression_attribute_values(":d", n(-qty))
                            .expression_attribute_values(":u", n(*qty))
                            .build(),
                    )?)
                    .build(),
            );
        }
        // No client request token: the commit record's condition already
        // makes a repeat harmless, and a token reused with a request that
        // differs (another expiry, fewer tracked SKUs) would be refused.
        match self.transact(tx, None).await? {
            None => Ok(CommitTx::Written),
            Some(reasons) if condition_failed(&reasons, 0) => Ok(CommitTx::AlreadyCommitted),
            Some(reasons) if hold.is_some() && condition_failed(&reasons, 1) => {
                Ok(CommitTx::HoldGone)
            }
            Some(reasons) => Err(match cancelled(&reasons) {
                StoreError::Contended(why) => {
                    StoreError::Contended(format!("committing {order_key} (part {part}): {why}"))
                }
                other => unavailable(format!("committing {order_key} (part {part}): {other}")),
            }),
        }
    }

    /// What an existing commit record means for a new commit: done before
    /// (a commit cut short between its parts is finished first), or the
    /// order was cancelled first (its checkout's hold goes back).
    async fn existing_commit(
        &self,
        c: &OrderCommit,
        now: DateTime<Utc>,
    ) -> Result<Option<CommitOutcome>, StoreError> {
        let Some(item) = self.get(part_key(&c.order_key, 0)).await? else {
            return Ok(None);
        };
        match item
            .get("state")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
        {
            Some("cancelled") => {
                if let Some(id) = c.reservation_id.as_deref() {
                    self.end_hold(id, "released", None).await?;
                }
                return Ok(Some(CommitOutcome::OrderCancelled));
            }
            Some("committed") => {
                let mut all = vec![commit_lines(&part_key(&c.order_key, 0), &item)?];
                all.extend(later_parts(&item));
                self.commit_later_parts(&c.order_key, &all, now).await?;
            }
            _ => {}
        }
        Ok(Some(CommitOutcome::AlreadyCommitted))
    }

    /// Parts 1.. of a commit, each once: a part that exists (committed
    /// before, or a tombstone a cancellation left) is skipped.
    async fn commit_later_parts(
        &self,
        order_key: &str,
        all: &[Vec<ReservationLine>],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for part in 1..all.len() {
            self.commit_tx(order_key, (part, all), None, now).await?;
        }
        Ok(())
    }

    /// A cancelled order's committed units back on hand, once, part by
    /// part; a tombstone in place of a part (or a whole commit) that never
    /// landed. True when anything came back.
    async fn restock_commit(&self, order_key: &str) -> Result<bool, StoreError> {
        let Some(lines) = self.restock_part(order_key, 0).await? else {
            return Ok(false);
        };
        let mut restocked = lines.restocked;
        for part in 1..=lines.later_parts {
            if let Some(p) = self.restock_part(order_key, part).await? {
                restocked |= p.restocked;
            }
        }
        Ok(restocked)
    }

    /// One part of [`Self::restock_commit`]. Every write is conditioned on
    /// what was read; a write that lost a race (a concurrent post, commit or
    /// restock) reads again. `None` when the part never committed (now a
    /// tombstone).
    async fn restock_part(
        &self,
        order_key: &str,
        part: usize,
    ) -> Result<Option<PartRestock>, StoreError> {
        let key = part_key(order_key, part);
        for _ in 0..5 {
            let Some(item) = self.get(key.clone()).await? else {
                // Cancelled before its commit (or this part of it) ran: a
                // tombstone stops the commit from ever taking this stock.
                let tombstone = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item("pk", s(key.clone()))
                    .item("state", s("cancelled"))
                    .item("lines", s("[]"))
                    .item("posted", AttributeValue::Bool(false))
                    .item(
                        "expires_at",
                        n((Utc::now() + retailflow_core::saga::SAGA_RETENTION).timestamp()),
                    )
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await;
                match tombstone {
                    Ok(_) => return Ok(None),
                    // The commit landed meanwhile: read it and restock it.
                    Err(e)
                        if matches!(
                            e.as_service_error(),
                            Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_))
                        ) =>
                    {
                        continue
                    }
                    Err(e) => return Err(store_error(e)),
                }
            };
            let later = later_parts(&item).len();
            if item
                .get("state")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                != Some("committed")
            {
                return Ok(Some(PartRestock {
                    restocked: false,
                    later_parts: later,
                }));
            }
            let lines = commit_lines(&key, &item)?;
            // A record without the flag predates `unposted`: its units were
            // never added there, so none are taken off.
            let posted = item.get("posted").and_then(|v| v.as_bool().ok()).copied();
            let mut end = Update::builder()
                .table_name(&self.table)
                .key("pk", s(key.clone()))
                .update_expression("SET #state = :to")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":to", s("restocked"))
                .expression_attribute_values(":from", s("committed"));
            end = match posted {
                Some(p) => end
                    .condition_expression("#state = :from AND posted = :posted")
                    .expression_attribute_values(":posted", AttributeValue::Bool(p)),
                None => end.condition_expression("#state = :from AND attribute_not_exists(posted)"),
            };
            let mut tx = vec![TransactWriteItem::builder()
                .update(Self::built(end.build())?)
                .build()];
            for (sku, qty) in per_sku(&lines) {
                let u = Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(format!("STOCK#{sku}")))
                    .expression_attribute_values(":d", n(qty));
                let u = if posted == Some(false) {
                    u.update_expression("ADD on_hand :d, available :d, unposted :u")
                        .expression_attribute_values(":u", n(-qty))
                } else {
                    u.update_expression("ADD on_hand :d, available :d")
                };
                tx.push(
                    TransactWriteItem::builder()
                        .update(Self::built(u.build())?)
                        .build(),
                );
            }
            // No client request token: the state condition makes a repeat
            // harmless, and a retry after a lost race differs in content.
            match self.transact(tx, None).await? {
                None => {
                    return Ok(Some(PartRestock {
                        restocked: true,
                        later_parts: later,
                    }))
                }
                Some(reasons) if condition_failed(&reasons, 0) => continue,
                Some(reasons) => return Err(cancelled(&reasons)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "{key} kept changing under its restock"
        )))
    }

    /// One commit part's units out of `unposted`, once: the ERP has them.
    async fn mark_part_posted(
        &self,
        key: String,
        item: std::collections::HashMap<String, AttributeValue>,
        at: DateTime<Utc>,
    ) -> Result<PostedOutcome, StoreError> {
        let state = item
            .get("state")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str);
        let posted = item.get("posted").and_then(|v| v.as_bool().ok()).copied();
        if state != Some("committed") || posted != Some(false) {
            return Ok(PostedOutcome::Unchanged);
        }
        let lines = commit_lines(&key, &item)?;
        let mut tx = vec![TransactWriteItem::builder()
            .update(Self::built(
                Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(key.clone()))
                    .update_expression("SET posted = :t")
                    .condition_expression("#state = :committed AND posted = :f")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":committed", s("committed"))
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .expression_attribute_values(":f", AttributeValue::Bool(false))
                    .build(),
            )?)
            .build()];
        for (sku, qty) in per_sku(&lines) {
            tx.push(
                TransactWriteItem::builder()
                    .update(Self::built(
                        Update::builder()
                            .table_name(&self.table)
                            .key("pk", s(format!("STOCK#{sku}")))
                            .update_expression("ADD unposted :u SET posted_at = :at")
                            .expression_attribute_values(":u", n(-qty))
                            .expression_attribute_values(":at", n(at.timestamp_millis()))
                            .build(),
                    )?)
                    .build(),
            );
        }
        match self.transact(tx, None).await? {
            None => Ok(PostedOutcome::Marked),
            // Marked or restocked meanwhile by another delivery.
            Some(reasons) if condition_failed(&reasons, 0) => Ok(PostedOutcome::Unchanged),
            Some(reasons) => Err(cancelled(&reasons)),
        }
    }

    /// The `STOCK#` items of these SKUs, by SKU, read 100 at a time (an
    /// order of 2,000 SKUs is 20 requests, not 2,000).
    async fn stock_items<'a>(
        &self,
        skus: impl Iterator<Item = &'a &'a str>,
    ) -> Result<
        std::collections::HashMap<String, std::collections::HashMap<String, AttributeValue>>,
        StoreError,
    > {
        let pks = skus.map(|sku| format!("STOCK#{sku}")).collect();
        let items = super::dynamodb::batch_get(&self.client, &self.table, pks).await?;
        Ok(items
            .into_iter()
            .filter_map(|i| {
                let sku = i
                    .get("pk")?
                    .as_s()
                    .ok()?
                    .strip_prefix("STOCK#")?
                    .to_string();
                Some((sku, i))
            })
            .collect())
    }

    /// Units of `lines` sold beyond what was free: SKUs left below zero
    /// available after a commit without a hold.
    async fn oversold(
        &self,
        lines: &[ReservationLine],
    ) -> Result<Vec<ReservationLine>, StoreError> {
        let mut out = Vec::new();
        let counts = self.stock_items(per_sku(lines).keys()).await?;
        for (sku, qty) in per_sku(lines) {
            let available = counts
                .get(sku)
                .and_then(|i| get_n(i, "available"))
                .unwrap_or(0);
            if available < 0 {
                out.push(ReservationLine {
                    sku: sku.to_string(),
                    quantity: u32::try_from(qty.min(-available)).unwrap_or(u32::MAX),
                });
            }
        }
        Ok(out)
    }

    async fn reserve_once(
        &self,
        r: &Reservation,
        now: DateTime<Utc>,
        retry: bool,
    ) -> Result<ReserveOutcome, StoreError> {
        let skus = per_sku(&r.lines);
        if skus.len() > MAX_SKUS_PER_HOLD {
            return Err(StoreError::TooLarge(format!(
                "a cart of {} distinct SKUs (at most {MAX_SKUS_PER_HOLD})",
                skus.len()
            )));
        }
        // Plain data: serializing cannot fail.
        let lines = serde_json::to_string(&r.lines).unwrap_or_default();
        let mut tx = vec![TransactWriteItem::builder()
            .put(Self::built(
                Put::builder()
                    .table_name(&self.table)
                    .item("pk", s(format!("HOLD#{}", r.id)))
                    .item("lines", s(lines))
                    .item("state", s("held"))
                    .item("hold_expires", n(r.expires_at.timestamp()))
                    .item("hold_minute", s(minute_key(r.expires_at)))
                    .item("expires_at", n((r.expires_at + HOLD_RETENTION).timestamp()))
                    // A new hold, or one for a checkout whose earlier hold
                    // was given back (the customer changed the cart).
                    .condition_expression("attribute_not_exists(pk) OR #state = :released")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":released", s("released"))
                    .build(),
            )?)
            .build()];
        for (sku, qty) in &skus {
            tx.push(
                TransactWriteItem::builder()
                    .update(Self::built(
                        Update::builder()
                            .table_name(&self.table)
                            .key("pk", s(format!("STOCK#{sku}")))
                            .update_expression("ADD available :neg")
                            .condition_expression("available >= :qty")
                            .expression_attribute_values(":neg", n(-qty))
                            .expression_attribute_values(":qty", n(*qty))
                            .return_values_on_condition_check_failure(
                                ReturnValuesOnConditionCheckFailure::AllOld,
                            )
                            .build(),
                    )?)
                    .build(),
            );
        }
        let Some(reasons) = self.transact(tx, None).await? else {
            return Ok(ReserveOutcome::Reserved);
        };
        if condition_failed(&reasons, 0) {
            return self.existing_hold(r, now, retry).await;
        }
        for (i, (sku, _)) in skus.iter().enumerate() {
            if condition_failed(&reasons, i + 1) {
                let available = reasons
                    .get(i + 1)
                    .and_then(|reason| reason.item())
                    .and_then(|item| get_n(item, "available"))
                    .unwrap_or(0)
                    .max(0);
                return Ok(ReserveOutcome::Short {
                    sku: (*sku).to_string(),
                    available: u32::try_from(available).unwrap_or(u32::MAX),
                });
            }
        }
        // Another checkout was changing the same SKU at this very moment, or
        // the SKU is over its write rate: contention, which the caller rides
        // out (`checkout::hot_stock`).
        Err(cancelled(&reasons))
    }

    /// A changed cart under a held checkout, in one transaction: the hold
    /// item takes the new lines and each SKU moves by the difference, so no
    /// other checkout can take units freed by the old cart in between. A
    /// SKU short for the new cart leaves nothing held (the old hold goes
    /// back, as for any rejected cart).
    async fn swap_hold(
        &self,
        r: &Reservation,
        old: &Hold,
        now: DateTime<Utc>,
    ) -> Result<ReserveOutcome, StoreError> {
        let (before, after) = (per_sku(&old.lines), per_sku(&r.lines));
        let mut deltas: Vec<(&str, i64)> = before
            .keys()
            .chain(after.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|sku| {
                let d =
                    after.get(sku).copied().unwrap_or(0) - before.get(sku).copied().unwrap_or(0);
                (*sku, d)
            })
            .filter(|(_, d)| *d != 0)
            .collect();
        if deltas.len() + 1 > 100 {
            // Too many SKUs change to swap in one transaction: in two steps.
            self.end_hold(&r.id, "released", None).await?;
            return Box::pin(self.reserve_once(r, now, false)).await;
        }
        // Plain data: serializing cannot fail.
        let lines = serde_json::to_string(&r.lines).unwrap_or_default();
        let mut tx = vec![TransactWriteItem::builder()
            .put(Self::built(
                Put::builder()
                    .table_name(&self.table)
                    .item("pk", s(format!("HOLD#{}", r.id)))
                    .item("lines", s(lines))
                    .item("state", s("held"))
                    .item("hold_expires", n(r.expires_at.timestamp()))
                    .item("hold_minute", s(minute_key(r.expires_at)))
                    .item("expires_at", n((r.expires_at + HOLD_RETENTION).timestamp()))
                    .condition_expression(
                        "#state = :held AND hold_expires = :old AND #lines = :old_lines",
                    )
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":held", s("held"))
                    .expression_attribute_values(":old", n(old.expires))
                    .expression_attribute_values(":old_lines", s(old.lines_raw.clone()))
                    .expression_attribute_names("#lines", "lines")
                    .build(),
            )?)
            .build()];
        deltas.sort();
        for (sku, d) in &deltas {
            let u = Update::builder()
                .table_name(&self.table)
                .key("pk", s(format!("STOCK#{sku}")))
                .update_expression("ADD available :neg")
                .expression_attribute_values(":neg", n(-d));
            let u = if *d > 0 {
                u.condition_expression("available >= :qty")
                    .expression_attribute_values(":qty", n(*d))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
            } else {
                u
            };
            tx.push(
                TransactWriteItem::builder()
                    .update(Self::built(u.build())?)
                    .build(),
            );
        }
        let Some(reasons) = self.transact(tx, None).await? else {
            return Ok(ReserveOutcome::Reserved);
        };
        if condition_failed(&reasons, 0) {
            // The hold ended or changed meanwhile: start from what is there.
            return Box::pin(self.reserve_once(r, now, false)).await;
        }
        for (i, (sku, _)) in deltas.iter().enumerate() {
            if condition_failed(&reasons, i + 1) {
                let free = reasons
                    .get(i + 1)
                    .and_then(|reason| reason.item())
                    .and_then(|item| get_n(item, "available"))
                    .unwrap_or(0)
                    .max(0);
                self.end_hold(&r.id, "released", None).await?;
                // What this checkout could have: the free units plus what
                // its old cart held of the SKU.
                let held = before.get(sku).copied().unwrap_or(0);
                return Ok(ReserveOutcome::Short {
                    sku: (*sku).to_string(),
                    available: u32::try_from(free + held).unwrap_or(u32::MAX),
                });
            }
        }
        Err(cancelled(&reasons))
    }

    /// The checkout holds already. The same cart (by units per SKU) keeps
    /// its hold, extended to the new expiry; a changed cart gives the old
    /// hold back and holds the new one (once).
    async fn existing_hold(
        &self,
        r: &Reservation,
        now: DateTime<Utc>,
        retry: bool,
    ) -> Result<ReserveOutcome, StoreError> {
        match self.hold(&r.id).await? {
            Some(h) if h.state == "held" && per_sku(&h.lines) == per_sku(&r.lines) => {
                let extended = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(format!("HOLD#{}", r.id)))
                    .update_expression("SET hold_expires = :e, hold_minute = :m, expires_at = :ttl")
                    .condition_expression("#state = :held")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":held", s("held"))
                    .expression_attribute_values(":e", n(r.expires_at.timestamp().max(h.expires)))
                    .expression_attribute_values(":m", s(minute_key(r.expires_at)))
                    .expression_attribute_values(
                        ":ttl",
                        n((r.expires_at + HOLD_RETENTION).timestamp()),
                    )
                    .send()
                    .await;
                match extended {
                    Ok(_) => Ok(ReserveOutcome::Reserved),
                    // Swept or released meanwhile: hold it anew.
                    Err(e)
                        if retry
                            && matches!(
                                e.as_service_error(),
                                Some(UpdateItemError::ConditionalCheckFailedException(_))
                            ) =>
                    {
                        Box::pin(self.reserve_once(r, now, false)).await
                    }
                    Err(e) => Err(store_error(e)),
                }
            }
            Some(h) if h.state == "held" && retry => self.swap_hold(r, &h, now).await,
            Some(h) if h.state == "committed" => Err(StoreError::Corrupt {
                key: format!("HOLD#{}", r.id),
                reason: "this checkout was already ordered; a new checkout id is needed".into(),
            }),
            _ => Err(StoreError::Unavailable(format!(
                "the hold of checkout {} kept changing",
                r.id
            ))),
        }
    }
}

#[async_trait]
impl StockReservations for DynamoDbStock {
    async fn reserve(
        &self,
        r: &Reservation,
        now: DateTime<Utc>,
    ) -> Result<ReserveOutcome, StoreError> {
        self.reserve_once(r, now, true).await
    }

    async fn release(&self, reservation_id: &str) -> Result<(), StoreError> {
        self.end_hold(reservation_id, "released", None)
            .await
            .map(|_| ())
    }

    async fn commit_order(
        &self,
        c: &OrderCommit,
        now: DateTime<Utc>,
    ) -> Result<CommitOutcome, StoreError> {
        if let Some(existing) = self.existing_commit(c, now).await? {
            return Ok(existing);
        }
        if let Some(id) = c.reservation_id.as_deref() {
            match self.hold(id).await? {
                // A hold is at most MAX_SKUS_PER_HOLD SKUs: one part.
                Some(h) if h.state == "held" && per_sku(&h.lines) == per_sku(&c.lines) => {
                    let all = parts(&c.lines);
                    match self
                        .commit_tx(&c.order_key, (0, &all), Some((id, &h)), now)
                        .await?
                    {
                        CommitTx::Written => {
                            self.commit_later_parts(&c.order_key, &all, now).await?;
                            return Ok(CommitOutcome::FromHold);
                        }
                        CommitTx::AlreadyCommitted => {
                            return Ok(self
                                .existing_commit(c, now)
                                .await?
                                .unwrap_or(CommitOutcome::AlreadyCommitted))
                        }
                        // Swept meanwhile: its units are free again; sell
                        // them without it.
                        CommitTx::HoldGone => {}
                    }
                }
                // The cart changed after validation: its hold goes back and
                // the order's own lines leave stock.
                Some(h) if h.state == "held" => {
                    self.end_hold(id, "released", None).await?;
                }
                _ => {}
            }
        }
        // Only SKUs retailflow counts: a SKU it holds no stock for is the
        // shop's or the ERP's business alone.
        let counts = self.stock_items(per_sku(&c.lines).keys()).await?;
        let (tracked, untracked): (Vec<String>, Vec<String>) = per_sku(&c.lines)
            .keys()
            .map(|sku| sku.to_string())
            .partition(|sku| counts.get(sku).is_some_and(|i| i.contains_key("on_hand")));
        let tracked_lines: Vec<ReservationLine> = c
            .lines
            .iter()
            .filter(|l| tracked.contains(&l.sku))
            .cloned()
            .collect();
        let all = parts(&tracked_lines);
        match self.commit_tx(&c.order_key, (0, &all), None, now).await? {
            CommitTx::AlreadyCommitted => Ok(self
                .existing_commit(c, now)
                .await?
                .unwrap_or(CommitOutcome::AlreadyCommitted)),
            _ => {
                self.commit_later_parts(&c.order_key, &all, now).await?;
                Ok(CommitOutcome::WithoutHold {
                    oversold: self.oversold(&tracked_lines).await?,
                    untracked,
                })
            }
        }
    }

    async fn restock_order(
        &self,
        order_key: &str,
        reservation_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let released = match reservation_id {
            Some(id) => self.end_hold(id, "released", None).await?,
            None => false,
        };
        Ok(self.restock_commit(order_key).await? || released)
    }

    async fn mark_posted(
        &self,
        order_key: &str,
        at: DateTime<Utc>,
    ) -> Result<PostedOutcome, StoreError> {
        let Some(first) = self.get(part_key(order_key, 0)).await? else {
            return Ok(PostedOutcome::NotCommitted);
        };
        let mut outcome = self
            .mark_part_posted(part_key(order_key, 0), first.clone(), at)
            .await?;
        let mut missing = false;
        for part in 1..=later_parts(&first).len() {
            let key = part_key(order_key, part);
            match self.get(key.clone()).await? {
                Some(item) => {
                    if self.mark_part_posted(key, item, at).await? == PostedOutcome::Marked {
                        outcome = PostedOutcome::Marked;
                    }
                }
                // Its commit is still to finish this part: the caller comes
                // back for it, or its units would stay `unposted` for good.
                None => missing = true,
            }
        }
        Ok(if missing {
            PostedOutcome::NotCommitted
        } else {
            outcome
        })
    }

    async fn apply_erp_count(
        &self,
        sku: &str,
        erp_available: u32,
        read_at: DateTime<Utc>,
    ) -> Result<CountOutcome, StoreError> {
        for _ in 0..5 {
            let item = self.get(format!("STOCK#{sku}")).await?;
            let field = |k: &str| item.as_ref().and_then(|i| get_n(i, k));
            let posted_at = field("posted_at");
            if posted_at.is_some_and(|p| p > read_at.timestamp_millis()) {
                return Ok(CountOutcome::Stale);
            }
            let unposted = field("unposted");
            let old = field("on_hand");
            let on_hand = (i64::from(erp_available) - unposted.unwrap_or(0)).max(0);
            if old == Some(on_hand) {
                // Nothing moved: nothing to write.
                return Ok(CountOutcome::Applied {
                    on_hand: u32::try_from(on_hand).unwrap_or(u32::MAX),
                    available: u32::try_from(field("available").unwrap_or(0).max(0))
                        .unwrap_or(u32::MAX),
                    changed: false,
                });
            }
            let delta = on_hand - old.unwrap_or(0);
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("STOCK#{sku}")))
                .update_expression("SET on_hand = :new ADD available :delta")
                .expression_attribute_values(":new", n(on_hand))
                .expression_attribute_values(":delta", n(delta));
            // Applied only over the figures it was computed from: a commit,
            // a post or another count in between makes it compute again.
            let mut conditions = Vec::new();
            for (name, value, placeholder) in [
                ("on_hand", old, ":old"),
                ("unposted", unposted, ":unposted"),
                ("posted_at", posted_at, ":posted_at"),
            ] {
                match value {
                    Some(v) => {
                        conditions.push(format!("{name} = {placeholder}"));
                        req = req.expression_attribute_values(placeholder, n(v));
                    }
                    None => conditions.push(format!("attribute_not_exists({name})")),
                }
            }
            match req
                .condition_expression(conditions.join(" AND "))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .send()
                .await
            {
                Ok(out) => {
                    let available = out
                        .attributes()
                        .and_then(|a| get_n(a, "available"))
                        .unwrap_or(0)
                        .max(0);
                    return Ok(CountOutcome::Applied {
                        on_hand: u32::try_from(on_hand).unwrap_or(u32::MAX),
                        available: u32::try_from(available).unwrap_or(u32::MAX),
                        changed: true,
                    });
                }
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(UpdateItemError::ConditionalCheckFailedException(_))
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(store_error(e)),
            }
        }
        // Selling too fast to count now: as good as a stale read; the next
        // sync counts it.
        Ok(CountOutcome::Stale)
    }

    async fn set_on_hand(&self, sku: &str, on_hand: u32) -> Result<(), StoreError> {
        // available moves by the change in on_hand, whatever is held; a
        // count below what is held leaves available negative, so no new hold
        // fits until stock comes back.
        for _ in 0..5 {
            let out = self.get(format!("STOCK#{sku}")).await?;
            let old = out.as_ref().and_then(|i| get_n(i, "on_hand"));
            let delta = i64::from(on_hand) - old.unwrap_or(0);
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("STOCK#{sku}")))
                .update_expression("SET on_hand = :new ADD available :delta")
                .expression_attribute_values(":new", n(i64::from(on_hand)))
                .expression_attribute_values(":delta", n(delta));
            req = match old {
                Some(o) => req
                    .condition_expression("on_hand = :old")
                    .expression_attribute_values(":old", n(o)),
                None => req.condition_expression("attribute_not_exists(on_hand)"),
            };
            match req.send().await {
                Ok(_) => return Ok(()),
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(UpdateItemError::ConditionalCheckFailedException(_))
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "stock of {sku} kept changing under the count update"
        )))
    }

    async fn sweep_expired(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.sweep_expired_holds(now).await
    }

    async fn held(&self, reservation_id: &str) -> Result<Option<Vec<ReservationLine>>, StoreError> {
        Ok(self
            .hold(reservation_id)
            .await?
            .filter(|h| h.state == "held")
            .map(|h| h.lines))
    }

    async fn levels(&self, skus: &[String]) -> Result<Vec<StockLevel>, StoreError> {
        let refs: Vec<&str> = skus.iter().map(String::as_str).collect();
        let items = self.stock_items(refs.iter()).await?;
        Ok(skus
            .iter()
            .map(|sku| {
                let Some(item) = items.get(sku) else {
                    return StockLevel::default();
                };
                StockLevel {
                    on_hand: get_n(item, "on_hand").unwrap_or(0),
                    available: get_n(item, "available").unwrap_or(0),
                    unposted: get_n(item, "unposted").unwrap_or(0),
                    posted_at: get_n(item, "posted_at")
                        .and_then(DateTime::<Utc>::from_timestamp_millis),
                    tracked: item.contains_key("on_hand"),
                }
            })
            .collect())
    }

    async fn adjust_on_hand(
        &self,
        sku: &str,
        delta: i64,
        only_free: bool,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("STOCK#{sku}")))
            .update_expression("ADD on_hand :d, available :d")
            .expression_attribute_values(":d", n(delta));
        if only_free && delta < 0 {
            req = req
                .condition_expression("available >= :take")
                .expression_attribute_values(":take", n(-delta));
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn available(&self, sku: &str, _now: DateTime<Utc>) -> Result<u32, StoreError> {
        let out = self.get(format!("STOCK#{sku}")).await?;
        let available = out
            .as_ref()
            .and_then(|i| get_n(i, "available"))
            .unwrap_or(0);
        Ok(u32::try_from(available.max(0)).unwrap_or(u32::MAX))
    }
}
