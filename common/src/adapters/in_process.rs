//! In-process adapters with the same semantics as the AWS ones (conditional
//! claims, lease expiry, TTL, PutEvents partial failures), for the local app
//! and fast tests. Faults can be injected to prove the step logic copes.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::idempotency::{
    Claim, ClaimOutcome, ClaimRequest, ClaimScope, Completion, IdempotencyKey, ORPHANED_CLAIM_TTL,
};
use crate::ports::{
    check_entry_sizes, BusError, BusEvent, EventBus, FailedEntry, QuarantinedDelivery, SagaPage,
    StateStore, StoreError,
};
use crate::refund_ledger::RefundLedger;
use crate::saga::{hour_of, SagaRecord, StepRecord, StepStatus};

#[derive(Debug, Clone)]
enum Status {
    InProgress {
        token: String,
        lease_until: DateTime<Utc>,
    },
    Completed {
        result: Option<serde_json::Value>,
    },
}

#[derive(Debug, Clone)]
struct IdemRecord {
    status: Status,
    payload_hash: String,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct StoreState {
    claims: HashMap<IdempotencyKey, IdemRecord>,
    sagas: HashMap<String, SagaRecord>,
    quarantine: Vec<QuarantinedDelivery>,
    cursors: HashMap<String, String>,
    reports: HashMap<String, String>,
    fail_next: usize,
    writes: usize,
}

/// A [`StateStore`] in memory.
#[derive(Default)]
pub struct InProcessStateStore {
    state: Mutex<StoreState>,
}

impl InProcessStateStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` calls fail as if the table were unavailable.
    pub fn fail_next(&self, n: usize) {
        self.lock().fail_next = n;
    }

    pub fn quarantined(&self) -> Vec<QuarantinedDelivery> {
        self.lock().quarantine.clone()
    }

    pub fn sagas(&self) -> Vec<SagaRecord> {
        let mut v: Vec<_> = self.lock().sagas.values().cloned().collect();
        v.sort_by(|a, b| a.saga_key.cmp(&b.saga_key));
        v
    }

    /// One saga as it stands (for tests and the local app's views).
    pub fn saga_of(&self, saga_key: &str) -> Option<SagaRecord> {
        self.lock().sagas.get(saga_key).cloned()
    }

    /// A cursor's value as it stands.
    pub fn cursor(&self, name: &str) -> Option<String> {
        self.lock().cursors.get(name).cloned()
    }

    /// Write requests made so far (what DynamoDB would bill as writes).
    pub fn writes(&self) -> usize {
        self.lock().writes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreState> {
        // A panic while holding the lock would already have failed the caller;
        // the data itself stays consistent (every write is one assignment).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin_write(st: &mut StoreState) -> Result<(), StoreError> {
        if st.fail_next > 0 {
            st.fail_next -= 1;
            return Err(StoreError::Unavailable("injected fault".into()));
        }
        st.writes += 1;
        Ok(())
    }
}

/// Mirrors a claim's state into the saga view, as the DynamoDB item would show it.
fn mirror_step(st: &mut StoreState, key: &IdempotencyKey, record: Option<StepRecord>) {
    if let ClaimScope::Saga(saga_key) = &key.scope {
        let saga = st
            .sagas
            .entry(saga_key.clone())
            .or_insert_with(|| SagaRecord::empty(saga_key));
        match record {
            Some(r) => {
                saga.steps.insert(key.step.to_string(), r);
            }
            None => {
                saga.steps.remove(key.step);
            }
        }
    }
}

fn apply_completion(st: &mut StoreState, key: &IdempotencyKey, hash: &str, c: &Completion) {
    st.claims.insert(
        key.clone(),
        IdemRecord {
            status: Status::Completed {
                result: c.result.clone(),
            },
            payload_hash: hash.to_string(),
            expires_at: Some(c.expires_at),
        },
    );
    mirror_step(
        st,
        key,
        Some(StepRecord {
            status: StepStatus::Completed,
            completed_at: Some(c.now),
            result: c.result.clone(),
            lease_until: None,
        }),
    );
    if let Some(u) = &c.saga {
        st.sagas
            .entry(u.saga_key.clone())
            .or_insert_with(|| SagaRecord::empty(&u.saga_key))
            .apply(u);
        if let Some(case) = &u.case_key {
            st.sagas
                .entry(case.clone())
                .or_insert_with(|| SagaRecord::empty(case))
                .open_case(u);
        }
    }
}

#[async_trait]
impl StateStore for InProcessStateStore {
    async fn claim(&self, req: &ClaimRequest) -> Result<ClaimOutcome, StoreError> {
        let mut st = self.lock();
        Self::begin_write(&mut st)?;
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
            return Ok(ClaimOutcome::OrderCancelled);
        }
        let Some(existing) = live else {
            return Ok(take(&mut st, req));
        };
        let expired_lease = matches!(existing.status, Status::InProgress { lease_until, .. } if lease_until <= req.now);
        if expired_lease && existing.payload_hash == req.payload_hash {
            return Ok(take(&mut st, req));
        }
        if existing.payload_hash != req.payload_hash {
            let completed = matches!(existing.status, Status::Completed { .. });
            return Ok(ClaimOutcome::PayloadMismatch { completed });
        }
        Ok(match existing.status {
            Status::Completed { result } => ClaimOutcome::AlreadyCompleted { result },
            Status::InProgress { lease_until, .. } => ClaimOutcome::InProgress { lease_until },
        })
    }

    async fn complete(&self, claim: &Claim, c: &Completion) -> Result<(), StoreError> {
        let mut st = self.lock();
        Self::begin_write(&mut st)?;
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
        apply_completion(&mut st, &claim.key, &claim.payload_hash, c);
        Ok(())
    }

    async fn record_completed(
        &self,
        key: &IdempotencyKey,
        payload_hash: &str,
        c: &Completion,
    ) -> Result<(), StoreError> {
        let mut st = self.lock();
        Self::begin_write(&mut st)?;
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
        apply_completion(&mut st, key, payload_hash, c);
        Ok(())
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        let mut st = self.lock();
        Self::begin_write(&mut st)?;
        let holds = matches!(
            st.claims.get(&claim.key).map(|r| &r.status),
            Some(Status::InProgress { token, .. }) if *token == claim.token
        );
        if holds {
            st.claims.remove(&claim.key);
            mirror_step(&mut st, &claim.key, None);
        }
        Ok(())
    }

    async fn read_cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().cursors.get(name).cloned())
    }

    async fn write_cursor(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let mut st = self.lock();
        Self::begin_write(&mut st)?;
        st.cursors.insert(name.to_string(), value.to_string());
        Ok(())
    }

    async fn quarantine(&self, item: &QuarantinedDelivery) -> Result<(), StoreError> {
        let mut st = self.lock();
        Self::begin_write(&mut st)?;
        st.quarantine.push(item.clone());
        Ok(())
    }

    async fn saga(&self, saga_key: &str) -> Result<Option<SagaRecord>, StoreError> {
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
        let mut st = self.lock();
        Self::begin_write(&mut st)?;
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
        Ok(true)
    }

    async fn put_report(
        &self,
        run_id: &str,
        body: &str,
        _expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut st = self.lock();
        Self::begin_write(&mut st)?;
        st.reports.insert(run_id.to_string(), body.to_string());
        Ok(())
    }

    async fn report(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().reports.get(run_id).cloned())
    }

    async fn write_refund_ledger(
        &self,
        saga_key: &str,
        ledger: &RefundLedger,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut st = self.lock();
        Self::begin_write(&mut st)?;
        let saga = st
            .sagas
            .entry(saga_key.to_string())
            .or_insert_with(|| SagaRecord::empty(saga_key));
        if saga.refund_ledger.version + 1 != ledger.version {
            return Ok(false);
        }
        saga.refund_ledger = ledger.clone();
        saga.started_at.get_or_insert(at);
        saga.updated_at = Some(at);
        Ok(true)
    }
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

/// Faults the in-process bus can be told to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusFault {
    /// The call fails outright (network, 5xx).
    Unavailable,
    /// PutEvents answers 200 with every entry failed (FailedEntryCount > 0).
    RejectEntries,
}

#[derive(Default)]
struct BusState {
    published: Vec<BusEvent>,
    faults: Vec<BusFault>,
}

/// An [`EventBus`] that keeps what was published, in order.
#[derive(Default)]
pub struct InProcessEventBus {
    state: Mutex<BusState>,
}

impl InProcessEventBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues faults for the next calls, one per call.
    pub fn inject(&self, faults: impl IntoIterator<Item = BusFault>) {
        self.lock().faults.extend(faults);
    }

    pub fn published(&self) -> Vec<BusEvent> {
        self.lock().published.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BusState> {
        // See InProcessStateStore::lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl EventBus for InProcessEventBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError> {
        check_entry_sizes(events)?;
        let mut st = self.lock();
        let fault = if st.faults.is_empty() {
            None
        } else {
            Some(st.faults.remove(0))
        };
        match fault {
            Some(BusFault::Unavailable) => Err(BusError::Unavailable("injected fault".into())),
            Some(BusFault::RejectEntries) => Err(BusError::Rejected {
                failed: events
                    .iter()
                    .map(|e| FailedEntry {
                        event_id: e.event_id,
                        code: "InternalFailure".into(),
                        message: "injected fault".into(),
                    })
                    .collect(),
            }),
            None => {
                st.published.extend_from_slice(events);
                Ok(())
            }
        }
    }
}
