//! [`Catalog`] on the state table: what checkout reads per cart in one or
//! two BatchGetItem requests.
//!
//! Items: `PRICE#<sku>` (`price` as minor units, `currency`, `version`,
//! `collections`), `PROMO#<code>` (the promotion as JSON), and
//! `PROMOUSE#<code>#<customer>` (`orders`: the set of orders that used
//! it, so a redelivered order counts once). Prices are written by the catalog
//! sync with a condition on the version, so an older price never overwrites
//! a newer one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use retailflow_core::checkout::pricing::PriceEntry;
use retailflow_core::checkout::promotions::Promotion;
use retailflow_core::money::{Currency, Money};
use retailflow_core::ports::catalog::Catalog;
use retailflow_core::ports::StoreError;

pub struct DynamoDbCatalog {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

type Item = HashMap<String, AttributeValue>;

impl DynamoDbCatalog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbCatalog {
            client,
            table: table.into(),
        }
    }

    async fn batch_get(&self, pks: Vec<String>) -> Result<Vec<Item>, StoreError> {
        super::dynamodb::batch_get(&self.client, &self.table, pks).await
    }

    /// Writes a SKU's price unless a newer version is stored (catalog sync).
    pub async fn put_price(&self, p: &PriceEntry) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("PRICE#{}", p.sku)))
            .item("kind", s("price"))
            .item("price", AttributeValue::N(p.price.minor.to_string()))
            .item("currency", s(p.price.currency.code()))
            .item("version", AttributeValue::N(p.version.to_string()))
            .condition_expression("attribute_not_exists(version) OR version < :v")
            .expression_attribute_values(":v", AttributeValue::N(p.version.to_string()));
        if !p.collections.is_empty() {
            req = req.item(
                "collections",
                AttributeValue::Ss(p.collections.iter().cloned().collect()),
            );
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(super::dynamodb::store_error(e)),
        }
    }

    pub async fn put_promotion(&self, p: &Promotion) -> Result<(), StoreError> {
        // Plain data: serializing cannot fail.
        let body = serde_json::to_string(p).unwrap_or_default();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("PROMO#{}", p.code)))
            .item("kind", s("promotion"))
            .item("promotion", s(body))
            .send()
            .await
            .map(|_| ())
            .map_err(super::dynamodb::store_error)
    }
}

fn price_from(item: &Item) -> Result<PriceEntry, StoreError> {
    let pk = item
        .get("pk")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: pk.clone(),
        reason: reason.to_string(),
    };
    let n = |k: &str| -> Option<i64> { item.get(k)?.as_n().ok()?.parse().ok() };
    let currency = item
        .get("currency")
        .and_then(|v| v.as_s().ok())
        .and_then(|c| Currency::from_code(c).ok())
        .ok_or_else(|| corrupt("price without a currency"))?;
    Ok(PriceEntry {
        sku: pk.trim_start_matches("PRICE#").to_string(),
        price: Money::new(
            n("price").ok_or_else(|| corrupt("price without an amount"))?,
            currency,
        ),
        version: u64::try_from(n("version").unwrap_or(0)).unwrap_or(0),
        collections: item
            .get("collections")
            .and_then(|v| v.as_ss().ok())
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default(),
    })
}

#[async_trait]
impl Catalog for DynamoDbCatalog {
    async fn prices(&self, skus: &[String]) -> Result<BTreeMap<String, PriceEntry>, StoreError> {
        let unique: BTreeSet<&String> = skus.iter().collect();
        let items = self
            .batch_get(unique.iter().map(|s| format!("PRICE#{s}")).collect())
            .await?;
        items
            .iter()
            .map(|i| price_from(i).map(|p| (p.sku.clone(), p)))
            .collect()
    }

    async fn promotions(&self, codes: &[String]) -> Result<Vec<Promotion>, StoreError> {
        let unique: BTreeSet<&String> = codes.iter().collect();
        let items = self
            .batch_get(unique.iter().map(|c| format!("PROMO#{c}")).collect())
            .await?;
        items
            .iter()
            .map(|i| {
                let body = i.get("promotion").and_then(|v| v.as_s().ok());
                body.and_then(|b| serde_json::from_str(b).ok())
                    .ok_or_else(|| StoreError::Corrupt {
                        key: "PROMO#".into(),
                        reason: "promotion that does not read back".into(),
                    })
            })
            .collect()
    }

    async fn promotion_uses(&self, code: &str, customer_id: &str) -> Result<u32, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("PROMOUSE#{code}#{customer_id}")))
            .send()
            .await
            .map_err(super::dynamodb::store_error)?;
        Ok(out
            .item()
            .and_then(|i| i.get("orders"))
            .and_then(|v| v.as_ss().ok())
            .map_or(0, |orders| u32::try_from(orders.len()).unwrap_or(u32::MAX)))
    }

    async fn put_price(&self, entry: &PriceEntry) -> Result<bool, StoreError> {
        // The inherent method (also used to seed the table).
        DynamoDbCatalog::put_price(self, entry).await
    }

    async fn record_promotion_use(
        &self,
        code: &str,
        customer_id: &str,
        order_key: &str,
    ) -> Result<(), StoreError> {
        // A string set: adding the same order again changes nothing.
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("PROMOUSE#{code}#{customer_id}")))
            .update_expression("ADD orders :o")
            .expression_attribute_values(":o", AttributeValue::Ss(vec![order_key.to_string()]))
            .send()
            .await
            .map_err(super::dynamodb::store_error)?;
        Ok(())
    }
}
