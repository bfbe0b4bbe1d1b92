//! Restocks: a cancelled order's committed parts given back once, and a
//! tombstone left where a part never landed.

use super::*;

impl DynamoDbStock {
    /// A cancelled order's committed units back on hand, once, part by
    /// part; a tombstone in place of a part (or a whole commit) that never
    /// landed. True when anything came back.
    pub(super) async fn restock_commit(&self, order_key: &str) -> Result<bool, StoreError> {
        let Some(lines) = self.restock_part(order_key, 0).await? else {
            return Ok(false);
        };
        let mut restocked = lines.restocked;
        for part in 1..=lines.later_parts {
            if let Some(p) = self.restock_part(order_key, part).await? {
                restocked |= p.restocked;
            }
        }
        Ok(restocked)
    }

    /// One part of [`Self::restock_commit`]. Every write is conditioned on
    /// what was read; a write that lost a race (a concurrent post, commit or
    /// restock) reads again. `None` when the part never committed (now a
    /// tombstone).
    pub(super) async fn restock_part(
        &self,
        order_key: &str,
        part: usize,
    ) -> Result<Option<PartRestock>, StoreError> {
        let key = part_key(order_key, part);
        for _ in 0..5 {
            let Some(item) = self.get(key.clone()).await? else {
                // Cancelled before its commit (or this part of it) ran: a
                // tombstone stops the commit from ever taking this stock.
                let tombstone = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item("pk", s(key.clone()))
                    .item("state", s("cancelled"))
                    .item("lines", s("[]"))
                    .item("posted", AttributeValue::Bool(false))
                    .item(
                        "expires_at",
                        n((Utc::now() + retailflow_core::saga::SAGA_RETENTION).timestamp()),
                    )
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await;
                match tombstone {
                    Ok(_) => return Ok(None),
                    // The commit landed meanwhile: read it and restock it.
                    Err(e)
                        if matches!(
                            e.as_service_error(),
                            Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_))
                        ) =>
                    {
                        continue
                    }
                    Err(e) => return Err(store_error(e)),
                }
            };
            let later = later_parts(&item).len();
            if item
                .get("state")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                != Some("committed")
            {
                return Ok(Some(PartRestock {
                    restocked: false,
                    later_parts: later,
                }));
            }
            let lines = commit_lines(&key, &item)?;
            // A record without the flag predates `unposted`: its units were
            // never added there, so none are taken off.
            let posted = item.get("posted").and_then(|v| v.as_bool().ok()).copied();
            let mut end = Update::builder()
                .table_name(&self.table)
                .key("pk", s(key.clone()))
                .update_expression("SET #state = :to")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":to", s("restocked"))
                .expression_attribute_values(":from", s("committed"));
            end = match posted {
                Some(p) => end
                    .condition_expression("#state = :from AND posted = :posted")
                    .expression_attribute_values(":posted", AttributeValue::Bool(p)),
                None => end.condition_expression("#state = :from AND attribute_not_exists(posted)"),
            };
            let mut tx = vec![TransactWriteItem::builder()
                .update(Self::built(end.build())?)
                .build()];
            for (sku, qty) in per_sku(&lines) {
                let u = Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(format!("STOCK#{sku}")))
                    .expression_attribute_values(":d", n(qty));
                let u = if posted == Some(false) {
                    u.update_expression("ADD on_hand :d, available :d, unposted :u")
                        .expression_attribute_values(":u", n(-qty))
                } else {
                    u.update_expression("ADD on_hand :d, available :d")
                };
                tx.push(
                    TransactWriteItem::builder()
                        .update(Self::built(u.build())?)
                        .build(),
                );
            }
            // No client request token: the state condition makes a repeat
            // harmless, and a retry after a lost race differs in content.
            match self.transact(tx, None).await? {
                None => {
                    return Ok(Some(PartRestock {
                        restocked: true,
                        later_parts: later,
                    }))
                }
                Some(reasons) if condition_failed(&reasons, 0) => continue,
                Some(reasons) => return Err(cancelled(&reasons)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "{key} kept changing under its restock"
        )))
    }
}
