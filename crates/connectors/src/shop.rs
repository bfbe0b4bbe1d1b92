//! The shops as [`EcommerceConnector`]s: till returns recorded on the online
//! order so it shows as returned.
//!
//! - Shopify Admin REST: `POST /admin/api/{version}/orders/{id}/refunds.json`
//!   with the returned line items and their restock type; retailflow's
//!   reference goes in the refund `note`, and `GET .../refunds.json` finds it
//!   again after a lost answer. No transaction is sent: the money went back
//!   at the till.
//! - Adobe Commerce REST: `POST /V1/order/{id}/refund` (an offline credit
//!   memo) with the reference as its comment; `GET /V1/creditmemos` filtered
//!   by order finds it again.
//!
//! Stock levels go out through `shop_stock` (Shopify `inventory_levels/set`,
//! Adobe Commerce source items).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::wire::{call_json, http_client, Reply};
use super::Auth;
use retailflow_core::model::RestockType;
use retailflow_core::ports::shop::{
    till_return_reference, EcommerceConnector, ShopFulfillment, ShopRefund, StockLevel, StockPush,
    TILL_RETURN_NOTE_PREFIX,
};
use retailflow_core::resilience::ConnectorError;

fn classify_with(system: &'static str, reply: &Reply) -> ConnectorError {
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
    let text = body
        .get("errors")
        .or(body.get("message"))
        .map(|e| e.to_string())
        .unwrap_or_else(|| reply.body.clone());
    ConnectorError::from_status(system, reply.status, reply.retry_after(), &text)
}

pub(super) fn numeric(system: &'static str, what: &str, id: &str) -> Result<u64, ConnectorError> {
    id.parse().map_err(|_| ConnectorError::Rejected {
        system,
        status: 0,
        reason: format!("{what} {id} is not a numeric platform id"),
    })
}

pub(super) const SHOPIFY: &str = "shopify-admin";

fn till_return_note(r: &ShopRefund) -> String {
    format!("{TILL_RETURN_NOTE_PREFIX}{}", r.reference)
}

#[derive(Debug, Clone)]
pub struct ShopifyAdminConfig {
    /// `https://{shop}` when `None`; the simulator's base otherwise, with
    /// `{shop}` replaced by the shop domain.
    pub base_url: Option<String>,
    /// e.g. `2024-10`
    pub api_version: String,
    /// Each shop's offline Admin API token, read from the live secret.
    pub tokens: super::auth::ShopifyTokens,
    /// retailflow location (store id) → Shopify location id, for restocking.
    pub locations: BTreeMap<String, String>,
    /// Where stock returned at an unmapped store is restocked.
    pub default_location: Option<String>,
    pub timeout: Duration,
}

pub struct ShopifyAdmin {
    pub(super) client: reqwest::Client,
    pub(super) config: ShopifyAdminConfig,
    /// Inventory item id per (shop, SKU), looked up once per environment.
    pub(super) inventory_items: std::sync::Mutex<BTreeMap<(String, String), u64>>,
}

impl ShopifyAdmin {
    pub fn new(config: ShopifyAdminConfig) -> Self {
        ShopifyAdmin {
            client: http_client(config.timeout),
            config,
            inventory_items: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// How to authorize calls to `shop`: refused at once (dead-lettered
    /// with the reason) when the secret holds no token for it, since no
    /// retry can make one appear.
    pub(super) async fn token(&self, shop: &str) -> Result<Auth, ConnectorError> {
        if !self.config.tokens.has(shop).await? {
            return Err(ConnectorError::Rejected {
                system: SHOPIFY,
                status: 0,
                reason: format!("no Admin API token for {shop} in the connector secret"),
            });
        }
        Ok(self.config.tokens.for_shop(shop))
    }

    async fn refunds_url(&self, r: &ShopRefund) -> Result<(String, Auth), ConnectorError> {
        let shop = &r.order.shop;
        let token = self.token(shop).await?;
        let base = match &self.config.base_url {
            Some(b) => b.replace("{shop}", shop),
            None => format!("https://{shop}"),
        };
        let order = numeric(SHOPIFY, "order", &r.order.order_id)?;
        Ok((
            format!(
                "{}/admin/api/{}/orders/{order}/refunds.json",
                base.trim_end_matches('/'),
                self.config.api_version
            ),
            token,
        ))
    }

    fn location(&self, id: Option<&str>) -> Option<u64> {
        let mapped = id.and_then(|id| {
            self.config
                .locations
                .get(id)
                .map(String::as_str)
                .unwrap_or(id)
                .parse()
                .ok()
        });
        mapped.or_else(|| self.config.default_location.as_deref()?.parse().ok())
    }
}

pub(super) fn shopify_classify(reply: &Reply) -> ConnectorError {
    classify_with(SHOPIFY, reply)
}

#[async_trait]
impl EcommerceConnector for ShopifyAdmin {
    fn system(&self) -> &'static str {
        SHOPIFY
    }

    async fn find_refund(&self, r: &ShopRefund) -> Result<Option<String>, ConnectorError> {
        let (url, auth) = self.refunds_url(r).await?;
        let v = call_json(SHOPIFY, &auth, self.client.get(url), shopify_classify).await?;
        Ok(v["refunds"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["note"].as_str() == Some(till_return_note(r).as_str()))
            .map(|x| x["id"].to_string()))
    }

    async fn push_stock(&self, levels: &[StockLevel]) -> Result<StockPush, ConnectorError> {
        self.push_stock_levels(levels).await
    }

    async fn record_fulfillment(&self, f: &ShopFulfillment) -> Result<String, ConnectorError> {
        self.fulfill(f).await
    }

    async fn record_refund(&self, r: &ShopRefund) -> Result<String, ConnectorError> {
        let (url, auth) = self.refunds_url(r).await?;
        let mut lines = Vec::new();
        for l in &r.lines {
            let (restock_type, location) = match l.restock {
                RestockType::Return => ("return", self.location(l.location_id.as_deref())),
                RestockType::Cancel => ("cancel", self.location(l.location_id.as_deref())),
                RestockType::NoRestock | RestockType::Damaged => ("no_restock", None),
            };
            if restock_type != "no_restock" && location.is_none() {
                return Err(ConnectorError::Rejected {
                    system: SHOPIFY,
                    status: 0,
                    reason: format!(
                        "no Shopify location for {:?}: map the store in the connector's locations",
                        l.location_id
                    ),
                });
            }
            let mut line = json!({
                "line_item_id": numeric(SHOPIFY, "line item", &l.line_id)?,
                "quantity": l.quantity,
                "restock_type": restock_type,
            });
            if let Some(loc) = location {
                line["location_id"] = json!(loc);
            }
            lines.push(line);
        }
        let body = json!({"refund": {
            "note": till_return_note(r),
            "notify": false,
            "shipping": {"amount": r.shipping.to_decimal_string()},
            "refund_line_items": lines,
            "transactions": [],
        }});
        let req = self.client.post(url).json(&body);
        let v = call_json(SHOPIFY, &auth, req, shopify_classify).await?;
        match &v["refund"]["id"] {
            serde_json::Value::Number(n) => Ok(n.to_string()),
            _ => Err(ConnectorError::BadResponse {
                system: SHOPIFY,
                reason: "refund created without an id".into(),
            }),
        }
    }
}

pub(super) const ADOBE: &str = "adobe-commerce-admin";

#[derive(Debug, Clone)]
pub struct AdobeCommerceAdminConfig {
    /// `https://{store}/rest/{store_code}` (or `/rest/V1`'s parent).
    pub base_url: String,
    /// The integration's OAuth 1.0a signature ([`super::auth::AdobeAuth`]).
    pub auth: Auth,
    pub timeout: Duration,
}

pub struct AdobeCommerceAdmin {
    pub(super) client: reqwest::Client,
    pub(super) config: AdobeCommerceAdminConfig,
}

impl AdobeCommerceAdmin {
    pub fn new(config: AdobeCommerceAdminConfig) -> Self {
        AdobeCommerceAdmin {
            client: http_client(config.timeout),
            config,
        }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}/V1/{path}", self.config.base_url.trim_end_matches('/'))
    }
}

pub(super) fn adobe_classify(reply: &Reply) -> ConnectorError {
    classify_with(ADOBE, reply)
}

#[async_trait]
impl EcommerceConnector for AdobeCommerceAdmin {
    fn system(&self) -> &'static str {
        ADOBE
    }

    async fn push_stock(&self, levels: &[StockLevel]) -> Result<StockPush, ConnectorError> {
        self.push_source_items(levels).await
    }

    async fn record_fulfillment(&self, f: &ShopFulfillment) -> Result<String, ConnectorError> {
        self.ship(f).await
    }

    async fn find_refund(&self, r: &ShopRefund) -> Result<Option<String>, ConnectorError> {
        let order = numeric(ADOBE, "order", &r.order.order_id)?;
        let f = "searchCriteria[filter_groups][0][filters][0]";
        let req = self.client.get(self.url("creditmemos")).query(&[
            (format!("{f}[field]"), "order_id".to_string()),
            (format!("{f}[value]"), order.to_string()),
            (format!("{f}[condition_type]"), "eq".to_string()),
        ]);
        let v = call_json(ADOBE, &self.config.auth, req, adobe_classify).await?;
        let found = v["items"].as_array().into_iter().flatten().find(|m| {
            m["comments"].as_array().into_iter().flatten().any(|c| {
                // Recorded with the echo prefix, or bare by earlier builds.
                let text = c["comment"].as_str().unwrap_or_default();
                till_return_reference(text) == Some(r.reference.as_str())
            })
        });
        // The REST API sends ids as numbers; a string is taken as is, so the
        // id matches the one the credit memo event carries. A memo found
        // without an id is an error, never "not found": that would refund twice.
        match found.map(|m| &m["entity_id"]) {
            None => Ok(None),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(ConnectorError::BadResponse {
                system: ADOBE,
                reason: "a credit memo with retailflow's reference has no entity_id".into(),
            }),
        }
    }

    async fn record_refund(&self, r: &ShopRefund) -> Result<String, ConnectorError> {
        let order = numeric(ADOBE, "order", &r.order.order_id)?;
        let mut items = Vec::new();
        let mut to_stock = Vec::new();
        for l in &r.lines {
            let id = numeric(ADOBE, "order item", &l.line_id)?;
            items.push(json!({"order_item_id": id, "qty": l.quantity}));
            if matches!(l.restock, RestockType::Return | RestockType::Cancel) {
                to_stock.push(id);
            }
        }
        let body = json!({
            "items": items,
            "notify": false,
            "appendComment": true,
            // The prefix tells the credit memo event that announces this
            // memo back to retailflow that it is a till return's echo.
            "comment": {
                "comment": format!("{TILL_RETURN_NOTE_PREFIX}{}", r.reference),
                "is_visible_on_front": 0
            },
            "arguments": {
                "shipping_amount": serde_json::value::RawValue::from_string(r.shipping.to_decimal_string()).ok(),
                "adjustment_positive": 0,
                "adjustment_negative": 0,
                "extension_attributes": {"return_to_stock_items": to_stock},
            },
        });
        let req = self
            .client
            .post(self.url(&format!("order/{order}/refund")))
            .json(&body);
        let v = call_json(ADOBE, &self.config.auth, req, adobe_classify).await?;
        match v {
            serde_json::Value::Number(n) => Ok(n.to_string()),
            serde_json::Value::String(s) if !s.is_empty() => Ok(s),
            _ => Err(ConnectorError::BadResponse {
                system: ADOBE,
                reason: "refund answered without a credit memo id".into(),
            }),
        }
    }
}
