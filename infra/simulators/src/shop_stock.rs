//! The shops' stock endpoints, for levels retailflow pushes after the
//! catalog sync:
//! - Shopify GraphQL Admin `productVariants(query: "sku:'…'")` (only that
//!   query: the simulator does not run GraphQL) and REST
//!   `POST inventory_levels/set.json` (`location_id`, `inventory_item_id`,
//!   `available`; 422 for an item the shop does not have);
//! - Adobe Commerce MSI `POST /V1/inventory/source-items`
//!   (`sourceItems[]` of `sku`, `source_code`, `quantity`, `status`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::{lock, SimState};

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ShopStockState {
    /// (shop, SKU) → inventory item id.
    #[serde(with = "retailflow_core::serde_pairs")]
    pub variants: BTreeMap<(String, String), u64>,
    /// (shop, inventory item id, location id) → available.
    #[serde(with = "retailflow_core::serde_pairs")]
    pub shopify_levels: BTreeMap<(String, u64, u64), i64>,
    /// (SKU, source) → (quantity, status).
    #[serde(with = "retailflow_core::serde_pairs")]
    pub adobe_source_items: BTreeMap<(String, String), (i64, i64)>,
}

pub(crate) fn shopify_router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/{shop}/admin/api/{version}/graphql.json", post(graphql))
        .route(
            "/{shop}/admin/api/{version}/inventory_levels/set.json",
            post(set_level),
        )
}

pub(crate) fn adobe_router() -> Router<Arc<SimState>> {
    Router::new().route("/rest/V1/inventory/source-items", post(source_items))
}

fn token_ok(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty())
}

/// The SKU inside `sku:'…'` (quotes escaped with a backslash).
fn searched_sku(q: &str) -> Option<String> {
    let rest = q.trim().strip_prefix("sku:'")?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

async fn graphql(
    State(state): State<Arc<SimState>>,
    Path((shop, _v)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !token_ok(&headers, "x-shopify-access-token") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errors": "[API] Invalid API key or access token"})),
        )
            .into_response();
    }
    let query = body["query"].as_str().unwrap_or("");
    let Some(sku) = body["variables"]["q"]
        .as_str()
        .and_then(searched_sku)
        .filter(|_| query.contains("productVariants"))
    else {
        return Json(json!({"errors": [{"message": "the simulator answers productVariants(query: \"sku:'…'\") only"}]}))
            .into_response();
    };
    let st = lock(&state.shop_stock);
    let nodes: Vec<Value> = st
        .variants
        .get(&(shop, sku.clone()))
        .map(|id| json!({"sku": sku, "inventoryItem": {"legacyResourceId": id.to_string()}}))
        .into_iter()
        .collect();
    Json(json!({"data": {"productVariants": {"nodes": nodes}}})).into_response()
}

async fn set_level(
    State(state): State<Arc<SimState>>,
    Path((shop, _v)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !token_ok(&headers, "x-shopify-access-token") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errors": "[API] Invalid API key or access token"})),
        )
            .into_response();
    }
    let (Some(location), Some(item), Some(available)) = (
        body["location_id"].as_u64(),
        body["inventory_item_id"].as_u64(),
        body["available"].as_i64(),
    ) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"errors": {"base": ["location_id, inventory_item_id and available are required"]}})),
        )
            .into_response();
    };
    let mut st = lock(&state.shop_stock);
    if !st
        .variants
        .iter()
        .any(|((s, _), id)| *s == shop && *id == item)
    {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"errors": {"inventory_item_id": ["Inventory item does not exist"]}})),
        )
            .into_response();
    }
    st.shopify_levels.insert((shop, item, location), available);
    Json(json!({"inventory_level": {"inventory_item_id": item, "location_id": location, "available": available}}))
        .into_response()
}

async fn source_items(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !token_ok(&headers, "authorization") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "The consumer isn't authorized to access %resources."})),
        )
            .into_response();
    }
    let mut parsed = Vec::new();
    for item in body["sourceItems"].as_array().into_iter().flatten() {
        match (
            item["sku"].as_str(),
            item["source_code"].as_str(),
            item["quantity"].as_i64(),
            item["status"].as_i64(),
        ) {
            (Some(sku), Some(source), Some(q), Some(status)) => {
                parsed.push(((sku.to_string(), source.to_string()), (q, status)))
            }
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"message": "Invalid source item: sku, source_code, quantity and status are required."})),
                )
                    .into_response()
            }
        }
    }
    lock(&state.shop_stock).adobe_source_items.extend(parsed);
    Json(json!([])).into_response()
}
