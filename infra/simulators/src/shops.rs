//! The shops' admin APIs, for till returns recorded on the online order:
//! Shopify `orders/{id}/refunds.json` (GET, POST) and Adobe Commerce
//! `V1/order/{id}/refund` with `V1/creditmemos` search. Like the real
//! services, neither deduplicates: a double POST is two refunds, which is
//! why the connector looks for its reference first.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::{lock, SimState};

/// A refund a shop recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShopRefundRecord {
    /// `shopify` or `adobe_commerce`.
    pub platform: String,
    pub shop: String,
    pub order_id: String,
    pub refund_id: u64,
    /// The note (Shopify) or comment (Adobe) carrying retailflow's reference.
    pub reference: String,
    /// (line id, quantity, restock type or "return_to_stock"/"no_restock")
    pub lines: Vec<(String, u64, String)>,
    pub shipping: String,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ShopState {
    pub refunds: Vec<ShopRefundRecord>,
    next: u64,
}

pub(crate) fn shopify_router() -> Router<Arc<SimState>> {
    Router::new().route(
        "/{shop}/admin/api/{version}/orders/{order}/refunds.json",
        get(shopify_list).post(shopify_create),
    )
}

pub(crate) fn adobe_router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/rest/V1/order/{order}/refund", post(adobe_refund))
        .route("/rest/V1/creditmemos", get(adobe_search))
}

/// A numeric order id.
fn refunds_path(segment: &str) -> Option<String> {
    segment.parse::<u64>().ok().map(|n| n.to_string())
}

fn shopify_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"errors": message}))).into_response()
}

fn authorized(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty())
}

async fn shopify_list(
    State(state): State<Arc<SimState>>,
    Path((shop, _v, order)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers, "x-shopify-access-token") {
        return shopify_error(
            StatusCode::UNAUTHORIZED,
            "[API] Invalid API key or access token",
        );
    }
    let Some(order) = refunds_path(&order) else {
        return shopify_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let st = lock(&state.shops);
    let refunds: Vec<Value> = st
        .refunds
        .iter()
        .filter(|r| r.platform == "shopify" && r.shop == shop && r.order_id == order)
        .map(|r| json!({"id": r.refund_id, "order_id": r.order_id.parse::<u64>().unwrap_or(0), "note": r.reference}))
        .collect();
    Json(json!({"refunds": refunds})).into_response()
}

async fn shopify_create(
    State(state): State<Arc<SimState>>,
    Path((shop, _v, order)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&headers, "x-shopify-access-token") {
        return shopify_error(
            StatusCode::UNAUTHORIZED,
            "[API] Invalid API key or access token",
        );
    }
    let Some(order) = refunds_path(&order) else {
        return shopify_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let refund = &body["refund"];
    let mut lines = Vec::new();
    for l in refund["refund_line_items"].as_array().into_iter().flatten() {
        let (Some(id), Some(qty), Some(restock)) = (
            l["line_item_id"].as_u64(),
            l["quantity"].as_u64(),
            l["restock_type"].as_str(),
        ) else {
            return shopify_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "refund_line_items are invalid",
            );
        };
        if !["no_restock", "cancel", "return", "legacy_restock"].contains(&restock) {
            return shopify_error(StatusCode::UNPROCESSABLE_ENTITY, "restock_type is invalid");
        }
        if restock != "no_restock" && l["location_id"].as_u64().is_none() {
            return shopify_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "location_id is required when restock_type is return or cancel",
            );
        }
        lines.push((id.to_string(), qty, restock.to_string()));
    }
    let mut st = lock(&state.shops);
    st.next += 1;
    let id = 9_000_000 + st.next;
    st.refunds.push(ShopRefundRecord {
        platform: "shopify".into(),
        shop,
        order_id: order.clone(),
        refund_id: id,
        reference: refund["note"].as_str().unwrap_or_default().to_string(),
        lines,
        shipping: refund["shipping"]["amount"]
            .as_str()
            .unwrap_or("0")
            .to_string(),
    });
    (
        StatusCode::CREATED,
        Json(json!({"refund": {"id": id, "order_id": order.parse::<u64>().unwrap_or(0),
                               "note": refund["note"], "refund_line_items": refund["refund_line_items"]}})),
    )
        .into_response()
}

fn adobe_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"message": message}))).into_response()
}

async fn adobe_refund(
    State(state): State<Arc<SimState>>,
    Path(order): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&headers, "authorization") {
        return adobe_error(
            StatusCode::UNAUTHORIZED,
            "The consumer isn't authorized to access %resources.",
        );
    }
    let Ok(order) = order.parse::<u64>() else {
        return adobe_error(StatusCode::BAD_REQUEST, "\"orderId\" is not valid");
    };
    let to_stock: Vec<u64> = body["arguments"]["extension_attributes"]["return_to_stock_items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    let mut lines = Vec::new();
    for i in body["items"].as_array().into_iter().flatten() {
        let (Some(id), Some(qty)) = (i["order_item_id"].as_u64(), i["qty"].as_u64()) else {
            return adobe_error(
                StatusCode::BAD_REQUEST,
                "The creditmemo contains an invalid item.",
            );
        };
        let restock = if to_stock.contains(&id) {
            "return_to_stock"
        } else {
            "no_restock"
        };
        lines.push((id.to_string(), qty, restock.to_string()));
    }
    let mut st = lock(&state.shops);
    st.next += 1;
    let id = st.next;
    st.refunds.push(ShopRefundRecord {
        platform: "adobe_commerce".into(),
        shop: String::new(),
        order_id: order.to_string(),
        refund_id: id,
        reference: body["comment"]["comment"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        lines,
        shipping: body["arguments"]["shipping_amount"].to_string(),
    });
    Json(json!(id)).into_response()
}

async fn adobe_search(
    State(state): State<Arc<SimState>>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers, "authorization") {
        return adobe_error(
            StatusCode::UNAUTHORIZED,
            "The consumer isn't authorized to access %resources.",
        );
    }
    let f = "searchCriteria[filter_groups][0][filters][0]";
    if q.get(&format!("{f}[field]")).map(String::as_str) != Some("order_id") {
        return adobe_error(
            StatusCode::BAD_REQUEST,
            "only an order_id filter is simulated",
        );
    }
    let order = q.get(&format!("{f}[value]")).cloned().unwrap_or_default();
    let st = lock(&state.shops);
    let items: Vec<Value> = st
        .refunds
        .iter()
        .filter(|r| r.platform == "adobe_commerce" && r.order_id == order)
        .map(|r| {
            json!({"entity_id": r.refund_id, "order_id": order.parse::<u64>().unwrap_or(0),
                         "comments": [{"comment": r.reference, "is_visible_on_front": 0}]})
        })
        .collect();
    Json(json!({"items": items, "total_count": items.len()})).into_response()
}
