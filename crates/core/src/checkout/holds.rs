//! Open holds per owner: how many checkouts one customer (or one guest
//! session) may hold stock under at once, so made-up checkout ids cannot
//! hold a flash sale's stock.
//!
//! An owner is whoever authentication vouched for
//! ([`crate::checkout::auth::Caller::hold_owner`]): a Shopify customer, a
//! Shopify guest session, a storefront's customer. Each of its checkouts
//! counts until its hold would expire; validating the same checkout again
//! renews its entry and takes no new place. A checkout whose cart was then
//! refused gives its place back. A hold that ends sooner (its order placed,
//! or released) keeps its place until its expiry: the cap errs on the side
//! of holding less, by at most one hold's lifetime.
//!
//! [`InProcessOpenHolds`] is the local app's and the tests' twin;
//! `adapters::dynamodb_open_holds` keeps one small item per owner
//! (`OPENHOLDS#<owner>`), replaced with a condition on its version.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::adapters::contention::{modelled_write, ItemContention};
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

/// The live entries of an owner after `now`, and whether `checkout_id` is
/// among them: the one rule both adapters apply.
pub fn decide(
    entries: &mut BTreeMap<String, DateTime<Utc>>,
    checkout_id: &str,
    until: DateTime<Utc>,
    max: u32,
    now: DateTime<Utc>,
) -> Admission {
    entries.retain(|_, expiry| *expiry > now);
    if let Some(expiry) = entries.get_mut(checkout_id) {
        *expiry = (*expiry).max(until);
        return Admission::Admitted;
    }
    if entries.len() >= max as usize {
        return Admission::Full;
    }
    entries.insert(checkout_id.to_string(), until);
    Admission::Admitted
}

/// [`OpenHolds`] in memory: per process, so on AWS each container would
/// count alone; the Lambda wires the DynamoDB adapter.
#[derive(Default)]
pub struct InProcessOpenHolds {
    owners: Mutex<HashMap<String, BTreeMap<String, DateTime<Utc>>>>,
    contention: Option<std::sync::Arc<ItemContention>>,
}

impl InProcessOpenHolds {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call meets `contention`'s rules, on the owner's item as the
    /// DynamoDB adapter writes it (load tests).
    pub fn with_contention(mut self, contention: std::sync::Arc<ItemContention>) -> Self {
        self.contention = Some(contention);
        self
    }
}

/// Above this many owners, owners with nothing live are dropped.
const PRUNE_ABOVE: usize = 10_000;

#[async_trait]
impl OpenHolds for InProcessOpenHolds {
    async fn admit(
        &self,
        owner: &str,
        checkout_id: &str,
        until: DateTime<Utc>,
        max: u32,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError> {
        modelled_write(self.contention.as_deref(), || {
            vec![format!("OPENHOLDS#{owner}")]
        })
        .await?;
        // Plain data behind the lock: a poisoned lock still holds it.
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        if owners.len() > PRUNE_ABOVE {
            owners.retain(|_, entries| entries.values().any(|e| *e > now));
        }
        let entries = owners.entry(owner.to_string()).or_default();
        Ok(decide(entries, checkout_id, until, max, now))
    }

    async fn forget(&self, owner: &str, checkout_id: &str) -> Result<(), StoreError> {
        modelled_write(self.contention.as_deref(), || {
            vec![format!("OPENHOLDS#{owner}")]
        })
        .await?;
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entries) = owners.get_mut(owner) {
            entries.remove(checkout_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[tokio::test]
    async fn an_owner_holds_at_most_max_checkouts_until_one_expires() {
        let h = InProcessOpenHolds::new();
        let now = Utc::now();
        let ttl = Duration::minutes(15);
        for c in ["a", "b", "c"] {
            assert_eq!(
                h.admit("o", c, now + ttl, 3, now).await.unwrap(),
                Admission::Admitted
            );
        }
        assert_eq!(
            h.admit("o", "d", now + ttl, 3, now).await.unwrap(),
            Admission::Full
        );
        // The same checkout again takes no new place.
        assert_eq!(
            h.admit("o", "b", now + ttl * 2, 3, now).await.unwrap(),
            Admission::Admitted
        );
        // Another owner is counted on its own.
        assert_eq!(
            h.admit("p", "d", now + ttl, 3, now).await.unwrap(),
            Admission::Admitted
        );
        // A refused cart gives its place back.
        h.forget("o", "c").await.unwrap();
        assert_eq!(
            h.admit("o", "d", now + ttl, 3, now).await.unwrap(),
            Admission::Admitted
        );
        // After the first holds expire (b was renewed), there is room.
        let later = now + ttl + Duration::seconds(1);
        assert_eq!(
            h.admit("o", "e", later + ttl, 3, later).await.unwrap(),
            Admission::Admitted
        );
        assert_eq!(
            h.admit("o", "f", later + ttl, 3, later).await.unwrap(),
            Admission::Admitted
        );
        assert_eq!(
            h.admit("o", "g", later + ttl, 3, later).await.unwrap(),
            Admission::Full,
            "b (renewed), e and f are live"
        );
    }

    #[test]
    fn a_renewal_never_shortens_an_entry() {
        let now = Utc::now();
        let mut entries = BTreeMap::from([("a".to_string(), now + Duration::minutes(10))]);
        assert_eq!(
            decide(&mut entries, "a", now + Duration::minutes(5), 1, now),
            Admission::Admitted
        );
        assert_eq!(entries["a"], now + Duration::minutes(10));
    }
}
