//! [`BudgetSlots`] on the state table: one item per slot,
//! `BUDGET#<account>#<slot>` with its `holder` and `lease_until` (epoch
//! seconds). Taking a slot is one conditional PutItem (free, lease run out,
//! or already ours); giving it back is one conditional DeleteItem (only if
//! still ours). `expires_at` lets TTL remove slots nobody uses any more.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use chrono::{DateTime, Utc};

use super::dynamodb::{n, s, DynamoDbStateStore};
use crate::budget::BudgetSlots;
use crate::ports::StoreError;

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

    async fn give_back_slot(
        &self,
        account: &str,
        slot: u32,
        holder: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client()
            .delete_item()
            .table_name(self.table())
            .key("pk", s(slot_pk(account, slot)))
            .condition_expression("holder = :me")
            .expression_attribute_values(":me", s(holder))
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
