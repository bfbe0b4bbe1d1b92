//! [`StockReservations`] in memory: the local app's and the tests' stock,
//! with the DynamoDB adapter's rules (all or nothing per cart, never below
//! zero by a hold, counts applied less what the ERP has not received) and,
//! when asked, DynamoDB's contention.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::adapters::contention::{Admitted, ItemContention, WriteKind};
use crate::ports::stock::{
    same_cart, units_per_sku, CommitOutcome, CountOutcome, OrderCommit, PostedOutcome, Reservation,
    ReservationLine, ReserveOutcome, StockLevel, StockReservations,
};
use crate::ports::StoreError;

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
        journal: std::sync::Arc<dyn crate::ports::journal::Journal>,
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
