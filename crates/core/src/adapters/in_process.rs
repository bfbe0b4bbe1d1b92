//! In-process adapters with the same semantics as the AWS ones (conditional
//! claims, lease expiry, TTL, PutEvents partial failures), for the local app
//! and fast tests. Faults can be injected to prove the step logic copes.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::idempotency::{
    Claim, ClaimOutcome, ClaimRequest, ClaimScope, Completion, IdempotencyKey, RecordOutcome,
    ORPHANED_CLAIM_TTL,
};
use crate::ports::{
    check_entry_sizes, BusError, BusEvent, EventBus, FailedEntry, QuarantinedDelivery, SagaPage,
    StateStore, StoreError, MAX_ITEM_BYTES,
};
use crate::refund_ledger::RefundLedger;
use crate::saga::{hour_of, SagaRecord, SagaUpdate, StepRecord, StepStatus};

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Status {
    InProgress {
        token: String,
        lease_until: DateTime<Utc>,
    },
    Completed {
        result: Option<serde_json::Value>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Every n-th completion is lost, as if the process died first.
    crash_every: usize,
    completions: usize,
    crashed: usize,
    writes: usize,
    /// What changed since the journal last wrote.
    dirty: Dirty,
}

#[derive(Default)]
struct Dirty {
    sagas: std::collections::BTreeSet<String>,
    claims: Vec<IdempotencyKey>,
    rows: Vec<JournalRow>,
}

/// One row of a [`Journal`]: a key and its new value, `None` to delete it.
pub type JournalRow = (String, Option<String>);

/// Where the local app's in-process adapters write what they change, so a
/// restarted app finds its state again (an embedded database file). A write
/// is one durable transaction: all of its rows, or none.
pub trait Journal: Send + Sync {
    fn write(&self, rows: &[JournalRow]) -> Result<(), String>;
}

/// One value in memory behind a lock, written whole to one [`Journal`]
/// row on every change when given a journal (stock, catalog): the change
/// and its write happen under the lock, so writes land in order, and a
/// failed write fails the call.
pub struct JournaledState<T> {
    state: Mutex<T>,
    journal: Option<(std::sync::Arc<dyn Journal>, &'static str)>,
}

impl<T: Default> Default for JournaledState<T> {
    fn default() -> Self {
        JournaledState {
            state: Mutex::new(T::default()),
            journal: None,
        }
    }
}

impl<T: Serialize + serde::de::DeserializeOwned> JournaledState<T> {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        // Plain data, changed by whole assignments: a poisoned lock still
        // holds a consistent value.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on written to `row` of `journal`, starting from what that
    /// row held (`saved`), if anything.
    pub fn write_to(
        &mut self,
        journal: std::sync::Arc<dyn Journal>,
        row: &'static str,
        saved: Option<&str>,
    ) -> Result<(), serde_json::Error> {
        if let Some(saved) = saved {
            *self.lock() = serde_json::from_str(saved)?;
        }
        self.journal = Some((journal, row));
        Ok(())
    }

    /// One change, written before the lock is let go.
    pub fn change<R>(
        &self,
        f: impl FnOnce(&mut T) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut st = self.lock();
        let out = f(&mut st)?;
        if let Some((journal, row)) = &self.journal {
            let value =
                serde_json::to_string(&*st).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            journal
                .write(&[(row.to_string(), Some(value))])
                .map_err(|e| StoreError::Unavailable(format!("local state file: {e}")))?;
        }
        Ok(out)
    }
}

/// A [`StateStore`] in memory, written through to a [`Journal`] when given one.
#[derive(Default)]
pub struct InProcessStateStore {
    state: Mutex<StoreState>,
    journal: Option<std::sync::Arc<dyn Journal>>,
    /// Concurrency budget slots: (account, slot) → (holder, lease end).
    /// Not journaled: a lease outlives no process.
    budget_slots: Mutex<HashMap<(String, u32), SlotLease>>,
    /// DynamoDB's contention rules for load tests: every write here is a
    /// single-item write on the table (none is a transaction), so it takes
    /// its time and its item's write units, and is never refused as a
    /// conflict by another write of this store.
    contention: Option<std::sync::Arc<super::contention::ItemContention>>,
}

/// A budget slot's holder, its lease's id and when the lease ends.
type SlotLease = (String, String, DateTime<Utc>);

impl InProcessStateStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call meets `contention`'s rules from now on (shared with the
    /// other stores of the same table).
    pub fn with_contention(
        mut self,
        contention: std::sync::Arc<super::contention::ItemContention>,
    ) -> Self {
        self.contention = Some(contention);
        self
    }

    /// A single-item write to `key` under the model, if there is one.
    async fn modelled_write(&self, key: impl FnOnce() -> String) -> Result<(), StoreError> {
        super::contention::modelled_write(self.contention.as_deref(), || vec![key()]).await
    }

    async fn modelled_read(&self) {
        super::contention::modelled_read(self.contention.as_deref()).await;
    }

    /// A store whose every write is also written to `journal` before the
    /// call returns, starting from the rows `restore` gives (what the
    /// journal held). A row this store did not write is an error.
    pub fn durable(
        journal: std::sync::Arc<dyn Journal>,
        restore: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, String> {
        let mut st = StoreState::default();
        for (key, value) in restore {
            restore_row(&mut st, &key, &value).map_err(|e| format!("{key}: {e}"))?;
        }
        Ok(InProcessStateStore {
            state: Mutex::new(st),
            journal: Some(journal),
            budget_slots: Mutex::default(),
            contention: None,
        })
    }

    /// Every `n`-th completion write (0: none) never happens, as if the
    /// process died between its external call and the write: the claim
    /// stays in progress until its lease runs out (chaos runs). For a
    /// first record (intake) the process dies just after the write, before
    /// the publish that follows it.
    pub fn crash_before_completion_every(&self, n: usize) {
        self.lock().crash_every = n;
    }

    /// Completion writes lost to [`Self::crash_before_completion_every`].
    pub fn crashes(&self) -> usize {
        self.lock().crashed
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

    /// One write: the change under the lock, then the journal written
    /// before the lock is let go, so the journal sees writes in order.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut StoreState) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut st = self.lock();
        Self::begin_write(&mut st)?;
        let out = f(&mut st);
        self.flush(&mut st)?;
        out
    }

    /// Writes the changed rows to the journal. A failed write keeps them
    /// for the next one and fails the call, so the caller retries.
    fn flush(&self, st: &mut StoreState) -> Result<(), StoreError> {
        let Some(journal) = &self.journal else {
            st.dirty = Dirty::default();
            return Ok(());
        };
        let d = &st.dirty;
        let mut rows: Vec<JournalRow> = Vec::new();
        for k in &d.sagas {
            let value = st.sagas.get(k).map(serde_json::to_string).transpose();
            rows.push((
                format!("saga/{k}"),
                value.map_err(|e| StoreError::Unavailable(e.to_string()))?,
            ));
        }
        for k in &d.claims {
            let value = st.claims.get(k).map(serde_json::to_string).transpose();
            rows.push((
                claim_row(k),
                value.map_err(|e| StoreError::Unavailable(e.to_string()))?,
            ));
        }
        rows.extend(d.rows.iter().cloned());
        if rows.is_empty() {
            return Ok(());
        }
        journal
            .write(&rows)
            .map_err(|e| StoreError::Unavailable(format!("local state file: {e}")))?;
        st.dirty = Dirty::default();
        Ok(())
    }
}

/// Where a completion write may be lost to an injected crash.
fn crash_point(st: &mut StoreState) -> Result<(), StoreError> {
    st.completions += 1;
    if st.crash_every > 0 && st.completions.is_multiple_of(st.crash_every) {
        st.crashed += 1;
        return Err(StoreError::Unavailable(
            "injected crash at the completion write".into(),
        ));
    }
    Ok(())
}

/// A claim's row key: its scope's kind, its step, then its scope's key
/// (last, as it may hold any character).
fn claim_row(k: &IdempotencyKey) -> String {
    match &k.scope {
        ClaimScope::Delivery(d) => format!("claim/delivery/{}/{d}", k.step),
        ClaimScope::Saga(s) => format!("claim/saga/{}/{s}", k.step),
    }
}

/// A journal row back into the store.
fn restore_row(st: &mut StoreState, key: &str, value: &str) -> Result<(), String> {
    let (kind, rest) = key.split_once('/').ok_or("no kind")?;
    let e = |e: serde_json::Error| e.to_string();
    match kind {
        "saga" => {
            st.sagas
                .insert(rest.to_string(), serde_json::from_str(value).map_err(e)?);
        }
        "claim" => {
            let mut parts = rest.splitn(3, '/');
            let (scope, step, id) = match (parts.next(), parts.next(), parts.next()) {
                (Some(s), Some(t), Some(i)) => (s, t, i.to_string()),
                _ => return Err("claim key is not scope/step/key".into()),
            };
            let scope = match scope {
                "delivery" => ClaimScope::Delivery(id),
                "saga" => ClaimScope::Saga(id),
                other => return Err(format!("no claim scope {other}")),
            };
            let key = IdempotencyKey {
                scope,
                step: step_name(step),
            };
            st.claims
                .insert(key, serde_json::from_str(value).map_err(e)?);
        }
        "quarantine" => st.quarantine.push(serde_json::from_str(value).map_err(e)?),
        "cursor" => {
            st.cursors.insert(rest.to_string(), value.to_string());
        }
        "report" => {
            st.reports.insert(rest.to_string(), value.to_string());
        }
        other => return Err(format!("not a state store row ({other})")),
    }
    Ok(())
}

/// A step's name as the `&'static str` keys hold: each distinct name is
/// allocated once for the life of the process (there are a handful).
fn step_name(name: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let n: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(n);
    n
}

/// Mirrors a claim's state into the saga view, as the DynamoDB item would show it.
fn mirror_step(st: &mut StoreState, key: &IdempotencyKey, record: Option<StepRecord>) {
    st.dirty.claims.push(key.clone());
    if let ClaimScope::Saga(saga_key) = &key.scope {
        st.dirty.sagas.insert(saga_key.clone());
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

/// Saga items as a write leaves them, checked against DynamoDB's item limit
/// before any of them replaces what stands: a refused write changes nothing.
struct Staged(std::collections::BTreeMap<String, SagaRecord>);

impl Staged {
    fn saga<'a>(&'a mut self, st: &StoreState, key: &str) -> &'a mut SagaRecord {
        self.0.entry(key.to_string()).or_insert_with(|| {
            st.sagas
                .get(key)
                .cloned()
                .unwrap_or_else(|| SagaRecord::empty(key))
        })
    }

    /// A saga update and the case saga it opens, as the DynamoDB adapter's
    /// writes do.
    fn apply(&mut self, st: &StoreState, u: &SagaUpdate) {
        self.saga(st, &u.saga_key).apply(u);
        if let Some(case) = &u.case_key {
            self.saga(st, case).open_case(u);
        }
    }

    fn commit(self, st: &mut StoreState) -> Result<(), StoreError> {
        for (k, saga) in &self.0 {
            let bytes = saga_item_bytes(saga);
            if bytes > MAX_ITEM_BYTES {
                return Err(StoreError::TooLarge(format!(
                    "saga {k} would be {bytes} bytes, over DynamoDB's 400 KB item limit"
                )));
            }
        }
        for (k, saga) in self.0 {
            st.dirty.sagas.insert(k.clone());
            st.sagas.insert(k, saga);
        }
        Ok(())
    }
}

/// A saga's size as an item: its JSON, a little more than DynamoDB counts
/// (names and values), so what passes here passes there.
pub fn saga_item_bytes(saga: &SagaRecord) -> usize {
    serde_json::to_vec(saga).map_or(usize::MAX, |v| v.len())
}

fn apply_completion(
    st: &mut StoreState,
    key: &IdempotencyKey,
    hash: &str,
    c: &Completion,
) -> Result<(), StoreError> {
    let mut staged = Staged(Default::default());
    if let ClaimScope::Saga(saga_key) = &key.scope {
        staged.saga(st, saga_key).steps.insert(
            key.step.to_string(),
            StepRecord {
                status: StepStatus::Completed,
                completed_at: Some(c.now),
                result: c.result.clone(),
                lease_until: None,
            },
        );
    }
    if let Some(u) = &c.saga {
        staged.apply(st, u);
    }
    staged.commit(st)?;
    st.dirty.claims.push(key.clone());
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
    Ok(())
}

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
        let gzipped = super::gzip(&item.body)
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

    /// A bus that has already published `events` (restored from a journal).
    pub fn holding(events: Vec<BusEvent>) -> Self {
        InProcessEventBus {
            state: Mutex::new(BusState {
                published: events,
                faults: Vec::new(),
            }),
        }
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

#[async_trait]
impl crate::budget::BudgetSlots for InProcessStateStore {
    async fn take_slot(
        &self,
        account: &str,
        slot: u32,
        holder: &str,
        lease: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut slots = self.budget_slots.lock().unwrap_or_else(|p| p.into_inner());
        let key = (account.to_string(), slot);
        let free = slots
            .get(&key)
            .is_none_or(|(h, _, lease_end)| *lease_end < now || h == holder);
        if free {
            slots.insert(key, (holder.to_string(), lease.to_string(), until));
        }
        Ok(free)
    }

    async fn slots_in_use(
        &self,
        account: &str,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<u32>, StoreError> {
        let slots = self.budget_slots.lock().unwrap_or_else(|p| p.into_inner());
        Ok((0..limit)
            .filter(|n| {
                slots
                    .get(&(account.to_string(), *n))
                    .is_some_and(|(_, _, lease_end)| *lease_end >= now)
            })
            .collect())
    }

    async fn give_back_slot(
        &self,
        account: &str,
        slot: u32,
        lease: &str,
    ) -> Result<(), StoreError> {
        let mut slots = self.budget_slots.lock().unwrap_or_else(|p| p.into_inner());
        let key = (account.to_string(), slot);
        if slots.get(&key).is_some_and(|(_, l, _)| l == lease) {
            slots.remove(&key);
        }
        Ok(())
    }
}
