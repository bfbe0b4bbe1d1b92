//! What the fulfillment sync reads from the ERP: shipments (NetSuite item
//! fulfillments) made from retailflow's sales orders, newest after a
//! watermark id, each with the shop order it leads back to (the sales
//! order's `custbody_retailflow_order_key`), its carrier, tracking numbers
//! and shipped lines.
//!
//! NetSuite only: one SuiteQL query, a row per fulfillment line, paged by
//! `limit`/`offset`. Business Central's `salesShipments` do not carry
//! tracking numbers in API v2.0; BC shipments are not synced.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::netsuite::NetSuiteErp;
use retailflow_core::ports::erp::{ErpShipment, ErpShipmentFeed};
use retailflow_core::resilience::ConnectorError;

/// The SuiteQL query, shipments after a watermark id.
pub fn netsuite_shipments_query(after: u64) -> String {
    format!(
        "SELECT f.id AS id, f.tranid AS tranid, f.trandate AS trandate, f.shipstatus AS status, \
         so.custbody_retailflow_order_key AS order_key, BUILTIN.DF(f.shipcarrier) AS carrier, \
         f.linkedtrackingnumbers AS tracking, item.itemid AS sku, ABS(tl.quantity) AS quantity \
         FROM transaction f JOIN transactionline tl ON tl.transaction = f.id AND tl.mainline = 'F' \
         JOIN transaction so ON so.id = tl.createdfrom JOIN item ON item.id = tl.item \
         WHERE f.type = 'ItemShip' AND f.id > {after} ORDER BY f.id, tl.linesequencenumber"
    )
}

fn text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bad(reason: String) -> ConnectorError {
    ConnectorError::BadResponse {
        system: "netsuite",
        reason,
    }
}

#[async_trait]
impl ErpShipmentFeed for NetSuiteErp {
    fn system(&self) -> &'static str {
        "netsuite"
    }

    async fn shipments_after(
        &self,
        after: u64,
        max_rows: usize,
    ) -> Result<Vec<ErpShipment>, ConnectorError> {
        const PAGE: usize = 1000;
        /// Pages one call reads at most, even for one huge shipment.
        const MAX_PAGES: usize = 100;
        let query = netsuite_shipments_query(after);
        let mut rows: Vec<serde_json::Value> = Vec::new();
        let mut offset = 0;
        for _ in 0..MAX_PAGES {
            let body = self.suiteql(&query, PAGE, offset).await?;
            let page = body["items"].as_array().cloned().unwrap_or_default();
            let more = body["hasMore"].as_bool() == Some(true) && !page.is_empty();
            rows.extend(page);
            if !more {
                break;
            }
            if rows.len() >= max_rows {
                // The last shipment may continue on the next page: leave it
                // to the next run, unless it is the only one read.
                let last = rows.last().and_then(|r| text(&r["id"]));
                if rows.iter().any(|r| text(&r["id"]) != last) {
                    rows.retain(|r| text(&r["id"]) != last);
                    break;
                }
            }
            offset += PAGE;
        }
        let mut shipments: BTreeMap<u64, ErpShipment> = BTreeMap::new();
        for row in rows {
            let Some(id) = text(&row["id"]).and_then(|i| i.parse::<u64>().ok()) else {
                return Err(bad(format!("fulfillment row without an id: {row}")));
            };
            let s = shipments.entry(id).or_insert_with(|| ErpShipment {
                id,
                document_number: text(&row["tranid"]).unwrap_or_else(|| id.to_string()),
                order_key: text(&row["order_key"]),
                shipped: text(&row["status"]).is_none_or(|s| s == "C" || s == "_shipped"),
                shipped_on: text(&row["trandate"]),
                carrier: text(&row["carrier"]),
                // NetSuite lists several tracking numbers separated by spaces
                // (or `<BR>` in some accounts).
                tracking_numbers: text(&row["tracking"])
                    .map(|t| {
                        t.replace("<BR>", " ")
                            .split_whitespace()
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                lines: Vec::new(),
                unreadable: None,
            });
            let sku = text(&row["sku"]);
            let quantity = text(&row["quantity"])
                .and_then(|q| q.split('.').next().and_then(|w| w.parse::<u32>().ok()));
            match (sku, quantity) {
                (Some(sku), Some(q)) => s.lines.push((sku, q)),
                // One bad line makes the shipment unreadable, not the feed.
                _ => s.unreadable = Some(format!("a line that cannot be read: {row}")),
            }
        }
        Ok(shipments.into_values().collect())
    }
}
