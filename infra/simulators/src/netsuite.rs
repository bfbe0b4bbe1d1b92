//! NetSuite record API v1: customer and sales order upsert by external id,
//! sales order read. Upserts are idempotent like the real service: one
//! record per external id, `upserts` counts the writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use common::money::{Currency, Money};
use serde_json::{json, Value};

use crate::{lock, SimState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSuiteCustomer {
    pub internal_id: String,
    pub external_id: String,
    pub upserts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSuiteSalesOrder {
    pub internal_id: String,
    pub external_id: String,
    pub tran_id: String,
    pub entity: String,
    pub total: Money,
    pub lines: usize,
    /// Writes to this external id: more than one is a re-post, not a duplicate.
    pub upserts: u32,
}

#[derive(Default)]
pub(crate) struct NetSuiteState {
    pub customers: BTreeMap<String, NetSuiteCustomer>,
    pub sales_orders: BTreeMap<String, NetSuiteSalesOrder>,
    next_id: u64,
}

pub(crate) fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/customer/{key}", put(upsert_customer))
        .route(
            "/salesOrder/{key}",
            put(upsert_sales_order).get(get_sales_order),
        )
}

fn error(status: StatusCode, code: &str, detail: &str, path: Option<&str>) -> Response {
    let mut d = json!({"detail": detail, "o:errorCode": code});
    if let Some(p) = path {
        d["o:errorPath"] = json!(p);
    }
    (status, Json(json!({"title": status.canonical_reason(), "status": status.as_u16(), "o:errorDetails": [d]})))
        .into_response()
}

/// `eid:{id}` with the characters NetSuite allows; `None` answers 400 INVALID_ID.
fn external_id(key: &str) -> Option<String> {
    let id = key.strip_prefix("eid:")?;
    let legal = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    legal.then(|| id.to_string())
}

fn invalid_id() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "INVALID_ID",
        "invalid external id (eid: with letters, digits, _ and -)",
        None,
    )
}

fn created(headers: &HeaderMap, kind: &str, id: &str) -> Response {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let location = format!("http://{host}/netsuite/services/rest/record/v1/{kind}/{id}");
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = location.parse() {
        resp.headers_mut().insert("location", v);
    }
    resp
}

async fn upsert_customer(
    State(state): State<Arc<SimState>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(_body): Json<Value>,
) -> Response {
    let Some(ext) = external_id(&key) else {
        return invalid_id();
    };
    let mut st = lock(&state.netsuite);
    st.next_id += 1;
    let next = st.next_id;
    let c = st
        .customers
        .entry(ext.clone())
        .or_insert_with(|| NetSuiteCustomer {
            internal_id: format!("{}", 600 + next),
            external_id: ext,
            upserts: 0,
        });
    c.upserts += 1;
    let id = c.internal_id.clone();
    created(&headers, "customer", &id)
}

fn money(v: &Value, currency: Currency) -> Option<Money> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    Money::parse(&text, currency).ok()
}

async fn upsert_sales_order(
    State(state): State<Arc<SimState>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(ext) = external_id(&key) else {
        return invalid_id();
    };
    let Some(currency) = body["currency"]["refName"]
        .as_str()
        .and_then(|c| Currency::from_code(c).ok())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_CONTENT",
            "currency is required",
            Some("currency"),
        );
    };
    let mut st = lock(&state.netsuite);
    let entity = body["entity"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !st.customers.values().any(|c| c.internal_id == entity) {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_CONTENT",
            "Invalid Field Value for the following field: entity",
            Some("entity"),
        );
    }
    let items = body["item"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut total = Money::zero(currency);
    for (i, line) in items.iter().enumerate() {
        if line["item"]["externalId"]
            .as_str()
            .or(line["item"]["id"].as_str())
            .is_none_or(str::is_empty)
        {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_CONTENT",
                "item is required",
                Some(&format!("item.items[{i}].item")),
            );
        }
        let Some(amount) = money(&line["amount"], currency) else {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_CONTENT",
                "amount is not valid",
                Some(&format!("item.items[{i}].amount")),
            );
        };
        total = match total.checked_add(amount) {
            Ok(t) => t,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_CONTENT",
                    "amount overflow",
                    None,
                )
            }
        };
    }
    st.next_id += 1;
    let next = st.next_id;
    let so = st
        .sales_orders
        .entry(ext.clone())
        .or_insert_with(|| NetSuiteSalesOrder {
            internal_id: format!("{}", 9000 + next),
            external_id: ext,
            tran_id: format!("SO{next:05}"),
            entity: entity.clone(),
            total,
            lines: 0,
            upserts: 0,
        });
    so.entity = entity;
    so.total = total;
    so.lines = items.len();
    so.upserts += 1;
    let id = so.internal_id.clone();
    created(&headers, "salesOrder", &id)
}

async fn get_sales_order(State(state): State<Arc<SimState>>, Path(key): Path<String>) -> Response {
    let st = lock(&state.netsuite);
    let found = match key.strip_prefix("eid:") {
        Some(ext) => st.sales_orders.get(ext),
        None => st.sales_orders.values().find(|s| s.internal_id == key),
    };
    match found {
        None => error(
            StatusCode::NOT_FOUND,
            "NONEXISTENT_ID",
            "That record does not exist.",
            None,
        ),
        Some(so) => Json(json!({
            "id": so.internal_id,
            "externalId": so.external_id,
            "tranId": so.tran_id,
            "entity": {"id": so.entity},
            "currency": {"refName": so.total.currency.code()},
            "total": serde_json::value::RawValue::from_string(so.total.to_decimal_string()).ok(),
        }))
        .into_response(),
    }
}
