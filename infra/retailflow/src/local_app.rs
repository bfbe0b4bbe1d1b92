//! The whole app in one process: the same step logic as the Lambdas, wired to
//! in-process adapters (state store, routing bus, queues) and to the HTTP
//! connectors pointed at the loopback simulators. Queues, rules and retry
//! settings mirror template.yaml.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use retailflow_connectors::netsuite::{NetSuiteConfig, NetSuiteErp};
use retailflow_connectors::salesforce::{SalesforceLoyalty, SalesforceLoyaltyConfig};
use retailflow_connectors::shop::{
    AdobeCommerceAdmin, AdobeCommerceAdminConfig, ShopifyAdmin, ShopifyAdminConfig,
};
use retailflow_core::adapters::in_process::InProcessStateStore;
use retailflow_core::checkout::auth::{CheckoutAuth, CheckoutAuthConfig};
use retailflow_core::checkout::catalog::{CatalogSeed, InProcessCatalog};
use retailflow_core::checkout::hot_stock::{HotSkus, HotStock};
use retailflow_core::checkout::stock::{InProcessStock, StockReservations};
use retailflow_core::checkout::validation::{CheckoutConfig, CheckoutValidation};
use retailflow_core::events::INTAKE_SOURCE;
use retailflow_core::intake::{IntakeConfig, OrderIntake};
use retailflow_core::model::Platform;
use retailflow_core::ports::shop::EcommerceConnector;
use retailflow_core::ports::{ArchiveError, EventArchive, ReplaySpan};
use retailflow_core::queue_dispositions::{disposition, Disposition};
use retailflow_core::reconciliation::{Reconciliation, ReconciliationConfig, ReconciliationReport};
use retailflow_core::resilience::Guarded;
use retailflow_core::resilience::{CircuitBreaker, RetryPolicy};
use retailflow_core::steps::catalog_sync::CatalogSync;
use retailflow_core::steps::erp_posting::{ErpPosting, ErpPostingConfig};
use retailflow_core::steps::fulfillment_sync::FulfillmentSync;
use retailflow_core::steps::loyalty_accrual::{LoyaltyAccrual, LoyaltyAccrualConfig};
use retailflow_core::steps::return_reversal::{ReturnReversal, ReturnReversalConfig};
use retailflow_core::steps::stock_commit::{handle_stock_message, StockCommit};
use retailflow_core::steps::{
    handle_message, handle_return_message, Invocation, OrderStep, StepOutcome,
};
use simulators::Simulators;

use crate::data_dir::DataDir;
use crate::runtime::{lock, Clock, DeadLetter, Queue, Queues, RoutingBus, Rule};
use retailflow_core::adapters::in_process::Journal;
use retailflow_core::adapters::local_claim_checks::LocalClaimChecks;
use retailflow_core::claim_check::ClaimCheckedBus;
use retailflow_core::ports::EventBus;

pub const ERP_POST_QUEUE: &str = "erp-post";
pub const LOYALTY_ACCRUAL_QUEUE: &str = "loyalty-accrual";
pub const RETURN_REVERSAL_QUEUE: &str = "return-reversal";
pub const STOCK_COMMIT_QUEUE: &str = "stock-commit";

/// The Shopify shop of the sample events.
pub const SAMPLE_SHOP: &str = "acme-outdoor.myshopify.com";

/// The EventBridge rules of template.yaml (its schedule aside: the local
/// app sweeps expired holds whenever checkout finds a SKU short, and on
/// [`LocalApp::sweep_holds`]).
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            source: INTAKE_SOURCE,
            name: "OrderPlacedToErpPost",
            detail_types: &["OrderPlaced"],
            queue: ERP_POST_QUEUE,
        },
        Rule {
            source: INTAKE_SOURCE,
            name: "OrderPlacedToLoyaltyAccrual",
            detail_types: &["OrderPlaced"],
            queue: LOYALTY_ACCRUAL_QUEUE,
        },
        Rule {
            source: INTAKE_SOURCE,
            name: "RefundIssuedToReturnReversal",
            detail_types: &["RefundIssued"],
            queue: RETURN_REVERSAL_QUEUE,
        },
        Rule {
            source: INTAKE_SOURCE,
            name: "OrderCancelledToReturnReversal",
            detail_types: &["OrderCancelled"],
            queue: RETURN_REVERSAL_QUEUE,
        },
        Rule {
            source: INTAKE_SOURCE,
            name: "OrderPlacedToStockCommit",
            detail_types: &["OrderPlaced"],
            queue: STOCK_COMMIT_QUEUE,
        },
        Rule {
            source: INTAKE_SOURCE,
            name: "OrderCancelledToStockCommit",
            detail_types: &["OrderCancelled"],
            queue: STOCK_COMMIT_QUEUE,
        },
        Rule {
            source: retailflow_core::steps::erp_posting::SOURCE,
            name: "OrderPostedToErpToStockCommit",
            detail_types: &["OrderPostedToErp"],
            queue: STOCK_COMMIT_QUEUE,
        },
    ]
}

/// Which queue feeds each step (template.yaml's `RETAILFLOW_STEP_QUEUES`
/// of the reconciliation function): where a re-drive goes.
pub const STEP_QUEUES: [(&str, &str); 7] = [
    ("erp_post", ERP_POST_QUEUE),
    ("loyalty_accrual", LOYALTY_ACCRUAL_QUEUE),
    ("stock_commit", STOCK_COMMIT_QUEUE),
    ("loyalty_reversal", RETURN_REVERSAL_QUEUE),
    ("credit_memo", RETURN_REVERSAL_QUEUE),
    ("erp_cancel", RETURN_REVERSAL_QUEUE),
    ("shop_refund", RETURN_REVERSAL_QUEUE),
];

/// [`EventArchive`] on the local app's bus, which keeps every event it
/// published (in its journal): a replay sends the span's events again to
/// the target's rules' queues, as an EventBridge archive replay does. A
/// target is a step (the rules feeding its queue) or a rule's name.
pub struct LocalArchive {
    bus: Arc<RoutingBus>,
}

impl LocalArchive {
    /// The rules of a target: one rule by name, or those feeding a step's queue.
    fn rules_of(target: &str) -> Vec<Rule> {
        let queue = STEP_QUEUES
            .iter()
            .find(|(s, _)| *s == target)
            .map(|(_, q)| *q);
        rules()
            .into_iter()
            .filter(|r| r.name == target || Some(r.queue) == queue)
            .collect()
    }
}

#[async_trait::async_trait]
impl EventArchive for LocalArchive {
    fn knows(&self, target: &str) -> bool {
        !Self::rules_of(target).is_empty()
    }

    async fn replay(
        &self,
        targets: &[String],
        span: &ReplaySpan,
    ) -> Result<Option<String>, ArchiveError> {
        let mut rules: Vec<Rule> = Vec::new();
        for r in targets.iter().flat_map(|t| Self::rules_of(t)) {
            if !rules.iter().any(|have| have.name == r.name) {
                rules.push(r);
            }
        }
        if rules.is_empty() {
            return Ok(None);
        }
        let sent = self
            .bus
            .replay(&rules, span)
            .map_err(|e| ArchiveError::Unavailable(e.to_string()))?;
        Ok(Some(format!(
            "{sent} event(s) again from the local archive"
        )))
    }
}

/// Queue settings of template.yaml: visibility timeout and maxReceiveCount
/// sized so a two-hour outage never reaches the DLQ (see RetryPolicy).
pub const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(180);
pub const MAX_RECEIVE_COUNT: u32 = 24;
const BATCH_SIZE: usize = 10;

pub struct LocalApp {
    pub store: Arc<InProcessStateStore>,
    pub bus: Arc<RoutingBus>,
    /// Where events too large for the bus ride (`<data dir>/claims`).
    pub claims: Arc<LocalClaimChecks>,
    pub queues: Queues,
    pub dead_letters: Arc<Mutex<Vec<DeadLetter>>>,
    pub clock: Clock,
    pub sims: Simulators,
    pub intake: OrderIntake,
    pub erp_posting: ErpPosting,
    pub loyalty_accrual: LoyaltyAccrual,
    pub return_reversal: ReturnReversal,
    pub stock_commit: StockCommit,
    /// The ERP (NetSuite simulator) into the price book and stock; the
    /// simulator starts with the seed's items, so a sync changes nothing
    /// until a test changes the ERP.
    pub catalog_sync: CatalogSync,
    /// NetSuite simulator shipments onto the shop simulators.
    pub fulfillment_sync: FulfillmentSync,
    pub catalog: Arc<InProcessCatalog>,
    pub stock: Arc<InProcessStock>,
    pub checkout: CheckoutValidation,
    /// Who `POST /checkout/validate` answers: nobody until configured
    /// (`serve` from the environment, `run` from the dev keys).
    pub checkout_auth: CheckoutAuth,
    /// The loyalty connector every step uses, on the simulator.
    pub loyalty: Arc<SalesforceLoyalty>,
    /// The ERP connector every step uses, on the NetSuite simulator.
    pub erp: Arc<NetSuiteErp>,
    /// The bus's archive: what re-drives and replays send again.
    pub archive: Arc<LocalArchive>,
    /// Sagas against the NetSuite and Salesforce simulators.
    pub reconciliation: Reconciliation,
    pub retry: RetryPolicy,
    /// Where the app's state is kept, if on disk.
    pub data: Option<Arc<DataDir>>,
    /// The ERP's and the loyalty org's concurrency budgets.
    pub budgets: retailflow_core::config::Budgets,
}

/// The rows the state store owns (the rest are queues, events and `meta/`).
fn is_store_row(key: &str) -> bool {
    ["saga/", "claim/", "quarantine/", "cursor/", "report/"]
        .iter()
        .any(|p| key.starts_with(p))
}

/// The local app's catalog: prices, stock and promotions for the sample SKUs.
const CATALOG_SEED: &str = include_str!("../../../events/catalog/seed.json");

impl LocalApp {
    /// The app in memory only: gone when the process ends.
    pub async fn start(intake_config: IntakeConfig) -> std::io::Result<Self> {
        Self::open(intake_config, None).await
    }

    /// The app on a data directory's state (see [`crate::data_dir`]): its
    /// sagas, claims, queues, dead letters, published events, stock and the
    /// simulated systems' records as the last process left them, and every
    /// change written through. Without one, the app lives in memory.
    pub async fn open(
        intake_config: IntakeConfig,
        data: Option<Arc<DataDir>>,
    ) -> std::io::Result<Self> {
        let rows = match &data {
            Some(d) => d.rows("").map_err(std::io::Error::other)?,
            None => Vec::new(),
        };
        let journal = data.clone().map(|d| d as Arc<dyn Journal>);
        let row = |key: &str| -> Option<&str> {
            rows.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
        };
        let saved = |key: &str| -> std::io::Result<Option<serde_json::Value>> {
            row(key)
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| std::io::Error::other(format!("{key}: {e}")))
        };
        let clock = Clock::starting_now();
        if let Some(t) = saved("meta/clock")? {
            // The virtual clock never goes back: backoffs already waited stay waited.
            if let Ok(t) = serde_json::from_value(t) {
                clock.advance_to(t);
            }
        }
        let sim_clock = clock.clone();
        let sims = Simulators::start_with_clock(Arc::new(move || sim_clock.now())).await?;
        let queues: Queues = Arc::new(Mutex::new(BTreeMap::new()));
        let restore_err =
            |e: &dyn std::fmt::Display| std::io::Error::other(format!("local state: {e}"));
        for name in [
            ERP_POST_QUEUE,
            LOYALTY_ACCRUAL_QUEUE,
            RETURN_REVERSAL_QUEUE,
            STOCK_COMMIT_QUEUE,
        ] {
            let mut q = Queue::new(name, VISIBILITY_TIMEOUT, MAX_RECEIVE_COUNT);
            if let Some(j) = &journal {
                q = q.durable(j.clone(), &rows).map_err(|e| restore_err(&e))?;
            }
            lock(&queues).insert(name.into(), q);
        }
        let mut dead_letters = Vec::new();
        for (key, value) in rows.iter().filter(|(k, _)| k.starts_with("dlq/")) {
            let d: DeadLetter =
                serde_json::from_str(value).map_err(|e| restore_err(&format!("{key}: {e}")))?;
            dead_letters.push(d);
        }
        // In the order they died, as before the restart (keys sort as text).
        dead_letters.sort_by_key(|d| (crate::runtime::seq_of(&d.id), d.queue.clone()));
        let store = Arc::new(match &journal {
            Some(j) => InProcessStateStore::durable(
                j.clone(),
                rows.iter().filter(|(k, _)| is_store_row(k)).cloned(),
            )
            .map_err(|e| restore_err(&e))?,
            None => InProcessStateStore::new(),
        });
        let mut bus = RoutingBus::new(rules(), queues.clone(), clock.clone());
        if let Some(j) = &journal {
            bus = bus.durable(j.clone(), &rows).map_err(|e| restore_err(&e))?;
        }
        let bus = Arc::new(bus);
        // Events too large for the bus ride by reference, kept beside the
        // state file (or in memory), as the stack keeps them in S3.
        let claims = Arc::new(match &data {
            Some(d) => LocalClaimChecks::in_dir(d.dir().join("claims")),
            None => LocalClaimChecks::in_memory(),
        });
        let published: Arc<dyn EventBus> =
            Arc::new(ClaimCheckedBus::new(bus.clone(), claims.clone()));
        // The accounts' concurrency budgets, as on AWS (RETAILFLOW_ERP_BUDGET,
        // RETAILFLOW_LOYALTY_BUDGET), on the app's clock; the local app is
        // one container, giving its slots back after every batch.
        let budget_clock = clock.clone();
        let budgets = retailflow_core::config::Budgets::single_process(
            |k| std::env::var(k).ok(),
            store.clone(),
            Arc::new(move || budget_clock.now()),
        )
        .map_err(std::io::Error::other)?;
        let erp = Arc::new(NetSuiteErp::new(NetSuiteConfig {
            base_url: sims.netsuite_base(),
            auth: sims.netsuite_auth().with_budget(budgets.erp.clone()),
            subsidiary_id: Some("1".into()),
            timeout: Duration::from_secs(5),
        }));
        let loyalty_config = SalesforceLoyaltyConfig {
            base_url: sims.salesforce_base(),
            api_version: "v62.0".into(),
            program_name: "RetailflowRewards".into(),
            journal_subtype: "Purchase".into(),
            debit_process: "DebitPointsFromMembers".into(),
            auth: sims.salesforce_auth().with_budget(budgets.loyalty.clone()),
            timeout: Duration::from_secs(5),
        };
        let loyalty = Arc::new(SalesforceLoyalty::new(loyalty_config.clone()));
        // A breaker per system and step, as each step is its own function
        // on AWS, named as the system names itself.
        let erp_system = retailflow_core::ports::erp::ErpConnector::system(erp.as_ref());
        let loyalty_system =
            retailflow_core::ports::loyalty::LoyaltyConnector::system(loyalty.as_ref());
        let erp_breaker = CircuitBreaker::for_system(erp_system);
        let loyalty_breaker = CircuitBreaker::for_system(loyalty_system);
        let shopify = Arc::new(ShopifyAdmin::new(ShopifyAdminConfig {
            base_url: Some(sims.shopify_admin_base()),
            api_version: "2024-10".into(),
            // The sample shop: catalog syncs push its stock levels.
            tokens: sims.shopify_tokens(),
            locations: BTreeMap::new(),
            default_location: Some("1001".into()),
            timeout: Duration::from_secs(5),
        }));
        let adobe = Arc::new(AdobeCommerceAdmin::new(AdobeCommerceAdminConfig {
            base_url: sims.adobe_rest_base(),
            auth: sims.adobe_auth(),
            timeout: Duration::from_secs(5),
        }));
        let shop_breaker = CircuitBreaker::for_system;
        let shopify_system = EcommerceConnector::system(shopify.as_ref());
        let adobe_system = EcommerceConnector::system(adobe.as_ref());
        let (shopify_stock, adobe_stock) = (shopify.clone(), adobe.clone());
        let fulfillment_sync = FulfillmentSync::new(
            store.clone(),
            published.clone(),
            erp.clone(),
            CircuitBreaker::for_system(erp_system),
            vec![
                (
                    Platform::Shopify,
                    Guarded::new(
                        shopify.clone() as Arc<dyn EcommerceConnector>,
                        shop_breaker(shopify_system),
                    ),
                ),
                (
                    Platform::AdobeCommerce,
                    Guarded::new(
                        adobe.clone() as Arc<dyn EcommerceConnector>,
                        shop_breaker(adobe_system),
                    ),
                ),
            ],
        );
        let return_reversal = ReturnReversal::new(
            store.clone(),
            published.clone(),
            Guarded::new(erp.clone(), erp_breaker.clone()),
            Guarded::new(loyalty.clone(), loyalty_breaker.clone()),
            vec![
                (
                    Platform::Shopify,
                    Guarded::new(
                        shopify as Arc<dyn EcommerceConnector>,
                        shop_breaker(shopify_system),
                    ),
                ),
                (
                    Platform::AdobeCommerce,
                    Guarded::new(
                        adobe as Arc<dyn EcommerceConnector>,
                        shop_breaker(adobe_system),
                    ),
                ),
            ],
            ReturnReversalConfig::default(),
        );
        let mut catalog = InProcessCatalog::new();
        let mut stock = InProcessStock::new();
        let seed = CatalogSeed::parse(CATALOG_SEED).map_err(std::io::Error::other)?;
        seed.load(&catalog, &stock)
            .await
            .map_err(std::io::Error::other)?;
        if let Some(j) = &journal {
            // What was saved replaces the seed (it started from it).
            catalog = catalog
                .durable(j.clone(), row("meta/catalog"))
                .map_err(std::io::Error::other)?;
            stock = stock
                .durable(j.clone(), row("meta/stock"))
                .map_err(std::io::Error::other)?;
        }
        let (catalog, stock) = (Arc::new(catalog), Arc::new(stock));
        // What the steps and checkout hold stock through: hot SKUs sharded,
        // as on AWS.
        let held_stock: Arc<dyn StockReservations> = Arc::new(HotStock::new(
            stock.clone(),
            HotSkus::from_settings(|k| std::env::var(k).ok()).map_err(std::io::Error::other)?,
        ));
        let seed_currency = retailflow_core::money::Currency::from_code(&seed.currency)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        for item in &seed.items {
            let price = retailflow_core::money::Money::parse(&item.price, seed_currency)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            sims.set_erp_item(&item.sku, price, i64::from(item.on_hand));
        }
        if let Some(v) = saved("meta/simulators")? {
            sims.restore(v).map_err(std::io::Error::other)?;
        }
        if let Some(data) = &data {
            // The systems of record keep their own books: saved with every
            // change, before the caller hears back.
            // Weak: the simulators' server outlives the app; the file must not.
            let data = Arc::downgrade(data);
            sims.on_change(Arc::new(move |v| {
                let Some(data) = data.upgrade() else { return };
                let row = ("meta/simulators".to_string(), Some(v.to_string()));
                if let Err(e) = data.write(&[row]) {
                    tracing::error!(error = %e, "local state file not written");
                }
            }));
        }
        let sync_clock = clock.clone();
        let catalog_sync = CatalogSync::new(
            erp.clone(),
            CircuitBreaker::for_system(erp_system),
            vec![
                Guarded::new(
                    shopify_stock as Arc<dyn EcommerceConnector>,
                    shop_breaker(shopify_system),
                ),
                Guarded::new(
                    adobe_stock as Arc<dyn EcommerceConnector>,
                    shop_breaker(adobe_system),
                ),
            ],
            catalog.clone(),
            held_stock.clone(),
            seed_currency,
            Arc::new(move || sync_clock.now()),
        );
        // A shopper waits on checkout's balance read: outside the budget,
        // as on AWS.
        let checkout_loyalty = Arc::new(SalesforceLoyalty::new(SalesforceLoyaltyConfig {
            auth: sims.salesforce_auth(),
            ..loyalty_config
        }));
        let checkout = CheckoutValidation::new(
            catalog.clone(),
            held_stock.clone(),
            checkout_loyalty,
            CircuitBreaker::for_system_opening_for(
                loyalty_system,
                retailflow_core::checkout::validation::LOYALTY_BREAKER_OPEN_FOR,
            ),
            CheckoutConfig::default(),
        );
        let stock_commit = StockCommit::new(
            store.clone(),
            published.clone(),
            held_stock.clone(),
            catalog.clone(),
            retailflow_core::idempotency::LeasePolicy::default(),
        );
        let recon_clock = clock.clone();
        let archive = Arc::new(LocalArchive { bus: bus.clone() });
        let reconciliation = Reconciliation::new(
            store.clone(),
            published.clone(),
            archive.clone(),
            Some(Guarded {
                connector: erp.clone() as Arc<dyn retailflow_core::ports::erp::ErpConnector>,
                breaker: CircuitBreaker::for_system(erp_system),
            }),
            Some(Guarded {
                connector: loyalty.clone()
                    as Arc<dyn retailflow_core::ports::loyalty::LoyaltyConnector>,
                breaker: CircuitBreaker::for_system(loyalty_system),
            }),
            ReconciliationConfig::default(),
            Arc::new(move || recon_clock.now()),
        );
        Ok(LocalApp {
            budgets,
            reconciliation,
            archive,
            erp: erp.clone(),
            fulfillment_sync,
            catalog_sync,
            stock_commit,
            loyalty: loyalty.clone(),
            catalog,
            stock,
            checkout,
            checkout_auth: CheckoutAuth::new(CheckoutAuthConfig::default(), store.clone()),
            return_reversal,
            intake: OrderIntake::new(store.clone(), published.clone(), intake_config)
                .with_claim_checks(claims.clone()),
            erp_posting: ErpPosting::new(
                store.clone(),
                published.clone(),
                erp,
                erp_breaker,
                ErpPostingConfig::default(),
            ),
            loyalty_accrual: LoyaltyAccrual::new(
                store.clone(),
                published.clone(),
                loyalty,
                loyalty_breaker,
                LoyaltyAccrualConfig::default(),
            ),
            store,
            bus,
            claims,
            queues,
            dead_letters: Arc::new(Mutex::new(dead_letters)),
            clock,
            data,
            sims,
            retry: RetryPolicy::default(),
        })
    }

    /// Reconciles the sagas started in the last `lookback` (and the hour
    /// now), invoking the run again while it pauses (at most 20 times).
    pub async fn reconcile(
        &self,
        lookback: chrono::Duration,
    ) -> Result<ReconciliationReport, retailflow_core::reconciliation::ReconciliationError> {
        let now = self.clock.now();
        self.reconcile_window((now - lookback, now)).await
    }

    /// Reconciles the sagas started in `window`, as the function would
    /// over as many invocations as it takes (at most 20).
    pub async fn reconcile_window(
        &self,
        window: (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
    ) -> Result<ReconciliationReport, retailflow_core::reconciliation::ReconciliationError> {
        let mut report = self.reconciliation.run(window, None).await?;
        for _ in 0..20 {
            if report.complete {
                break;
            }
            report = self.reconciliation.run(window, None).await?;
        }
        Ok(report)
    }

    /// Runs one queue message through its function, as the SQS event source would.
    async fn handle(&self, queue: &str, body: &str, attempt: u32) -> StepOutcome {
        let attempt = retailflow_core::replay::attempt_of(body, attempt);
        // An event that came by reference gets its detail back first.
        let body = match retailflow_core::claim_check::resolve(self.claims.as_ref(), body).await {
            Ok(body) => body,
            Err(e) => return StepOutcome::from(e),
        };
        let body = body.as_ref();
        let inv = Invocation {
            now: self.clock.now(),
            deadline: None,
            attempt,
        };
        if queue == RETURN_REVERSAL_QUEUE {
            return handle_return_message(&self.return_reversal, body, inv).await;
        }
        if queue == STOCK_COMMIT_QUEUE {
            return handle_stock_message(&self.stock_commit, body, inv).await;
        }
        let step: &dyn OrderStep = match queue {
            ERP_POST_QUEUE => &self.erp_posting,
            LOYALTY_ACCRUAL_QUEUE => &self.loyalty_accrual,
            other => {
                return StepOutcome::Reject {
                    reason: format!("no function consumes queue {other}"),
                }
            }
        };
        handle_message(step, body, inv).await
    }

    /// Delivers queue messages in batches until every queue is empty,
    /// jumping the clock over backoff delays. Bounded so it always returns.
    pub async fn drain(&self) -> DrainReport {
        self.drain_bounded(None).await
    }

    /// Like [`Self::drain`], but stops once the clock would pass `until`
    /// (leaving later messages queued), with the clock at `until`.
    pub async fn drain_until(&self, until: chrono::DateTime<chrono::Utc>) -> DrainReport {
        let report = self.drain_bounded(Some(until)).await;
        if self.clock.now() < until {
            self.clock.advance_to(until);
        }
        report
    }

    /// Saves the virtual clock (everything else is written through):
    /// after every drained batch. A failure is logged; the next save
    /// catches up, and a clock restored a little behind only makes a
    /// backoff wait again.
    pub fn save_clock(&self) {
        let Some(data) = &self.data else { return };
        let now = serde_json::json!(self.clock.now()).to_string();
        if let Err(e) = data.write(&[("meta/clock".to_string(), Some(now))]) {
            tracing::error!(error = %e, "local state file not written");
        }
    }

    async fn drain_bounded(&self, until: Option<chrono::DateTime<chrono::Utc>>) -> DrainReport {
        let report = self.drain_batches(until).await;
        // The clock as the drain left it (it may have jumped over backoffs).
        self.save_clock();
        report
    }

    async fn drain_batches(&self, until: Option<chrono::DateTime<chrono::Utc>>) -> DrainReport {
        let mut report = DrainReport::default();
        for _ in 0..100_000 {
            let now = self.clock.now();
            let mut batches = Vec::new();
            {
                let mut queues = lock(&self.queues);
                let mut dlq = lock(&self.dead_letters);
                for (name, q) in queues.iter_mut() {
                    let msgs = q.receive(BATCH_SIZE, now, &mut dlq);
                    if !msgs.is_empty() {
                        batches.push((name.clone(), msgs));
                    }
                }
            }
            if batches.is_empty() {
                let next = lock(&self.queues)
                    .values()
                    .filter_map(Queue::next_visible)
                    .min();
                match next {
                    Some(t) if until.is_some_and(|u| t > u) => return report,
                    Some(t) => {
                        self.clock.advance_to(t);
                        continue;
                    }
                    None => return report,
                }
            }
            for (queue, msgs) in batches {
                // Records of a batch are processed concurrently, as the Lambda does.
                // One line per record, in the record's correlation span, as
                // the functions log them.
                let outcomes = futures::future::join_all(msgs.iter().map(|m| {
                    use tracing::Instrument;
                    let id =
                        retailflow_core::queue_batch::correlation_id(&m.body).unwrap_or_default();
                    let queue = &queue;
                    async move {
                        let outcome = self.handle(queue, &m.body, m.receive_count).await;
                        tracing::info!(
                            queue = %queue,
                            receive_count = m.receive_count,
                            outcome = %outcome.summary(),
                            "record"
                        );
                        outcome
                    }
                    .instrument(retailflow_core::correlation_span!(id))
                }))
                .await;
                // The batch's invocation ends: its budget slots go back.
                self.budgets.release_all().await;
                let mut queues = lock(&self.queues);
                let mut dlq = lock(&self.dead_letters);
                let Some(q) = queues.get_mut(&queue) else {
                    continue;
                };
                for (m, outcome) in msgs.iter().zip(outcomes) {
                    report.deliveries += 1;
                    match disposition(&outcome, m.receive_count, &self.retry) {
                        Disposition::Delete => q.delete(&m.id),
                        Disposition::RetryAfter(d) => {
                            report.retries += 1;
                            q.change_visibility(
                                &m.id,
                                now + chrono::Duration::from_std(d).unwrap_or_default(),
                            );
                        }
                        Disposition::DeadLetter(reason) => q.dead_letter(m, reason, &mut dlq),
                    }
                }
            }
            self.save_clock();
        }
        report.gave_up = true;
        report
    }

    /// Units of `sku` on hand and not held, now on the app's clock.
    pub async fn stock_available(&self, sku: &str) -> u32 {
        self.stock
            .available(sku, self.clock.now())
            .await
            .unwrap_or(0)
    }

    /// What the template's one-minute schedule does on AWS: expired holds
    /// go back to stock. Returns how many ended.
    pub async fn sweep_holds(&self) -> StepOutcome {
        self.stock_commit
            .sweep(Invocation {
                now: self.clock.now(),
                deadline: None,
                attempt: 1,
            })
            .await
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.dead_letters).clone()
    }

    /// What a person asks of the local app: every published event, saga and
    /// quarantined delivery, and the DLQs.
    pub fn snapshot(&self) -> serde_json::Value {
        let events: Vec<serde_json::Value> = self
            .bus
            .recorded
            .published()
            .iter()
            .map(|e| {
                serde_json::json!({
                    "event_id": e.event_id.to_string(),
                    "detail_type": e.detail_type,
                    "source": e.source,
                    "detail": serde_json::from_str::<serde_json::Value>(&e.detail).unwrap_or_default(),
                })
            })
            .collect();
        let quarantine: Vec<serde_json::Value> = self
            .store
            .quarantined()
            .iter()
            .map(|q| {
                serde_json::json!({
                    "id": q.id.to_string(), "source": q.source, "topic": q.topic,
                    "delivery_id": q.delivery_id, "reason": q.reason, "bytes": q.body.len(),
                })
            })
            .collect();
        let dlq: Vec<serde_json::Value> = self
            .dead_letters()
            .iter()
            .map(|d| serde_json::json!({"queue": d.queue, "reason": d.reason, "receive_count": d.receive_count}))
            .collect();
        serde_json::json!({
            "events": events,
            "sagas": self.store.sagas(),
            "quarantine": quarantine,
            "dead_letters": dlq,
        })
    }
}

/// What draining the queues did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DrainReport {
    pub deliveries: usize,
    pub retries: usize,
    /// The bound was hit: something kept coming back.
    pub gave_up: bool,
}
