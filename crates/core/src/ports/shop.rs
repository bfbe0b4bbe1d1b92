//! The ecommerce platform's side: refunds made elsewhere (at the till)
//! recorded on the shop's order, stock levels pushed, shipments recorded.
//! The Shopify and Adobe Commerce admin APIs implement it over HTTP
//! (`retailflow-connectors`).

use async_trait::async_trait;

use crate::money::Money;
use crate::resilience::ConnectorError;

/// How a refund retailflow records for a till return is noted: a Shopify
/// refund's note, an Adobe Commerce credit memo's comment. The shop then
/// announces that refund back (`refunds/create`, the credit memo event),
/// and intake recognises it by this note and ignores it: the till return is
/// already handled.
pub const TILL_RETURN_NOTE_PREFIX: &str = "retailflow till return ";

/// The till return reference a shop refund's note or comment names, if
/// retailflow wrote it: prefixed by [`TILL_RETURN_NOTE_PREFIX`], or the bare
/// reference (`rf-<platform>-…`, see
/// [`crate::steps::return_reversal::shop_refund_for`]) that builds
/// before the prefix wrote on Adobe credit memos.
pub fn till_return_reference(note: &str) -> Option<&str> {
    let note = note.trim();
    if let Some(reference) = note.strip_prefix(TILL_RETURN_NOTE_PREFIX) {
        return Some(reference);
    }
    is_bare_reference(note).then_some(note)
}

/// `rf-adobe_commerce-<refund id, maybe cut>-<8 hex>`: nothing a person types.
fn is_bare_reference(note: &str) -> bool {
    let Some(rest) = note.strip_prefix("rf-adobe_commerce-") else {
        return false;
    };
    let Some((_, hash)) = rest.rsplit_once('-') else {
        return false;
    };
    note.len() <= 35
        && hash.len() == 8
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
