//! The catalog checkout reads: current prices, promotions and how often a
//! customer used each. Prices come from the ERP (`ErpPriceChanged`),
//! uses from placed orders (`StockCommit`); `adapters::dynamodb_catalog` keeps it on DynamoDB and
//! [`InProcessCatalog`](crate::adapters::in_process::InProcessCatalog) is
//! the local app's and the tests' twin.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::checkout::pricing::PriceEntry;
use crate::checkout::promotions::Promotion;
use crate::ports::StoreError;

#[async_trait]
pub trait Catalog: Send + Sync {
    /// Current prices of the SKUs that have one.
    async fn prices(&self, skus: &[String]) -> Result<BTreeMap<String, PriceEntry>, StoreError>;
    /// The promotions with these codes (unknown codes are left out).
    async fn promotions(&self, codes: &[String]) -> Result<Vec<Promotion>, StoreError>;
    /// How many orders of `customer_id` used `code`.
    async fn promotion_uses(&self, code: &str, customer_id: &str) -> Result<u32, StoreError>;
    /// Writes a SKU's price unless the stored one has this version or a
    /// newer one (two syncs racing: the first write wins, the other is
    /// told false).
    async fn put_price(&self, entry: &PriceEntry) -> Result<bool, StoreError>;
    /// An order of `customer_id` used `code`: counted once per order,
    /// whatever the redeliveries.
    async fn record_promotion_use(
        &self,
        code: &str,
        customer_id: &str,
        order_key: &str,
    ) -> Result<(), StoreError>;
}
