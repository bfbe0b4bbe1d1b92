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

mod budget_slots;
mod catalog;
mod event_bus;
mod holds;
mod journal;
mod operator_actions;
mod state_store;
mod stock;

use crate::ports::journal::{Journal, JournalError, JournalRow};
pub use catalog::{CatalogSeed, CatalogSeedError, InProcessCatalog, SeedItem};
pub use event_bus::{BusFault, InProcessEventBus};
pub use holds::InProcessOpenHolds;
pub use journal::JournaledState;
pub use stock::InProcessStock;

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
    actions: Vec<crate::ports::operator_actions::OperatorAction>,
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
    ) -> Result<Self, JournalError> {
        let mut st = StoreState::default();
        for (key, value) in restore {
            restore_row(&mut st, &key, &value)?;
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

    /// Takes quarantined delivery `id` off for good (an operator resolved
    /// or dismissed it); `None` when it is not there.
    pub fn discard_quarantined(
        &self,
        id: uuid::Uuid,
    ) -> Result<Option<QuarantinedDelivery>, crate::ports::StoreError> {
        self.write(|st| {
            let Some(at) = st.quarantine.iter().position(|q| q.id == id) else {
                return Ok(None);
            };
            let item = st.quarantine.remove(at);
            let when = item
                .received_at
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            st.dirty
                .rows
                .push((format!("quarantine/{when}/{}", item.id), None));
            Ok(Some(item))
        })
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

    /// Every reconciliation report kept, as stored (JSON), by run id.
    pub fn reports(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .lock()
            .reports
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
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
fn restore_row(st: &mut StoreState, key: &str, value: &str) -> Result<(), JournalError> {
    let (kind, rest) = key
        .split_once('/')
        .ok_or_else(|| JournalError::unreadable(key, "no kind"))?;
    let e = |e: serde_json::Error| JournalError::unreadable(key, e);
    match kind {
        "saga" => {
            st.sagas
                .insert(rest.to_string(), serde_json::from_str(value).map_err(e)?);
        }
        "claim" => {
            let mut parts = rest.splitn(3, '/');
            let (scope, step, id) = match (parts.next(), parts.next(), parts.next()) {
                (Some(s), Some(t), Some(i)) => (s, t, i.to_string()),
                _ => {
                    return Err(JournalError::unreadable(
                        key,
                        "claim key is not scope/step/key",
                    ))
                }
            };
            let scope = match scope {
                "delivery" => ClaimScope::Delivery(id),
                "saga" => ClaimScope::Saga(id),
                other => {
                    return Err(JournalError::unreadable(
                        key,
                        format!("no claim scope {other}"),
                    ))
                }
            };
            let key = IdempotencyKey {
                scope,
                step: step_name(step),
            };
            st.claims
                .insert(key, serde_json::from_str(value).map_err(e)?);
        }
        "quarantine" => st.quarantine.push(serde_json::from_str(value).map_err(e)?),
        "action" => st.actions.push(serde_json::from_str(value).map_err(e)?),
        "cursor" => {
            st.cursors.insert(rest.to_string(), value.to_string());
        }
        "report" => {
            st.reports.insert(rest.to_string(), value.to_string());
        }
        other => {
            return Err(JournalError::unreadable(
                key,
                format!("not a state store row ({other})"),
            ))
        }
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
