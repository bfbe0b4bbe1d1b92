//! Open holds per owner: how many checkouts one customer (or one guest
//! session) may hold stock under at once (see `checkout::holds` for the
//! rule both adapters apply).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::StoreError;

/// What [`OpenHolds::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The checkout counts among the owner's open holds until its expiry
    /// (it did already, or there was room).
    Admitted,
    /// The owner holds `max` other live checkouts: nothing was written.
    Full,
}

#[async_trait]
pub trait OpenHolds: Send + Sync {
    /// Counts `checkout_id` among `owner`'s open holds until `until`,
    /// unless the owner already has `max` other checkouts whose holds run
    /// past `now`. Renewing a checkout already counted never fails and
    /// never shortens its entry.
    async fn admit(
        &self,
        owner: &str,
        checkout_id: &str,
        until: DateTime<Utc>,
        max: u32,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError>;
    /// Gives the checkout's place back (its cart was refused after it was
    /// admitted, so it holds nothing).
    async fn forget(&self, owner: &str, checkout_id: &str) -> Result<(), StoreError>;
}
