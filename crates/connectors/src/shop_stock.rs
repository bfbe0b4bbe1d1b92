//! Stock levels out to the shops, after the catalog sync:
//!
//! - Shopify Admin: the SKU's inventory item is found once per shop with the
//!   GraphQL Admin API (`productVariants(query: "sku:…")`), then
//!   `POST /admin/api/{version}/inventory_levels/set.json` sets `available`
//!   at the configured default location, for every shop with a token.
//! - Adobe Commerce (MSI): `POST /V1/inventory/source-items` with the
//!   `default` source, one request per page of levels; `status` is in stock
//!   when the quantity is above zero.
//!
//! Levels are absolute: a repeat sets the same figure. A shop that sells
//! between retailflow's count and the push shows the pushed figure until
//! its own order reaches retailflow and the next sync pushes again.

use serde_json::json;

use super::shop::{
    adobe_classify, shopify_classify, AdobeCommerceAdmin, ShopifyAdmin, ADOBE, SHOPIFY,
};
use super::wire::call_json;
use super::Auth;
use retailflow_core::ports::shop::{StockLevel, StockPush};
use retailflow_core::resilience::ConnectorError;

/// The Adobe Commerce source retailflow's counts are for.
pub const ADOBE_SOURCE: &str = "default";

/// A SKU inside a Shopify search query string (`sku:'…'`).
fn sku_query(sku: &str) -> String {
    format!("sku:'{}'", sku.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl ShopifyAdmin {
    pub(super) fn base(&self, shop: &str) -> String {
        let base = match &self.config.base_url {
            Some(b) => b.replace("{shop}", shop),
            None => format!("https://{shop}"),
        };
        format!(
            "{}/admin/api/{}",
            base.trim_end_matches('/'),
            self.config.api_version
        )
    }

    /// The shop's inventory item for `sku`, cached; `None` when the shop
    /// has no variant with that SKU.
    async fn inventory_item(
        &self,
        shop: &str,
        auth: &Auth,
        sku: &str,
    ) -> Result<Option<u64>, ConnectorError> {
        let key = (shop.to_string(), sku.to_string());
        // Plain data behind the lock: a poisoned lock still holds it.
        if let Some(id) = self
            .inventory_items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(Some(*id));
        }
        let query = "query($q: String!) { productVariants(first: 10, query: $q) { nodes { sku inventoryItem { legacyResourceId } } } }";
        let req = self
            .client
            .post(format!("{}/graphql.json", self.base(shop)))
            .json(&json!({"query": query, "variables": {"q": sku_query(sku)}}));
        let v = call_json(SHOPIFY, auth, req, shopify_classify).await?;
        if let Some(errors) = v["errors"].as_array().filter(|e| !e.is_empty()) {
            return Err(ConnectorError::BadResponse {
                system: SHOPIFY,
                reason: format!(
                    "GraphQL errors: {}",
                    serde_json::Value::from(errors.clone())
                ),
            });
        }
        // The search matches by prefix on some shops: take the exact SKU.
        let id = v["data"]["productVariants"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["sku"].as_str() == Some(sku))
            .find_map(|n| {
                let raw = &n["inventoryItem"]["legacyResourceId"];
                raw.as_str()
                    .and_then(|s| s.parse().ok())
                    .or_else(|| raw.as_u64())
            });
        if let Some(id) = id {
            self.inventory_items
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, id);
        }
        Ok(id)
    }

    pub(super) async fn push_stock_levels(
        &self,
        levels: &[StockLevel],
    ) -> Result<StockPush, ConnectorError> {
        let mut push = StockPush::default();
        if levels.is_empty() {
            return Ok(push);
        }
        // No location configured: Shopify stock is not managed here.
        let Some(location) = self
            .config
            .default_location
            .as_deref()
            .and_then(|l| l.parse::<u64>().ok())
        else {
            return Ok(push);
        };
        for shop in self.config.tokens.shops().await? {
            let shop = shop.as_str();
            let auth = self.config.tokens.for_shop(shop);
            for level in levels {
                let Some(item) = self.inventory_item(shop, &auth, &level.sku).await? else {
                    push.unknown_skus.push(level.sku.clone());
                    continue;
                };
                let req = self
                    .client
                    .post(format!("{}/inventory_levels/set.json", self.base(shop)))
                    .json(&json!({
                        "location_id": location,
                        "inventory_item_id": item,
                        "available": level.available,
                    }));
                call_json(SHOPIFY, &auth, req, shopify_classify).await?;
                push.set += 1;
            }
        }
        Ok(push)
    }
}

impl AdobeCommerceAdmin {
    pub(super) async fn push_source_items(
        &self,
        levels: &[StockLevel],
    ) -> Result<StockPush, ConnectorError> {
        if levels.is_empty() {
            return Ok(StockPush::default());
        }
        let items: Vec<serde_json::Value> = levels
            .iter()
            .map(|l| {
                json!({
                    "sku": l.sku,
                    "source_code": ADOBE_SOURCE,
                    "quantity": l.available,
                    "status": i32::from(l.available > 0),
                })
            })
            .collect();
        let req = self
            .client
            .post(self.url("inventory/source-items"))
            .json(&json!({ "sourceItems": items }));
        call_json(ADOBE, &self.config.auth, req, adobe_classify).await?;
        Ok(StockPush {
            set: levels.len(),
            unknown_skus: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::sku_query;

    #[test]
    fn a_sku_is_quoted_inside_the_shopify_search() {
        assert_eq!(sku_query("MCS-CHR-M"), "sku:'MCS-CHR-M'");
        assert_eq!(sku_query("O'NEILL"), "sku:'O\\'NEILL'");
    }
}
