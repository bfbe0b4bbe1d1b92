//! [`Catalog`] in memory (the local app's and the tests' prices and
//! promotions), and the sample catalog the local app starts from.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::checkout::pricing::PriceEntry;
use crate::checkout::promotions::Promotion;
use crate::ports::catalog::Catalog;
use crate::ports::StoreError;

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct CatalogState {
    prices: BTreeMap<String, PriceEntry>,
    promotions: BTreeMap<String, Promotion>,
    /// Orders that used each (code, customer).
    #[serde(with = "crate::serde_pairs")]
    uses: BTreeMap<(String, String), std::collections::BTreeSet<String>>,
}

#[derive(Default)]
pub struct InProcessCatalog {
    state: crate::adapters::in_process::JournaledState<CatalogState>,
}

impl InProcessCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// A catalog written through to `journal` (its row `meta/catalog`),
    /// starting from what that row held, if anything.
    pub fn durable(
        mut self,
        journal: std::sync::Arc<dyn crate::ports::journal::Journal>,
        saved: Option<&str>,
    ) -> Result<Self, serde_json::Error> {
        self.state.write_to(journal, "meta/catalog", saved)?;
        Ok(self)
    }

    fn change<T>(&self, f: impl FnOnce(&mut CatalogState) -> T) -> Result<T, StoreError> {
        self.state.change(|st| Ok(f(st)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CatalogState> {
        self.state.lock()
    }

    /// A new price for a SKU: its version goes up by one.
    pub fn set_price(&self, mut entry: PriceEntry) {
        let mut st = self.lock();
        if let Some(old) = st.prices.get(&entry.sku) {
            entry.version = entry.version.max(old.version + 1);
        }
        st.prices.insert(entry.sku.clone(), entry);
    }

    pub fn add_promotion(&self, p: Promotion) {
        self.lock().promotions.insert(p.code.clone(), p);
    }
}

#[async_trait]
impl Catalog for InProcessCatalog {
    async fn prices(&self, skus: &[String]) -> Result<BTreeMap<String, PriceEntry>, StoreError> {
        let st = self.lock();
        Ok(skus
            .iter()
            .filter_map(|s| st.prices.get(s).map(|p| (s.clone(), p.clone())))
            .collect())
    }

    async fn promotions(&self, codes: &[String]) -> Result<Vec<Promotion>, StoreError> {
        let st = self.lock();
        Ok(codes
            .iter()
            .filter_map(|c| st.promotions.get(c).cloned())
            .collect())
    }

    async fn promotion_uses(&self, code: &str, customer_id: &str) -> Result<u32, StoreError> {
        Ok(self
            .lock()
            .uses
            .get(&(code.to_string(), customer_id.to_string()))
            .map_or(0, |orders| u32::try_from(orders.len()).unwrap_or(u32::MAX)))
    }

    async fn put_price(&self, entry: &PriceEntry) -> Result<bool, StoreError> {
        self.change(|st| {
            if st
                .prices
                .get(&entry.sku)
                .is_some_and(|old| old.version >= entry.version)
            {
                return false;
            }
            st.prices.insert(entry.sku.clone(), entry.clone());
            true
        })
    }

    async fn record_promotion_use(
        &self,
        code: &str,
        customer_id: &str,
        order_key: &str,
    ) -> Result<(), StoreError> {
        self.change(|st| {
            st.uses
                .entry((code.to_string(), customer_id.to_string()))
                .or_default()
                .insert(order_key.to_string());
        })
    }
}

/// The local app's catalog file (`events/catalog/seed.json`): prices as
/// decimal text in one currency, stock on hand, promotions as stored.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CatalogSeed {
    pub currency: String,
    pub items: Vec<SeedItem>,
    #[serde(default)]
    pub promotions: Vec<Promotion>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct SeedItem {
    pub sku: String,
    pub price: String,
    pub on_hand: u32,
    #[serde(default)]
    pub collections: std::collections::BTreeSet<String>,
}

/// A catalog seed that cannot be read or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogSeedError {
    /// The file is not a seed, or a currency or price in it is not money.
    #[error("{0}")]
    Unreadable(String),
    /// The stock ledger refused an on-hand count.
    #[error("{0}")]
    Store(#[from] crate::ports::StoreError),
}

impl CatalogSeed {
    pub fn parse(json: &str) -> Result<Self, CatalogSeedError> {
        serde_json::from_str(json)
            .map_err(|e| CatalogSeedError::Unreadable(format!("catalog seed: {e}")))
    }

    /// Loads the seed into a catalog and a stock ledger.
    pub async fn load(
        &self,
        catalog: &InProcessCatalog,
        stock: &dyn crate::ports::stock::StockReservations,
    ) -> Result<(), CatalogSeedError> {
        let currency = crate::money::Currency::from_code(&self.currency)
            .map_err(|e| CatalogSeedError::Unreadable(e.to_string()))?;
        for item in &self.items {
            let price = crate::money::Money::parse(&item.price, currency)
                .map_err(|e| CatalogSeedError::Unreadable(format!("{}: {e}", item.sku)))?;
            catalog.set_price(PriceEntry {
                sku: item.sku.clone(),
                price,
                version: 1,
                collections: item.collections.clone(),
            });
            stock.set_on_hand(&item.sku, item.on_hand).await?;
        }
        for p in &self.promotions {
            catalog.add_promotion(p.clone());
        }
        Ok(())
    }
}
