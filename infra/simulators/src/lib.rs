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

mod auth;
mod business_central;
mod credentials;
mod erp_items;
mod faults;
mod ledger_drift;
mod limits;
mod netsuite;
mod salesforce;
mod shop_fulfillment;
mod shop_stock;
mod shops;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;

pub use auth::{TokenIssuer, DEV_CONNECTOR_SECRET, DEV_CONNECTOR_SECRET_ALTERNATIVES};
pub use business_central::BcSalesOrder;
pub use erp_items::ErpItemRecord;
pub use faults::{Fault, FaultKind, System};
pub use ledger_drift::NetSuiteRecord;
pub use limits::AccountLimit;
pub use netsuite::{
    NetSuiteCreditMemo, NetSuiteCustomer, NetSuiteFulfillment, NetSuiteSalesOrder,
    DISPOSITION_COLUMN,
};
pub use salesforce::{Journal, Member};
pub use shop_fulfillment::ShopShipmentRecord;
pub use shops::ShopRefundRecord;

/// Everything the simulators hold, shared with the tests that drive them.
/// Where the simulators read the time (outage windows): the wall clock, or
/// the local app's virtual clock.
pub type SimClock = Arc<dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync>;

pub struct SimState {
    pub(crate) clock: SimClock,
    pub(crate) faults: Mutex<faults::FaultBook>,
    pub(crate) auth: Mutex<auth::AuthState>,
    pub(crate) limits: Mutex<limits::LimitState>,
    pub(crate) netsuite: Mutex<netsuite::NetSuiteState>,
    pub(crate) salesforce: Mutex<salesforce::SalesforceState>,
    pub(crate) business_central: Mutex<business_central::BcState>,
    pub(crate) erp_items: Mutex<erp_items::ItemsState>,
    pub(crate) shops: Mutex<shops::ShopState>,
    pub(crate) shop_stock: Mutex<shop_stock::ShopStockState>,
    pub(crate) shop_fulfillment: Mutex<shop_fulfillment::ShopFulfillmentState>,
    on_change: Mutex<Option<ChangeHook>>,
    /// Held from a snapshot to its hook's write, so an older snapshot
    /// never lands after a newer one.
    saving: Mutex<()>,
}

/// A running simulator server.
pub struct Simulators {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
    /// The connector secret retailflow's side reads (the dev one unless a
    /// test stores another), on the simulators' clock.
    secret: Arc<retailflow_core::credentials::FixedSecret>,
    secrets: Arc<retailflow_core::credentials::ConnectorSecrets>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Simulator state is plain data; a poisoned lock still holds it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What [`Simulators::on_change`] calls.
pub type ChangeHook = Arc<dyn Fn(serde_json::Value) + Send + Sync>;

fn saved_of(st: &SimState) -> serde_json::Value {
    fn part<T: serde::Serialize>(m: &Mutex<T>) -> serde_json::Value {
        // Strings, numbers and money; tuple keys as pairs: it always
        // serializes. Each part under its own lock, as a request would see it.
        serde_json::to_value(&*lock(m)).unwrap_or_default()
    }
    serde_json::json!({
        "netsuite": part(&st.netsuite),
        "salesforce": part(&st.salesforce),
        "business_central": part(&st.business_central),
        "erp_items": part(&st.erp_items),
        "shops": part(&st.shops),
        "shop_stock": part(&st.shop_stock),
        "shop_fulfillment": part(&st.shop_fulfillment),
    })
}

/// Runs the change hook after a request that may have changed a record.
async fn after_change(
    axum::extract::State(state): axum::extract::State<Arc<SimState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let reads_only = req.method() == axum::http::Method::GET;
    let resp = next.run(req).await;
    if !reads_only {
        let hook = lock(&state.on_change).clone();
        if let Some(hook) = hook {
            let _order = lock(&state.saving);
            hook(saved_of(&state));
        }
    }
    resp
}

/// Everything the systems of record hold, as the local app saves it.
#[derive(serde::Deserialize)]
struct Saved {
    netsuite: netsuite::NetSuiteState,
    salesforce: salesforce::SalesforceState,
    business_central: business_central::BcState,
    erp_items: erp_items::ItemsState,
    shops: shops::ShopState,
    shop_stock: shop_stock::ShopStockState,
    shop_fulfillment: shop_fulfillment::ShopFulfillmentState,
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
            auth: Mutex::default(),
            limits: Mutex::default(),
            netsuite: Mutex::default(),
            salesforce: Mutex::default(),
            business_central: Mutex::default(),
            erp_items: Mutex::default(),
            shops: Mutex::default(),
            shop_stock: Mutex::default(),
            shop_fulfillment: Mutex::default(),
            on_change: Mutex::default(),
            saving: Mutex::default(),
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
                shops::shopify_router()
                    .merge(shop_stock::shopify_router())
                    .merge(shop_fulfillment::shopify_router()),
            )
            .nest(
                "/adobe",
                shops::adobe_router()
                    .merge(shop_stock::adobe_router())
                    .merge(shop_fulfillment::adobe_router()),
            )
            .route(
                "/netsuite/services/rest/auth/oauth2/v1/token",
                axum::routing::post(auth::netsuite_token),
            )
            .route(
                "/entra/{tenant}/oauth2/v2.0/token",
                axum::routing::post(auth::entra_token),
            )
            .route(
                "/salesforce/services/oauth2/token",
                axum::routing::post(auth::salesforce_token),
            )
            .route("/__sim/state", axum::routing::get(summary))
            .route("/__sim/erp-items", axum::routing::put(erp_items::put_items))
            .route(
                "/__sim/netsuite-ship",
                axum::routing::post(netsuite_ship_hook),
            )
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                faults::apply,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                limits::enforce,
            ))
            // Outermost of the API's checks: a bad credential is refused
            // before it takes a slot, as the platforms do.
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::verify,
            ))
            // Outside the faults: a lost response's effect is saved too.
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                after_change,
            ))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "simulators stopped");
            }
        });
        let mut sims = Simulators::over(state);
        sims.addr = addr;
        Ok(sims)
    }

    /// What the simulated systems hold (documents, journals, members,
    /// items, shop records; not faults), so a local app that restarts finds
    /// its systems of record as it left them.
    pub fn saved(&self) -> serde_json::Value {
        saved_of(&self.state)
    }

    /// Calls `hook` with [`Self::saved`] after every request that may
    /// change a record (any method but GET), before its answer leaves: a
    /// local app keeps its systems of record on disk with it.
    pub fn on_change(&self, hook: ChangeHook) {
        *lock(&self.state.on_change) = Some(hook);
    }

    /// Puts back what [`Self::saved`] gave.
    pub fn restore(&self, saved: serde_json::Value) -> Result<(), serde_json::Error> {
        self.put_back(serde_json::from_value(saved)?);
        Ok(())
    }

    fn put_back(&self, saved: Saved) {
        let st = &self.state;
        *lock(&st.netsuite) = saved.netsuite;
        *lock(&st.salesforce) = saved.salesforce;
        *lock(&st.business_central) = saved.business_central;
        *lock(&st.erp_items) = saved.erp_items;
        *lock(&st.shops) = saved.shops;
        *lock(&st.shop_stock) = saved.shop_stock;
        *lock(&st.shop_fulfillment) = saved.shop_fulfillment;
    }

    /// An item in both ERPs' catalogs (price in the ERP's base currency,
    /// units free to sell).
    pub fn set_erp_item(&self, sku: &str, price: retailflow_core::money::Money, available: i64) {
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

    /// A Shopify order with line items (id, SKU, units) to fulfil.
    pub fn shopify_add_order(&self, shop: &str, order_id: u64, lines: &[(u64, &str, u64)]) {
        lock(&self.state.shop_fulfillment).shopify_orders.insert(
            (shop.to_string(), order_id),
            lines
                .iter()
                .map(|(id, sku, q)| (*id, sku.to_string(), *q, 0))
                .collect(),
        );
    }

    pub fn shopify_fulfillments(&self, shop: &str, order_id: u64) -> Vec<ShopShipmentRecord> {
        lock(&self.state.shop_fulfillment)
            .shopify_fulfillments
            .get(&(shop.to_string(), order_id))
            .cloned()
            .unwrap_or_default()
    }

    /// An Adobe Commerce order with items (item id, SKU, units) to ship.
    pub fn adobe_add_order(&self, order_id: u64, items: &[(u64, &str, u64)]) {
        lock(&self.state.shop_fulfillment).adobe_orders.insert(
            order_id,
            items
                .iter()
                .map(|(id, sku, q)| (*id, sku.to_string(), *q, 0))
                .collect(),
        );
    }

    pub fn adobe_shipments(&self, order_id: u64) -> Vec<ShopShipmentRecord> {
        lock(&self.state.shop_fulfillment)
            .adobe_shipments
            .get(&order_id)
            .cloned()
            .unwrap_or_default()
    }

    /// An Adobe Commerce source item: (quantity, status).
    pub fn adobe_source_item(&self, sku: &str, source: &str) -> Option<(i64, i64)> {
        lock(&self.state.shop_stock)
            .adobe_source_items
            .get(&(sku.to_string(), source.to_string()))
            .copied()
    }

    /// The warehouse ships (part of) a NetSuite sales order: an item
    /// fulfillment with its tracking numbers. Returns its internal id.
    pub fn netsuite_ship(
        &self,
        sales_order_external_id: &str,
        carrier: &str,
        tracking_numbers: &[&str],
        lines: &[(&str, i64)],
    ) -> u64 {
        let mut ns = lock(&self.state.netsuite);
        let id = 50_000 + ns.fulfillments.len() as u64 + 1;
        ns.fulfillments.push(netsuite::NetSuiteFulfillment {
            id,
            tran_id: format!("IF{id}"),
            sales_order_external_id: sales_order_external_id.to_string(),
            ship_date: (self.state.clock)().format("%Y-%m-%d").to_string(),
            carrier: carrier.to_string(),
            tracking_numbers: tracking_numbers.iter().map(|t| t.to_string()).collect(),
            lines: lines.iter().map(|(s, q)| (s.to_string(), *q)).collect(),
            status: "C".into(),
        });
        id
    }

    /// Sets an item fulfillment's ship status (`A` picked, `B` packed, `C`
    /// shipped) and, optionally, its tracking numbers.
    pub fn netsuite_fulfillment_status(&self, id: u64, status: &str, tracking: Option<&[&str]>) {
        let mut ns = lock(&self.state.netsuite);
        if let Some(f) = ns.fulfillments.iter_mut().find(|f| f.id == id) {
            f.status = status.to_string();
            if let Some(t) = tracking {
                f.tracking_numbers = t.iter().map(|n| n.to_string()).collect();
            }
        }
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

    /// Ends every queued fault and outage (the fault is fixed).
    pub fn clear_faults(&self) {
        lock(&self.state.faults).clear();
    }

    /// Every call to `system` fails with 503 until `until` (on the simulators' clock).
    pub fn outage(&self, system: System, until: chrono::DateTime<chrono::Utc>) {
        lock(&self.state.faults).outage(system, until);
    }

    pub fn calls(&self, system: System) -> usize {
        lock(&self.state.faults).calls(system)
    }

    /// The faults that hit a call, in order: (system, what happened).
    pub fn faults_fired(&self) -> Vec<(System, &'static str)> {
        lock(&self.state.faults).fired()
    }

    /// Puts a sales order back as it was (an ERP user undoing a deletion).
    pub fn netsuite_restore_sales_order(&self, so: NetSuiteSalesOrder) {
        lock(&self.state.netsuite)
            .sales_orders
            .insert(so.external_id.clone(), so);
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

/// `POST /__sim/netsuite-ship`: the warehouse ships a sales order
/// (`{"sales_order": external id, "carrier", "tracking": [..],
/// "lines": [[sku, units]]}`); answers the fulfillment id.
async fn netsuite_ship_hook(
    axum::extract::State(state): axum::extract::State<Arc<SimState>>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> axum::Json<serde_json::Value> {
    let sims = Simulators::over(state);
    let tracking: Vec<&str> = body["tracking"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .collect();
    let lines: Vec<(&str, i64)> = body["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| Some((l[0].as_str()?, l[1].as_i64()?)))
        .collect();
    let id = sims.netsuite_ship(
        body["sales_order"].as_str().unwrap_or(""),
        body["carrier"].as_str().unwrap_or(""),
        &tracking,
        &lines,
    );
    axum::Json(serde_json::json!({ "id": id }))
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
