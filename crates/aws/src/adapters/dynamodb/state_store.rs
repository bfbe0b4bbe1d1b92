//! [`StateStore`] on the table: claims, completions with their saga updates,
//! quarantine, cursors, sagas, reports and refund ledgers.

use super::items::{existing_outcome, get_s};
use super::*;

impl DynamoDbStateStore {
    /// Writes a step completion: one UpdateItem when the saga is the same
    /// item, else one transaction with the saga item.
    async fn write_completion(
        &self,
        key: &IdempotencyKey,
        hash: &str,
        c: &Completion,
        guard: Guard<'_>,
    ) -> Result<(), NotWritten> {
        let mut expr = Expr::default();
        let same_item_saga = match (&key.scope, &c.saga) {
            (ClaimScope::Saga(k), Some(u)) if *k == u.saga_key => Some(u),
            _ => None,
        };
        let expires_at = same_item_saga.map_or(c.expires_at, |u| u.expires_at.max(c.expires_at));
        expr.complete_step(key.step, hash, c, expires_at);
        if let Some(u) = same_item_saga {
            expr.saga(u, false);
        }
        match guard {
            Guard::Claim(t) => {
                expr.value(":token", s(t));
            }
            Guard::Open => {}
            Guard::Free(now) => {
                expr.value(":in_progress", s("in_progress"))
                    .value(":now_ms", n(now.timestamp_millis()))
                    .value(":now_s", n(now.timestamp()));
            }
        }
        // A step that claims nothing must not record a result once the order
        // is cancelled (its claiming twin is refused at the claim).
        // Nothing of an order's own steps is recorded once it is cancelled:
        // the step undoes what it did instead.
        let condition = match (guard, &key.scope) {
            (Guard::Claim(_), ClaimScope::Saga(_)) => {
                Some("#token = :token AND attribute_not_exists(cancelled_at)")
            }
            (Guard::Claim(_), ClaimScope::Delivery(_)) => Some("#token = :token"),
            (Guard::Open, ClaimScope::Saga(_)) => Some("attribute_not_exists(cancelled_at)"),
            (Guard::Open, ClaimScope::Delivery(_)) => None,
            (Guard::Free(_), scope) => Some(claim_condition(scope)),
        };
        self.complete_in_place(key, hash, guard, &expr, condition)
            .await?;
        match c.saga.as_ref().filter(|_| same_item_saga.is_none()) {
            None => Ok(()),
            Some(u) => Ok(self.write_saga_updates(u, u.replace_order_facts).await?),
        }
    }

    /// The saga updates of a completion recorded on another item (intake's):
    /// the order's saga, and the return's or cancellation's it opens. Each
    /// is unconditional and idempotent (`if_not_exists`, set additions), so
    /// writing them again is harmless; `replace_facts` false keeps the
    /// order facts standing (an older edit written again never reverts a
    /// newer one).
    async fn write_saga_updates(
        &self,
        u: &SagaUpdate,
        replace_facts: bool,
    ) -> Result<(), StoreError> {
        let u = SagaUpdate {
            replace_order_facts: replace_facts,
            ..u.clone()
        };
        let mut saga_expr = Expr::default();
        saga_expr.saga(&u, true);
        self.update_unconditionally(saga_pk(&u.saga_key), &saga_expr)
            .await?;
        if let Some(case) = &u.case_key {
            let mut case_expr = Expr::default();
            case_expr.open_case(case, &u);
            self.update_unconditionally(saga_pk(case), &case_expr)
                .await?;
        }
        Ok(())
    }

    async fn update_unconditionally(&self, pk: String, expr: &Expr) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .update_expression(expr.expression())
            .set_expression_attribute_names(Some(expr.names.clone()))
            .set_expression_attribute_values(Some(expr.values.clone()))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn complete_in_place(
        &self,
        key: &IdempotencyKey,
        hash: &str,
        guard: Guard<'_>,
        expr: &Expr,
        condition: Option<&str>,
    ) -> Result<(), NotWritten> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(item_pk(&key.scope)))
            .update_expression(expr.expression())
            .set_condition_expression(condition.map(str::to_string))
            .set_expression_attribute_names(Some(expr.names.clone()))
            .set_expression_attribute_values(Some(expr.values.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let Err(e) = result else { return Ok(()) };
        match e.into_service_error() {
            UpdateItemError::ConditionalCheckFailedException(ccf) => {
                // An SDK retry of a write that already landed finds the step
                // completed with our payload: success, not a lost lease.
                let landed = ccf.item().is_some_and(|old| {
                    get_s(old, &format!("{}__status", key.step)) == Some("completed")
                        && get_s(old, &format!("{}__hash", key.step)) == Some(hash)
                });
                let cancelled = ccf
                    .item()
                    .is_some_and(|old| old.contains_key("cancelled_at"));
                // A step without a claim that ran again after the order was
                // cancelled (a redelivery re-posting to an upserting ERP) must
                // hear of it, landed before or not, to undo the re-post. A
                // first record cannot tell its own retry from an earlier
                // record: the standing item answers.
                let error = match guard {
                    Guard::Claim(_) if landed => return Ok(()),
                    Guard::Open if landed && !cancelled => return Ok(()),
                    _ if cancelled => StoreError::OrderCancelled {
                        key: key.describe(),
                    },
                    _ => StoreError::LeaseLost {
                        key: key.describe(),
                    },
                };
                Err(NotWritten {
                    error,
                    standing: ccf.item().cloned(),
                })
            }
            other => Err(StoreError::Unavailable(DisplayErrorContext(&other).to_string()).into()),
        }
    }
}

#[async_trait]
impl StateStore for DynamoDbStateStore {
    async fn claim(&self, req: &ClaimRequest) -> Result<ClaimOutcome, StoreError> {
        let token = Uuid::new_v4().to_string();
        let mut expr = Expr::default();
        expr.slot(req.key.step, &["status", "token", "lease_until", "hash"])
            .set("#status = :in_progress")
            .set("#token = :token")
            .set("#lease_until = :lease")
            .set("#hash = :hash")
            .value(":in_progress", s("in_progress"))
            .value(":token", s(&token))
            .value(":lease", n(req.lease_until.timestamp_millis()))
            .value(":hash", s(&req.payload_hash))
            .value(":now_ms", n(req.now.timestamp_millis()))
            .value(":now_s", n(req.now.timestamp()));
        if matches!(req.key.scope, ClaimScope::Delivery(_)) {
            // Orphaned delivery claims are forgotten; saga items keep their own expiry.
            expr.set("expires_at = :orphan").value(
                ":orphan",
                n((req.lease_until + ORPHANED_CLAIM_TTL).timestamp()),
            );
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(item_pk(&req.key.scope)))
            .update_expression(expr.expression())
            .condition_expression(claim_condition(&req.key.scope))
            .set_expression_attribute_names(Some(expr.names.clone()))
            .set_expression_attribute_values(Some(expr.values.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(ClaimOutcome::Claimed(Claim {
                key: req.key.clone(),
                token,
                payload_hash: req.payload_hash.clone(),
            })),
            Err(e) => match e.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(ccf) => match ccf.item() {
                    Some(old) => existing_outcome(&req.key, old, &req.payload_hash, &token),
                    None => Err(StoreError::Unavailable(format!(
                        "claim on {} failed its condition without the item",
                        req.key.describe()
                    ))),
                },
                other => Err(StoreError::Unavailable(
                    DisplayErrorContext(&other).to_string(),
                )),
            },
        }
    }

    async fn complete(&self, claim: &Claim, c: &Completion) -> Result<(), StoreError> {
        self.write_completion(
            &claim.key,
            &claim.payload_hash,
            c,
            Guard::Claim(&claim.token),
        )
        .await
        .map_err(|n| n.error)
    }

    async fn record_first(
        &self,
        req: &ClaimRequest,
        c: &Completion,
    ) -> Result<RecordOutcome, StoreError> {
        let written = self
            .write_completion(&req.key, &req.payload_hash, c, Guard::Free(req.now))
            .await;
        let standing = match written {
            Ok(()) => return Ok(RecordOutcome::Recorded),
            // The record landed, not every saga update: a retry finds the
            // record and writes them again.
            Err(NotWritten {
                error: StoreError::LeaseLost { .. } | StoreError::OrderCancelled { .. },
                standing,
            }) => standing,
            Err(n) => return Err(n.error),
        };
        // The condition failed: what stands answers, sent back with the
        // failure (a condition fails only on an existing item), as for a claim.
        match standing {
            Some(old) => {
                let existing = existing_outcome(&req.key, &old, &req.payload_hash, "")?;
                // Whoever recorded it may have stopped before its saga
                // updates: written again, never reverting newer facts.
                if let (ClaimOutcome::AlreadyCompleted { .. }, Some(u)) = (&existing, &c.saga) {
                    self.write_saga_updates(u, false).await?;
                }
                Ok(RecordOutcome::Existing(existing))
            }
            None => Err(StoreError::Unavailable(format!(
                "record of {} failed its condition without the item",
                req.key.describe()
            ))),
        }
    }

    async fn record_completed(
        &self,
        key: &IdempotencyKey,
        payload_hash: &str,
        c: &Completion,
    ) -> Result<(), StoreError> {
        self.write_completion(key, payload_hash, c, Guard::Open)
            .await
            .map_err(|n| n.error)
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        expr.slot(claim.key.step, &["status", "token", "lease_until", "hash"])
            .value(":token", s(&claim.token));
        expr.remove
            .extend(["#status", "#token", "#lease_until", "#hash"].map(String::from));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(item_pk(&claim.key.scope)))
            .update_expression(expr.expression())
            .condition_expression("#token = :token")
            .set_expression_attribute_names(Some(expr.names.clone()))
            .set_expression_attribute_values(Some(expr.values.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Not ours any more: nothing to release.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn quarantine(&self, q: &QuarantinedDelivery) -> Result<(), StoreError> {
        let body = retailflow_core::adapters::gzip(&q.body)
            .map_err(|e| StoreError::Unavailable(format!("compressing body: {e}")))?;
        if body.len() > MAX_QUARANTINE_BODY_BYTES {
            return Err(StoreError::TooLarge(format!(
                "quarantined body is {} bytes compressed",
                body.len()
            )));
        }
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("QUARANTINE#{}", q.id)))
            .item("kind", s("quarantine"))
            .item("received_at", s(q.received_at.to_rfc3339()))
            .item("source", s(&q.source))
            .item("reason", s(&q.reason))
            .item("body_gzip", AttributeValue::B(body.into()));
        for (k, v) in [
            ("topic", &q.topic),
            ("shop", &q.shop),
            ("delivery_id", &q.delivery_id),
            ("body_location", &q.body_location),
        ] {
            if let Some(v) = v {
                put = put.item(k, s(v));
            }
        }
        put.send().await.map(|_| ()).map_err(unavailable)
    }

    async fn read_cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("CURSOR#{name}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
        Ok(out
            .item()
            .and_then(|i| i.get("value"))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }

    async fn write_cursor(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("CURSOR#{name}")))
            .item("kind", s("cursor"))
            .item("value", s(value))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }

    async fn saga(&self, saga_key: &str) -> Result<Option<SagaRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(saga_pk(saga_key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item()
            .map(|item| saga_from_item(saga_key, item))
            .transpose()
    }

    async fn sagas_started(
        &self,
        hour: DateTime<Utc>,
        page: Option<&str>,
    ) -> Result<SagaPage, StoreError> {
        saga_index::sagas_started(&self.client, &self.table, hour, page).await
    }

    async fn record_redrive(
        &self,
        saga_key: &str,
        step: &str,
        limit: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        saga_index::record_redrive(&self.client, &self.table, saga_key, step, limit, at).await
    }

    async fn put_report(
        &self,
        run_id: &str,
        body: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        saga_index::put_report(&self.client, &self.table, run_id, body, expires_at).await
    }

    async fn report(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        saga_index::report(&self.client, &self.table, run_id).await
    }

    async fn write_refund_ledger(
        &self,
        saga_key: &str,
        ledger: &RefundLedger,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // Plain data: serializing cannot fail.
        let body = serde_json::to_string(ledger).unwrap_or_default();
        let before = i64::try_from(ledger.version.saturating_sub(1)).unwrap_or(i64::MAX);
        let condition = if before == 0 {
            "attribute_not_exists(refund_ledger_version)"
        } else {
            "refund_ledger_version = :before"
        };
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(saga_pk(saga_key)))
            .update_expression(
                "SET refund_ledger = :ledger, refund_ledger_version = :version, \
                 updated_at = :at, saga_key = :saga_key, \
                 started_at = if_not_exists(started_at, :at), \
                 time_bucket = if_not_exists(time_bucket, :bucket)",
            )
            .condition_expression(condition)
            .expression_attribute_values(":ledger", s(body))
            .expression_attribute_values(":version", n(before + 1))
            .expression_attribute_values(":at", s(at.to_rfc3339()))
            .expression_attribute_values(":saga_key", s(saga_key))
            .expression_attribute_values(":bucket", s(time_bucket(saga_key, at)));
        if before > 0 {
            req = req.expression_attribute_values(":before", n(before));
        }
        if let Some(c) = ledger.cancelled_at {
            req = req
                .update_expression(
                    "SET refund_ledger = :ledger, refund_ledger_version = :version, \
                     updated_at = :at, saga_key = :saga_key, \
                     started_at = if_not_exists(started_at, :at), \
                     time_bucket = if_not_exists(time_bucket, :bucket), cancelled_at = :cancelled",
                )
                .expression_attribute_values(":cancelled", s(c.to_rfc3339()));
        }
        condition_held(req.send().await)
    }
}
