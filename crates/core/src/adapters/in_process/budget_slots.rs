//! A concurrency budget's places, kept in the in-process state store as
//! the DynamoDB adapter keeps them in the state table.

use super::*;

#[async_trait]
impl crate::ports::budget::BudgetSlots for InProcessStateStore {
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
