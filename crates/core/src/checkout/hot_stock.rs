//! Stock that holds up in a flash sale: thousands of checkouts in minutes,
//! most of them for the same few SKUs.
//!
//! Why: a hold is one DynamoDB transaction over the hold and each SKU's
//! counter, and DynamoDB does not queue transactions on an item, it refuses
//! the later one (`TransactionConflict`). With one counter per SKU, two
//! checkouts of the same SKU within one transaction's service time (some
//! 20 ms) cannot both land: at 80 checkouts a second, most would be refused.
//! Retrying alone only adds to the traffic on the same item.
//!
//! So a SKU marked hot ([`HotSkus`]) keeps its units in `N` counters, its
//! shards (shard 0 is the SKU's own counter, shard `k` the counter of
//! `<sku>#shard<k>`), and [`HotStock`]:
//! - reads the shards first (reads never conflict) and answers sold out
//!   without writing when they hold too few, so the shoppers after a sale
//!   sells out cost no writes and cause no conflicts;
//! - holds from one shard picked at random among those with enough units
//!   (or from several, largest first, when none has enough alone), in the
//!   same one transaction as before: the hold and its counters change
//!   together, so a crash between writes cannot leak a unit, a cart is held
//!   whole or not at all, and no shard, hence no SKU, is ever oversold;
//! - rides out contention: a refused write (conflict, throttling, a shard
//!   emptied meanwhile) is tried again, with full-jitter backoff and a fresh
//!   read, for as long as the caller's budget allows.
//!
//! The hold records its shards, so its release, expiry, order commit,
//! restock and ERP posting go to the same counters. A count (ERP or
//! operator) is spread so each shard has about the same units free; an
//! order placed without a hold takes its hot units under a hold of its own
//! first, so it never takes a unit a checkout holds.
//!
//! Any [`StockReservations`] underneath works: the DynamoDB adapter on AWS,
//! the in-process store (with its contention model for load tests) locally.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::ConfigError;
use crate::ports::stock::{
    same_cart, units_per_sku, CommitOutcome, CountOutcome, OrderCommit, PostedOutcome, Reservation,
    ReservationLine, ReserveOutcome, StockLevel, StockReservations,
};
use crate::ports::StoreError;
use crate::resilience::RetryPolicy;

/// How long a checkout's stock hold may take, retries included: a shopper
/// is waiting, and the storefront's own timeout is not much longer.
pub const CHECKOUT_BUDGET: Duration = Duration::from_millis(100);

/// How long a background step (commit, restock, count) keeps trying a
/// contended write before its message goes back to the queue.
pub const STEP_BUDGET: Duration = Duration::from_secs(2);

/// Most shards a SKU may have: each is read on every checkout of it.
pub const MAX_SHARDS: u16 = 100;

/// The SKUs a sale sends most checkouts to, with how many counters each
/// keeps its units in. `RETAILFLOW_HOT_SKUS`: `SKU=shards` pairs,
/// comma-separated (`DROP-1=10,DROP-2=10`). Sizing: `docs/flash-sale.md`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HotSkus {
    shards: BTreeMap<String, u16>,
}

impl HotSkus {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn parse(spec: &str) -> Result<Self, ConfigError> {
        let bad = ConfigError::BadSetting;
        let mut shards = BTreeMap::new();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (sku, n) = pair
                .rsplit_once('=')
                .ok_or_else(|| bad(format!("hot SKU {pair:?} is not SKU=shards")))?;
            let sku = sku.trim();
            let n: u16 = n
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=MAX_SHARDS).contains(n))
                .ok_or_else(|| {
                    bad(format!(
                        "hot SKU {sku}: shards must be a whole number from 1 to {MAX_SHARDS}"
                    ))
                })?;
            if sku.is_empty() || sku.contains("#shard") {
                return Err(bad(format!(
                    "hot SKU {pair:?}: the SKU is empty or names a shard"
                )));
            }
            shards.insert(sku.to_string(), n);
        }
        Ok(HotSkus { shards })
    }

    /// `RETAILFLOW_HOT_SKUS` as `get` reads it (none when unset).
    pub fn from_settings(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let bad = ConfigError::BadSetting;
        match get("RETAILFLOW_HOT_SKUS") {
            Some(spec) => Self::parse(&spec).map_err(|e| bad(format!("RETAILFLOW_HOT_SKUS: {e}"))),
            None => Ok(Self::none()),
        }
    }

    /// Hot SKUs, each with `shards` counters (what a benchmark sets).
    pub fn all<'a>(skus: impl IntoIterator<Item = &'a str>, shards: u16) -> Self {
        HotSkus {
            shards: skus
                .into_iter()
                .map(|s| (s.to_string(), shards.clamp(1, MAX_SHARDS)))
                .collect(),
        }
    }

    /// How many counters `sku` keeps its units in (1: not hot).
    pub fn shards(&self, sku: &str) -> u16 {
        self.shards.get(sku).copied().unwrap_or(1)
    }

    fn is_hot(&self, sku: &str) -> bool {
        self.shards(sku) > 1
    }
}

/// Counters a hot SKU needs for a sale: enough that a try of a cart meets
/// another checkout's transaction one time in ten at most (a cart of `k`
/// hot lines meets one with a chance of about `k · λ · L / N`), and no more
/// than half its units (each counter keeps two or more) or [`MAX_SHARDS`].
/// `checkouts_per_second` is the SKU's own at the sale's opening.
/// Measured against `retailflow bench-flash-sale`: `docs/flash-sale.md`.
pub fn recommended_shards(
    checkouts_per_second: f64,
    hot_lines_per_cart: u32,
    transaction_latency: Duration,
    units: u32,
) -> u16 {
    let load = checkouts_per_second.max(0.0)
        * f64::from(hot_lines_per_cart.max(1))
        * transaction_latency.as_secs_f64();
    let wanted = (10.0 * load).ceil().clamp(1.0, f64::from(MAX_SHARDS)) as u16;
    let most = u16::try_from((units / 2).max(1)).unwrap_or(MAX_SHARDS);
    wanted.min(most).min(MAX_SHARDS)
}

/// The counter of `sku`'s shard `k`.
pub fn shard_sku(sku: &str, k: u16) -> String {
    if k == 0 {
        sku.to_string()
    } else {
        format!("{sku}#shard{k}")
    }
}

/// The SKU a shard's counter counts.
pub fn base_sku(shard: &str) -> &str {
    match shard.rsplit_once("#shard") {
        Some((sku, k)) if k.parse::<u16>().is_ok() => sku,
        _ => shard,
    }
}

fn unsharded(lines: &[ReservationLine]) -> Vec<ReservationLine> {
    lines
        .iter()
        .map(|l| ReservationLine {
            sku: base_sku(&l.sku).to_string(),
            quantity: l.quantity,
        })
        .collect()
}

/// Lines summed per SKU, shards folded into their SKU.
fn folded(lines: Vec<ReservationLine>) -> Vec<ReservationLine> {
    units_per_sku(&unsharded(&lines))
        .into_iter()
        .map(|(sku, q)| ReservationLine {
            sku,
            quantity: u32::try_from(q).unwrap_or(u32::MAX),
        })
        .collect()
}

/// [`StockReservations`] with hot SKUs sharded and contention ridden out.
pub struct HotStock {
    inner: Arc<dyn StockReservations>,
    hot: HotSkus,
    retry: RetryPolicy,
    budget: Duration,
    retries: AtomicU64,
}

impl HotStock {
    /// Tries again after 1 to 2 ms, then 2 to 4 ms, within 100 ms a call:
    /// the checkout's stock budget.
    pub fn new(inner: Arc<dyn StockReservations>, hot: HotSkus) -> Self {
        HotStock {
            inner,
            hot,
            retry: RetryPolicy {
                base: Duration::from_millis(2),
                max: Duration::from_millis(4),
            },
            budget: CHECKOUT_BUDGET,
            retries: AtomicU64::new(0),
        }
    }

    /// How long one call may keep trying (the background steps can wait
    /// longer than a shopper).
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Tries taken again after contention, since the start.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Runs `attempt` until it is not refused for contention, or until the
    /// next try would end past the budget (then the contention is the answer).
    async fn retrying<T, F, Fut>(&self, attempt: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        self.retrying_within(self.budget, attempt).await.0
    }

    /// [`Self::retrying`] within `budget`, also saying how much of it is left.
    async fn retrying_within<T, F, Fut>(
        &self,
        budget: Duration,
        mut attempt: F,
    ) -> (Result<T, StoreError>, Duration)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let start = Instant::now();
        let mut tries = 0;
        loop {
            let began = Instant::now();
            match attempt().await {
                Err(StoreError::Contended(why)) => {
                    tries += 1;
                    // Half the backoff, plus up to as much again at random,
                    // so the losers of one conflict do not come back
                    // together. Short: the next try picks another shard than
                    // the busy one, it need not wait for it.
                    let cap = self.retry.delay(tries, None);
                    let half = u64::try_from(cap.as_micros() / 2).unwrap_or(u64::MAX);
                    let wait = Duration::from_micros(half + fastrand::u64(0..=half));
                    // Another try takes about as long as the last one did.
                    if start.elapsed() + wait + began.elapsed() > budget {
                        return (
                            Err(StoreError::Contended(format!(
                                "{why} (still contended after {tries} tries in {} ms)",
                                start.elapsed().as_millis()
                            ))),
                            budget.saturating_sub(start.elapsed()),
                        );
                    }
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                }
                other => return (other, budget.saturating_sub(start.elapsed())),
            }
        }
    }

    /// The last word on a cart whose tries all met contention: once the
    /// writes it met have had time to land, a read that finds a hot SKU
    /// short is a real answer (those writes took the last units: sold out).
    async fn sold_out_after(
        &self,
        r: &Reservation,
        left: Duration,
    ) -> Result<Option<ReserveOutcome>, StoreError> {
        // Half what is left for the other writes to land, the rest for the
        // read.
        tokio::time::sleep(left / 2).await;
        let wanted = units_per_sku(&r.lines);
        let hot: Vec<&String> = wanted.keys().filter(|s| self.hot.is_hot(s)).collect();
        let shard_skus: Vec<String> = hot.iter().flat_map(|s| self.shards_of(s)).collect();
        let (old, levels) = tokio::join!(self.inner.held(&r.id), self.inner.levels(&shard_skus));
        let free = free_per_shard(&shard_skus, &levels?, old?.as_deref());
        for sku in hot {
            let total = self
                .shards_of(sku)
                .iter()
                .map(|s| free.get(s.as_str()).copied().unwrap_or(0))
                .fold(0i64, i64::saturating_add);
            if total < i64::try_from(wanted[sku]).unwrap_or(i64::MAX) {
                return Ok(Some(ReserveOutcome::Short {
                    sku: sku.clone(),
                    available: u32::try_from(total.max(0)).unwrap_or(u32::MAX),
                }));
            }
        }
        Ok(None)
    }

    fn shards_of(&self, sku: &str) -> Vec<String> {
        (0..self.hot.shards(sku))
            .map(|k| shard_sku(sku, k))
            .collect()
    }

    fn has_hot(&self, lines: &[ReservationLine]) -> bool {
        lines.iter().any(|l| self.hot.is_hot(&l.sku))
    }

    /// One try at holding `r`: the shards read, the units placed, one
    /// transaction underneath. A shard emptied since the read is contention.
    async fn reserve_hot(
        &self,
        r: &Reservation,
        now: DateTime<Utc>,
        tries: &std::sync::Mutex<Tries>,
    ) -> Result<ReserveOutcome, StoreError> {
        let wanted = units_per_sku(&r.lines);
        let hot: Vec<&String> = wanted.keys().filter(|s| self.hot.is_hot(s)).collect();
        let shard_skus: Vec<String> = hot.iter().flat_map(|s| self.shards_of(s)).collect();
        // After a conflict, the last read is good for another shard: a
        // shard emptied since is refused as fast as a conflict, and a read
        // would cost a third of a try.
        let recent = tries
            .lock()
            .ok()
            .and_then(|mut t| t.read.take())
            .filter(|read| read.at.elapsed() < FRESH_READ);
        let read = match recent {
            Some(read) => read,
            None => {
                // The checkout's own hold and the shards, read side by side.
                let at = Instant::now();
                let (old, levels) =
                    tokio::join!(self.inner.held(&r.id), self.inner.levels(&shard_skus));
                LastRead {
                    at,
                    old: old?,
                    levels: levels?,
                }
            }
        };
        let (old, levels) = (read.old.clone(), read.levels.clone());
        if let Some(old) = old.as_ref().filter(|o| same_cart(&unsharded(o), &r.lines)) {
            // The same cart validated again: its hold stays where it is.
            let again = Reservation {
                lines: old.clone(),
                ..r.clone()
            };
            return self.emptied_is_contention(self.inner.reserve(&again, now).await?);
        }
        for sku in &hot {
            let shards = self.shards_of(sku);
            let of_sku: Vec<&StockLevel> = shard_skus
                .iter()
                .zip(&levels)
                .filter(|(s, _)| shards.contains(s))
                .map(|(_, l)| l)
                .collect();
            if of_sku.iter().any(|l| l.available < 0) && of_sku.iter().any(|l| l.available > 0) {
                self.pay_debts(&shards, &of_sku).await?;
                return Err(StoreError::Contended(format!(
                    "units of {sku} moved to a counter in debt: read again"
                )));
            }
        }
        // A changed cart gives its old units back in the same transaction.
        let free = free_per_shard(&shard_skus, &levels, old.as_deref());
        let mut lines: Vec<ReservationLine> = r
            .lines
            .iter()
            .filter(|l| !self.hot.is_hot(&l.sku))
            .cloned()
            .collect();
        for sku in hot {
            let qty = i64::try_from(wanted[sku]).unwrap_or(i64::MAX);
            let shards = self.shards_of(sku);
            let mut shard_free: Vec<(&str, i64)> = shards
                .iter()
                .map(|s| (s.as_str(), free.get(s.as_str()).copied().unwrap_or(0)))
                .collect();
            let total = shard_free
                .iter()
                .fold(0i64, |t, (_, f)| t.saturating_add(*f));
            if total < qty {
                // Sold out, answered from the read: nothing written.
                return Ok(ReserveOutcome::Short {
                    sku: sku.clone(),
                    available: u32::try_from(total.max(0)).unwrap_or(u32::MAX),
                });
            }
            let enough: Vec<&str> = shard_free
                .iter()
                .filter(|(_, f)| *f >= qty)
                .map(|(s, _)| *s)
                .collect();
            // Not the shard a try of this checkout just met contention on,
            // when another will do.
            let fresh: Vec<&str> = enough
                .iter()
                .copied()
                .filter(|s| !tries.lock().is_ok_and(|t| t.contended.contains(*s)))
                .collect();
            let pick_from = if fresh.is_empty() { &enough } else { &fresh };
            if let Some(pick) = pick_by_free(pick_from, &shard_free) {
                lines.push(line(pick, qty));
                continue;
            }
            shard_free.sort_by_key(|(_, f)| std::cmp::Reverse(*f));
            let mut left = qty;
            for (s, f) in shard_free {
                if left == 0 {
                    break;
                }
                let take = f.min(left);
                if take > 0 {
                    lines.push(line(s, take));
                    left -= take;
                }
            }
        }
        let sharded = Reservation { lines, ..r.clone() };
        let out = self.inner.reserve(&sharded, now).await;
        if matches!(out, Err(StoreError::Contended(_))) {
            if let Ok(mut t) = tries.lock() {
                t.contended.extend(
                    sharded
                        .lines
                        .iter()
                        .filter(|l| self.hot.is_hot(base_sku(&l.sku)))
                        .map(|l| l.sku.clone()),
                );
                t.read = Some(read);
            }
        }
        self.emptied_is_contention(out?)
    }

    /// A shard found short when the read said it had the units was emptied
    /// meanwhile: try again on a fresh read (the SKU may have units on
    /// others), never "sold out" under a shard's name.
    fn emptied_is_contention(&self, out: ReserveOutcome) -> Result<ReserveOutcome, StoreError> {
        match out {
            ReserveOutcome::Short { sku, .. } if self.hot.is_hot(base_sku(&sku)) => Err(
                StoreError::Contended(format!("{sku} was emptied by other checkouts meanwhile")),
            ),
            other => Ok(other),
        }
    }

    /// A shard below zero (an order taken from it without a hold, a count
    /// below what it held) while others have units free would let those be
    /// held twice over: free units move to it, taken only where free.
    async fn pay_debts(&self, shards: &[String], levels: &[&StockLevel]) -> Result<(), StoreError> {
        let mut donors: Vec<(usize, i64)> = levels
            .iter()
            .enumerate()
            .filter(|(_, l)| l.available > 0)
            .map(|(k, l)| (k, l.available))
            .collect();
        donors.sort_by_key(|(_, f)| std::cmp::Reverse(*f));
        for (k, l) in levels.iter().enumerate().filter(|(_, l)| l.available < 0) {
            let mut debt = l.available.saturating_neg();
            for (donor, free) in donors.iter_mut() {
                let take = debt.min(*free);
                if take <= 0 {
                    continue;
                }
                if self
                    .inner
                    .adjust_on_hand(&shards[*donor], -take, true)
                    .await?
                {
                    self.inner.adjust_on_hand(&shards[k], take, false).await?;
                    *free -= take;
                    debt -= take;
                }
            }
        }
        Ok(())
    }

    /// Commits an order no live hold holds: its units are first held under
    /// a hold of the order's own (so it takes only free units, from shards
    /// that have them), then committed from it in the same transaction as
    /// any order from its checkout's hold.
    async fn commit_without_hold(
        &self,
        c: &OrderCommit,
        now: DateTime<Utc>,
    ) -> Result<CommitOutcome, StoreError> {
        if let Some(id) = c.reservation_id.as_deref() {
            // A changed cart's hold, or an expired one: given back first.
            self.retrying(|| self.inner.release(id)).await?;
        }
        // SKUs retailflow counts no stock of stay out of the hold and the
        // commit, as they stay out of any commit.
        let cold: Vec<String> = units_per_sku(&c.lines)
            .into_keys()
            .filter(|s| !self.hot.is_hot(s))
            .collect();
        let levels = self.retrying(|| self.inner.levels(&cold)).await?;
        let untracked: Vec<String> = cold
            .iter()
            .zip(&levels)
            .filter(|(_, l)| !l.tracked)
            .map(|(s, _)| s.clone())
            .collect();
        let own = Reservation {
            id: format!("order:{}", c.order_key),
            lines: c
                .lines
                .iter()
                .filter(|l| !untracked.contains(&l.sku))
                .cloned()
                .collect(),
            expires_at: now + chrono::Duration::minutes(5),
        };
        let held = match self.reserve(&own, now).await {
            Ok(ReserveOutcome::Reserved) => self.retrying(|| self.inner.held(&own.id)).await?,
            // Sold beyond what is free, or too many SKUs for one hold: the
            // units leave stock directly, hot ones from the shards that have
            // them free, and the shortfall is reported as oversold. The
            // order's own hold ended in a commit before (a redelivery): the
            // store answers from the commit it finds.
            Ok(ReserveOutcome::Short { .. })
            | Err(StoreError::TooLarge(_))
            | Err(StoreError::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        };
        let Some(lines) = held else {
            let direct = OrderCommit {
                lines: self.spread_lines(&c.lines).await?,
                ..c.clone()
            };
            return self
                .retrying(|| self.inner.commit_order(&direct, now))
                .await;
        };
        let from_own = OrderCommit {
            order_key: c.order_key.clone(),
            reservation_id: Some(own.id.clone()),
            lines,
        };
        let out = self
            .retrying(|| self.inner.commit_order(&from_own, now))
            .await;
        if !matches!(out, Ok(CommitOutcome::FromHold)) {
            // Committed or cancelled before, or failed: the order's own
            // hold never waits for its expiry.
            self.retrying(|| self.inner.release(&own.id)).await?;
        }
        Ok(match out? {
            // The order's own hold, not a checkout's.
            CommitOutcome::FromHold => CommitOutcome::WithoutHold {
                oversold: Vec::new(),
                untracked,
            },
            other => other,
        })
    }

    /// `lines` with each hot SKU's units placed on its shards as they have
    /// them free (largest first), what none has on shard 0.
    async fn spread_lines(
        &self,
        lines: &[ReservationLine],
    ) -> Result<Vec<ReservationLine>, StoreError> {
        let mut out = Vec::new();
        for (sku, qty) in units_per_sku(lines) {
            if !self.hot.is_hot(&sku) {
                out.push(line(&sku, i64::try_from(qty).unwrap_or(i64::MAX)));
                continue;
            }
            let shards = self.shards_of(&sku);
            let levels = self.retrying(|| self.inner.levels(&shards)).await?;
            let mut free: Vec<(&str, i64)> = shards
                .iter()
                .zip(&levels)
                .map(|(s, l)| (s.as_str(), l.available.max(0)))
                .collect();
            free.sort_by_key(|(_, f)| std::cmp::Reverse(*f));
            let mut left = i64::try_from(qty).unwrap_or(i64::MAX);
            for (s, f) in free {
                let take = f.min(left);
                if take > 0 {
                    out.push(line(s, take));
                    left -= take;
                }
            }
            if left > 0 {
                out.push(line(&sku, left));
            }
        }
        Ok(out)
    }

    /// Moves `sku`'s units on hand by `delta`, spread so every shard ends
    /// with about the same units free. Units are taken only where they are
    /// free (a checkout holding one keeps it); what cannot be taken that way
    /// after a few reads leaves shard 0, whose count then goes below what
    /// is held there (no new hold fits until stock comes back).
    async fn spread(&self, sku: &str, mut delta: i64) -> Result<(), StoreError> {
        let shards = self.shards_of(sku);
        let n = i64::try_from(shards.len()).unwrap_or(1);
        for _ in 0..5 {
            let levels = self.retrying(|| self.inner.levels(&shards)).await?;
            if !levels.iter().any(|l| l.tracked) {
                // Counted for the first time, even at zero: from now on
                // retailflow keeps its count (an order of it is stock's).
                self.retrying(|| self.inner.adjust_on_hand(&shards[0], 0, false))
                    .await?;
            }
            let free: Vec<i64> = levels.iter().map(|l| l.available.max(0)).collect();
            let after = free.iter().sum::<i64>() + delta;
            let target = |k: usize| {
                let k = i64::try_from(k).unwrap_or(0);
                after.max(0) / n + i64::from(k < after.max(0) % n)
            };
            let mut taken = 0;
            for (k, f) in free.iter().enumerate() {
                let over = f - target(k);
                if over > 0
                    && self
                        .retrying(|| self.inner.adjust_on_hand(&shards[k], -over, true))
                        .await?
                {
                    taken += over;
                }
            }
            let mut give = taken + delta;
            for (k, f) in free.iter().enumerate() {
                let under = (target(k) - f).min(give);
                if under > 0 {
                    self.retrying(|| self.inner.adjust_on_hand(&shards[k], under, false))
                        .await?;
                    give -= under;
                }
            }
            if give >= 0 {
                if give > 0 {
                    self.retrying(|| self.inner.adjust_on_hand(&shards[0], give, false))
                        .await?;
                }
                return Ok(());
            }
            // Holds took units meanwhile: read again for the rest.
            delta = give;
        }
        self.retrying(|| self.inner.adjust_on_hand(&shards[0], delta, false))
            .await?;
        Ok(())
    }

    async fn shard_levels(&self, sku: &str) -> Result<Vec<StockLevel>, StoreError> {
        let shards = self.shards_of(sku);
        self.retrying(|| self.inner.levels(&shards)).await
    }
}

/// One of `candidates` at random, each as likely as the units it has free:
/// the shards drain together, so the last units are spread over many
/// counters rather than left on a few that every checkout then contends on.
fn pick_by_free<'a>(candidates: &[&'a str], free: &[(&str, i64)]) -> Option<&'a str> {
    let weight = |c: &str| {
        free.iter()
            .find(|(s, _)| *s == c)
            .map_or(0, |(_, f)| u64::try_from(*f).unwrap_or(0))
    };
    let total: u64 = candidates.iter().map(|c| weight(c)).sum();
    if total == 0 {
        return None;
    }
    let mut at = fastrand::u64(0..total);
    for c in candidates {
        let w = weight(c);
        if at < w {
            return Some(c);
        }
        at -= w;
    }
    None
}

/// What each shard could give this checkout: its free units (signed: a
/// counter in debt counts against the SKU's free units) plus what the
/// checkout's own hold has there, which a changed cart gives back in the
/// same transaction.
fn free_per_shard<'a>(
    shards: &'a [String],
    levels: &[StockLevel],
    own_hold: Option<&[ReservationLine]>,
) -> BTreeMap<&'a str, i64> {
    let mine = own_hold.map(units_per_sku).unwrap_or_default();
    shards
        .iter()
        .zip(levels)
        .map(|(s, l)| {
            let mine = i64::try_from(mine.get(s).copied().unwrap_or(0)).unwrap_or(i64::MAX);
            (s.as_str(), l.available.saturating_add(mine))
        })
        .collect()
}

/// How long a read of the shards serves the next try after a conflict.
const FRESH_READ: Duration = Duration::from_millis(25);

/// What one checkout's tries learnt.
#[derive(Default)]
struct Tries {
    /// The shards it met contention on, avoided on later tries.
    contended: BTreeSet<String>,
    /// The last read, when a conflict ended the try that made it.
    read: Option<LastRead>,
}

struct LastRead {
    at: Instant,
    old: Option<Vec<ReservationLine>>,
    levels: Vec<StockLevel>,
}

fn line(sku: &str, qty: i64) -> ReservationLine {
    ReservationLine {
        sku: sku.to_string(),
        quantity: u32::try_from(qty).unwrap_or(u32::MAX),
    }
}

mod port;
#[cfg(test)]
mod tests;
