//! The places of an account's concurrency budget (see `budget`): each call
//! to a system of record takes one slot under a lease and gives it back.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::StoreError;

/// Where the slots are kept: the state table on AWS, memory in process.
#[async_trait]
pub trait BudgetSlots: Send + Sync {
    /// Takes slot `slot` of `account` for `holder` until `until` under the
    /// lease id `lease`: succeeds when the slot is free, its lease has run
    /// out by `now`, or `holder` has it already (a renewal). False when
    /// someone else holds it.
    async fn take_slot(
        &self,
        account: &str,
        slot: u32,
        holder: &str,
        lease: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Gives the slot back if it is still under `lease` (the id its take
    /// wrote): a later lease of the slot is never deleted.
    async fn give_back_slot(&self, account: &str, slot: u32, lease: &str)
        -> Result<(), StoreError>;
    /// The slots among `0..limit` held by a lease still running at `now`
    /// (a read, so a waiting container looks before it writes; it may be a
    /// moment stale, which the conditional take settles).
    async fn slots_in_use(
        &self,
        account: &str,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<u32>, StoreError>;
}
