//! Ports to the systems of record, and their HTTP adapters.
//!
//! The adapters speak each vendor's documented REST shapes (see
//! `infra/simulators/API-SHAPES.md`); the loopback simulators speak the same,
//! so the code tested is the code that talks to the real services. Every
//! failure is classified once into [`ConnectorError`] (retryable or not).

pub mod auth;
pub mod business_central;
pub mod erp_catalog;
pub mod erp_ledger;
pub mod erp_shipments;
pub mod loyalty_ledger;
pub mod netsuite;
pub mod salesforce;
pub mod shop;
mod shop_fulfillment;
mod shop_stock;
mod wire;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::resilience::ConnectorError;

pub use auth::Auth;
pub use erp_ledger::{ErpDocumentKind, LedgerDocument, LedgerQuery};
pub use loyalty_ledger::LedgerJournal;
pub use wire::WireDecimal;

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
    /// allows (see [`erp_ledger`]).
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

/// A loyalty program member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoyaltyMember {
    pub member_id: String,
    pub membership_number: String,
    pub tier: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub membership_number: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub enrolled_at: chrono::DateTime<chrono::Utc>,
}

/// An accrual to post; `external_transaction_number` is its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccrualRequest {
    pub external_transaction_number: String,
    pub membership_number: String,
    pub activity_at: chrono::DateTime<chrono::Utc>,
    /// The amount points are earned on (shop currency).
    pub amount: Money,
    /// Points retailflow's rules computed, for programs that take them.
    pub points: i64,
}

/// An accrual journal as the loyalty platform recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccrualJournal {
    pub journal_id: String,
    /// Points the platform credited (`None` when the lookup does not say).
    pub points: Option<i64>,
}

/// Points taken back for a partial return: retailflow computes them (see
/// [`crate::refund_ledger::RefundLedger::reversal_base`]), the platform
/// debits exactly that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalRequest {
    /// Idempotency key of the reversal journal.
    pub external_transaction_number: String,
    pub membership_number: String,
    pub activity_at: chrono::DateTime<chrono::Utc>,
    /// Merchandise refunded (shop currency) the points came from.
    pub amount: Money,
    pub points: i64,
}

#[async_trait]
pub trait LoyaltyConnector: Send + Sync {
    fn system(&self) -> &'static str;
    async fn find_member(
        &self,
        membership_number: &str,
    ) -> Result<Option<LoyaltyMember>, ConnectorError>;
    async fn enroll(&self, enrollment: &Enrollment) -> Result<LoyaltyMember, ConnectorError>;
    async fn find_accrual(
        &self,
        external_transaction_number: &str,
    ) -> Result<Option<AccrualJournal>, ConnectorError>;
    async fn post_accrual(
        &self,
        accrual: &AccrualRequest,
    ) -> Result<AccrualJournal, ConnectorError>;
    /// The member's points balance; `None` when there is no such member.
    async fn points_balance(&self, membership_number: &str) -> Result<Option<i64>, ConnectorError>;
    /// A reversal journal already posted under this number (any kind).
    async fn find_reversal(
        &self,
        external_transaction_number: &str,
    ) -> Result<Option<AccrualJournal>, ConnectorError>;
    async fn post_reversal(
        &self,
        reversal: &ReversalRequest,
    ) -> Result<AccrualJournal, ConnectorError>;
    /// Reads back, for reconciliation, every journal posted under these
    /// external transaction numbers (all of them: a duplicate shows as a
    /// second journal), with the points each moved.
    async fn ledger_journals(
        &self,
        external_transaction_numbers: &[String],
    ) -> Result<Vec<LedgerJournal>, ConnectorError>;
    /// Cancels an accrual journal whole (the whole order came back). Returns
    /// the cancellation journal, or `None` when it was already cancelled
    /// (a retry after a lost answer).
    async fn cancel_accrual(
        &self,
        accrual_journal_id: &str,
        reason: &str,
    ) -> Result<Option<String>, ConnectorError>;
}

/// One returned line to record in the shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopRefundLine {
    /// The platform's order line id.
    pub line_id: String,
    pub quantity: u32,
    pub restock: crate::model::RestockType,
    pub location_id: Option<String>,
}

/// A refund that happened outside the shop (a return at the till), to be
/// recorded on the shop's order so it shows as returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopRefund {
    pub order: crate::model::OrderRef,
    /// Retailflow's reference, written on the shop's refund (its note or
    /// comment) so a retry finds it instead of refunding twice.
    pub reference: String,
    pub lines: Vec<ShopRefundLine>,
    /// Shipping refunded (shop currency).
    pub shipping: Money,
    pub total: Money,
}

/// The ecommerce platform's side of a return.
#[async_trait]
pub trait EcommerceConnector: Send + Sync {
    fn system(&self) -> &'static str;
    /// The shop's refund carrying `reference`, if one was recorded.
    async fn find_refund(&self, refund: &ShopRefund) -> Result<Option<String>, ConnectorError>;
    /// Records the refund; returns the platform's refund (credit memo) id.
    async fn record_refund(&self, refund: &ShopRefund) -> Result<String, ConnectorError>;
    /// Sets the units each SKU shows as available in every shop this
    /// connector serves (an absolute level, so a repeat is harmless).
    async fn push_stock(&self, levels: &[StockLevel]) -> Result<StockPush, ConnectorError>;
    /// Records a shipment on the shop order, with its tracking for the
    /// customer. A shipment carrying the same tracking number is looked for
    /// first, so a repeat records nothing twice. Returns the shop's
    /// fulfillment (shipment) id.
    async fn record_fulfillment(&self, f: &ShopFulfillment) -> Result<String, ConnectorError>;
}

/// A shipment to record on a shop order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopFulfillment {
    pub order: crate::model::OrderRef,
    /// The ERP's shipment document number (for messages).
    pub shipment_ref: String,
    pub carrier: Option<String>,
    pub tracking_numbers: Vec<String>,
    /// (SKU, units)
    pub lines: Vec<(String, u32)>,
    pub notify_customer: bool,
}

/// Units a SKU should show as available in the shops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    pub sku: String,
    pub available: u32,
}

/// What a stock push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StockPush {
    /// Levels set (one per SKU and shop).
    pub set: usize,
    /// SKUs a shop does not sell: left alone.
    pub unknown_skus: Vec<String>,
}

/// Turns a business key into an external id every system accepts
/// (`[A-Za-z0-9_-]`, at most 35 characters: Business Central's
/// externalDocumentNumber), deterministic and collision-free: the first and
/// last parts stay readable (platform and the platform's id, shortened if
/// needed), a hash of every part keeps keys of different shops (or texts
/// that clean to the same) apart.
pub fn external_id(prefix: &str, parts: &[&str]) -> String {
    const MAX: usize = 35;
    let clean = |p: &str| -> String {
        p.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let hash = &crate::idempotency::payload_hash(parts.join("\n").as_bytes())[..8];
    let shown: Vec<String> = match parts {
        [] => Vec::new(),
        [only] => vec![clean(only)],
        [first, .., last] => vec![clean(first), clean(last)],
    };
    let mut id = prefix.to_string();
    for s in shown {
        id.push('-');
        id.push_str(&s);
    }
    id.truncate(MAX - hash.len() - 1);
    format!("{id}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids_are_legal_deterministic_and_distinct() {
        let a = external_id("so", &["shopify", "acme.myshopify.com", "5872301948123"]);
        assert_eq!(
            a,
            external_id("so", &["shopify", "acme.myshopify.com", "5872301948123"])
        );
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{a}"
        );
        assert!(a.len() <= 35, "{a}");
        assert!(a.starts_with("so-shopify-5872301948123-"), "{a}");
        // "a.b" and "a_b" clean to the same text but differ by hash.
        assert_ne!(external_id("so", &["a.b"]), external_id("so", &["a_b"]));
    }
}
