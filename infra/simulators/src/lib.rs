//! Loopback simulators of the systems of record, speaking the documented
//! shapes in `API-SHAPES.md`: NetSuite (`/netsuite/services/rest/record/v1`)
//! Business Central (`/bc/v2.0/.../companies(...)`) and Salesforce Loyalty
//! (`/salesforce/services/data/v62.0`), on one
//! 127.0.0.1 port.
//!
//! They record every effect (documents created, journals posted) so tests can
//! assert exactly-once, and take injected faults: throttling (with or without
//! Retry-After), 5xx, slow answers and timeouts, an outage window, and a
//! response lost after the effect was applied.

mod business_central;
mod erp_items;
mod faults;
mod netsuite;
mod salesforce;
mod shop_stock;
mod shops;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;

pub use business_central::BcSalesOrder;
pub use erp_items::ErpItemRecord;
pub use faults::{Fault, FaultKind, System};
pub use netsuite::{NetSuiteCreditMemo, NetSuiteCustomer, NetSuiteSalesOrder, DISPOSITION_COLUMN};
pub use salesforce::{Journal, Member};
pub use shops::ShopRefundRecord;

/// Everything the simulators hold, shared with the tests that drive them.
/// Where the simulators read the time (outage windows): the wall clock, or
/// the local app's virtual clock.
pub type SimClock = Arc<dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync>;

pub struct SimState {
    pub(crate) clock: SimClock,
    pub(crate) faults: Mutex<faults::FaultBook>,
    pub(crate) netsuite: Mutex<netsuite::NetSuiteState>,
    pub(crate) salesforce: Mutex<salesforce::SalesforceState>,
    pub(crate) business_central: Mutex<business_central::BcState>,
    pub(crate) erp_items: Mutex<erp_items::ItemsState>,
    pub(crate) shops: Mutex<shops::ShopState>,
    pub(crate) shop_stock: Mutex<shop_stock::ShopStockState>,
}

/// A running simulator server.
pub struct Simulators {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Simulator state is plain data; a poisoned lock still holds it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Simulators {
    /// Starts all simulators on a free 127.0.0.1 port, on the wall clock.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with_clock(Arc::new(chrono::Utc::now)).await
    }

    /// Starts all simulators with outage windows measured on `clock`.
    pub async fn start_with_clock(clock: SimClock) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().map_err(std::io::Error::other)?, clock).await
    }

    /// Starts all simulators on `addr` (loopback only).
    pub async fn start_on(addr: SocketAddr, clock: SimClock) -> std::io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::other("simulators listen on loopback only"));
        }
        let state = Arc::new(SimState {
            clock,
            faults: Mutex::default(),
            netsuite: Mutex::default(),
            salesforce: Mutex::default(),
            business_central: Mutex::default(),
            erp_items: Mutex::default(),
            shops: Mutex::default(),
            shop_stock: Mutex::default(),
        });
        let app = Router::new()
            .nest("/netsuite/services/rest/record/v1", netsuite::router())
            .nest(
                "/netsuite/services/rest/query/v1",
                erp_items::netsuite_query_router(),
            )
            .nest("/salesforce/services/data/v62.0", salesforce::router())
            .nest(business_central::COMPANY_PATH, business_central::router())
            .nest(
                "/shopify",
                shops::shopify_router().merge(shop_stock::shopify_router()),
            )
            .nest(
                "/adobe",
                shops::adobe_router().merge(shop_stock::adobe_router()),
            )
            .route("/__sim/state", axum::routing::get(summary))
            .route("/__sim/erp-items", axum::routing::put(erp_items::put_items))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                faults::apply,
            ))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "simulators stopped");
            }
        });
        Ok(Simulators { addr, state })
    }

    /// An item in both ERPs' catalogs (price in the ERP's base currency,
    /// units free to sell).
    pub fn set_erp_item(&self, sku: &str, price: common::money::Money, available: i64) {
        lock(&self.state.erp_items).items.insert(
            sku.to_string(),
            ErpItemRecord {
                sku: sku.to_string(),
                price,
                available,
            },
        );
    }

    /// A Shopify variant with this SKU in `shop`, and its inventory item.
    pub fn shopify_add_variant(&self, shop: &str, sku: &str, inventory_item_id: u64) {
        lock(&self.state.shop_stock)
            .variants
            .insert((shop.to_string(), sku.to_string()), inventory_item_id);
    }

    /// The `available` level Shopify shows for an inventory item at a location.
    pub fn shopify_available(
        &self,
        shop: &str,
        inventory_item_id: u64,
        location: u64,
    ) -> Option<i64> {
        lock(&self.state.shop_stock)
            .shopify_levels
            .get(&(shop.to_string(), inventory_item_id, location))
            .copied()
    }

    /// An Adobe Commerce source item: (quantity, status).
    pub fn adobe_source_item(&self, sku: &str, source: &str) -> Option<(i64, i64)> {
        lock(&self.state.shop_stock)
            .adobe_source_items
            .get(&(sku.to_string(), source.to_string()))
            .copied()
    }

    pub fn netsuite_base(&self) -> String {
        format!("http://{}/netsuite/services/rest/record/v1", self.addr)
    }

    /// The Business Central company URL (connectors append entity names).
    pub fn business_central_company(&self) -> String {
        format!("http://{}{}", self.addr, business_central::COMPANY_PATH)
    }

    pub fn business_central_sales_orders(&self) -> Vec<BcSalesOrder> {
        lock(&self.state.business_central).sales_orders.clone()
    }

    pub fn business_central_credit_memos(&self) -> Vec<BcSalesOrder> {
        lock(&self.state.business_central).credit_memos.clone()
    }

    /// The Shopify Admin base with `{shop}` for the shop domain.
    pub fn shopify_admin_base(&self) -> String {
        format!("http://{}/shopify/{{shop}}", self.addr)
    }

    /// The Adobe Commerce REST base (connectors append `V1/...`).
    pub fn adobe_rest_base(&self) -> String {
        format!("http://{}/adobe/rest", self.addr)
    }

    pub fn shop_refunds(&self) -> Vec<ShopRefundRecord> {
        lock(&self.state.shops).refunds.clone()
    }

    pub fn salesforce_base(&self) -> String {
        format!("http://{}/salesforce", self.addr)
    }

    /// Queues a fault for matching calls.
    pub fn inject(&self, fault: Fault) {
        lock(&self.state.faults).add(fault);
    }

    /// Every call to `system` fails with 503 until `until` (on the simulators' clock).
    pub fn outage(&self, system: System, until: chrono::DateTime<chrono::Utc>) {
        lock(&self.state.faults).outage(system, until);
    }

    pub fn calls(&self, system: System) -> usize {
        lock(&self.state.faults).calls(system)
    }

    pub fn netsuite_sales_orders(&self) -> Vec<NetSuiteSalesOrder> {
        lock(&self.state.netsuite)
            .sales_orders
            .values()
            .cloned()
            .collect()
    }

    pub fn netsuite_credit_memos(&self) -> Vec<NetSuiteCreditMemo> {
        lock(&self.state.netsuite)
            .credit_memos
            .values()
            .cloned()
            .collect()
    }

    /// Takes a sales order out of the open orders, as invoicing it would
    /// (test hook: the ERP moved on without retailflow).
    pub fn netsuite_remove_sales_order(&self, external_id: &str) {
        lock(&self.state.netsuite).sales_orders.remove(external_id);
    }

    pub fn netsuite_customers(&self) -> Vec<NetSuiteCustomer> {
        lock(&self.state.netsuite)
            .customers
            .values()
            .cloned()
            .collect()
    }

    pub fn loyalty_journals(&self) -> Vec<Journal> {
        lock(&self.state.salesforce).journals.clone()
    }

    pub fn loyalty_members(&self) -> Vec<Member> {
        lock(&self.state.salesforce)
            .members
            .values()
            .cloned()
            .collect()
    }
}

/// What the simulators recorded, for tests that drive them over HTTP.
async fn summary(
    axum::extract::State(state): axum::extract::State<Arc<SimState>>,
) -> axum::Json<serde_json::Value> {
    let ns = lock(&state.netsuite);
    let sf = lock(&state.salesforce);
    let bc = lock(&state.business_central);
    axum::Json(serde_json::json!({
        "netsuite_sales_orders": ns.sales_orders.values().map(|s| serde_json::json!({
            "external_id": s.external_id, "tran_id": s.tran_id, "total": s.total.to_decimal_string(),
            "currency": s.total.currency.code(), "upserts": s.upserts})).collect::<Vec<_>>(),
        "business_central_sales_orders": bc.sales_orders.len(),
        "netsuite_credit_memos": ns.credit_memos.values().map(|s| serde_json::json!({
            "external_id": s.external_id, "tran_id": s.tran_id, "total": s.total.to_decimal_string(),
            "currency": s.total.currency.code(), "upserts": s.upserts})).collect::<Vec<_>>(),
        "loyalty_journals": sf.journals.iter().map(|j| serde_json::json!({
            "external_transaction_number": j.external_transaction_number, "points": j.points,
            "kind": j.kind})).collect::<Vec<_>>(),
    }))
}
