//! Reading back what the ERP holds for a batch of orders, for
//! reconciliation: sales orders and credit memos by external id, plus any
//! other document tied to the same shop order (a duplicate keyed by a
//! script or by hand).
//!
//! - NetSuite: one SuiteQL query per 100 orders over `transaction`
//!   (`type` `SalesOrd` / `CustCred`), matched on `externalid` or on the
//!   `custbody_retailflow_order_key` body field erp-post writes, paged
//!   with `limit`/`offset`.
//! - Business Central: `GET salesOrders` / `salesCreditMemos` with
//!   `$filter=externalDocumentNumber eq '…' or …` (10 per request, the URL
//!   stays short), following `@odata.nextLink`; a sales order not there is
//!   looked for in `salesInvoices` (BC deletes an order once it is shipped
//!   and invoiced). BC keeps no order key, so a duplicate shows as two
//!   documents with the same external document number.

use super::business_central::BusinessCentralErp;
use super::netsuite::NetSuiteErp;
use super::wire::money_from_json;
use retailflow_core::money::Currency;
use retailflow_core::ports::erp::{ErpDocument, ErpDocumentKind, LedgerDocument, LedgerQuery};
use retailflow_core::resilience::ConnectorError;

/// Orders per SuiteQL query.
const NETSUITE_BATCH: usize = 100;
/// Rows per SuiteQL page (the service's maximum).
const NETSUITE_PAGE: usize = 1000;
/// External ids per Business Central request.
const BC_BATCH: usize = 10;
/// Pages one batch reads at most (a batch has at most a few documents per
/// order; more pages than this means something is badly wrong).
const MAX_PAGES: usize = 20;

/// A read cut short would report what it did not read as missing.
fn too_many_pages(system: &'static str) -> ConnectorError {
    ConnectorError::BadResponse {
        system,
        reason: format!("more than {MAX_PAGES} pages for one batch of documents"),
    }
}

fn text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// The SuiteQL query for one batch.
fn netsuite_query(kind: ErpDocumentKind, batch: &[LedgerQuery]) -> String {
    let ty = match kind {
        ErpDocumentKind::SalesOrder => "SalesOrd",
        ErpDocumentKind::CreditMemo => "CustCred",
    };
    let ids: Vec<String> = batch.iter().map(|q| quote(&q.external_id)).collect();
    let keys: Vec<String> = batch.iter().map(|q| quote(&q.order_key)).collect();
    format!(
        "SELECT t.id, t.tranid, t.externalid, t.custbody_retailflow_order_key AS order_key, \
         t.foreigntotal AS total, c.symbol AS currency, BUILTIN.DF(t.status) AS status \
         FROM transaction t LEFT JOIN currency c ON c.id = t.currency \
         WHERE t.type = '{ty}' AND (t.externalid IN ({}) OR t.custbody_retailflow_order_key IN ({})) \
         ORDER BY t.id",
        ids.join(", "),
        keys.join(", ")
    )
}

impl NetSuiteErp {
    pub(crate) async fn ledger_documents(
        &self,
        kind: ErpDocumentKind,
        wanted: &[LedgerQuery],
    ) -> Result<Vec<LedgerDocument>, ConnectorError> {
        let mut docs = Vec::new();
        for batch in wanted.chunks(NETSUITE_BATCH) {
            let query = netsuite_query(kind, batch);
            let fallback = batch[0].currency;
            let mut offset = 0;
            let mut complete = false;
            for _ in 0..MAX_PAGES {
                let body = self.suiteql(&query, NETSUITE_PAGE, offset).await?;
                let rows = body["items"].as_array().cloned().unwrap_or_default();
                for row in &rows {
                    docs.push(netsuite_row(kind, row, fallback)?);
                }
                if body["hasMore"].as_bool() != Some(true) || rows.is_empty() {
                    complete = true;
                    break;
                }
                offset += rows.len();
            }
            if !complete {
                return Err(too_many_pages("netsuite"));
            }
        }
        Ok(docs)
    }
}

fn netsuite_row(
    kind: ErpDocumentKind,
    row: &serde_json::Value,
    fallback: Currency,
) -> Result<LedgerDocument, ConnectorError> {
    let currency = text(&row["currency"])
        .and_then(|c| Currency::from_code(&c).ok())
        .unwrap_or(fallback);
    let id = text(&row["id"]).ok_or_else(|| ConnectorError::BadResponse {
        system: "netsuite",
        reason: format!("transaction row without an id: {row}"),
    })?;
    // Credit memos read negative (they reduce receivables).
    let total = money_from_json("netsuite", &row["total"], currency)?.abs();
    Ok(LedgerDocument {
        kind,
        external_id: text(&row["externalid"]),
        order_key: text(&row["order_key"]),
        document: ErpDocument {
            number: text(&row["tranid"]).unwrap_or_else(|| id.clone()),
            id,
            total,
            customer_id: None,
        },
        status: text(&row["status"]),
    })
}

impl BusinessCentralErp {
    pub(crate) async fn ledger_documents(
        &self,
        kind: ErpDocumentKind,
        wanted: &[LedgerQuery],
    ) -> Result<Vec<LedgerDocument>, ConnectorError> {
        let entity = match kind {
            ErpDocumentKind::SalesOrder => "salesOrders",
            ErpDocumentKind::CreditMemo => "salesCreditMemos",
        };
        let mut docs = self.bc_documents(kind, entity, wanted).await?;
        if kind == ErpDocumentKind::SalesOrder {
            // BC deletes a sales order once it is shipped and invoiced: its
            // invoice carries the same external document number.
            let gone: Vec<LedgerQuery> = wanted
                .iter()
                .filter(|q| {
                    !docs
                        .iter()
                        .any(|d| d.external_id.as_deref() == Some(q.external_id.as_str()))
                })
                .cloned()
                .collect();
            if !gone.is_empty() {
                docs.extend(self.bc_documents(kind, "salesInvoices", &gone).await?);
            }
        }
        Ok(docs)
    }

    async fn bc_documents(
        &self,
        kind: ErpDocumentKind,
        entity: &str,
        wanted: &[LedgerQuery],
    ) -> Result<Vec<LedgerDocument>, ConnectorError> {
        let mut docs = Vec::new();
        for batch in wanted.chunks(BC_BATCH) {
            let filter = batch
                .iter()
                .map(|q| format!("externalDocumentNumber eq {}", quote(&q.external_id)))
                .collect::<Vec<_>>()
                .join(" or ");
            // BC leaves currencyCode empty on documents in its local currency.
            let fallback = self.local_currency();
            let mut next: Option<String> = None;
            let mut complete = false;
            for _ in 0..MAX_PAGES {
                let body = self.list(entity, &filter, next.as_deref()).await?;
                for v in body["value"].as_array().into_iter().flatten() {
                    let external = text(&v["externalDocumentNumber"]);
                    let order_key = batch
                        .iter()
                        .find(|q| Some(&q.external_id) == external.as_ref())
                        .map(|q| q.order_key.clone());
                    docs.push(LedgerDocument {
                        kind,
                        external_id: external,
                        order_key,
                        document: Self::document(v, fallback)?,
                        status: text(&v["status"]),
                    });
                }
                match body["@odata.nextLink"].as_str() {
                    Some(link) => next = Some(link.to_string()),
                    None => {
                        complete = true;
                        break;
                    }
                }
            }
            if !complete {
                return Err(too_many_pages("business-central"));
            }
        }
        Ok(docs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netsuite_query_matches_external_ids_and_order_keys_with_quotes_escaped() {
        let usd = Currency::from_code("USD").unwrap();
        let q = netsuite_query(
            ErpDocumentKind::CreditMemo,
            &[LedgerQuery {
                external_id: "cm-1".into(),
                order_key: "shopify:o'brien:order:1".into(),
                currency: usd,
            }],
        );
        assert!(q.contains("t.type = 'CustCred'"), "{q}");
        assert!(q.contains("t.externalid IN ('cm-1')"), "{q}");
        assert!(
            q.contains("custbody_retailflow_order_key IN ('shopify:o''brien:order:1')"),
            "{q}"
        );
    }
}
