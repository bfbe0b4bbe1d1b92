//! [`BudgetSlots`] on the state table: one item per slot,
//! `BUDGET#<account>#<slot>` with its `holder` and `lease_until` (epoch
//! seconds) and the `lease` id of that take. Taking a slot is one
//! conditional PutItem (free, lease run out, or already ours); giving it
//! back is one conditional DeleteItem on the lease id, so a later lease of
//! the slot is never deleted. `expires_at` lets TTL remove slots nobody uses any more.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use chrono::{DateTime, Utc};

use super::dynamodb::{n, s, DynamoDbStateStore};
use retailflow_core::ports::budget::BudgetSlots;
use retailflow_core::ports::StoreError;

fn slot_pk(account: &str, slot: u32) -> String {
    format!("BUDGET#{account}#{slot}")
}

#[async_trait]
impl BudgetSlots for DynamoDbStateStore {
    async fn take_slot(
        &self,
        account: &str,
        slot: u32,
        holder: &str,
        lease: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client()
            .put_item()
            .table_name(self.table())
            .item("pk", s(slot_pk(account, slot)))
            .item("kind", s("budget_slot"))
            .item("holder", s(holder))
            .item("lease", s(lease))
            .item("lease_until", n(until.timestamp()))
            .item(
                "expires_at",
                n((until + chrono::Duration::days(1)).timestamp()),
            )
            .condition_expression("attribute_not_exists(pk) OR lease_until < :now OR holder = :me")
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":me", s(holder))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::Unavailable(DisplayErrorContext(&e).to_string())),
        }
    }

    async fn slots_in_use(
        &self,
        account: &str,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<u32>, StoreError> {
        use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
        let keys: Vec<std::collections::HashMap<String, AttributeValue>> = (0..limit.min(100))
            .map(|n| std::collections::HashMap::from([("pk".to_string(), s(slot_pk(account, n)))]))
            .collect();
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .projection_expression("pk, lease_until")
            // Eventually consistent: half the read units; a stale look
            // only costs one refused conditional write.
            .consistent_read(false)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let out = self
            .client()
            .batch_get_item()
            .request_items(self.table(), request)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
        let prefix = format!("BUDGET#{account}#");
        let slot_of = |item: &std::collections::HashMap<String, AttributeValue>| -> Option<u32> {
            item.get("pk")?
                .as_s()
                .ok()?
                .strip_prefix(&prefix)?
                .parse()
                .ok()
        };
        let mut in_use = Vec::new();
        for item in out
            .responses()
            .and_then(|r| r.get(self.table()))
            .into_iter()
            .flatten()
        {
            let live = item
                .get("lease_until")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|t| t >= now.timestamp());
            if let (true, Some(slot)) = (live, slot_of(item)) {
                in_use.push(slot);
            }
        }
        // Keys DynamoDB left unprocessed (throttled) count as in use: the
        // caller looks again shortly.
        if let Some(left) = out.unprocessed_keys().and_then(|u| u.get(self.table())) {
            in_use.extend(left.keys().iter().filter_map(slot_of));
        }
        Ok(in_use)
    }

    async fn give_back_slot(
        &self,
        account: &str,
        slot: u32,
        lease: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client()
            .delete_item()
            .table_name(self.table())
            .key("pk", s(slot_pk(account, slot)))
            .condition_expression("lease = :lease")
            .expression_attribute_values(":lease", s(lease))
            .send()
            .await;
        match result {
            // Taken by another container after our lease ran out: theirs now.
            Err(e)
                if !matches!(
                    e.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(StoreError::Unavailable(DisplayErrorContext(&e).to_string()))
            }
            _ => Ok(()),
        }
    }
}
