//! What reconciliation reads and writes in the state table, beside the
//! saga steps: sagas by the hour they started (the sparse, keys-only
//! `sagas-by-hour` index on `time_bucket` / `started_at`, then BatchGetItem
//! of the items: no scan), re-drive counts on the saga item, and reports
//! (`REPORT#<run id>`, gzip).
//!
//! The index is keys-only so a saga update (every step completion) does not
//! also write the index: `time_bucket` and `started_at` are set once.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::dynamodb::{condition_held, n, s, saga_from_item, saga_pk, REDRIVE_PREFIX};
use retailflow_core::ports::{SagaPage, StoreError};
use retailflow_core::saga::{hour_of, TIME_BUCKET_SHARDS};

pub const SAGAS_INDEX: &str = "sagas-by-hour";

/// Keys per page: one BatchGetItem takes at most 100.
const PAGE_KEYS: i32 = 100;

/// How often unprocessed keys of a BatchGetItem are asked for again.
const BATCH_GET_ROUNDS: usize = 5;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Where a page of an hour starts: the shard, and DynamoDB's
/// LastEvaluatedKey within it.
#[derive(Serialize, Deserialize)]
struct PageToken {
    shard: u32,
    after: Option<HashMap<String, String>>,
}

fn bad_token(page: &str) -> StoreError {
    StoreError::Corrupt {
        key: "sagas-by-hour page".into(),
        reason: format!("unreadable page token {page:?}"),
    }
}

pub(crate) async fn sagas_started(
    client: &Client,
    table: &str,
    hour: DateTime<Utc>,
    page: Option<&str>,
) -> Result<SagaPage, StoreError> {
    let mut token = match page {
        Some(p) => serde_json::from_str::<PageToken>(p).map_err(|_| bad_token(p))?,
        None => PageToken {
            shard: 0,
            after: None,
        },
    };
    let hour = hour_of(hour);
    // Shards that are empty are passed over within the same call.
    while token.shard < TIME_BUCKET_SHARDS {
        let start = token.after.take().map(|k| {
            k.into_iter()
                .map(|(k, v)| (k, AttributeValue::S(v)))
                .collect::<HashMap<_, _>>()
        });
        let out = client
            .query()
            .table_name(table)
            .index_name(SAGAS_INDEX)
            .key_condition_expression("time_bucket = :b")
            .expression_attribute_values(":b", s(format!("{hour}#{}", token.shard)))
            .limit(PAGE_KEYS)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(super::dynamodb::store_error)?;
        let pks: Vec<String> = out
            .items()
            .iter()
            .filter_map(|i| i.get("pk").and_then(|v| v.as_s().ok()).cloned())
            .collect();
        let next = match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => Some(PageToken {
                shard: token.shard,
                after: Some(
                    k.iter()
                        .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
                        .collect(),
                ),
            }),
            _ if token.shard + 1 < TIME_BUCKET_SHARDS => Some(PageToken {
                shard: token.shard + 1,
                after: None,
            }),
            _ => None,
        };
        match next {
            // An empty shard: go on to the next one within the same call.
            Some(t) if pks.is_empty() => token = t,
            next => {
                let sagas = batch_get_sagas(client, table, &pks).await?;
                return Ok(SagaPage {
                    sagas,
                    // Plain data with string keys: serializing cannot fail.
                    next: next.map(|t| serde_json::to_string(&t).unwrap_or_default()),
                });
            }
        }
    }
    Ok(SagaPage::default())
}

async fn batch_get_sagas(
    client: &Client,
    table: &str,
    pks: &[String],
) -> Result<Vec<retailflow_core::saga::SagaRecord>, StoreError> {
    let mut sagas = Vec::new();
    if pks.is_empty() {
        return Ok(sagas);
    }
    let keys: Vec<HashMap<String, AttributeValue>> = pks
        .iter()
        .map(|pk| HashMap::from([("pk".to_string(), s(pk))]))
        .collect();
    let mut pending = Some(
        KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| unavailable(format!("building batch get: {e}")))?,
    );
    for _ in 0..BATCH_GET_ROUNDS {
        let Some(request) = pending.take() else { break };
        let out = client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(super::dynamodb::store_error)?;
        for item in out
            .responses()
            .and_then(|r| r.get(table))
            .into_iter()
            .flatten()
        {
            let Some(key) = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .and_then(|pk| pk.strip_prefix("SAGA#"))
            else {
                continue;
            };
            sagas.push(saga_from_item(key, item)?);
        }
        pending = out
            .unprocessed_keys()
            .and_then(|u| u.get(table))
            .filter(|k| !k.keys().is_empty())
            .cloned();
    }
    if pending.is_some() {
        return Err(unavailable(
            "the table kept some saga reads unprocessed (throttled)",
        ));
    }
    sagas.sort_by(|a, b| a.saga_key.cmp(&b.saga_key));
    Ok(sagas)
}

pub(crate) async fn record_redrive(
    client: &Client,
    table: &str,
    saga_key: &str,
    step: &str,
    limit: u32,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    condition_held(
        client
            .update_item()
            .table_name(table)
            .key("pk", s(saga_pk(saga_key)))
            .update_expression("ADD #count :one SET updated_at = :at")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#count) OR #count < :limit)",
            )
            .expression_attribute_names("#count", format!("{REDRIVE_PREFIX}{step}"))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(i64::from(limit)))
            .expression_attribute_values(":at", s(at.to_rfc3339()))
            .send()
            .await,
    )
}

pub(crate) async fn put_report(
    client: &Client,
    table: &str,
    run_id: &str,
    body: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let gz = retailflow_core::adapters::gzip(body.as_bytes())
        .map_err(|e| unavailable(format!("compressing report: {e}")))?;
    client
        .put_item()
        .table_name(table)
        .item("pk", s(format!("REPORT#{run_id}")))
        .item("kind", s("reconciliation_report"))
        .item("body_gzip", AttributeValue::B(gz.into()))
        .item("expires_at", n(expires_at.timestamp()))
        .send()
        .await
        .map_err(super::dynamodb::store_error)?;
    Ok(())
}

pub(crate) async fn report(
    client: &Client,
    table: &str,
    run_id: &str,
) -> Result<Option<String>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", s(format!("REPORT#{run_id}")))
        .send()
        .await
        .map_err(super::dynamodb::store_error)?;
    let Some(body) = out
        .item()
        .and_then(|i| i.get("body_gzip"))
        .and_then(|v| v.as_b().ok())
    else {
        return Ok(None);
    };
    let text =
        retailflow_core::adapters::gunzip_text(body.as_ref()).map_err(|e| StoreError::Corrupt {
            key: format!("REPORT#{run_id}"),
            reason: format!("report does not decompress: {e}"),
        })?;
    Ok(Some(text))
}
