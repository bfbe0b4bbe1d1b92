//! Shipments recorded on the shop order, so the customer gets tracking:
//!
//! - Shopify Admin REST (fulfillment orders): the order's fulfillments are
//!   read first (`GET orders/{id}/fulfillments.json`); one carrying a
//!   tracking number of this shipment is the one. Otherwise the shipped
//!   SKUs are matched to the order's line items (`GET orders/{id}.json`),
//!   those to open fulfillment order lines with units left
//!   (`GET orders/{id}/fulfillment_orders.json`), and
//!   `POST fulfillments.json` records them with `tracking_info`.
//! - Adobe Commerce REST: `GET V1/shipments` filtered by order finds a
//!   shipment with the tracking number; otherwise the SKUs are matched to
//!   the order's items (`GET V1/orders/{id}`, parents of configurables) and
//!   `POST V1/order/{id}/ship` records them with `tracks`.
//!
//! A shipment without a tracking number cannot be found again this way: the
//! fulfillment step's claim keeps it from being sent twice.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::shop::{
    adobe_classify, numeric, shopify_classify, AdobeCommerceAdmin, ShopifyAdmin, ADOBE, SHOPIFY,
};
use super::wire::call_json;
use retailflow_core::ports::shop::ShopFulfillment;
use retailflow_core::resilience::ConnectorError;

fn refused(system: &'static str, reason: String) -> ConnectorError {
    ConnectorError::Rejected {
        system,
        status: 0,
        reason,
    }
}

/// A shipment without tracking cannot be found again: when its POST may
/// have landed (no answer, a 5xx), retrying could record it twice, so it is
/// refused for someone to check instead.
fn unknown_outcome(system: &'static str, f: &ShopFulfillment, e: ConnectorError) -> ConnectorError {
    match e {
        ConnectorError::Unavailable { reason, .. } if f.tracking_numbers.is_empty() => refused(
            system,
            format!(
                "shipment {} has no tracking number and the shop's answer was lost ({reason}): \
                 check the order before recording it again",
                f.shipment_ref
            ),
        ),
        other => other,
    }
}

fn carries_tracking(numbers: &Value, f: &ShopFulfillment) -> bool {
    numbers
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|n| f.tracking_numbers.iter().any(|t| t == n))
}

impl ShopifyAdmin {
    pub(super) async fn fulfill(&self, f: &ShopFulfillment) -> Result<String, ConnectorError> {
        let shop = &f.order.shop;
        let auth = self.token(shop).await?;
        let order = numeric(SHOPIFY, "order", &f.order.order_id)?;
        let base = self.base(shop);
        let get = |path: String| self.client.get(format!("{base}/{path}"));
        if !f.tracking_numbers.is_empty() {
            let done = call_json(
                SHOPIFY,
                &auth,
                get(format!("orders/{order}/fulfillments.json")),
                shopify_classify,
            )
            .await?;
            if let Some(found) = done["fulfillments"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| carries_tracking(&x["tracking_numbers"], f))
            {
                return Ok(found["id"].to_string());
            }
        }
        let o = call_json(
            SHOPIFY,
            &auth,
            get(format!("orders/{order}.json?fields=id,line_items")),
            shopify_classify,
        )
        .await?;
        // SKU → the order's line item ids.
        let mut by_sku: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for li in o["order"]["line_items"].as_array().into_iter().flatten() {
            if let (Some(sku), Some(id)) = (li["sku"].as_str(), li["id"].as_u64()) {
                by_sku.entry(sku.to_string()).or_default().push(id);
            }
        }
        let fos = call_json(
            SHOPIFY,
            &auth,
            get(format!("orders/{order}/fulfillment_orders.json")),
            shopify_classify,
        )
        .await?;
        // (fulfillment order id, its line id, line item id, units left)
        let mut open: Vec<(u64, u64, u64, u64)> = Vec::new();
        for fo in fos["fulfillment_orders"].as_array().into_iter().flatten() {
            let status = fo["status"].as_str().unwrap_or("");
            if !matches!(status, "open" | "in_progress") {
                continue;
            }
            for l in fo["line_items"].as_array().into_iter().flatten() {
                if let (Some(fo_id), Some(id), Some(li), Some(left)) = (
                    fo["id"].as_u64(),
                    l["id"].as_u64(),
                    l["line_item_id"].as_u64(),
                    l["fulfillable_quantity"].as_u64(),
                ) {
                    open.push((fo_id, id, li, left));
                }
            }
        }
        let mut picks: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
        for (sku, units) in &f.lines {
            let mut need = u64::from(*units);
            let items = by_sku.get(sku).cloned().unwrap_or_default();
            for slot in open.iter_mut().filter(|s| items.contains(&s.2)) {
                let take = need.min(slot.3);
                if take > 0 {
                    picks
                        .entry(slot.0)
                        .or_default()
                        .push(json!({"id": slot.1, "quantity": take}));
                    slot.3 -= take;
                    need -= take;
                }
            }
            if need > 0 {
                return Err(refused(
                    SHOPIFY,
                    format!(
                        "shipment {}: {need} of {sku} have no open line left to fulfil on order {order}",
                        f.shipment_ref
                    ),
                ));
            }
        }
        let by_fo: Vec<Value> = picks
            .into_iter()
            .map(|(fo, lines)| json!({"fulfillment_order_id": fo, "fulfillment_order_line_items": lines}))
            .collect();
        let mut tracking = json!({});
        if let Some(n) = f.tracking_numbers.first() {
            tracking["number"] = json!(n);
        }
        if let Some(c) = &f.carrier {
            tracking["company"] = json!(c);
        }
        let req =
            self.client
                .post(format!("{base}/fulfillments.json"))
                .json(&json!({"fulfillment": {
                    "line_items_by_fulfillment_order": by_fo,
                    "tracking_info": tracking,
                    "notify_customer": f.notify_customer,
                }}));
        let v = call_json(SHOPIFY, &auth, req, shopify_classify)
            .await
            .map_err(|e| unknown_outcome(SHOPIFY, f, e))?;
        match &v["fulfillment"]["id"] {
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(ConnectorError::BadResponse {
                system: SHOPIFY,
                reason: "fulfillment created without an id".into(),
            }),
        }
    }
}

impl AdobeCommerceAdmin {
    pub(super) async fn ship(&self, f: &ShopFulfillment) -> Result<String, ConnectorError> {
        let order = numeric(ADOBE, "order", &f.order.order_id)?;
        let auth = &self.config.auth;
        if !f.tracking_numbers.is_empty() {
            let c = "searchCriteria[filter_groups][0][filters][0]";
            let req = self.client.get(self.url("shipments")).query(&[
                (format!("{c}[field]"), "order_id".to_string()),
                (format!("{c}[value]"), order.to_string()),
                (format!("{c}[condition_type]"), "eq".to_string()),
            ]);
            let v = call_json(ADOBE, auth, req, adobe_classify).await?;
            let found = v["items"].as_array().into_iter().flatten().find(|s| {
                s["tracks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t["track_number"].as_str())
                    .any(|n| f.tracking_numbers.iter().any(|t| t == n))
            });
            if let Some(s) = found {
                return Ok(s["entity_id"].to_string());
            }
        }
        let o = call_json(
            ADOBE,
            auth,
            self.client.get(self.url(&format!("orders/{order}"))),
            adobe_classify,
        )
        .await?;
        // Ship the item that carries the row: a configurable's parent (its
        // child has the same SKU and is skipped); a bundle's children (its
        // parent's SKU is not what the ERP ships).
        let all: Vec<&Value> = o["items"].as_array().into_iter().flatten().collect();
        let type_of = |id: u64| {
            all.iter()
                .find(|i| i["item_id"].as_u64() == Some(id))
                .and_then(|i| i["product_type"].as_str())
        };
        let mut items: Vec<(String, u64, u64)> = Vec::new();
        for it in &all {
            let parent = it["parent_item_id"].as_u64();
            if parent.is_some_and(|p| type_of(p) == Some("configurable")) {
                continue;
            }
            if it["product_type"].as_str() == Some("bundle") {
                continue;
            }
            let qty = |k: &str| it[k].as_f64().unwrap_or(0.0);
            let left =
                qty("qty_ordered") - qty("qty_shipped") - qty("qty_refunded") - qty("qty_canceled");
            if let (Some(sku), Some(id)) = (it["sku"].as_str(), it["item_id"].as_u64()) {
                // Whole units: Adobe writes quantities as decimals.
                items.push((sku.to_string(), id, left.max(0.0).floor() as u64));
            }
        }
        let mut lines = Vec::new();
        for (sku, units) in &f.lines {
            let mut need = u64::from(*units);
            for it in items.iter_mut().filter(|i| &i.0 == sku) {
                let take = need.min(it.2);
                if take > 0 {
                    lines.push(json!({"order_item_id": it.1, "qty": take}));
                    it.2 -= take;
                    need -= take;
                }
            }
            if need > 0 {
                return Err(refused(
                    ADOBE,
                    format!(
                        "shipment {}: {need} of {sku} have nothing left to ship on order {order}",
                        f.shipment_ref
                    ),
                ));
            }
        }
        let tracks: Vec<Value> = f
            .tracking_numbers
            .iter()
            .map(|n| {
                json!({
                    "track_number": n,
                    "title": f.carrier.clone().unwrap_or_else(|| "Carrier".into()),
                    "carrier_code": "custom",
                })
            })
            .collect();
        let req = self
            .client
            .post(self.url(&format!("order/{order}/ship")))
            .json(&json!({"items": lines, "notify": f.notify_customer, "tracks": tracks}));
        let v = call_json(ADOBE, auth, req, adobe_classify)
            .await
            .map_err(|e| unknown_outcome(ADOBE, f, e))?;
        match v {
            Value::Number(n) => Ok(n.to_string()),
            Value::String(s) if !s.is_empty() => Ok(s),
            other => Err(ConnectorError::BadResponse {
                system: ADOBE,
                reason: format!("ship answered {other}, not a shipment id"),
            }),
        }
    }
}
