//! [`StateStore`] on one DynamoDB table (hash key `pk`, TTL attribute
//! `expires_at`). Claims are conditional PutItems; a completion and its saga
//! update go in one TransactWriteItems request; quarantined bodies are stored
//! gzip-compressed.

use std::collections::HashMap;
use std::io::Write;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::idempotency::{Claim, ClaimOutcome, ClaimRequest, Completion, ORPHANED_CLAIM_TTL};
use crate::ports::{QuarantinedDelivery, StateStore, StoreError};
use crate::saga::{SagaRecord, SagaUpdate};

/// DynamoDB's item limit is 400 KB; keep headroom for the other attributes.
const MAX_QUARANTINE_BODY_BYTES: usize = 380 * 1024;

pub struct DynamoDbStateStore {
    client: Client,
    table: String,
}

impl DynamoDbStateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbStateStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

fn idem_pk(key: &str) -> AttributeValue {
    AttributeValue::S(format!("IDEMPOTENCY#{key}"))
}

fn saga_pk(key: &str) -> AttributeValue {
    AttributeValue::S(format!("SAGA#{key}"))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(&e).to_string())
}

fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> Option<i64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn millis_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[async_trait]
impl StateStore for DynamoDbStateStore {
    async fn claim(&self, req: &ClaimRequest) -> Result<ClaimOutcome, StoreError> {
        let token = Uuid::new_v4().to_string();
        let orphan_expiry = (req.lease_until + ORPHANED_CLAIM_TTL).timestamp();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", idem_pk(&req.key.0))
            .item("kind", s("idempotency"))
            .item("status", s("in_progress"))
            .item("token", s(&token))
            .item("payload_hash", s(&req.payload_hash))
            .item("lease_until", n(req.lease_until.timestamp_millis()))
            .item("expires_at", n(orphan_expiry))
            .item("updated_at", s(req.now.to_rfc3339()))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now_s \
                 OR (#status = :in_progress AND lease_until <= :now_ms AND payload_hash = :hash)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now_s", n(req.now.timestamp()))
            .expression_attribute_values(":now_ms", n(req.now.timestamp_millis()))
            .expression_attribute_values(":in_progress", s("in_progress"))
            .expression_attribute_values(":hash", s(&req.payload_hash))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(ClaimOutcome::Claimed(Claim {
                key: req.key.clone(),
                token,
                payload_hash: req.payload_hash.clone(),
            })),
            Err(e) => match e.into_service_error() {
                PutItemError::ConditionalCheckFailedException(ccf) => {
                    let old = ccf.item().cloned().unwrap_or_default();
                    existing_outcome(&req.key.0, &old, &req.payload_hash)
                }
                other => Err(StoreError::Unavailable(
                    DisplayErrorContext(&other).to_string(),
                )),
            },
        }
    }

    async fn complete(&self, claim: &Claim, c: &Completion) -> Result<(), StoreError> {
        let expression = if c.result.is_some() {
            "SET #status = :completed, expires_at = :exp, updated_at = :now, #result = :result \
             REMOVE lease_until, #token"
        } else {
            "SET #status = :completed, expires_at = :exp, updated_at = :now REMOVE lease_until, #token"
        };
        let mut complete = Update::builder()
            .table_name(&self.table)
            .key("pk", idem_pk(&claim.key.0))
            .update_expression(expression)
            .condition_expression("#token = :token")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":completed", s("completed"))
            .expression_attribute_values(":exp", n(c.expires_at.timestamp()))
            .expression_attribute_values(":now", s(c.now.to_rfc3339()))
            .expression_attribute_values(":token", s(&claim.token));
        if let Some(result) = &c.result {
            complete = complete
                .expression_attribute_names("#result", "result")
                .expression_attribute_values(":result", s(result.to_string()));
        }
        let complete = complete
            .build()
            .map_err(|e| StoreError::Unavailable(format!("building completion: {e}")))?;
        let mut items = vec![TransactWriteItem::builder().update(complete).build()];
        if let Some(u) = &c.saga {
            items.push(
                TransactWriteItem::builder()
                    .update(self.saga_update(u)?)
                    .build(),
            );
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let se = e.into_service_error();
                let lost = matches!(&se, TransactWriteItemsError::TransactionCanceledException(tc)
                    if tc.cancellation_reasons()
                        .first()
                        .and_then(|r| r.code())
                        .is_some_and(|code| code == "ConditionalCheckFailed"));
                if lost {
                    Err(StoreError::LeaseLost {
                        key: claim.key.0.clone(),
                    })
                } else {
                    Err(StoreError::Unavailable(
                        DisplayErrorContext(&se).to_string(),
                    ))
                }
            }
        }
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", idem_pk(&claim.key.0))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", s(&claim.token))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Not ours any more: nothing to release.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn quarantine(&self, q: &QuarantinedDelivery) -> Result<(), StoreError> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&q.body)
            .map_err(|e| StoreError::Unavailable(format!("compressing body: {e}")))?;
        let body = gz
            .finish()
            .map_err(|e| StoreError::Unavailable(format!("compressing body: {e}")))?;
        if body.len() > MAX_QUARANTINE_BODY_BYTES {
            return Err(StoreError::TooLarge(format!(
                "quarantined body is {} bytes compressed",
                body.len()
            )));
        }
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("QUARANTINE#{}", q.id)))
            .item("kind", s("quarantine"))
            .item("received_at", s(q.received_at.to_rfc3339()))
            .item("source", s(&q.source))
            .item("reason", s(&q.reason))
            .item("body_gzip", AttributeValue::B(body.into()));
        for (k, v) in [
            ("topic", &q.topic),
            ("shop", &q.shop),
            ("delivery_id", &q.delivery_id),
        ] {
            if let Some(v) = v {
                put = put.item(k, s(v));
            }
        }
        put.send().await.map(|_| ()).map_err(unavailable)
    }

    async fn saga(&self, saga_key: &str) -> Result<Option<SagaRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", saga_pk(saga_key))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let corrupt = |reason: &str| StoreError::Corrupt {
            key: saga_key.to_string(),
            reason: reason.to_string(),
        };
        let time = |k: &str| -> Result<DateTime<Utc>, StoreError> {
            get_s(item, k)
                .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| corrupt(k))
        };
        let set = |k: &str| -> std::collections::BTreeSet<String> {
            item.get(k)
                .and_then(|v| v.as_ss().ok())
                .map(|v| v.iter().cloned().collect())
                .unwrap_or_default()
        };
        Ok(Some(SagaRecord {
            saga_key: saga_key.to_string(),
            correlation_id: get_s(item, "correlation_id")
                .ok_or_else(|| corrupt("correlation_id"))?
                .to_string(),
            started_at: time("started_at")?,
            updated_at: time("updated_at")?,
            last_event_type: get_s(item, "last_event_type")
                .unwrap_or_default()
                .to_string(),
            event_types: set("event_types"),
            event_ids: set("event_ids"),
        }))
    }
}

impl DynamoDbStateStore {
    /// Starts or extends the saga without a condition, so it never fails the
    /// transaction: `if_not_exists` keeps the first start time and correlation.
    fn saga_update(&self, u: &SagaUpdate) -> Result<Update, StoreError> {
        Update::builder()
            .table_name(&self.table)
            .key("pk", saga_pk(&u.saga_key))
            .update_expression(
                "SET #kind = :kind, saga_key = :key, correlation_id = if_not_exists(correlation_id, :corr), \
                 started_at = if_not_exists(started_at, :at), updated_at = :at, last_event_type = :type \
                 ADD event_types :types, event_ids :ids",
            )
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":kind", s("saga"))
            .expression_attribute_values(":key", s(&u.saga_key))
            .expression_attribute_values(":corr", s(&u.correlation_id))
            .expression_attribute_values(":at", s(u.at.to_rfc3339()))
            .expression_attribute_values(":type", s(&u.event_type))
            .expression_attribute_values(":types", AttributeValue::Ss(vec![u.event_type.clone()]))
            .expression_attribute_values(":ids", AttributeValue::Ss(vec![u.event_id.clone()]))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("building saga update: {e}")))
    }
}

/// What an existing record (returned by a failed claim condition) means.
fn existing_outcome(
    key: &str,
    old: &HashMap<String, AttributeValue>,
    hash: &str,
) -> Result<ClaimOutcome, StoreError> {
    if get_s(old, "payload_hash") != Some(hash) {
        return Ok(ClaimOutcome::PayloadMismatch);
    }
    match get_s(old, "status") {
        Some("completed") => {
            let result = get_s(old, "result").and_then(|r| serde_json::from_str(r).ok());
            Ok(ClaimOutcome::AlreadyCompleted { result })
        }
        Some("in_progress") => Ok(ClaimOutcome::InProgress {
            lease_until: millis_to_time(get_n(old, "lease_until").unwrap_or(0)),
        }),
        _ => Err(StoreError::Corrupt {
            key: key.to_string(),
            reason: "idempotency record without a known status".into(),
        }),
    }
}
