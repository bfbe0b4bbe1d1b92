//! Stock reservations: a checkout holds units until the order is placed
//! (commit), abandoned (release) or the hold expires. A reservation takes
//! every line of a cart or none, and live holds never exceed the units on
//! hand, whatever the concurrency: that is the no-oversell guarantee.
//!
//! The port is what checkout validation talks to;
//! [`InProcessStock`](crate::adapters::in_process::InProcessStock) is the
//! local app's and the tests' twin; `retailflow-aws`'s `DynamoDbStock`
//! holds stock with DynamoDB conditional writes in one TransactWriteItems
//! per cart.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ports::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationLine {
    pub sku: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Idempotency key: the same id reserves once.
    pub id: String,
    pub lines: Vec<ReservationLine>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReserveOutcome {
    Reserved,
    /// Not enough of `sku`: nothing was reserved.
    Short {
        sku: String,
        available: u32,
    },
}

/// A placed order's units, to take out of stock once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCommit {
    /// The order's key: an order commits once, whatever the redeliveries.
    pub order_key: String,
    /// The hold its checkout took, when the order came through one.
    pub reservation_id: Option<String>,
    pub lines: Vec<ReservationLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CommitOutcome {
    /// The checkout's hold became the order's: its units left stock.
    FromHold,
    /// No live hold held these lines (a till sale, an expired hold, a cart
    /// changed after validation): the units left stock directly. `oversold`
    /// lists the units sold beyond what was free, for someone to look at;
    /// `untracked` the SKUs retailflow holds no stock count for (left alone).
    WithoutHold {
        oversold: Vec<ReservationLine>,
        untracked: Vec<String>,
    },
    /// Committed before: nothing changed.
    AlreadyCommitted,
    /// The order was cancelled before it committed: nothing taken, and its
    /// checkout's hold was given back.
    OrderCancelled,
}

/// What marking an order posted to the ERP did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostedOutcome {
    Marked,
    /// Marked before, or restocked (its units are back already).
    Unchanged,
    /// The order's stock is not committed yet: try again later.
    NotCommitted,
}

/// One stock counter as stored, signed: `available` below zero means more
/// is held or sold than is on hand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub on_hand: i64,
    pub available: i64,
    /// Units of commits the ERP has not received yet.
    pub unposted: i64,
    /// When the ERP last received an order of it.
    pub posted_at: Option<DateTime<Utc>>,
    /// False when retailflow keeps no count of it.
    pub tracked: bool,
}

/// What an ERP count did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CountOutcome {
    /// Units on hand are now `on_hand` (the ERP's count less units it has
    /// not seen sold), `available` of them not held: what shops should show;
    /// `changed` when on hand moved (else nothing was written).
    Applied {
        on_hand: u32,
        available: u32,
        changed: bool,
    },
    /// Read before the ERP received an order of this SKU (or the SKU kept
    /// changing under the update): skipped, the next sync counts again.
    Stale,
}

#[async_trait]
pub trait StockReservations: Send + Sync {
    /// Reserves every line or none. A reservation id holding the same lines
    /// answers as it did; holding other lines (a changed cart), its old hold
    /// is given back and the new lines are held.
    async fn reserve(
        &self,
        reservation: &Reservation,
        now: DateTime<Utc>,
    ) -> Result<ReserveOutcome, StoreError>;
    /// Gives a hold back (abandoned checkout, cancelled order).
    async fn release(&self, reservation_id: &str) -> Result<(), StoreError>;
    /// The order was placed: its units leave stock for good, from its
    /// checkout's hold when that hold is live and holds the order's lines.
    async fn commit_order(
        &self,
        commit: &OrderCommit,
        now: DateTime<Utc>,
    ) -> Result<CommitOutcome, StoreError>;
    /// The order was cancelled: a live hold of its checkout is given back
    /// and committed units come back to stock, once. False when there was
    /// nothing to give back.
    async fn restock_order(
        &self,
        order_key: &str,
        reservation_id: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// The ERP now has the order's sales order: from now on its units are
    /// out of the ERP's own available count.
    async fn mark_posted(
        &self,
        order_key: &str,
        at: DateTime<Utc>,
    ) -> Result<PostedOutcome, StoreError>;
    /// The ERP's count of units free to sell (on hand less what its own
    /// sales orders hold), read at `read_at`. Units retailflow sold that the
    /// ERP has not received yet are taken off it, so a count never brings
    /// back units already sold. A count read before the ERP last received an
    /// order of this SKU may or may not include that order: it is skipped
    /// as stale (the next sync reads a fresh one).
    async fn apply_erp_count(
        &self,
        sku: &str,
        erp_available: u32,
        read_at: DateTime<Utc>,
    ) -> Result<CountOutcome, StoreError>;
    /// Units on hand, as a seed or an operator sets them (not from an ERP
    /// read: see [`Self::apply_erp_count`]). Holds already given stay; new
    /// ones only fit in what the new count leaves.
    async fn set_on_hand(&self, sku: &str, on_hand: u32) -> Result<(), StoreError>;
    /// Units on hand not held.
    async fn available(&self, sku: &str, now: DateTime<Utc>) -> Result<u32, StoreError>;
    /// The lines a live hold holds, if it is live.
    async fn held(&self, reservation_id: &str) -> Result<Option<Vec<ReservationLine>>, StoreError>;
    /// The counters of `skus`, in order, each read consistently, in as few
    /// requests as the store allows (what a checkout reads to pick a hot
    /// SKU's shard).
    async fn levels(&self, skus: &[String]) -> Result<Vec<StockLevel>, StoreError>;
    /// Moves on hand and available by `delta` at once (a count's change
    /// spread over a hot SKU's shards). With `only_free`, a lowering lands
    /// only if that many units are free (false: they were not, nothing
    /// changed); without, available may go below zero.
    async fn adjust_on_hand(
        &self,
        sku: &str,
        delta: i64,
        only_free: bool,
    ) -> Result<bool, StoreError>;
    /// Gives back the units of holds expired by `now`; how many ended.
    async fn sweep_expired(&self, now: DateTime<Utc>) -> Result<usize, StoreError>;
}

/// Units per SKU of a cart or an order, a SKU on several lines summed.
pub fn units_per_sku(lines: &[ReservationLine]) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for l in lines {
        *m.entry(l.sku.clone()).or_default() += u64::from(l.quantity);
    }
    m
}

/// Two carts hold the same stock when they hold the same units per SKU,
/// whatever the order of their lines.
pub fn same_cart(a: &[ReservationLine], b: &[ReservationLine]) -> bool {
    units_per_sku(a) == units_per_sku(b)
}
