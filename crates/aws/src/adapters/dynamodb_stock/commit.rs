//! Commits: an order's lines taken out of stock once, in parts of at most
//! [`PART_SKUS`] distinct SKUs, and marked posted once the ERP has them.

use super::*;

impl DynamoDbStock {
    /// One transaction: the order's `COMMIT#` item (only if none exists),
    /// the hold it consumes (only if still held) and each SKU's counts. From
    /// a hold only `on_hand` goes down (its units were already out of
    /// `available`); without one both do, and `available` may go below zero:
    /// the shop sold units retailflow did not have free.
    pub(super) async fn commit_tx(
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
    pub(super) async fn existing_commit(
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
    pub(super) async fn commit_later_parts(
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

    /// One commit part's units out of `unposted`, once: the ERP has them.
    pub(super) async fn mark_part_posted(
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
}
