//! Reading the table's items back: sagas, a claim's existing outcome, and
//! batched gets.

use super::*;

pub(super) fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

pub(super) fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> Option<i64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub(super) fn get_time(item: &HashMap<String, AttributeValue>, k: &str) -> Option<DateTime<Utc>> {
    get_s(item, k)
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn saga_from_item(
    saga_key: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<SagaRecord, StoreError> {
    let corrupt = |what: &str, e: serde_json::Error| StoreError::Corrupt {
        key: saga_key.to_string(),
        reason: format!("{what}: {e}"),
    };
    let set = |k: &str| -> BTreeSet<String> {
        item.get(k)
            .and_then(|v| v.as_ss().ok())
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default()
    };
    let mut first_seen = BTreeMap::new();
    let mut steps = BTreeMap::new();
    let mut first_event_ids = BTreeMap::new();
    let mut redrives = BTreeMap::new();
    for (attr, _) in item.iter() {
        if let Some(event_type) = attr.strip_prefix(FIRST_EVENT_PREFIX) {
            if let Some(id) = get_s(item, attr) {
                first_event_ids.insert(event_type.to_string(), id.to_string());
            }
        } else if let Some(step) = attr.strip_prefix(REDRIVE_PREFIX) {
            let count = get_n(item, attr).unwrap_or(0);
            redrives.insert(step.to_string(), u32::try_from(count).unwrap_or(u32::MAX));
        } else if let Some(t) = attr.strip_prefix("first_seen__") {
            if let Some(at) = get_time(item, attr) {
                first_seen.insert(t.to_string(), at);
            }
        } else if let Some(step) = attr.strip_suffix("__status") {
            let status = match get_s(item, attr) {
                Some("completed") => StepStatus::Completed,
                _ => StepStatus::InProgress,
            };
            steps.insert(
                step.to_string(),
                StepRecord {
                    status,
                    completed_at: get_time(item, &format!("{step}__completed_at")),
                    result: get_s(item, &format!("{step}__result"))
                        .and_then(|r| serde_json::from_str(r).ok()),
                    lease_until: get_n(item, &format!("{step}__lease_until"))
                        .and_then(DateTime::from_timestamp_millis),
                },
            );
        }
    }
    let order_facts = get_s(item, "order_facts")
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt("order_facts", e))?;
    let refund_ledger = get_s(item, "refund_ledger")
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt("refund_ledger", e))?
        .unwrap_or_default();
    Ok(SagaRecord {
        saga_key: saga_key.to_string(),
        started_at: get_time(item, "started_at"),
        updated_at: get_time(item, "updated_at"),
        last_event_type: get_s(item, "last_event_type").map(str::to_string),
        event_types: set("event_types"),
        first_seen,
        steps,
        order_facts,
        refund_ledger,
        first_event_ids,
        redrives,
    })
}

/// What an existing record (returned by a failed claim condition) means.
pub(super) fn existing_outcome(
    key: &IdempotencyKey,
    old: &HashMap<String, AttributeValue>,
    hash: &str,
    token: &str,
) -> Result<ClaimOutcome, StoreError> {
    let attr = |suffix: &str| format!("{}__{suffix}", key.step);
    // An SDK retry of our own claim that already landed.
    if get_s(old, &attr("token")) == Some(token) {
        return Ok(ClaimOutcome::Claimed(Claim {
            key: key.clone(),
            token: token.to_string(),
            payload_hash: hash.to_string(),
        }));
    }
    let completed = get_s(old, &attr("status")) == Some("completed");
    if old.contains_key("cancelled_at") && !completed {
        return Ok(ClaimOutcome::OrderCancelled);
    }
    if get_s(old, &attr("hash")) != Some(hash) {
        let completed = get_s(old, &attr("status")) == Some("completed");
        return Ok(ClaimOutcome::PayloadMismatch { completed });
    }
    match get_s(old, &attr("status")) {
        Some("completed") => {
            let result = get_s(old, &attr("result")).and_then(|r| serde_json::from_str(r).ok());
            Ok(ClaimOutcome::AlreadyCompleted { result })
        }
        Some("in_progress") => Ok(ClaimOutcome::InProgress {
            lease_until: DateTime::from_timestamp_millis(
                get_n(old, &attr("lease_until")).unwrap_or(0),
            )
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }),
        _ => Err(StoreError::Corrupt {
            key: key.describe(),
            reason: "idempotency record without a known status".into(),
        }),
    }
}

/// Reads items by key (consistently), 100 at a time, retrying keys DynamoDB
/// left unprocessed (throttling) a few times.
pub(crate) async fn batch_get(
    client: &Client,
    table: &str,
    pks: Vec<String>,
) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
    let mut found = Vec::new();
    for chunk in pks.chunks(100) {
        let keys: Vec<HashMap<String, AttributeValue>> = chunk
            .iter()
            .map(|pk| HashMap::from([("pk".to_string(), s(pk.clone()))]))
            .collect();
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Unavailable(format!("building a request: {e}")))?,
        );
        for attempt in 0..5u64 {
            let Some(req) = request.take() else { break };
            let out = client
                .batch_get_item()
                .request_items(table, req)
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
            if let Some(items) = out.responses().and_then(|r| r.get(table)) {
                found.extend(items.iter().cloned());
            }
            request = out
                .unprocessed_keys()
                .and_then(|u| u.get(table))
                .filter(|k| !k.keys().is_empty())
                .cloned();
            if request.is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
        }
        if request.is_some() {
            return Err(StoreError::Unavailable("reads kept being throttled".into()));
        }
    }
    Ok(found)
}
