//! Holds: a cart's reservation taken in one transaction, swapped for a
//! changed cart, ended (released or committed) and swept once expired.

use super::*;

impl DynamoDbStock {
    pub(super) async fn hold(&self, id: &str) -> Result<Option<Hold>, StoreError> {
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
    pub(super) async fn end_hold(
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

    pub(super) async fn reserve_once(
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
    pub(super) async fn swap_hold(
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
    pub(super) async fn existing_hold(
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
