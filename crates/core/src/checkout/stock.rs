//! Stock reservations: a checkout holds units until the order is placed
//! (commit), abandoned (release) or the hold expires. A reservation takes
//! every line of a cart or none, and live holds never exceed the units on
//! hand, whatever the concurrency: that is the no-oversell guarantee.
//!
//! The port is what checkout validation talks to; [`InProcessStock`] is the
//! local app's and the tests' twin; `adapters::dynamodb_stock` holds stock
//! with DynamoDB conditional writes in one TransactWriteItems per cart.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::adapters::contention::{Admitted, ItemContention, WriteKind};
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

#[derive(Default, Serialize, Deserialize)]
struct StockState {
    /// Below zero when more was sold than there was (as on DynamoDB).
    on_hand: BTreeMap<String, i64>,
    holds: BTreeMap<String, Reservation>,
    /// Units held per SKU (the sum over `holds`, kept as holds come and go).
    held: BTreeMap<String, u64>,
    /// Holds by expiry, so expiring is a walk over the expired ones only.
    expiries: std::collections::BTreeSet<(DateTime<Utc>, String)>,
    commits: BTreeMap<String, Commit>,
    /// Units per SKU of commits the ERP has not received yet.
    unposted: BTreeMap<String, u64>,
    /// When the ERP last received an order of each SKU.
    posted_at: BTreeMap<String, DateTime<Utc>>,
}

/// A committed order as the in-process ledger keeps it.
#[derive(Serialize, Deserialize)]
struct Commit {
    /// Cancelled before it committed: a tombstone.
    cancelled_first: bool,
    /// The SKUs retailflow stocks, summed.
    units: BTreeMap<String, u64>,
    restocked: bool,
    posted: bool,
}

impl StockState {
    fn expire(&mut self, now: DateTime<Utc>) {
        while let Some((at, id)) = self.expiries.first().cloned() {
            if at > now {
                break;
            }
            self.expiries.remove(&(at, id.clone()));
            self.drop_hold(&id);
        }
    }

    fn add_hold(&mut self, r: &Reservation) {
        for l in &r.lines {
            *self.held.entry(l.sku.clone()).or_default() += u64::from(l.quantity);
        }
        self.expiries.insert((r.expires_at, r.id.clone()));
        self.holds.insert(r.id.clone(), r.clone());
    }

    fn drop_hold(&mut self, id: &str) -> Option<Reservation> {
        let r = self.holds.remove(id)?;
        self.expiries.remove(&(r.expires_at, r.id.clone()));
        for l in &r.lines {
            if let Some(h) = self.held.get_mut(&l.sku) {
                *h = h.saturating_sub(u64::from(l.quantity));
            }
        }
        Some(r)
    }

    fn held(&self, sku: &str) -> u64 {
        self.held.get(sku).copied().unwrap_or(0)
    }

    /// Units on hand not held: below zero when more is held or sold than
    /// there is.
    fn signed_available(&self, sku: &str) -> i64 {
        self.on_hand
            .get(sku)
            .copied()
            .unwrap_or(0)
            .saturating_sub(i64::try_from(self.held(sku)).unwrap_or(i64::MAX))
    }

    fn available(&self, sku: &str) -> u64 {
        u64::try_from(self.signed_available(sku)).unwrap_or(0)
    }
}

/// [`StockReservations`] in memory, one lock for all SKUs (exact, what the
/// local app needs). With [`Self::with_contention`] each call also meets
/// DynamoDB's contention rules on the items the DynamoDB adapter would
/// touch (`HOLD#`, `STOCK#`, `COMMIT#`), so a load test in process sees the
/// conflicts, throttling and latency the table would give it.
#[derive(Default)]
pub struct InProcessStock {
    state: crate::adapters::in_process::JournaledState<StockState>,
    contention: Option<Arc<ItemContention>>,
}

fn stock_key(sku: &str) -> String {
    format!("STOCK#{sku}")
}

/// The items a hold's transaction touches: the hold and its SKUs' counters.
fn hold_keys(id: &str, lines: &[&[ReservationLine]]) -> Vec<String> {
    let mut keys: std::collections::BTreeSet<String> = lines
        .iter()
        .flat_map(|l| l.iter().map(|l| stock_key(&l.sku)))
        .collect();
    keys.insert(format!("HOLD#{id}"));
    keys.into_iter().collect()
}

impl InProcessStock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call meets `contention`'s rules from now on (shared with the
    /// other stores of the same table).
    pub fn with_contention(mut self, contention: Arc<ItemContention>) -> Self {
        self.contention = Some(contention);
        self
    }

    /// The contention model's counts, when one is set.
    pub fn contention(&self) -> Option<&ItemContention> {
        self.contention.as_deref()
    }

    /// Admits a write to the items `keys` names (given the state as it is),
    /// or refuses it as DynamoDB would; without a model, lets it through.
    async fn admit(
        &self,
        kind: WriteKind,
        keys: impl FnOnce(&StockState) -> Vec<String>,
    ) -> Result<Option<Admitted<'_>>, StoreError> {
        let Some(c) = &self.contention else {
            return Ok(None);
        };
        let keys = keys(&self.lock());
        c.write(kind, keys).await.map(Some)
    }

    /// The answer `reserve` gives now if it is short (its conditions as the
    /// transaction prepares), without changing anything; `None` when it
    /// would hold, or when holds are due to expire (that is the write's to
    /// do).
    fn short_now(&self, r: &Reservation, now: DateTime<Utc>) -> Option<ReserveOutcome> {
        let st = self.lock();
        if st.expiries.first().is_some_and(|(at, _)| *at <= now) {
            return None;
        }
        let old = st.holds.get(&r.id);
        if old.is_some_and(|h| same_cart(&h.lines, &r.lines)) {
            return None;
        }
        // A changed cart's old units come back in the same transaction.
        let mine = old.map(|h| units_per_sku(&h.lines)).unwrap_or_default();
        for (sku, qty) in units_per_sku(&r.lines) {
            let own = i64::try_from(mine.get(&sku).copied().unwrap_or(0)).unwrap_or(i64::MAX);
            let available = st.signed_available(&sku).saturating_add(own).max(0);
            if available < i64::try_from(qty).unwrap_or(i64::MAX) {
                return Some(ReserveOutcome::Short {
                    sku,
                    available: u32::try_from(available).unwrap_or(u32::MAX),
                });
            }
        }
        None
    }

    /// A consistent read's service time, under a model.
    async fn read(&self) {
        if let Some(c) = &self.contention {
            c.read().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StockState> {
        self.state.lock()
    }

    /// Stock written through to `journal` (its row `meta/stock`), starting
    /// from what that row held, if anything.
    pub fn durable(
        mut self,
        journal: std::sync::Arc<dyn crate::adapters::in_process::Journal>,
        saved: Option<&str>,
    ) -> Result<Self, serde_json::Error> {
        self.state.write_to(journal, "meta/stock", saved)?;
        Ok(self)
    }

    fn change<T>(
        &self,
        f: impl FnOnce(&mut StockState) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.state.change(f)
    }
}

#[async_trait]
impl StockReservations for InProcessStock {
    async fn reserve(
        &self,
        r: &Reservation,
        now: DateTime<Utc>,
    ) -> Result<ReserveOutcome, StoreError> {
        let mut _admitted = None;
        if let Some(c) = &self.contention {
            let keys = {
                let st = self.lock();
                let old = st.holds.get(&r.id).map(|h| h.lines.as_slice());
                hold_keys(&r.id, &[&r.lines, old.unwrap_or_default()])
            };
            let admitted = c.prepare(WriteKind::Transaction, keys).await?;
            // DynamoDB checks a transaction's conditions as it prepares: a
            // cart short of a SKU is cancelled at once, its items free again
            // (they were not changed, so they cannot have changed since).
            if let Some(short) = self.short_now(r, now) {
                admitted.cancel().await;
                return Ok(short);
            }
            admitted.run().await;
            _admitted = Some(admitted);
        }
        self.change(|st| {
            st.expire(now);
            match st.holds.get(&r.id).cloned() {
                // The same cart validated again: its hold runs to the new expiry.
                Some(h) if same_cart(&h.lines, &r.lines) => {
                    let until = h.expires_at.max(r.expires_at);
                    st.expiries.remove(&(h.expires_at, h.id.clone()));
                    st.expiries.insert((until, h.id.clone()));
                    if let Some(held) = st.holds.get_mut(&r.id) {
                        held.expires_at = until;
                    }
                    return Ok(ReserveOutcome::Reserved);
                }
                // The customer changed the cart: the old hold goes back first.
                Some(_) => {
                    st.drop_hold(&r.id);
                }
                None => {}
            }
            // A cart may name a SKU on several lines: check the sums.
            let mut wanted: BTreeMap<&str, u64> = BTreeMap::new();
            for l in &r.lines {
                *wanted.entry(l.sku.as_str()).or_default() += u64::from(l.quantity);
            }
            for (sku, qty) in &wanted {
                let available = st.available(sku);
                if available < *qty {
                    return Ok(ReserveOutcome::Short {
                        sku: (*sku).to_string(),
                        available: u32::try_from(available).unwrap_or(u32::MAX),
                    });
                }
            }
            st.add_hold(r);
            Ok(ReserveOutcome::Reserved)
        })
    }

    async fn release(&self, reservation_id: &str) -> Result<(), StoreError> {
        let _admitted = self
            .admit(WriteKind::Transaction, |st| {
                let lines = st.holds.get(reservation_id).map(|h| h.lines.as_slice());
                hold_keys(reservation_id, &[lines.unwrap_or_default()])
            })
            .await?;
        self.change(|st| {
            st.drop_hold(reservation_id);
            Ok(())
        })?;
        Ok(())
    }

    async fn commit_order(
        &self,
        c: &OrderCommit,
        now: DateTime<Utc>,
    ) -> Result<CommitOutcome, StoreError> {
        let _admitted = self
            .admit(WriteKind::Transaction, |st| {
                let hold = c.reservation_id.as_deref();
                let held = hold
                    .and_then(|id| st.holds.get(id))
                    .map(|h| h.lines.as_slice());
                let mut keys = hold_keys(
                    hold.unwrap_or_default(),
                    &[&c.lines, held.unwrap_or_default()],
                );
                if hold.is_none() {
                    keys.retain(|k| k != "HOLD#");
                }
                keys.push(format!("COMMIT#{}", c.order_key));
                keys
            })
            .await?;
        self.change(|st| {
            st.expire(now);
            if let Some(existing) = st.commits.get(&c.order_key) {
                if existing.cancelled_first {
                    if let Some(id) = c.reservation_id.as_deref() {
                        st.drop_hold(id);
                    }
                    return Ok(CommitOutcome::OrderCancelled);
                }
                return Ok(CommitOutcome::AlreadyCommitted);
            }
            let hold = c.reservation_id.as_deref().and_then(|id| st.drop_hold(id));
            let from_hold = hold.is_some_and(|h| same_cart(&h.lines, &c.lines));
            let mut oversold = Vec::new();
            let mut untracked = Vec::new();
            let mut units = BTreeMap::new();
            for (sku, qty) in units_per_sku(&c.lines) {
                if !st.on_hand.contains_key(&sku) {
                    untracked.push(sku);
                    continue;
                }
                units.insert(sku.clone(), qty);
                *st.unposted.entry(sku.clone()).or_default() += qty;
                if !from_hold {
                    let free = st.available(&sku);
                    if free < qty {
                        oversold.push(ReservationLine {
                            sku: sku.clone(),
                            quantity: u32::try_from(qty - free).unwrap_or(u32::MAX),
                        });
                    }
                }
                let on_hand = st.on_hand.entry(sku).or_default();
                *on_hand = on_hand.saturating_sub(i64::try_from(qty).unwrap_or(i64::MAX));
            }
            st.commits.insert(
                c.order_key.clone(),
                Commit {
                    cancelled_first: false,
                    units,
                    restocked: false,
                    posted: false,
                },
            );
            Ok(if from_hold {
                CommitOutcome::FromHold
            } else {
                CommitOutcome::WithoutHold {
                    oversold,
                    untracked,
                }
            })
        })
    }

    async fn restock_order(
        &self,
        order_key: &str,
        reservation_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let _admitted = self
            .admit(WriteKind::Transaction, |st| commit_keys(st, order_key))
            .await?;
        self.change(|st| {
            let released = reservation_id.and_then(|id| st.drop_hold(id)).is_some();
            let (units, posted) = match st.commits.get_mut(order_key) {
                Some(c) if !c.restocked => {
                    c.restocked = true;
                    (c.units.clone(), c.posted)
                }
                Some(_) => return Ok(released),
                None => {
                    st.commits.insert(
                        order_key.to_string(),
                        Commit {
                            cancelled_first: true,
                            units: BTreeMap::new(),
                            restocked: true,
                            posted: false,
                        },
                    );
                    return Ok(released);
                }
            };
            for (sku, qty) in units {
                let on_hand = st.on_hand.entry(sku.clone()).or_default();
                *on_hand = on_hand.saturating_add(i64::try_from(qty).unwrap_or(i64::MAX));
                if !posted {
                    if let Some(u) = st.unposted.get_mut(&sku) {
                        *u = u.saturating_sub(qty);
                    }
                }
            }
            Ok(true)
        })
    }

    async fn mark_posted(
        &self,
        order_key: &str,
        at: DateTime<Utc>,
    ) -> Result<PostedOutcome, StoreError> {
        let _admitted = self
            .admit(WriteKind::Transaction, |st| commit_keys(st, order_key))
            .await?;
        self.change(|st| {
            let units = match st.commits.get_mut(order_key) {
                Some(c) if !c.posted && !c.restocked => {
                    c.posted = true;
                    c.units.clone()
                }
                Some(_) => return Ok(PostedOutcome::Unchanged),
                None => return Ok(PostedOutcome::NotCommitted),
            };
            for (sku, qty) in units {
                if let Some(u) = st.unposted.get_mut(&sku) {
                    *u = u.saturating_sub(qty);
                }
                st.posted_at.insert(sku, at);
            }
            Ok(PostedOutcome::Marked)
        })
    }

    async fn apply_erp_count(
        &self,
        sku: &str,
        erp_available: u32,
        read_at: DateTime<Utc>,
    ) -> Result<CountOutcome, StoreError> {
        let _admitted = self
            .admit(WriteKind::Single, |_| vec![stock_key(sku)])
            .await?;
        self.change(|st| {
            if st.posted_at.get(sku).is_some_and(|p| *p > read_at) {
                return Ok(CountOutcome::Stale);
            }
            let unposted = st.unposted.get(sku).copied().unwrap_or(0);
            let on_hand =
                (i64::from(erp_available) - i64::try_from(unposted).unwrap_or(i64::MAX)).max(0);
            let old = st.on_hand.insert(sku.to_string(), on_hand);
            Ok(CountOutcome::Applied {
                on_hand: u32::try_from(on_hand).unwrap_or(u32::MAX),
                available: u32::try_from(st.available(sku)).unwrap_or(u32::MAX),
                changed: old != Some(on_hand),
            })
        })
    }

    async fn set_on_hand(&self, sku: &str, on_hand: u32) -> Result<(), StoreError> {
        let _admitted = self
            .admit(WriteKind::Single, |_| vec![stock_key(sku)])
            .await?;
        self.change(|st| {
            st.on_hand.insert(sku.to_string(), i64::from(on_hand));
            Ok(())
        })
    }

    async fn available(&self, sku: &str, now: DateTime<Utc>) -> Result<u32, StoreError> {
        self.read().await;
        self.change(|st| {
            st.expire(now);
            Ok(u32::try_from(st.available(sku)).unwrap_or(u32::MAX))
        })
    }

    async fn held(&self, reservation_id: &str) -> Result<Option<Vec<ReservationLine>>, StoreError> {
        self.read().await;
        Ok(self
            .lock()
            .holds
            .get(reservation_id)
            .map(|h| h.lines.clone()))
    }

    async fn levels(&self, skus: &[String]) -> Result<Vec<StockLevel>, StoreError> {
        self.read().await;
        let st = self.lock();
        Ok(skus
            .iter()
            .map(|sku| {
                let Some(on_hand) = st.on_hand.get(sku).copied() else {
                    return StockLevel::default();
                };
                StockLevel {
                    on_hand,
                    available: st.signed_available(sku),
                    unposted: i64::try_from(st.unposted.get(sku).copied().unwrap_or(0))
                        .unwrap_or(i64::MAX),
                    posted_at: st.posted_at.get(sku).copied(),
                    tracked: true,
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
        let _admitted = self
            .admit(WriteKind::Single, |_| vec![stock_key(sku)])
            .await?;
        self.change(|st| {
            if only_free && delta < 0 && st.signed_available(sku) < -delta {
                return Ok(false);
            }
            let on_hand = st.on_hand.entry(sku.to_string()).or_default();
            *on_hand = on_hand.saturating_add(delta);
            Ok(true)
        })
    }

    async fn sweep_expired(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.read().await;
        self.change(|st| {
            let before = st.holds.len();
            st.expire(now);
            Ok(before - st.holds.len())
        })
    }
}

/// The items a commit's later transactions touch: its record and counters.
fn commit_keys(st: &StockState, order_key: &str) -> Vec<String> {
    let mut keys: Vec<String> = st
        .commits
        .get(order_key)
        .map(|c| c.units.keys().map(|sku| stock_key(sku)).collect())
        .unwrap_or_default();
    keys.push(format!("COMMIT#{order_key}"));
    keys
}

#[cfg(test)]
mod tests;
