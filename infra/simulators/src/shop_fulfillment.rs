//! The shops' shipment endpoints, for shipments retailflow records:
//! - Shopify: `GET orders/{id}.json` (line items with SKUs), `GET
//!   orders/{id}/fulfillment_orders.json` (one open fulfillment order per
//!   order), `GET orders/{id}/fulfillments.json`, `POST fulfillments.json`
//!   (`line_items_by_fulfillment_order`, `tracking_info`; 422 beyond what is
//!   left to fulfil). Like Shopify, a double POST is two fulfillments.
//! - Adobe Commerce: `GET V1/orders/{id}` (items), `GET V1/shipments`
//!   filtered by `order_id`, `POST V1/order/{id}/ship` (answers the
//!   shipment id as a JSON string).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::{lock, SimState};

/// A shipment a shop recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShopShipmentRecord {
    pub id: u64,
    pub order_id: u64,
    pub tracking_numbers: Vec<String>,
    pub carrier: Option<String>,
    /// (line item / order item id, units)
    pub lines: Vec<(u64, u64)>,
}

/// An order line a shop can ship: (line or item id, SKU, ordered, shipped).
pub(crate) type ShippableLine = (u64, String, u64, u64);

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ShopFulfillmentState {
    /// (shop, order) → its line items
    #[serde(with = "retailflow_core::serde_pairs")]
    pub shopify_orders: BTreeMap<(String, u64), Vec<ShippableLine>>,
    #[serde(with = "retailflow_core::serde_pairs")]
    pub shopify_fulfillments: BTreeMap<(String, u64), Vec<ShopShipmentRecord>>,
    /// order → its items
    pub adobe_orders: BTreeMap<u64, Vec<ShippableLine>>,
    pub adobe_shipments: BTreeMap<u64, Vec<ShopShipmentRecord>>,
    next: u64,
}

pub(crate) fn shopify_router() -> Router<Arc<SimState>> {
    Router::new()
        .route(
            "/{shop}/admin/api/{version}/orders/{order}",
            get(shopify_order),
        )
        .route(
            "/{shop}/admin/api/{version}/orders/{order}/fulfillment_orders.json",
            get(shopify_fulfillment_orders),
        )
        .route(
            "/{shop}/admin/api/{version}/orders/{order}/fulfillments.json",
            get(shopify_fulfillments),
        )
        .route(
            "/{shop}/admin/api/{version}/fulfillments.json",
            post(shopify_fulfill),
        )
}

pub(crate) fn adobe_router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/rest/V1/orders/{order}", get(adobe_order))
        .route("/rest/V1/shipments", get(adobe_shipments))
        .route("/rest/V1/order/{order}/ship", post(adobe_ship))
}

fn status(code: StatusCode, body: Value) -> Response {
    (code, Json(body)).into_response()
}

fn has(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty())
}

async fn shopify_order(
    State(state): State<Arc<SimState>>,
    Path((shop, _v, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !has(&headers, "x-shopify-access-token") {
        return status(
            StatusCode::UNAUTHORIZED,
            json!({"errors": "[API] Invalid API key or access token"}),
        );
    }
    let Some(order) = file
        .strip_suffix(".json")
        .and_then(|o| o.parse::<u64>().ok())
    else {
        return status(StatusCode::NOT_FOUND, json!({"errors": "Not Found"}));
    };
    let st = lock(&state.shop_fulfillment);
    let Some(lines) = st.shopify_orders.get(&(shop, order)) else {
        return status(StatusCode::NOT_FOUND, json!({"errors": "Not Found"}));
    };
    let items: Vec<Value> = lines
        .iter()
        .map(|(id, sku, q, _)| json!({"id": id, "sku": sku, "quantity": q}))
        .collect();
    Json(json!({"order": {"id": order, "line_items": items}})).into_response()
}

async fn shopify_fulfillment_orders(
    State(state): State<Arc<SimState>>,
    Path((shop, _v, order)): Path<(String, String, u64)>,
) -> Response {
    let st = lock(&state.shop_fulfillment);
    let Some(lines) = st.shopify_orders.get(&(shop, order)) else {
        return status(StatusCode::NOT_FOUND, json!({"errors": "Not Found"}));
    };
    let left: u64 = lines.iter().map(|l| l.2 - l.3).sum();
    let items: Vec<Value> = lines
        .iter()
        .map(|(id, _, q, done)| {
            json!({"id": id * 10, "line_item_id": id, "quantity": q, "fulfillable_quantity": q - done})
        })
        .collect();
    Json(json!({"fulfillment_orders": [{
        "id": order * 10 + 1,
        "order_id": order,
        "status": if left == 0 { "closed" } else { "open" },
        "line_items": items,
    }]}))
    .into_response()
}

async fn shopify_fulfillments(
    State(state): State<Arc<SimState>>,
    Path((shop, _v, order)): Path<(String, String, u64)>,
) -> Response {
    let st = lock(&state.shop_fulfillment);
    let list: Vec<Value> = st
        .shopify_fulfillments
        .get(&(shop, order))
        .into_iter()
        .flatten()
        .map(|f| {
            json!({"id": f.id, "order_id": f.order_id, "tracking_numbers": f.tracking_numbers,
                        "tracking_company": f.carrier})
        })
        .collect();
    Json(json!({ "fulfillments": list })).into_response()
}

async fn shopify_fulfill(
    State(state): State<Arc<SimState>>,
    Path((shop, _v)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !has(&headers, "x-shopify-access-token") {
        return status(
            StatusCode::UNAUTHORIZED,
            json!({"errors": "[API] Invalid API key or access token"}),
        );
    }
    let f = &body["fulfillment"];
    let mut st = lock(&state.shop_fulfillment);
    let mut taken: Vec<(u64, u64, u64)> = Vec::new(); // (order, line item, units)
    for group in f["line_items_by_fulfillment_order"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(fo) = group["fulfillment_order_id"].as_u64() else {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"errors": ["fulfillment_order_id is required"]}),
            );
        };
        let order = fo / 10;
        for l in group["fulfillment_order_line_items"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(q)) = (l["id"].as_u64(), l["quantity"].as_u64()) else {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"errors": ["line items need id and quantity"]}),
                );
            };
            taken.push((order, id / 10, q));
        }
    }
    let Some(order) = taken.first().map(|t| t.0) else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"errors": ["no line items"]}),
        );
    };
    let Some(lines) = st.shopify_orders.get_mut(&(shop.clone(), order)) else {
        return status(StatusCode::NOT_FOUND, json!({"errors": "Not Found"}));
    };
    for (_, li, q) in &taken {
        match lines.iter().find(|l| l.0 == *li) {
            Some(l) if l.2 - l.3 >= *q => {}
            _ => {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"errors": ["Invalid fulfillment order line item quantity requested."]}),
                )
            }
        }
    }
    for (_, li, q) in &taken {
        if let Some(l) = lines.iter_mut().find(|l| l.0 == *li) {
            l.3 += q;
        }
    }
    st.next += 1;
    let id = 880_000 + st.next;
    let tracking: Vec<String> = f["tracking_info"]["number"]
        .as_str()
        .map(str::to_string)
        .into_iter()
        .collect();
    st.shopify_fulfillments
        .entry((shop, order))
        .or_default()
        .push(ShopShipmentRecord {
            id,
            order_id: order,
            tracking_numbers: tracking.clone(),
            carrier: f["tracking_info"]["company"].as_str().map(str::to_string),
            lines: taken.iter().map(|t| (t.1, t.2)).collect(),
        });
    status(
        StatusCode::CREATED,
        json!({"fulfillment": {"id": id, "order_id": order, "tracking_numbers": tracking}}),
    )
}

async fn adobe_order(State(state): State<Arc<SimState>>, Path(order): Path<u64>) -> Response {
    let st = lock(&state.shop_fulfillment);
    let Some(items) = st.adobe_orders.get(&order) else {
        return status(
            StatusCode::NOT_FOUND,
            json!({"message": "The entity that was requested doesn't exist. Verify the entity and try again."}),
        );
    };
    let items: Vec<Value> = items
        .iter()
        .map(|(id, sku, q, shipped)| json!({"item_id": id, "sku": sku, "qty_ordered": *q as f64, "qty_shipped": *shipped as f64}))
        .collect();
    Json(json!({"entity_id": order, "items": items})).into_response()
}

async fn adobe_shipments(
    State(state): State<Arc<SimState>>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let order: Option<u64> = params
        .get("searchCriteria[filter_groups][0][filters][0][value]")
        .and_then(|v| v.parse().ok());
    let st = lock(&state.shop_fulfillment);
    let items: Vec<Value> = order
        .and_then(|o| st.adobe_shipments.get(&o))
        .into_iter()
        .flatten()
        .map(|s| {
            let tracks: Vec<Value> = s
                .tracking_numbers
                .iter()
                .map(|t| json!({"track_number": t}))
                .collect();
            json!({"entity_id": s.id, "order_id": s.order_id, "tracks": tracks})
        })
        .collect();
    Json(json!({"items": items, "total_count": items.len()})).into_response()
}

async fn adobe_ship(
    State(state): State<Arc<SimState>>,
    Path(order): Path<u64>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !has(&headers, "authorization") {
        return status(
            StatusCode::UNAUTHORIZED,
            json!({"message": "The consumer isn't authorized to access %resources."}),
        );
    }
    let mut st = lock(&state.shop_fulfillment);
    let Some(items) = st.adobe_orders.get_mut(&order) else {
        return status(
            StatusCode::NOT_FOUND,
            json!({"message": "The entity that was requested doesn't exist. Verify the entity and try again."}),
        );
    };
    let mut taken = Vec::new();
    for l in body["items"].as_array().into_iter().flatten() {
        let (Some(id), Some(q)) = (l["order_item_id"].as_u64(), l["qty"].as_u64()) else {
            return status(
                StatusCode::BAD_REQUEST,
                json!({"message": "order_item_id and qty are required"}),
            );
        };
        match items.iter().find(|i| i.0 == id) {
            Some(i) if i.2 - i.3 >= q => taken.push((id, q)),
            _ => {
                return status(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "Shipment Document Validation Error(s):\nThe order does not allow a shipment to be created."}),
                )
            }
        }
    }
    for (id, q) in &taken {
        if let Some(i) = items.iter_mut().find(|i| i.0 == *id) {
            i.3 += q;
        }
    }
    st.next += 1;
    let id = 770_000 + st.next;
    let tracks: Vec<String> = body["tracks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["track_number"].as_str().map(str::to_string))
        .collect();
    st.adobe_shipments
        .entry(order)
        .or_default()
        .push(ShopShipmentRecord {
            id,
            order_id: order,
            tracking_numbers: tracks,
            carrier: None,
            lines: taken,
        });
    Json(json!(id.to_string())).into_response()
}
