//! The ERPs' item catalogs, as the catalog sync reads them:
//! - NetSuite's REST query service, `POST /services/rest/query/v1/suiteql`
//!   (`Prefer: transient` required; `limit`/`offset` paging; `items`,
//!   `hasMore`, `count`, `offset`, `totalResults`; every value as text, as
//!   NetSuite returns them);
//! - Business Central's `GET items` (`value`, `@odata.nextLink` with a
//!   `$skiptoken`, a small page so paging is exercised).
//!
//! Tests set items with [`crate::Simulators::set_erp_item`]; the simulator
//! answers every SuiteQL SELECT with the item rows (it does not run SQL).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use retailflow_core::money::Money;
use serde_json::{json, Value};

use crate::{lock, SimState};

/// Items per Business Central page.
pub const BC_PAGE: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErpItemRecord {
    pub sku: String,
    pub price: Money,
    /// Units free to sell (on hand less what the ERP's sales orders hold).
    pub available: i64,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ItemsState {
    pub items: BTreeMap<String, ErpItemRecord>,
}

pub(crate) fn netsuite_query_router() -> Router<Arc<SimState>> {
    Router::new().route("/suiteql", axum::routing::post(suiteql))
}

pub(crate) fn bc_items_router() -> Router<Arc<SimState>> {
    Router::new().route("/items", axum::routing::get(bc_items))
}

fn netsuite_error(status: StatusCode, code: &str, detail: &str) -> Response {
    (
        status,
        Json(
            json!({"title": status.canonical_reason(), "status": status.as_u16(),
                    "o:errorDetails": [{"detail": detail, "o:errorCode": code}]}),
        ),
    )
        .into_response()
}

async fn suiteql(
    State(state): State<Arc<SimState>>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if headers.get("prefer").and_then(|v| v.to_str().ok()) != Some("transient") {
        return netsuite_error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER",
            "SuiteQL queries need the header Prefer: transient.",
        );
    }
    let q = body["q"].as_str().unwrap_or("");
    if !q.trim_start().to_ascii_uppercase().starts_with("SELECT") {
        return netsuite_error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER",
            "Invalid query.",
        );
    }
    let limit: usize = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(1000)
        .clamp(1, 1000);
    let offset: usize = params
        .get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    if q.contains("'ItemShip'") {
        return fulfillment_rows(&state, q, limit, offset);
    }
    if q.contains("'SalesOrd'") || q.contains("'CustCred'") {
        return crate::ledger_drift::transaction_rows(&state, q, limit, offset);
    }
    let st = lock(&state.erp_items);
    let all: Vec<&ErpItemRecord> = st.items.values().collect();
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|i| {
            json!({"links": [], "sku": i.sku, "unitprice": i.price.to_decimal_string(),
                   "currency": i.price.currency.code(),
                   "quantityavailable": i.available.to_string()})
        })
        .collect();
    Json(json!({
        "links": [],
        "count": page.len(),
        "hasMore": offset + page.len() < all.len(),
        "offset": offset,
        "totalResults": all.len(),
        "items": page,
    }))
    .into_response()
}

/// Item fulfillment lines after the id in `f.id > N`, one row per line,
/// with the sales order's `custbody_retailflow_order_key`.
fn fulfillment_rows(state: &SimState, q: &str, limit: usize, offset: usize) -> Response {
    let after: u64 = q
        .split("f.id > ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let ns = lock(&state.netsuite);
    let mut rows = Vec::new();
    for f in ns.fulfillments.iter().filter(|f| f.id > after) {
        let order_key = ns
            .sales_orders
            .get(&f.sales_order_external_id)
            .and_then(|so| so.order_key.clone());
        for (sku, quantity) in &f.lines {
            rows.push(json!({
                "links": [],
                "id": f.id.to_string(),
                "tranid": f.tran_id,
                "trandate": f.ship_date,
                "order_key": order_key,
                "carrier": f.carrier,
                "tracking": f.tracking_numbers.join(" "),
                "status": f.status,
                "sku": sku,
                "quantity": quantity.to_string(),
            }));
        }
    }
    suiteql_page(rows, limit, offset)
}

/// One page of SuiteQL rows as the query service answers it.
pub(crate) fn suiteql_page(rows: Vec<Value>, limit: usize, offset: usize) -> Response {
    let total = rows.len();
    let page: Vec<Value> = rows.into_iter().skip(offset).take(limit).collect();
    Json(json!({
        "links": [],
        "count": page.len(),
        "hasMore": offset + page.len() < total,
        "offset": offset,
        "totalResults": total,
        "items": page,
    }))
    .into_response()
}

async fn bc_items(
    State(state): State<Arc<SimState>>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let skip: usize = match params.get("$skiptoken").map(|s| s.parse()) {
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"code": "BadRequest", "message": "bad $skiptoken"}})),
            )
                .into_response()
        }
        None => 0,
    };
    let st = lock(&state.erp_items);
    let all: Vec<&ErpItemRecord> = st.items.values().collect();
    let value: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(BC_PAGE)
        .map(|i| {
            json!({"number": i.sku, "type": "Inventory",
                   "unitPrice": serde_json::from_str::<Value>(&i.price.to_decimal_string())
                       .unwrap_or(Value::Null),
                   "inventory": i.available})
        })
        .collect();
    let mut body = json!({ "value": value });
    if skip + BC_PAGE < all.len() {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        body["@odata.nextLink"] = json!(format!(
            "http://{host}{}/items?$select=number,type,unitPrice&$skiptoken={}",
            crate::business_central::COMPANY_PATH,
            skip + BC_PAGE
        ));
    }
    Json(body).into_response()
}

/// `PUT /__sim/erp-items`: a test sets ERP items over HTTP
/// (`[{"sku", "price": "24.99", "currency": "USD", "available": 30}]`).
pub(crate) async fn put_items(
    State(state): State<Arc<SimState>>,
    Json(body): Json<Vec<Value>>,
) -> Response {
    let mut parsed = Vec::new();
    for v in &body {
        let currency = v["currency"]
            .as_str()
            .and_then(|c| retailflow_core::money::Currency::from_code(c).ok());
        let price = currency.and_then(|c| Money::parse(v["price"].as_str()?, c).ok());
        match (v["sku"].as_str(), price, v["available"].as_i64()) {
            (Some(sku), Some(price), Some(available)) => parsed.push(ErpItemRecord {
                sku: sku.to_string(),
                price,
                available,
            }),
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("need sku, price, currency and available: {v}"),
                )
                    .into_response()
            }
        }
    }
    let mut st = lock(&state.erp_items);
    for item in parsed {
        st.items.insert(item.sku.clone(), item);
    }
    StatusCode::NO_CONTENT.into_response()
}
