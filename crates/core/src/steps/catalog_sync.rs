//! CatalogSync: the ERP's prices and stock into what checkout reads, on a
//! schedule, so checkout never calls the ERP.
//!
//! Every run reads the ERP's items page by page ([`ErpCatalogFeed`]):
//! - a price that differs from the price book's is written as the next
//!   version, so a checkout validated against the old price is caught (its
//!   shown price and version no longer match); an unchanged price is left
//!   alone, version and all;
//! - a count of units free to sell goes through
//!   [`StockReservations::apply_erp_count`]: units retailflow sold that the
//!   ERP has not received yet are taken off it, and a count read before the
//!   ERP last received one of retailflow's orders of that SKU is skipped as
//!   stale. Holds already given are never taken back; new ones fit in what
//!   the count leaves.
//!
//! - each SKU whose count moved has its available units (on hand less live
//!   holds) pushed to every shop ([`EcommerceConnector::push_stock`]:
//!   Shopify `inventory_levels/set`, Adobe Commerce source items).
//!
//! An item the ERP sends unreadable (a price finer than the currency allows,
//! a quantity out of range) is skipped and counted; a failed page stops the
//! run with the pages before it applied, and the next tick starts over
//! (every write is idempotent).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::checkout::pricing::PriceEntry;
use crate::money::Currency;
use crate::ports::catalog::Catalog;
use crate::ports::erp::{ErpCatalogFeed, ErpItem};
use crate::ports::shop::{EcommerceConnector, StockLevel};
use crate::ports::stock::{CountOutcome, StockReservations};
use crate::resilience::CircuitBreaker;

use super::StepOutcome;
use crate::resilience::Guarded;

/// Most pages one run reads: a runaway `next` link cannot loop forever.
pub const MAX_PAGES_PER_RUN: usize = 500;

/// What one run did, for logs and the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub erp_system: String,
    pub pages: usize,
    pub items: usize,
    pub prices_changed: usize,
    pub counts_applied: usize,
    /// Counts read before the ERP received an order of the SKU: skipped.
    pub counts_stale: usize,
    /// Items the ERP gave no price for, or a price in another currency.
    pub items_without_price: usize,
    /// Items the ERP sent unreadable (skipped; their reasons are logged).
    pub items_unreadable: usize,
    /// Stopped at the page limit with more to read.
    pub truncated: bool,
    /// Levels set in the shops (one per SKU and shop).
    pub shop_levels_set: usize,
    /// SKUs a shop does not sell (left alone there).
    pub shop_unknown_skus: usize,
    /// Pushes to a shop that failed (logged; those SKUs go out again on
    /// their next change).
    pub shop_push_failures: usize,
}

pub struct CatalogSync {
    feed: Arc<dyn ErpCatalogFeed>,
    breaker: Arc<CircuitBreaker>,
    /// Where available stock is pushed after each page.
    shops: Vec<Guarded<dyn EcommerceConnector>>,
    catalog: Arc<dyn Catalog>,
    stock: Arc<dyn StockReservations>,
    /// The price book's currency (the ERP's base currency).
    currency: Currency,
    /// The wall clock (the local app's clock in tests): a count's read time
    /// is taken just before its page is requested.
    clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
}

impl CatalogSync {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        feed: Arc<dyn ErpCatalogFeed>,
        breaker: Arc<CircuitBreaker>,
        shops: Vec<Guarded<dyn EcommerceConnector>>,
        catalog: Arc<dyn Catalog>,
        stock: Arc<dyn StockReservations>,
        currency: Currency,
        clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    ) -> Self {
        CatalogSync {
            feed,
            breaker,
            shops,
            catalog,
            stock,
            currency,
            clock,
        }
    }

    /// One scheduled run; `Done` with the report, or why it stopped.
    pub async fn run(&self) -> StepOutcome {
        let mut report = SyncReport {
            erp_system: self.feed.system().to_string(),
            ..SyncReport::default()
        };
        let mut cursor: Option<String> = None;
        loop {
            if report.pages == MAX_PAGES_PER_RUN {
                report.truncated = true;
                break;
            }
            let read_at = (self.clock)();
            if let Err(e) = self.breaker.permit(read_at) {
                return e.into();
            }
            let page = self.feed.items_page(cursor.as_deref(), self.currency).await;
            self.breaker.record(read_at, page.as_ref().map(|_| ()));
            let page = match page {
                Ok(p) => p,
                Err(e) => return self.stopped(e.into(), &report),
            };
            report.pages += 1;
            report.items += page.items.len();
            for reason in &page.unreadable {
                tracing::warn!(reason = %reason, "ERP item skipped");
            }
            report.items_unreadable += page.unreadable.len();
            let levels = match self.apply(&page.items, read_at, &mut report).await {
                Ok(levels) => levels,
                Err(e) => return self.stopped(e, &report),
            };
            self.push(&levels, &mut report).await;
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        tracing::info!(report = ?report, "catalog sync done");
        StepOutcome::Done {
            // Plain data: serializing cannot fail.
            summary: serde_json::to_value(&report).unwrap_or_default(),
        }
    }

    fn stopped(&self, outcome: StepOutcome, report: &SyncReport) -> StepOutcome {
        tracing::warn!(report = ?report, outcome = ?outcome, "catalog sync stopped");
        outcome
    }

    /// Available units of the page's changed SKUs out to every shop. A
    /// shop that fails is counted and logged, never stops the ERP read: its
    /// levels go out again when they next change.
    async fn push(&self, levels: &[StockLevel], report: &mut SyncReport) {
        if levels.is_empty() {
            return;
        }
        for shop in &self.shops {
            let now = (self.clock)();
            if let Err(e) = shop.breaker.permit(now) {
                tracing::warn!(shop = shop.connector.system(), error = %e, "stock push skipped");
                report.shop_push_failures += 1;
                continue;
            }
            let pushed = shop.connector.push_stock(levels).await;
            shop.breaker.record(now, pushed.as_ref().map(|_| ()));
            match pushed {
                Ok(p) => {
                    report.shop_levels_set += p.set;
                    report.shop_unknown_skus += p.unknown_skus.len();
                }
                Err(e) => {
                    tracing::warn!(shop = shop.connector.system(), error = %e, "stock push failed");
                    report.shop_push_failures += 1;
                }
            }
        }
    }

    async fn apply(
        &self,
        items: &[ErpItem],
        read_at: DateTime<Utc>,
        report: &mut SyncReport,
    ) -> Result<Vec<StockLevel>, StepOutcome> {
        let skus: Vec<String> = items.iter().map(|i| i.sku.clone()).collect();
        let current = self.catalog.prices(&skus).await?;
        for item in items {
            match item.unit_price {
                Some(price) if price.currency == self.currency => {
                    let old = current.get(&item.sku);
                    if old.is_some_and(|o| o.price == price) {
                        continue;
                    }
                    let entry = PriceEntry {
                        sku: item.sku.clone(),
                        price,
                        version: old.map_or(1, |o| o.version + 1),
                        collections: old.map(|o| o.collections.clone()).unwrap_or_default(),
                    };
                    if self.catalog.put_price(&entry).await? {
                        report.prices_changed += 1;
                    }
                }
                _ => report.items_without_price += 1,
            }
        }
        let mut levels = Vec::new();
        for item in items {
            let Some(count) = item.available else {
                continue;
            };
            match self.stock.apply_erp_count(&item.sku, count, read_at).await {
                Ok(CountOutcome::Applied {
                    available, changed, ..
                }) => {
                    report.counts_applied += 1;
                    // The shops keep their own count between changes (they
                    // take their own orders off): only a moved count goes out.
                    if changed {
                        levels.push(StockLevel {
                            sku: item.sku.clone(),
                            available,
                        });
                    }
                }
                Ok(CountOutcome::Stale) => report.counts_stale += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(levels)
    }
}
