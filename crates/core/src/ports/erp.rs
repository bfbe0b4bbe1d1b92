//! The ERP's side, as the steps need it: customers, sales orders and credit
//! memos posted once under an external id, cancellations, the documents read
//! back for reconciliation, and the catalog and shipment feeds the syncs
//! read. NetSuite and Business Central implement it over HTTP
//! (`retailflow-connectors`); the contract is here so the steps depend on
//! nothing but it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};
use crate::resilience::ConnectorError;

/// A customer as the ERP keeps it, keyed by the shop's customer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErpCustomer {
    /// Deterministic external id (letters, digits, `_`, `-`).
    pub external_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
}

/// One line of an ERP sales order, in shop currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErpLine {
    /// Item reference: the SKU, or the configured item for shipping, tax,
    /// gift cards.
    pub item: String,
    pub description: String,
    pub quantity: u32,
    pub unit_price: Money,
    /// What the line sells for after its discounts.
    pub amount: Money,
    /// On credit memo lines: what happens to the returned stock.
    pub restock: Option<crate::model::RestockType>,
}

/// A sales order ready to post. `external_id` makes the post idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErpSalesOrder {
    pub external_id: String,
    pub customer_external_id: String,
    pub order_date: chrono::NaiveDate,
    pub memo: String,
    pub lines: Vec<ErpLine>,
    /// Expected document total: lines sum to it.
    pub total: Money,
    /// retailflow's key of the shop order (a body custom field on NetSuite
    /// sales orders), so ERP documents made from it (shipments) lead back
    /// to the shop order.
    pub order_key: Option<String>,
}

/// A credit memo has a sales order's shape: its lines (with their stock
/// disposition) sum to the refund total; `external_id` makes the post
/// idempotent.
pub type ErpCreditMemo = ErpSalesOrder;

/// A sales order as the ERP recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpDocument {
    /// The ERP's internal id.
    pub id: String,
    /// The number people see (NetSuite tranId, BC number).
    pub number: String,
    pub total: Money,
    /// The ERP's customer on the document, when the read says.
    #[serde(default)]
    pub customer_id: Option<String>,
}

#[async_trait]
pub trait ErpConnector: Send + Sync {
    /// Name used in errors, logs and circuit breakers.
    fn system(&self) -> &'static str;
    /// True when posting the same external id twice yields one document
    /// (NetSuite upsert): the step then needs no claim write.
    fn dedups_natively(&self) -> bool;
    async fn upsert_customer(&self, customer: &ErpCustomer) -> Result<String, ConnectorError>;
    async fn find_sales_order(
        &self,
        external_id: &str,
    ) -> Result<Option<ErpDocument>, ConnectorError>;
    /// Posts (or, where the ERP upserts, re-posts) the order; `customer_id` is
    /// the ERP's id returned by `upsert_customer`.
    async fn post_sales_order(
        &self,
        order: &ErpSalesOrder,
        customer_id: &str,
    ) -> Result<ErpDocument, ConnectorError>;
    async fn find_credit_memo(
        &self,
        external_id: &str,
    ) -> Result<Option<ErpDocument>, ConnectorError>;
    /// Posts the credit memo (NetSuite: upsert by external id; BC: create,
    /// then the post action, finishing a draft left by a crash).
    async fn post_credit_memo(
        &self,
        memo: &ErpCreditMemo,
        customer_id: &str,
    ) -> Result<ErpDocument, ConnectorError>;
    /// Reads back, for reconciliation, the documents of `kind` posted under
    /// these external ids and any other document of that kind tied to the
    /// same shop orders (a duplicate), in as few paged requests as the API
    /// allows.
    async fn ledger_documents(
        &self,
        kind: ErpDocumentKind,
        wanted: &[LedgerQuery],
    ) -> Result<Vec<LedgerDocument>, ConnectorError>;
    /// Cancels a sales order the shop cancelled (NetSuite: close every line;
    /// BC: delete the unposted order). Cancelling one already cancelled or
    /// gone succeeds. True when the ERP has the order (now cancelled).
    async fn cancel_sales_order(&self, external_id: &str) -> Result<bool, ConnectorError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErpDocumentKind {
    SalesOrder,
    CreditMemo,
}

/// A document reconciliation expects to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerQuery {
    /// The external id retailflow posted it under.
    pub external_id: String,
    /// retailflow's key of the shop order it belongs to.
    pub order_key: String,
    /// Its currency, for ERPs whose reads do not say.
    pub currency: Currency,
}

/// A document as the ERP holds it, with what ties it to a shop order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerDocument {
    pub kind: ErpDocumentKind,
    pub external_id: Option<String>,
    pub order_key: Option<String>,
    /// The total is positive for credit memos too.
    pub document: ErpDocument,
    /// The ERP's status text (`Closed`, `Billed`, `Draft`, …).
    pub status: Option<String>,
}

/// One ERP item as the sync sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErpItem {
    pub sku: String,
    /// In the price book's currency; `None` when the ERP has no price.
    pub unit_price: Option<Money>,
    /// Units free to sell; `None` when this ERP does not say.
    pub available: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErpItemsPage {
    pub items: Vec<ErpItem>,
    /// Rows that could not be read, with why: skipped, not fatal.
    pub unreadable: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

#[async_trait]
pub trait ErpCatalogFeed: Send + Sync {
    fn system(&self) -> &'static str;
    async fn items_page(
        &self,
        cursor: Option<&str>,
        currency: Currency,
    ) -> Result<ErpItemsPage, ConnectorError>;
}

/// One shipment as the ERP recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErpShipment {
    /// The ERP's internal id: ascending, the sync's watermark.
    pub id: u64,
    pub document_number: String,
    /// retailflow's key of the shop order; `None` for a sales order
    /// retailflow did not post.
    pub order_key: Option<String>,
    /// NetSuite's ship status is Shipped (not only picked or packed).
    pub shipped: bool,
    pub shipped_on: Option<String>,
    pub carrier: Option<String>,
    pub tracking_numbers: Vec<String>,
    /// (SKU, units)
    pub lines: Vec<(String, u32)>,
    /// Why the shipment cannot be read, when one of its lines cannot.
    pub unreadable: Option<String>,
}

#[async_trait]
pub trait ErpShipmentFeed: Send + Sync {
    fn system(&self) -> &'static str;
    /// Shipments with an id above `after`, oldest first, at most `max`
    /// lines' worth (a shipment is never cut between calls).
    async fn shipments_after(
        &self,
        after: u64,
        max_rows: usize,
    ) -> Result<Vec<ErpShipment>, ConnectorError>;
}
