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
use retailflow_core::adapters::in_process::InProcessStock;
use retailflow_core::adapters::in_process::{CatalogSeed, InProcessCatalog};
use retailflow_core::checkout::auth::{CheckoutAuth, CheckoutAuthConfig};
use retailflow_core::checkout::hot_stock::{HotSkus, HotStock};
use retailflow_core::checkout::validation::{CheckoutConfig, CheckoutValidation};
use retailflow_core::events::INTAKE_SOURCE;
use retailflow_core::intake::{IntakeConfig, OrderIntake};
use retailflow_core::model::Platform;
use retailflow_core::ports::shop::EcommerceConnector;
use retailflow_core::ports::stock::StockReservations;
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
use retailflow_core::adapters::local_claim_checks::LocalClaimChecks;
use retailflow_core::claim_check::ClaimCheckedBus;
use retailflow_core::ports::journal::Journal;
use retailflow_core::ports::EventBus;

mod drain;
mod open;

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
    /// How far a virtual clock moves after each queue's batch (zero: only
    /// over backoffs). `run` sets a few milliseconds so its timelines show
    /// the steps in the order they ran.
    pub batch_tick: Duration,
    /// Held for the whole of a drain (see `drain_bounded`); `serve` takes
    /// it at shutdown so no batch is cut in half.
    pub drain_turn: tokio::sync::Mutex<()>,
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
const CATALOG_SEED: &str = include_str!("../../../../events/catalog/seed.json");

impl LocalApp {
    /// The app in memory only: gone when the process ends.
    pub async fn start(intake_config: IntakeConfig) -> std::io::Result<Self> {
        Self::open(intake_config, None).await
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

    /// When the next queued message becomes visible (now or past if one
    /// waits already); `None` when every queue is empty.
    pub fn next_delivery(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        lock(&self.queues)
            .values()
            .filter_map(Queue::next_visible)
            .min()
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
