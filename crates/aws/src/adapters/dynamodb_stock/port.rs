//! [`StockReservations`] on the state table, through the holds, commits,
//! restocks and levels of the sibling modules.

use super::*;

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
