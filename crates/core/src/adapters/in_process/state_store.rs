//! [`StateStore`] in memory: claims with their leases, completions with
//! their saga updates, quarantine, cursors, sagas, reports and refund
//! ledgers, with DynamoDB's item limit and, when asked, its contention.

use super::*;

#[async_trait]
impl StateStore for InProcessStateStore {
    async fn claim(&self, req: &ClaimRequest) -> Result<ClaimOutcome, StoreError> {
        self.modelled_write(|| req.key.describe()).await?;
        self.write(|st| Ok(standing_claim(st, req).unwrap_or_else(|| take(st, req))))
    }

    async fn record_first(
        &self,
        req: &ClaimRequest,
        c: &Completion,
    ) -> Result<RecordOutcome, StoreError> {
        self.modelled_write(|| req.key.describe()).await?;
        self.write(|st| {
            if let Some(standing) = standing_claim(st, req) {
                // As on DynamoDB, where the record and the saga updates are
                // separate writes: written again, never reverting newer facts.
                if let (ClaimOutcome::AlreadyCompleted { .. }, Some(u)) = (&standing, &c.saga) {
                    let u = SagaUpdate {
                        replace_order_facts: false,
                        ..u.clone()
                    };
                    let mut staged = Staged(Default::default());
                    staged.apply(st, &u);
                    staged.commit(st)?;
                }
                return Ok(RecordOutcome::Existing(standing));
            }
            apply_completion(st, &req.key, &req.payload_hash, c)?;
            // Injected after the write: the record lands, the work after it
            // (intake's publish) does not happen this time.
            crash_point(st)?;
            Ok(RecordOutcome::Recorded)
        })
    }

    async fn complete(&self, claim: &Claim, c: &Completion) -> Result<(), StoreError> {
        self.modelled_write(|| claim.key.describe()).await?;
        self.write(|st| {
            crash_point(st)?;
            let holds = matches!(
                st.claims.get(&claim.key).map(|r| &r.status),
                Some(Status::InProgress { token, .. }) if *token == claim.token
            );
            if !holds {
                return Err(StoreError::LeaseLost {
                    key: claim.key.describe(),
                });
            }
            if let ClaimScope::Saga(k) = &claim.key.scope {
                if st
                    .sagas
                    .get(k)
                    .is_some_and(|s| s.refund_ledger.cancelled_at.is_some())
                {
                    return Err(StoreError::OrderCancelled {
                        key: claim.key.describe(),
                    });
                }
            }
            apply_completion(st, &claim.key, &claim.payload_hash, c)?;
            Ok(())
        })
    }

    async fn record_completed(
        &self,
        key: &IdempotencyKey,
        payload_hash: &str,
        c: &Completion,
    ) -> Result<(), StoreError> {
        self.modelled_write(|| key.describe()).await?;
        self.write(|st| {
            crash_point(st)?;
            if let ClaimScope::Saga(k) = &key.scope {
                if st
                    .sagas
                    .get(k)
                    .is_some_and(|s| s.refund_ledger.cancelled_at.is_some())
                {
                    return Err(StoreError::OrderCancelled {
                        key: key.describe(),
                    });
                }
            }
            apply_completion(st, key, payload_hash, c)?;
            Ok(())
        })
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        self.modelled_write(|| claim.key.describe()).await?;
        self.write(|st| {
            let holds = matches!(
                st.claims.get(&claim.key).map(|r| &r.status),
                Some(Status::InProgress { token, .. }) if *token == claim.token
            );
            if holds {
                st.claims.remove(&claim.key);
                mirror_step(st, &claim.key, None);
            }
            Ok(())
        })
    }

    async fn read_cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.modelled_read().await;
        Ok(self.lock().cursors.get(name).cloned())
    }

    async fn write_cursor(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.modelled_write(|| format!("CURSOR#{name}")).await?;
        self.write(|st| {
            st.cursors.insert(name.to_string(), value.to_string());
            st.dirty
                .rows
                .push((format!("cursor/{name}"), Some(value.to_string())));
            Ok(())
        })
    }

    async fn quarantine(&self, item: &QuarantinedDelivery) -> Result<(), StoreError> {
        // What DynamoDB would refuse: a body that does not gzip into an item.
        let gzipped = crate::adapters::gzip(&item.body)
            .map_err(|e| StoreError::Unavailable(format!("compressing body: {e}")))?;
        if gzipped.len() > crate::ports::MAX_QUARANTINE_BODY_BYTES {
            return Err(StoreError::TooLarge(format!(
                "quarantined body is {} bytes compressed",
                gzipped.len()
            )));
        }
        self.modelled_write(|| format!("QUARANTINE#{}", item.id))
            .await?;
        self.write(|st| {
            st.quarantine.push(item.clone());
            let row =
                serde_json::to_string(item).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            // Keyed by arrival, so a restart lists them in the same order.
            let at = item
                .received_at
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            st.dirty
                .rows
                .push((format!("quarantine/{at}/{}", item.id), Some(row)));
            Ok(())
        })
    }

    async fn saga(&self, saga_key: &str) -> Result<Option<SagaRecord>, StoreError> {
        self.modelled_read().await;
        let mut st = self.lock();
        if st.fail_next > 0 {
            st.fail_next -= 1;
            return Err(StoreError::Unavailable("injected fault".into()));
        }
        Ok(st.sagas.get(saga_key).cloned())
    }

    async fn sagas_started(
        &self,
        hour: DateTime<Utc>,
        page: Option<&str>,
    ) -> Result<SagaPage, StoreError> {
        const PAGE: usize = 100;
        self.modelled_read().await;
        let mut st = self.lock();
        if st.fail_next > 0 {
            st.fail_next -= 1;
            return Err(StoreError::Unavailable("injected fault".into()));
        }
        let bucket = hour_of(hour);
        let mut keys: Vec<&String> = st
            .sagas
            .iter()
            .filter(|(_, s)| s.started_at.map(hour_of).as_deref() == Some(bucket.as_str()))
            .map(|(k, _)| k)
            .filter(|k| page.is_none_or(|after| k.as_str() > after))
            .collect();
        keys.sort();
        let more = keys.len() > PAGE;
        keys.truncate(PAGE);
        let sagas: Vec<SagaRecord> = keys
            .iter()
            .filter_map(|k| st.sagas.get(*k).cloned())
            .collect();
        let next = more
            .then(|| sagas.last().map(|s| s.saga_key.clone()))
            .flatten();
        Ok(SagaPage { sagas, next })
    }

    async fn record_redrive(
        &self,
        saga_key: &str,
        step: &str,
        limit: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.modelled_write(|| format!("SAGA#{saga_key}")).await?;
        self.write(|st| {
            // As DynamoDB's condition: a re-drive needs the saga it re-drives.
            let Some(saga) = st.sagas.get_mut(saga_key) else {
                return Ok(false);
            };
            let count = saga.redrives.entry(step.to_string()).or_insert(0);
            if *count >= limit {
                return Ok(false);
            }
            *count += 1;
            saga.updated_at = Some(at);
            st.dirty.sagas.insert(saga_key.to_string());
            Ok(true)
        })
    }

    async fn put_report(
        &self,
        run_id: &str,
        body: &str,
        _expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.modelled_write(|| format!("REPORT#{run_id}")).await?;
        self.write(|st| {
            st.reports.insert(run_id.to_string(), body.to_string());
            st.dirty
                .rows
                .push((format!("report/{run_id}"), Some(body.to_string())));
            Ok(())
        })
    }

    async fn report(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        self.modelled_read().await;
        Ok(self.lock().reports.get(run_id).cloned())
    }

    async fn write_refund_ledger(
        &self,
        saga_key: &str,
        ledger: &RefundLedger,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.modelled_write(|| format!("SAGA#{saga_key}")).await?;
        self.write(|st| {
            let current = st
                .sagas
                .get(saga_key)
                .map_or(0, |s| s.refund_ledger.version);
            if current + 1 != ledger.version {
                return Ok(false);
            }
            let saga = st
                .sagas
                .entry(saga_key.to_string())
                .or_insert_with(|| SagaRecord::empty(saga_key));
            saga.refund_ledger = ledger.clone();
            saga.started_at.get_or_insert(at);
            saga.updated_at = Some(at);
            st.dirty.sagas.insert(saga_key.to_string());
            Ok(true)
        })
    }
}

/// What stands in the way of claiming `req`, if anything: `None` when the
/// key is free, expired or its lease lapsed with the same payload.
fn standing_claim(st: &StoreState, req: &ClaimRequest) -> Option<ClaimOutcome> {
    let live = st
        .claims
        .get(&req.key)
        // Whole seconds, as DynamoDB's `expires_at < :now_s` compares.
        .filter(|r| {
            r.expires_at
                .is_none_or(|e| e.timestamp() >= req.now.timestamp())
        })
        .cloned();
    let cancelled = match &req.key.scope {
        ClaimScope::Saga(k) => st
            .sagas
            .get(k)
            .is_some_and(|s| s.refund_ledger.cancelled_at.is_some()),
        ClaimScope::Delivery(_) => false,
    };
    let done = matches!(
        live.as_ref().map(|r| &r.status),
        Some(Status::Completed { .. })
    );
    if cancelled && !done {
        return Some(ClaimOutcome::OrderCancelled);
    }
    let existing = live?;
    let expired_lease =
        matches!(existing.status, Status::InProgress { lease_until, .. } if lease_until <= req.now);
    if expired_lease && existing.payload_hash == req.payload_hash {
        return None;
    }
    if existing.payload_hash != req.payload_hash {
        let completed = matches!(existing.status, Status::Completed { .. });
        return Some(ClaimOutcome::PayloadMismatch { completed });
    }
    Some(match existing.status {
        Status::Completed { result } => ClaimOutcome::AlreadyCompleted { result },
        Status::InProgress { lease_until, .. } => ClaimOutcome::InProgress { lease_until },
    })
}

/// Takes the claim: a new in-progress record with a fresh token.
fn take(st: &mut StoreState, req: &ClaimRequest) -> ClaimOutcome {
    let token = Uuid::new_v4().to_string();
    st.claims.insert(
        req.key.clone(),
        IdemRecord {
            status: Status::InProgress {
                token: token.clone(),
                lease_until: req.lease_until,
            },
            payload_hash: req.payload_hash.clone(),
            expires_at: Some(req.lease_until + ORPHANED_CLAIM_TTL),
        },
    );
    mirror_step(
        st,
        &req.key,
        Some(StepRecord {
            status: StepStatus::InProgress,
            completed_at: None,
            result: None,
            lease_until: Some(req.lease_until),
        }),
    );
    ClaimOutcome::Claimed(Claim {
        key: req.key.clone(),
        token,
        payload_hash: req.payload_hash.clone(),
    })
}
