//! The canonical retail model every step speaks, whatever platform the data came from.
//!
//! Amounts that a platform keeps in two currencies (the shop's and the one the
//! customer saw) are [`MoneyBag`]s: each side is taken from the platform's own
//! field for that currency, never re-converted.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money, MoneyError};

/// Where an order or return came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Shopify,
    AdobeCommerce,
    PointOfSale,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Shopify => "shopify",
            Platform::AdobeCommerce => "adobe_commerce",
            Platform::PointOfSale => "point_of_sale",
        }
    }
}

/// The order's business key: platform, shop and the platform's order id. It
/// names the saga and seeds every idempotency key downstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct OrderRef {
    pub platform: Platform,
    /// Shop identity on the platform (Shopify shop domain, Adobe store/instance id).
    pub shop: String,
    /// The platform's immutable order id (not the display name).
    pub order_id: String,
}

impl OrderRef {
    /// Reads back an order key ([`Self::key`]); `None` for anything else.
    pub fn from_key(key: &str) -> Option<Self> {
        let (head, order_id) = key.rsplit_once(":order:")?;
        let (platform, shop) = head.split_once(':')?;
        let platform = match platform {
            "shopify" => Platform::Shopify,
            "adobe_commerce" => Platform::AdobeCommerce,
            "point_of_sale" => Platform::PointOfSale,
            _ => return None,
        };
        if shop.is_empty() || order_id.is_empty() {
            return None;
        }
        Some(OrderRef {
            platform,
            shop: shop.to_string(),
            order_id: order_id.to_string(),
        })
    }

    /// Stable text form, used as the correlation id and saga key.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:order:{}",
            self.platform.as_str(),
            self.shop,
            self.order_id
        )
    }
}

/// An amount in the shop's currency and in the currency the customer was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MoneyBag {
    pub shop: Money,
    pub presentment: Money,
}

impl MoneyBag {
    pub fn zero(shop: Currency, presentment: Currency) -> Self {
        MoneyBag {
            shop: Money::zero(shop),
            presentment: Money::zero(presentment),
        }
    }

    /// Same amount in both: for single-currency platforms.
    pub fn single(m: Money) -> Self {
        MoneyBag {
            shop: m,
            presentment: m,
        }
    }

    pub fn checked_add(self, o: MoneyBag) -> Result<MoneyBag, MoneyError> {
        Ok(MoneyBag {
            shop: self.shop.checked_add(o.shop)?,
            presentment: self.presentment.checked_add(o.presentment)?,
        })
    }

    pub fn checked_sub(self, o: MoneyBag) -> Result<MoneyBag, MoneyError> {
        Ok(MoneyBag {
            shop: self.shop.checked_sub(o.shop)?,
            presentment: self.presentment.checked_sub(o.presentment)?,
        })
    }

    pub fn checked_mul(self, f: i64) -> Result<MoneyBag, MoneyError> {
        Ok(MoneyBag {
            shop: self.shop.checked_mul(f)?,
            presentment: self.presentment.checked_mul(f)?,
        })
    }

    pub fn is_zero(&self) -> bool {
        self.shop.is_zero() && self.presentment.is_zero()
    }
}

/// Identity of the buyer as the shop knows it. Personal fields ride in events
/// (the ERP needs them to create the customer) but are never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Customer {
    /// The shop's customer id: the external id for ERP and loyalty lookups.
    pub customer_id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub is_guest: bool,
}

/// What a line sells. Gift cards are a liability, not merchandise revenue:
/// they carry no SKU or inventory and earn no loyalty points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Merchandise,
    GiftCard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiscountAllocation {
    pub amount: MoneyBag,
    /// Discount code or title, when the platform says which discount it was.
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaxLine {
    pub title: String,
    /// The rate as the platform's exact decimal text ("0.08"), never a float.
    pub rate: Option<String>,
    pub amount: MoneyBag,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderLine {
    /// The platform's line id: refunds and returns refer to it.
    pub line_id: String,
    pub sku: Option<String>,
    pub product_id: Option<String>,
    pub variant_id: Option<String>,
    pub title: String,
    pub kind: LineKind,
    pub quantity: u32,
    pub unit_price: MoneyBag,
    /// unit_price × quantity, before discounts.
    pub gross: MoneyBag,
    pub discount_allocations: Vec<DiscountAllocation>,
    pub discount_total: MoneyBag,
    /// gross − discount_total: what the line sold for (tax-inclusive when the
    /// order's `taxes_included` is true).
    pub net: MoneyBag,
    pub tax_lines: Vec<TaxLine>,
    pub requires_shipping: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShippingLine {
    pub title: String,
    pub code: Option<String>,
    pub price: MoneyBag,
    pub discount_total: MoneyBag,
    pub tax_lines: Vec<TaxLine>,
}

/// Order totals, each side reconciled to the minor unit by the mapper:
/// `lines_gross − line_discounts + shipping − shipping_discounts + tax (unless
/// taxes_included) + other_charges = total`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderTotals {
    pub lines_gross: MoneyBag,
    pub line_discounts: MoneyBag,
    pub shipping: MoneyBag,
    pub shipping_discounts: MoneyBag,
    pub tax: MoneyBag,
    /// Charges outside lines and shipping that the platform adds to the total
    /// (tips, duties).
    pub other_charges: MoneyBag,
    pub total: MoneyBag,
    /// Merchandise after discounts, without gift cards, shipping or tax (tax
    /// still inside when taxes_included): the base for loyalty points.
    pub merchandise_net: MoneyBag,
    /// Gift cards sold on this order (gross).
    pub gift_cards: MoneyBag,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Order {
    pub order: OrderRef,
    /// The name people use ("#1001", "000000042").
    pub display_name: String,
    pub created_at: DateTime<Utc>,
    pub customer: Option<Customer>,
    pub shop_currency: Currency,
    pub presentment_currency: Currency,
    pub taxes_included: bool,
    pub lines: Vec<OrderLine>,
    pub shipping_lines: Vec<ShippingLine>,
    pub totals: OrderTotals,
    /// The storefront's checkout this order came from (Shopify
    /// `checkout_token`, Adobe Commerce `quote_id`): checkout validation held
    /// the order's stock under it, and placing the order commits that hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout_id: Option<String>,
    /// Promotion codes the customer entered: each order counts once towards
    /// a promotion's per-customer limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discount_codes: Vec<String>,
    /// Platform line ids another line already counts (Adobe Commerce: a
    /// configurable product's child, whose priced parent is the line; a
    /// dynamic bundle's unpriced parent). A refund may list them too, with
    /// no money of their own: its credit memo posts the counting line only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncounted_line_ids: Vec<String>,
}

/// What happens to returned stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestockType {
    /// Returned to stock at a location.
    Return,
    /// Never shipped; the unit goes back to available stock.
    Cancel,
    /// Not put back (kept by the customer, not worth restocking).
    NoRestock,
    /// Came back damaged: written off, not available to sell.
    Damaged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RefundLine {
    pub line_id: String,
    pub sku: Option<String>,
    pub kind: LineKind,
    pub quantity: u32,
    pub restock_type: RestockType,
    pub location_id: Option<String>,
    /// Merchandise refunded for this line, after its discounts, without tax.
    pub subtotal: MoneyBag,
    pub tax: MoneyBag,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Refund {
    pub order: OrderRef,
    pub refund_id: String,
    pub created_at: DateTime<Utc>,
    pub lines: Vec<RefundLine>,
    /// Shipping refunded, counted once whichever fields the platform used.
    pub shipping: MoneyBag,
    pub shipping_tax: MoneyBag,
    /// Amounts the merchant refunded beyond or short of line values
    /// (Shopify `refund_discrepancy`), signed as money returned to the buyer.
    pub adjustments: MoneyBag,
    /// The adjustments one by one, where the platform names them (Adobe
    /// Commerce's adjustment refund and adjustment fee): each its own
    /// credit memo line. Empty: `adjustments` is one amount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adjustment_parts: Vec<RefundAdjustment>,
    /// Import duties refunded.
    pub duties: MoneyBag,
    /// lines subtotal + lines tax + shipping + shipping tax + adjustments + duties.
    pub total: MoneyBag,
}

/// One named adjustment of a refund, signed as money returned to the buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RefundAdjustment {
    pub kind: AdjustmentKind,
    pub amount: MoneyBag,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentKind {
    /// More refunded than the lines (Adobe `adjustment_positive`).
    Refund,
    /// Kept back from the refund, e.g. a restocking fee (Adobe
    /// `adjustment_negative`): negative.
    Fee,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Cancellation {
    pub order: OrderRef,
    pub cancelled_at: DateTime<Utc>,
    pub reason: Option<String>,
}
