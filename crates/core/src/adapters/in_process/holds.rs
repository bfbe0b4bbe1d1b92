//! [`OpenHolds`] in memory, applying [`decide`] as the DynamoDB adapter
//! does, with DynamoDB's contention when asked.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::adapters::contention::{modelled_write, ItemContention};
use crate::checkout::holds::decide;
use crate::ports::holds::{Admission, OpenHolds};
use crate::ports::StoreError;

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
