//! [`OpenHolds`] on the state table: one item per owner,
//! `OPENHOLDS#<owner>`, holding `checkouts` (a map of checkout id to the
//! epoch milliseconds its hold runs to) and a `version`. Admitting is a
//! consistent GetItem, then a PutItem of the pruned map conditional on the
//! version read (or on no item), tried again when another request of the
//! same owner wrote in between: two requests, on an item of at most the
//! cap's entries. A full owner is refused without a write; a renewal that
//! changes nothing writes nothing. `expires_at` lets TTL remove the item
//! once its last hold has run out.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::dynamodb::{n, s, DynamoDbStateStore};
use retailflow_core::checkout::holds::decide;
use retailflow_core::ports::holds::{Admission, OpenHolds};
use retailflow_core::ports::StoreError;

/// Requests of one owner racing each other: enough tries for a shopper's
/// tabs, bounded for a script.
const ATTEMPTS: usize = 5;

fn owner_pk(owner: &str) -> String {
    format!("OPENHOLDS#{owner}")
}

type Entries = BTreeMap<String, DateTime<Utc>>;

impl DynamoDbStateStore {
    /// The owner's entries and the version they were read at (0: no item).
    async fn open_holds_of(&self, pk: &str) -> Result<(Entries, i64), StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(self.table())
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(super::dynamodb::store_error)?;
        let Some(item) = out.item() else {
            return Ok((Entries::new(), 0));
        };
        let corrupt = |reason: &str| StoreError::Corrupt {
            key: pk.to_string(),
            reason: reason.to_string(),
        };
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| corrupt("no version"))?;
        let mut entries = Entries::new();
        if let Some(map) = item.get("checkouts").and_then(|v| v.as_m().ok()) {
            for (checkout, until) in map {
                let until = until
                    .as_n()
                    .ok()
                    .and_then(|v| v.parse::<i64>().ok())
                    .and_then(DateTime::from_timestamp_millis)
                    .ok_or_else(|| corrupt("a checkout's expiry is not a time"))?;
                entries.insert(checkout.clone(), until);
            }
        }
        Ok((entries, version))
    }

    /// Replaces the owner's entries if the item is still at `version`;
    /// false when another request wrote first.
    async fn put_open_holds(
        &self,
        pk: &str,
        entries: &Entries,
        version: i64,
    ) -> Result<bool, StoreError> {
        let map: HashMap<String, AttributeValue> = entries
            .iter()
            .map(|(c, until)| (c.clone(), n(until.timestamp_millis())))
            .collect();
        let last = entries.values().max().map_or(0, |t| t.timestamp());
        let request = self
            .client()
            .put_item()
            .table_name(self.table())
            .item("pk", s(pk))
            .item("kind", s("open_holds"))
            .item("checkouts", AttributeValue::M(map))
            .item("version", n(version + 1))
            .item("expires_at", n(last + 60));
        let request = if version == 0 {
            request.condition_expression("attribute_not_exists(pk)")
        } else {
            request
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(version))
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(super::dynamodb::store_error(e)),
        }
    }
}

#[async_trait]
impl OpenHolds for DynamoDbStateStore {
    async fn admit(
        &self,
        owner: &str,
        checkout_id: &str,
        until: DateTime<Utc>,
        max: u32,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError> {
        let pk = owner_pk(owner);
        for _ in 0..ATTEMPTS {
            let (mut entries, version) = self.open_holds_of(&pk).await?;
            let before = entries.clone();
            match decide(&mut entries, checkout_id, until, max, now) {
                Admission::Full => return Ok(Admission::Full),
                Admission::Admitted if entries == before => return Ok(Admission::Admitted),
                Admission::Admitted => {
                    if self.put_open_holds(&pk, &entries, version).await? {
                        return Ok(Admission::Admitted);
                    }
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "the open holds of one owner kept changing over {ATTEMPTS} tries"
        )))
    }

    async fn forget(&self, owner: &str, checkout_id: &str) -> Result<(), StoreError> {
        let pk = owner_pk(owner);
        for _ in 0..ATTEMPTS {
            let (mut entries, version) = self.open_holds_of(&pk).await?;
            if entries.remove(checkout_id).is_none() {
                return Ok(());
            }
            if self.put_open_holds(&pk, &entries, version).await? {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "the open holds of one owner kept changing over {ATTEMPTS} tries"
        )))
    }
}
