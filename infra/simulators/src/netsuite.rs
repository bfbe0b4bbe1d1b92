//! NetSuite record API v1: customer, sales order and credit memo upsert by
//! external id, reads, and closing a sales order's lines (PATCH with
//! `isClosed`). Upserts are idempotent like the real service: one record per
//! external id, `upserts` counts the writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use retailflow_core::money::{Currency, Money};
use serde_json::{json, Value};

use crate::{lock, SimState};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetSuiteCustomer {
    pub internal_id: String,
    pub external_id: String,
    pub upserts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetSuiteSalesOrder {
    pub internal_id: String,
    pub external_id: String,
    pub tran_id: String,
    pub entity: String,
    pub total: Money,
    pub lines: usize,
    /// Writes to this external id: more than one is a re-post, not a duplicate.
    pub upserts: u32,
    /// Per line, the stock disposition sent in the disposition column
    /// (credit memos).
    pub dispositions: Vec<Option<String>>,
    /// Every line closed (a cancelled sales order).
    pub closed: bool,
    /// `custbody_retailflow_order_key` as posted.
    pub order_key: Option<String>,
}

/// An item fulfillment (shipment) of a sales order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetSuiteFulfillment {
    pub id: u64,
    pub tran_id: String,
    pub sales_order_external_id: String,
    pub ship_date: String,
    pub carrier: String,
    pub tracking_numbers: Vec<String>,
    /// (SKU, quantity)
    pub lines: Vec<(String, i64)>,
    /// `shipstatus`: `A` picked, `B` packed, `C` shipped.
    pub status: String,
}

/// A credit memo has the same shape as a sales order.
pub type NetSuiteCreditMemo = NetSuiteSalesOrder;

/// The line column credit memos carry the stock disposition in.
pub const DISPOSITION_COLUMN: &str = "custcol_retailflow_disposition";

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct NetSuiteState {
    pub customers: BTreeMap<String, NetSuiteCustomer>,
    pub sales_orders: BTreeMap<String, NetSuiteSalesOrder>,
    pub credit_memos: BTreeMap<String, NetSuiteCreditMemo>,
    pub fulfillments: Vec<NetSuiteFulfillment>,
    next_id: u64,
    /// Customers being created right now: a second upsert of one of them
    /// meets NetSuite's "already exists", as two sessions creating the
    /// same record do.
    #[serde(skip)]
    creating: std::collections::BTreeSet<String>,
}

#[derive(Clone, Copy)]
enum Kind {
    SalesOrder,
    CreditMemo,
}

impl Kind {
    fn record(self) -> &'static str {
        match self {
            Kind::SalesOrder => "salesOrder",
            Kind::CreditMemo => "creditMemo",
        }
    }
    fn records(self, st: &mut NetSuiteState) -> &mut BTreeMap<String, NetSuiteSalesOrder> {
        match self {
            Kind::SalesOrder => &mut st.sales_orders,
            Kind::CreditMemo => &mut st.credit_memos,
        }
    }
    /// (first internal id, tranId prefix)
    fn numbering(self) -> (u64, &'static str) {
        match self {
            Kind::SalesOrder => (9000, "SO"),
            Kind::CreditMemo => (7000, "CM"),
        }
    }
}

pub(crate) fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/customer/{key}", put(upsert_customer).get(get_customer))
        .route(
            "/salesOrder/{key}",
            put(|st, k, h, b| upsert(Kind::SalesOrder, st, k, h, b))
                .get(|st, k| get(Kind::SalesOrder, st, k))
                .patch(close_sales_order),
        )
        .route(
            "/creditMemo/{key}",
            put(|st, k, h, b| upsert(Kind::CreditMemo, st, k, h, b))
                .get(|st, k| get(Kind::CreditMemo, st, k)),
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

/// How long creating a customer record takes: long enough for two first
/// orders of one new customer, sent at once, to collide.
const CUSTOMER_CREATE_TIME: std::time::Duration = std::time::Duration::from_millis(20);

async fn upsert_customer(
    State(state): State<Arc<SimState>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(_body): Json<Value>,
) -> Response {
    let Some(ext) = external_id(&key) else {
        return invalid_id();
    };
    {
        let mut st = lock(&state.netsuite);
        if let Some(c) = st.customers.get_mut(&ext) {
            c.upserts += 1;
            let id = c.internal_id.clone();
            return created(&headers, "customer", &id);
        }
        if !st.creating.insert(ext.clone()) {
            return error(
                StatusCode::BAD_REQUEST,
                "USER_ERROR",
                "Error while accessing a resource. This entity already exists.",
                None,
            );
        }
    }
    tokio::time::sleep(CUSTOMER_CREATE_TIME).await;
    let mut st = lock(&state.netsuite);
    st.creating.remove(&ext);
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

/// `GET /customer/eid:{id}`: the customer's internal id.
async fn get_customer(State(state): State<Arc<SimState>>, Path(key): Path<String>) -> Response {
    let Some(ext) = external_id(&key) else {
        return invalid_id();
    };
    let st = lock(&state.netsuite);
    match st.customers.get(&ext) {
        Some(c) => Json(json!({"id": c.internal_id, "externalId": c.external_id})).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "NONEXISTENT_ID",
            "The record instance does not exist.",
            None,
        ),
    }
}

fn money(v: &Value, currency: Currency) -> Option<Money> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    Money::parse(&text, currency).ok()
}

async fn upsert(
    kind: Kind,
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
    let (base, prefix) = kind.numbering();
    let so = kind
        .records(&mut st)
        .entry(ext.clone())
        .or_insert_with(|| NetSuiteSalesOrder {
            internal_id: format!("{}", base + next),
            external_id: ext,
            tran_id: format!("{prefix}{next:05}"),
            entity: entity.clone(),
            total,
            lines: 0,
            upserts: 0,
            dispositions: Vec::new(),
            closed: false,
            order_key: None,
        });
    so.entity = entity;
    so.total = total;
    so.lines = items.len();
    // replace=item: the lines sent replace the old ones, open.
    so.closed = false;
    so.dispositions = items
        .iter()
        .map(|l| l[DISPOSITION_COLUMN].as_str().map(str::to_string))
        .collect();
    so.upserts += 1;
    so.order_key = body["custbody_retailflow_order_key"]
        .as_str()
        .map(str::to_string);
    let first_write = so.upserts == 1;
    let id = so.internal_id.clone();
    drop(st);
    // A new sales order commits its items: they leave `quantityavailable`.
    if first_write && matches!(kind, Kind::SalesOrder) {
        let mut catalog = lock(&state.erp_items);
        for line in &items {
            let sku = line["item"]["externalId"].as_str().unwrap_or("");
            let quantity = line["quantity"].as_i64().unwrap_or(0);
            if let Some(item) = catalog.items.get_mut(sku) {
                item.available -= quantity;
            }
        }
    }
    created(&headers, kind.record(), &id)
}

/// Closing every line is how a sales order is cancelled over REST.
async fn close_sales_order(
    State(state): State<Arc<SimState>>,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut st = lock(&state.netsuite);
    let found = match key.strip_prefix("eid:") {
        Some(ext) => st.sales_orders.get_mut(ext),
        None => st.sales_orders.values_mut().find(|s| s.internal_id == key),
    };
    let Some(so) = found else {
        return error(
            StatusCode::NOT_FOUND,
            "NONEXISTENT_ID",
            "That record does not exist.",
            None,
        );
    };
    let items = body["item"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !items.is_empty() && items.iter().all(|l| l["isClosed"].as_bool() == Some(true)) {
        so.closed = true;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn get(kind: Kind, State(state): State<Arc<SimState>>, Path(key): Path<String>) -> Response {
    let mut st = lock(&state.netsuite);
    let records = kind.records(&mut st);
    let found = match key.strip_prefix("eid:") {
        Some(ext) => records.get(ext),
        None => records.values().find(|s| s.internal_id == key),
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
            "status": {"id": if so.closed { "H" } else { "B" }, "refName": if so.closed { "Closed" } else { "Pending Fulfillment" }},
            "item": {"items": (1..=so.lines).map(|line| json!({"line": line, "isClosed": so.closed})).collect::<Vec<_>>()},
            "total": serde_json::value::RawValue::from_string(so.total.to_decimal_string()).ok(),
        }))
        .into_response(),
    }
}
