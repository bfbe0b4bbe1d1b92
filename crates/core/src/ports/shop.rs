//! The ecommerce platform's side: refunds made elsewhere (at the till)
//! recorded on the shop's order, stock levels pushed, shipments recorded.
//! The Shopify and Adobe Commerce admin APIs implement it over HTTP
//! (`retailflow-connectors`).

use async_trait::async_trait;

use crate::money::Money;
use crate::resilience::ConnectorError;

/// How a refund retailflow records in Shopify is noted: the shop then sends
/// a `refunds/create` webhook for it, which intake recognises by this note
/// and ignores (the till return is already handled).
pub const TILL_RETURN_NOTE_PREFIX: &str = "retailflow till return ";

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
