//! What the catalog sync reads from the ERP: each item's SKU, its price and
//! the units it has free to sell. Read on a schedule, page by page; the
//! sync decides what changed.
//!
//! - NetSuite: one SuiteQL query (`POST /services/rest/query/v1/suiteql`,
//!   `limit`/`offset` paging): the item's base price level and its
//!   `quantityavailable` (on hand less what NetSuite's own sales orders
//!   have committed) summed over locations.
//! - Business Central: `GET items` (`@odata.nextLink` paging) for
//!   `unitPrice`. BC's `inventory` is units on hand including those its
//!   open sales orders will ship, so it is not a count of units free to
//!   sell; BC stock is not synced (prices only).

use async_trait::async_trait;

use super::business_central::BusinessCentralErp;
use super::netsuite::NetSuiteErp;
use retailflow_core::money::{Currency, Money};
use retailflow_core::ports::erp::{ErpCatalogFeed, ErpItem, ErpItemsPage};
use retailflow_core::resilience::ConnectorError;

/// Items per SuiteQL page (NetSuite allows up to 1,000).
pub const NETSUITE_PAGE: usize = 1000;

/// The SuiteQL query the NetSuite feed runs: inventory items with their
/// base price level (1) rows, each with its currency's ISO code and
/// quantity tier (lowest first), and units available over all locations.
/// A multi-currency account has a row per currency and tier: the feed keeps
/// the first row in the price book's currency.
pub const NETSUITE_ITEMS_QUERY: &str = "SELECT item.itemid AS sku, pricing.unitprice AS unitprice, \
currency.symbol AS currency, loc.available AS quantityavailable FROM item \
LEFT JOIN pricing ON pricing.item = item.id AND pricing.pricelevel = 1 \
LEFT JOIN currency ON currency.id = pricing.currency \
LEFT JOIN (SELECT item, SUM(quantityavailable) AS available FROM inventoryitemlocations GROUP BY item) loc \
ON loc.item = item.id WHERE item.itemtype = 'InvtPart' AND item.isinactive = 'F' \
ORDER BY item.id, pricing.quantity";

/// A count as the ERP writes it (number or text, maybe "12.0"), in whole
/// units; below zero reads as zero (an ERP may show a negative balance).
fn units(system: &'static str, v: &serde_json::Value) -> Result<Option<u32>, ConnectorError> {
    let text = match v {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) if s.trim().is_empty() => return Ok(None),
        serde_json::Value::String(s) => s.trim().to_string(),
        other => {
            return Err(ConnectorError::BadResponse {
                system,
                reason: format!("expected a quantity, got {other}"),
            })
        }
    };
    let whole = text.split('.').next().unwrap_or("");
    if text.starts_with('-') {
        return Ok(Some(0));
    }
    whole
        .parse::<u32>()
        .map(Some)
        .map_err(|e| ConnectorError::BadResponse {
            system,
            reason: format!("quantity {text}: {e}"),
        })
}

fn price(
    system: &'static str,
    v: &serde_json::Value,
    currency: Currency,
) -> Result<Option<Money>, ConnectorError> {
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(None),
        v => super::wire::money_from_json(system, v, currency).map(Some),
    }
}

fn sku(
    system: &'static str,
    row: &serde_json::Value,
    field: &str,
) -> Result<String, ConnectorError> {
    row[field]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ConnectorError::BadResponse {
            system,
            reason: format!("item without a {field}"),
        })
}

#[async_trait]
impl ErpCatalogFeed for NetSuiteErp {
    fn system(&self) -> &'static str {
        "netsuite"
    }

    async fn items_page(
        &self,
        cursor: Option<&str>,
        currency: Currency,
    ) -> Result<ErpItemsPage, ConnectorError> {
        let offset: usize = match cursor {
            Some(c) => c.parse().map_err(|_| ConnectorError::Rejected {
                system: "netsuite",
                status: 0,
                reason: format!("bad SuiteQL page cursor {c:?}"),
            })?,
            None => 0,
        };
        let body = self
            .suiteql(NETSUITE_ITEMS_QUERY, NETSUITE_PAGE, offset)
            .await?;
        let rows = body["items"].as_array().cloned().unwrap_or_default();
        let mut page = ErpItemsPage::default();
        for row in &rows {
            let read = || -> Result<ErpItem, ConnectorError> {
                // A row in another currency has no price for this book.
                let same_currency = row["currency"]
                    .as_str()
                    .is_none_or(|c| c.trim().eq_ignore_ascii_case(currency.code()));
                Ok(ErpItem {
                    sku: sku("netsuite", row, "sku")?,
                    unit_price: match same_currency {
                        true => price("netsuite", &row["unitprice"], currency)?,
                        false => None,
                    },
                    available: Some(units("netsuite", &row["quantityavailable"])?.unwrap_or(0)),
                })
            };
            match read() {
                Ok(item) => match page.items.iter_mut().find(|i| i.sku == item.sku) {
                    // Another tier or currency of an item already read: only
                    // a first price in the book's currency counts.
                    Some(seen) => {
                        if seen.unit_price.is_none() {
                            seen.unit_price = item.unit_price;
                        }
                    }
                    None => page.items.push(item),
                },
                Err(e) => page.unreadable.push(e.to_string()),
            }
        }
        page.next = (body["hasMore"].as_bool() == Some(true))
            .then(|| (offset + NETSUITE_PAGE.max(rows.len())).to_string());
        Ok(page)
    }
}

#[async_trait]
impl ErpCatalogFeed for BusinessCentralErp {
    fn system(&self) -> &'static str {
        "business-central"
    }

    async fn items_page(
        &self,
        cursor: Option<&str>,
        currency: Currency,
    ) -> Result<ErpItemsPage, ConnectorError> {
        let body = self.items(cursor).await?;
        let mut page = ErpItemsPage {
            next: body["@odata.nextLink"].as_str().map(str::to_string),
            ..ErpItemsPage::default()
        };
        for row in body["value"].as_array().into_iter().flatten() {
            // Only items BC sells from stock.
            if row["type"].as_str().is_some_and(|t| t != "Inventory") {
                continue;
            }
            let read = || -> Result<ErpItem, ConnectorError> {
                Ok(ErpItem {
                    sku: sku("business-central", row, "number")?,
                    unit_price: price("business-central", &row["unitPrice"], currency)?,
                    available: None,
                })
            };
            match read() {
                Ok(item) => page.items.push(item),
                Err(e) => page.unreadable.push(e.to_string()),
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn erp_quantities_read_as_whole_units_and_never_below_zero() {
        assert_eq!(units("t", &json!("12.0")).unwrap(), Some(12));
        assert_eq!(units("t", &json!(7)).unwrap(), Some(7));
        assert_eq!(units("t", &json!("-3")).unwrap(), Some(0));
        assert_eq!(units("t", &json!(null)).unwrap(), None);
        assert!(units("t", &json!("lots")).is_err());
    }
}
