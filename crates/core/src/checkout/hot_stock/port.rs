//! [`StockReservations`] through the hot SKUs' counters: a cart on hot
//! SKUs is held across shards, everything else passes to the store as is.

use super::*;

#[async_trait]
impl StockReservations for HotStock {
    async fn reserve(
        &self,
        r: &Reservation,
        now: DateTime<Utc>,
    ) -> Result<ReserveOutcome, StoreError> {
        if !self.has_hot(&r.lines) {
            return self.retrying(|| self.inner.reserve(r, now)).await;
        }
        let tries = std::sync::Mutex::new(Tries::default());
        // Room kept for the last word.
        let verdict = self.budget / 10;
        match self
            .retrying_within(self.budget - verdict, || self.reserve_hot(r, now, &tries))
            .await
        {
            (Err(StoreError::Contended(why)), left) => {
                match self.sold_out_after(r, left + verdict).await? {
                    Some(short) => Ok(short),
                    None => Err(StoreError::Contended(why)),
                }
            }
            (other, _) => other,
        }
    }

    async fn release(&self, reservation_id: &str) -> Result<(), StoreError> {
        self.retrying(|| self.inner.release(reservation_id)).await
    }

    async fn commit_order(
        &self,
        c: &OrderCommit,
        now: DateTime<Utc>,
    ) -> Result<CommitOutcome, StoreError> {
        if !self.has_hot(&c.lines) {
            return self.retrying(|| self.inner.commit_order(c, now)).await;
        }
        let held = match c.reservation_id.as_deref() {
            Some(id) => self.retrying(|| self.inner.held(id)).await?,
            None => None,
        };
        let out = match held.filter(|h| same_cart(&unsharded(h), &c.lines)) {
            // The checkout's hold, with its shards, becomes the order's.
            Some(h) => {
                let from_hold = OrderCommit {
                    lines: h,
                    ..c.clone()
                };
                self.retrying(|| self.inner.commit_order(&from_hold, now))
                    .await?
            }
            None => self.commit_without_hold(c, now).await?,
        };
        Ok(match out {
            CommitOutcome::WithoutHold {
                oversold,
                untracked,
            } => CommitOutcome::WithoutHold {
                oversold: folded(oversold),
                untracked: untracked
                    .iter()
                    .map(|s| base_sku(s).to_string())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            },
            other => other,
        })
    }

    async fn restock_order(
        &self,
        order_key: &str,
        reservation_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.retrying(|| self.inner.restock_order(order_key, reservation_id))
            .await
    }

    async fn mark_posted(
        &self,
        order_key: &str,
        at: DateTime<Utc>,
    ) -> Result<PostedOutcome, StoreError> {
        self.retrying(|| self.inner.mark_posted(order_key, at))
            .await
    }

    async fn apply_erp_count(
        &self,
        sku: &str,
        erp_available: u32,
        read_at: DateTime<Utc>,
    ) -> Result<CountOutcome, StoreError> {
        if !self.hot.is_hot(sku) {
            return self
                .retrying(|| self.inner.apply_erp_count(sku, erp_available, read_at))
                .await;
        }
        let levels = self.shard_levels(sku).await?;
        if levels
            .iter()
            .any(|l| l.posted_at.is_some_and(|p| p > read_at))
        {
            return Ok(CountOutcome::Stale);
        }
        let unposted: i64 = levels.iter().map(|l| l.unposted).sum();
        let on_hand = (i64::from(erp_available) - unposted).max(0);
        // A count's change, not its figure, is applied: a commit landing
        // between the read and the writes moves both sides alike.
        let delta = on_hand - levels.iter().map(|l| l.on_hand).sum::<i64>();
        if delta != 0 {
            self.spread(sku, delta).await?;
        }
        let after = self.shard_levels(sku).await?;
        Ok(CountOutcome::Applied {
            on_hand: u32::try_from(on_hand).unwrap_or(u32::MAX),
            available: u32::try_from(after.iter().map(|l| l.available).sum::<i64>().max(0))
                .unwrap_or(u32::MAX),
            changed: delta != 0,
        })
    }

    async fn set_on_hand(&self, sku: &str, on_hand: u32) -> Result<(), StoreError> {
        if !self.hot.is_hot(sku) {
            return self.retrying(|| self.inner.set_on_hand(sku, on_hand)).await;
        }
        let levels = self.shard_levels(sku).await?;
        let delta = i64::from(on_hand) - levels.iter().map(|l| l.on_hand).sum::<i64>();
        // Spread even when the total stays: a SKU just marked hot has all
        // its units on shard 0.
        self.spread(sku, delta).await
    }

    async fn available(&self, sku: &str, now: DateTime<Utc>) -> Result<u32, StoreError> {
        if !self.hot.is_hot(sku) {
            return self.retrying(|| self.inner.available(sku, now)).await;
        }
        let levels = self.shard_levels(sku).await?;
        Ok(
            u32::try_from(levels.iter().map(|l| l.available).sum::<i64>().max(0))
                .unwrap_or(u32::MAX),
        )
    }

    async fn held(&self, reservation_id: &str) -> Result<Option<Vec<ReservationLine>>, StoreError> {
        Ok(self
            .retrying(|| self.inner.held(reservation_id))
            .await?
            .map(folded))
    }

    async fn levels(&self, skus: &[String]) -> Result<Vec<StockLevel>, StoreError> {
        self.retrying(|| self.inner.levels(skus)).await
    }

    async fn adjust_on_hand(
        &self,
        sku: &str,
        delta: i64,
        only_free: bool,
    ) -> Result<bool, StoreError> {
        self.retrying(|| self.inner.adjust_on_hand(sku, delta, only_free))
            .await
    }

    async fn sweep_expired(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.retrying(|| self.inner.sweep_expired(now)).await
    }
}
