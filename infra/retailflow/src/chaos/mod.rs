//! `retailflow chaos`: a seeded workload of orders, returns and
//! cancellations run through the whole app while everything goes wrong —
//! duplicated and reordered deliveries, ERP and loyalty throttling, errors,
//! half-hour outages (on the virtual clock), answers lost after the effect,
//! a permanent refusal, and the process "dying" between an external call
//! and its completion write — then drained, re-driven from the dead-letter
//! queues, reconciled, and checked against the reference model
//! ([`model`]). A CI-sized run is a test; any size runs on demand.

pub mod model;
pub mod workload;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use retailflow_core::intake::{WebhookRequest, WebhookRoute};
use retailflow_core::ports::dead_letters::DeadLetters;
use retailflow_core::ports::stock::StockReservations;
use retailflow_core::reconciliation::DiscrepancyKind;
use retailflow_core::replay::DeadLetterFilter;
use serde::Serialize;
use simulators::{Fault, FaultKind, System};

use crate::local_app::LocalApp;
use model::{Placed, Violations};
use workload::{Delivery, Rng, Workload};

/// How big and how hostile.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub orders: usize,
    pub seed: u64,
    /// Share of deliveries sent twice.
    pub duplicate_percent: u64,
    /// Orders delivered between two drains (and shuffled among themselves).
    pub chunk: usize,
    /// Every n-th completion write is lost, as if the process died first.
    pub crash_every: usize,
}

impl ChaosConfig {
    pub fn new(orders: usize, seed: u64) -> Self {
        ChaosConfig {
            orders,
            seed,
            duplicate_percent: 20,
            chunk: 50,
            crash_every: 29,
        }
    }
}

/// What the run did and what it found.
#[derive(Debug, Default, Serialize)]
pub struct ChaosReport {
    pub seed: u64,
    pub orders: usize,
    pub orders_placed: usize,
    pub returns: usize,
    pub cancellations: usize,
    /// Adobe saves of an order after its first, and Adobe credit memos
    /// (each saved twice), in the workload.
    pub adobe_later_saves: usize,
    pub adobe_credit_memos: usize,
    pub checkouts_accepted: usize,
    pub checkouts_refused: usize,
    pub deliveries: usize,
    pub duplicates: usize,
    /// Webhooks answered 5xx (sent again after the next drain, as the
    /// platforms retry) and 4xx (refused: details say why).
    pub answered_5xx: usize,
    pub refused_4xx: usize,
    /// Still answered 5xx after ten tries.
    pub never_accepted: usize,
    /// A drain hit its bound (something kept coming back).
    pub drains_gave_up: usize,
    /// Dead letters without a reason or a correlation id.
    pub dead_letters_unexplained: usize,
    pub queue_deliveries: usize,
    pub retries: usize,
    pub faults: BTreeMap<String, u32>,
    /// The faults that hit a call (an outage counts every call it failed).
    pub faults_fired: BTreeMap<String, u32>,
    /// Completion writes lost as if the process died first.
    pub crashes: usize,
    /// Orders with drift injected before reconciliation (a sales order
    /// deleted in the ERP, an accrual message lost).
    pub drift_injected: usize,
    /// Kept events replayed to their rules' queues after convergence.
    pub replayed: usize,
    pub dead_lettered: usize,
    pub redriven: usize,
    pub reconciliation_found: u64,
    pub reconciliation_redriven: u64,
    /// Access tokens the simulated platforms issued (they expire every few
    /// virtual minutes).
    pub token_refreshes: u64,
    /// The most calls the ERP simulator had in flight at once.
    pub erp_most_in_flight: usize,
    pub seconds: f64,
    pub violations: Violations,
    pub details: Vec<String>,
}

impl std::fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |m: &BTreeMap<String, u32>| {
            m.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(f, "chaos run, seed {}, in {:.1} s", self.seed, self.seconds)?;
        writeln!(
            f,
            "  workload: {} orders ({} placed; checkouts {} accepted, {} refused for stock), {} returns, {} cancellations; Adobe: {} later saves of an order, {} credit memos",
            self.orders, self.orders_placed, self.checkouts_accepted, self.checkouts_refused, self.returns, self.cancellations, self.adobe_later_saves, self.adobe_credit_memos
        )?;
        writeln!(
            f,
            "  deliveries: {} ({} duplicates, reordered), {} answered 5xx and sent again, {} refused, {} never taken",
            self.deliveries, self.duplicates, self.answered_5xx, self.refused_4xx, self.never_accepted
        )?;
        writeln!(f, "  faults injected: {}", list(&self.faults))?;
        writeln!(
            f,
            "  faults that hit a call: {}; completion writes lost to crashes: {}",
            list(&self.faults_fired),
            self.crashes
        )?;
        writeln!(
            f,
            "  queues: {} deliveries, {} retried; {} dead-lettered, {} re-driven after the fix",
            self.queue_deliveries, self.retries, self.dead_lettered, self.redriven
        )?;
        writeln!(
            f,
            "  reconciliation: drift injected on {} orders; the first run found {} discrepancies and re-drove {} past their SLA; {} archived events replayed after",
            self.drift_injected,
            self.reconciliation_found,
            if self.reconciliation_redriven == 1 {
                "1 step".to_string()
            } else {
                format!("{} steps", self.reconciliation_redriven)
            },
            self.replayed
        )?;
        writeln!(
            f,
            "  credentials: token refreshes {}, one rotation mid-run; the ERP's most calls in flight {}",
            self.token_refreshes, self.erp_most_in_flight
        )?;
        let v = &self.violations;
        writeln!(
            f,
            "  orders lost {}, effects doubled {}, points mismatched {}, refunds over total {}, oversold units {}, amounts wrong {}, canonical events wrong {}, discrepancies left {}, drift missed {}, drift unexplained {}, inputs refused {}, dead letters left {}, dead letters without reason {}, queues stuck {}, auth dead letters {}, over ERP concurrency limit {}",
            v.orders_lost, v.effects_doubled, v.points_mismatched, v.refunds_over_total, v.oversold_units, v.amounts_wrong, v.events_wrong, v.discrepancies_left, v.drift_missed, v.drift_unexplained, v.inputs_refused, v.dead_letters_left, v.dead_letters_unexplained, v.queues_stuck, v.auth_dead_letters, v.over_erp_limit
        )?;
        for d in &self.details {
            writeln!(f, "    {d}")?;
        }
        Ok(())
    }
}

fn fault(system: System, path: &'static str, kind: FaultKind, count: u32) -> Fault {
    Fault {
        system,
        method: None,
        path_contains: path,
        kind,
        count,
    }
}

/// A fault on the calls that make an effect (not the reads before them).
fn effect_fault(
    system: System,
    method: &'static str,
    path: &'static str,
    kind: FaultKind,
    count: u32,
) -> Fault {
    Fault {
        method: Some(method),
        ..fault(system, path, kind, count)
    }
}

/// The faults of chunk `i` of `chunks`: something every chunk.
fn inject(app: &LocalApp, i: usize, chunks: usize, report: &mut ChaosReport) {
    let mut add = |f: Fault, name: &str| {
        *report.faults.entry(name.to_string()).or_default() += f.count;
        app.sims.inject(f);
    };
    match i % 4 {
        0 => {
            add(
                fault(
                    System::NetSuite,
                    "",
                    FaultKind::Throttle {
                        retry_after: Some(30),
                    },
                    4,
                ),
                "ERP 429 with Retry-After",
            );
            add(
                fault(System::NetSuite, "", FaultKind::Unavailable, 3),
                "ERP 5xx",
            );
        }
        1 => {
            add(
                fault(
                    System::Salesforce,
                    "",
                    FaultKind::Throttle {
                        retry_after: Some(60),
                    },
                    3,
                ),
                "loyalty 429 with Retry-After",
            );
            add(
                fault(System::Salesforce, "", FaultKind::Unavailable, 2),
                "loyalty 5xx",
            );
        }
        2 => {
            let lost = FaultKind::LoseResponse;
            for (system, method, path, count, name) in [
                (
                    System::NetSuite,
                    "PUT",
                    "salesOrder",
                    3,
                    "ERP answer lost after the effect",
                ),
                (
                    System::NetSuite,
                    "PUT",
                    "creditMemo",
                    2,
                    "ERP answer lost after the effect",
                ),
                (
                    System::Salesforce,
                    "POST",
                    "realtime",
                    2,
                    "loyalty answer lost after the effect",
                ),
                (
                    System::Salesforce,
                    "POST",
                    "program-processes",
                    2,
                    "loyalty answer lost after the effect",
                ),
            ] {
                add(
                    effect_fault(system, method, path, lost.clone(), count),
                    name,
                );
            }
        }
        _ => add(
            effect_fault(System::NetSuite, "PUT", "salesOrder", FaultKind::Refuse, 1),
            "ERP permanent refusal (fixed before replay)",
        ),
    }
    let now = app.clock.now();
    if i == chunks / 3 {
        app.sims
            .outage(System::NetSuite, now + chrono::Duration::minutes(30));
        *report
            .faults
            .entry("ERP 30-minute outage".into())
            .or_default() += 1;
    }
    if i == 2 * chunks / 3 {
        app.sims
            .outage(System::Salesforce, now + chrono::Duration::minutes(30));
        *report
            .faults
            .entry("loyalty 30-minute outage".into())
            .or_default() += 1;
    }
}

/// An operator rotates the credentials mid-run: a new NetSuite
/// certificate and a new Salesforce client secret are registered, stored in
/// the connector secret, and the old ones revoked at once (their tokens
/// with them), so every warm connector meets a 401 and must re-read.
fn rotate_credentials(app: &LocalApp) {
    use retailflow_core::config::{NetSuiteCredentials, SalesforceCredentials};
    let mut doc = simulators::Simulators::dev_connector_secret();
    if let Some(NetSuiteCredentials::OAuth2M2m { certificate_id, .. }) = doc.netsuite.as_mut() {
        *certificate_id = "dev-cert-rotated".into();
    }
    if let Some(SalesforceCredentials::ClientCredentials { client_secret, .. }) =
        doc.salesforce.as_mut()
    {
        *client_secret = "dev-salesforce-consumer-secret-rotated".into();
    }
    app.sims.accept_credentials(&doc);
    app.sims.store_connector_document(&doc);
    app.sims.revoke_credentials();
    app.sims.accept_credentials(&doc);
}

/// Dead letters whose reason is a refused credential.
fn auth_refused(app: &LocalApp) -> usize {
    app.dead_letters()
        .iter()
        .filter(|d| d.reason.contains("refused the credentials"))
        .count()
}

/// Dead letters without a reason or without the correlation id of the
/// order they belong to.
fn unexplained_dead_letters(app: &LocalApp) -> usize {
    app.dead_letters()
        .iter()
        .filter(|d| {
            d.reason.trim().is_empty()
                || retailflow_core::queue_batch::correlation_id(&d.body)
                    .is_none_or(|c| c.is_empty())
        })
        .count()
}

/// Takes up to `n` messages off `queue` before they run (a lost message);
/// the order keys they were for.
fn lose_messages(app: &LocalApp, queue: &str, n: usize) -> Vec<String> {
    let mut queues = crate::runtime::lock(&app.queues);
    let Some(q) = queues.get_mut(queue) else {
        return Vec::new();
    };
    let taken = q.receive(n, app.clock.now(), &mut Vec::new());
    taken
        .iter()
        .map(|m| {
            q.delete(&m.id);
            retailflow_core::queue_batch::correlation_id(&m.body).unwrap_or_default()
        })
        .filter(|k| !k.is_empty())
        .collect()
}

/// Sends one webhook (or till request, signed now) to the app's intake;
/// answers the HTTP status.
pub async fn send(
    app: &LocalApp,
    path: &str,
    headers: &[(String, String)],
    body: &str,
    till: Option<&(String, retailflow_core::webhook::Secret)>,
) -> u16 {
    let Some(route) = WebhookRoute::from_path(path) else {
        return 404;
    };
    let mut headers = headers.to_vec();
    if let Some((store, secret)) = till {
        let nonce = uuid::Uuid::new_v4().to_string();
        let stamp = retailflow_core::mappers::pos::signed_headers(
            store,
            secret,
            app.clock.now(),
            &nonce,
            body.as_bytes(),
        );
        headers.extend(stamp.into_iter().map(|(k, v)| (k.to_string(), v)));
    }
    let mut map = http::HeaderMap::new();
    for (k, v) in &headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            map.insert(k, v);
        }
    }
    app.intake
        .handle(WebhookRequest {
            route,
            headers: &map,
            body: body.as_bytes(),
            received_at: app.clock.now(),
            gateway_time: None,
            deadline: None,
        })
        .await
        .status
}

/// The app after a chaos run, with what the model needs to check it.
pub struct Finished {
    pub app: LocalApp,
    orders: Vec<workload::ExpectedOrder>,
    placed: Vec<bool>,
    initial: BTreeMap<String, u32>,
}

impl Finished {
    /// Every guarantee checked against the reference model, with the
    /// first failures in words.
    pub async fn check(&self) -> (Violations, Vec<String>) {
        // Saga keys by (platform, order id): `platform:shop:order:id`.
        let sagas: BTreeMap<(String, String), String> = self
            .app
            .store
            .sagas()
            .into_iter()
            .filter_map(|s| {
                let mut parts = s.saga_key.splitn(4, ':');
                let platform = parts.next()?.to_string();
                let _shop = parts.next()?;
                let rest = parts.nth(1)?;
                (!rest.contains(':')).then(|| ((platform, rest.to_string()), s.saga_key.clone()))
            })
            .collect();
        let placed: Vec<Placed<'_>> = self
            .orders
            .iter()
            .zip(&self.placed)
            .filter(|(_, p)| **p)
            .map(|(e, _)| Placed {
                expected: e,
                key: sagas
                    .get(&(e.platform.to_string(), e.order_id.clone()))
                    .cloned()
                    .unwrap_or_else(|| format!("{}:?:order:{}", e.platform, e.order_id)),
            })
            .collect();
        let mut available = BTreeMap::new();
        for sku in self.initial.keys() {
            available.insert(sku.clone(), self.app.stock_available(sku).await);
        }
        let mut details = Vec::new();
        let mut v = model::check(&self.app, &placed, &self.initial, &available, &mut details);
        let dead = self.app.dead_letters();
        v.dead_letters_left = dead.len() as u64;
        for d in dead.iter().take(5) {
            let v = retailflow_core::replay::DeadLetterView::from_body(
                d.id.clone(),
                d.queue.clone(),
                Some(d.reason.clone()),
                d.body.clone(),
            );
            details.push(format!(
                "dead letter on {}: {} ({} {})",
                d.queue,
                d.reason,
                v.event_type.unwrap_or_default(),
                v.correlation_id.unwrap_or_default()
            ));
        }
        (v, details)
    }
}

/// Runs the chaos workload of `config` through a fresh app on the dev keys
/// in `dev_keys`, then checks it.
pub async fn run(config: &ChaosConfig, dev_keys: &Path) -> anyhow::Result<ChaosReport> {
    Ok(run_keeping_app(config, dev_keys).await?.0)
}

/// [`run`], keeping the app for a look afterwards.
pub async fn run_keeping_app(
    config: &ChaosConfig,
    dev_keys: &Path,
) -> anyhow::Result<(ChaosReport, Finished)> {
    let started = Instant::now();
    let app = LocalApp::start(crate::dev_keys::intake_config(dev_keys)?).await?;
    // Tokens that die every few virtual minutes, on every token issuer.
    for issuer in [
        simulators::TokenIssuer::NetSuite,
        simulators::TokenIssuer::Entra,
        simulators::TokenIssuer::Salesforce,
    ] {
        app.sims
            .set_token_lifetime(issuer, chrono::Duration::minutes(4));
    }
    let mut auth_dead_letters = 0;
    let signers = crate::dev_keys::DevSigners::read(dev_keys)?;
    let Workload {
        orders,
        deliveries,
        adobe_later_saves,
        adobe_credit_memos,
    } = workload::generate(config.orders, config.seed, &signers, chrono::Utc::now())?;
    let mut report = ChaosReport {
        seed: config.seed,
        orders: orders.len(),
        adobe_later_saves,
        adobe_credit_memos,
        ..Default::default()
    };
    // Stock for about 70% of the checkouts (cancellations give some back):
    // the rest are refused, never sold.
    let mut initial: BTreeMap<String, u32> = BTreeMap::new();
    for o in &orders {
        for (sku, units) in &o.cart {
            *initial.entry(sku.clone()).or_default() += units;
        }
    }
    for units in initial.values_mut() {
        *units = *units * 70 / 100;
    }
    for (sku, units) in &initial {
        app.stock.set_on_hand(sku, *units).await?;
    }
    app.store.crash_before_completion_every(config.crash_every);
    let window_start = app.clock.now();
    let mut rng = Rng::new(config.seed ^ 0x5EED);
    let mut placed = vec![false; orders.len()];
    let mut lost_messages = Vec::new();
    let chunks = orders.len().div_ceil(config.chunk.max(1));
    let absorb = |r: crate::local_app::DrainReport, report: &mut ChaosReport| {
        report.queue_deliveries += r.deliveries;
        report.retries += r.retries;
        report.drains_gave_up += usize::from(r.gave_up);
    };
    let progress = crate::progress::bar(orders.len() as u64, "orders");
    for (i, range) in (0..orders.len())
        .collect::<Vec<_>>()
        .chunks(config.chunk.max(1))
        .enumerate()
    {
        inject(&app, i, chunks, &mut report);
        if i == chunks / 2 {
            rotate_credentials(&app);
        }
        // Checkouts first, in order: a refused one's order is never placed.
        let mut batch = Vec::new();
        for &n in range {
            let mut ok = true;
            for d in &deliveries[n] {
                match d {
                    Delivery::Checkout { request, .. } => {
                        // The workload is the storefront here, trusted as
                        // in process: authentication is checkout's own tests'.
                        ok = match serde_json::from_str(request) {
                            Ok(req) => matches!(
                                app.checkout.validate(&req, app.clock.now()).await,
                                retailflow_core::checkout::validation::CheckoutResponse::Accepted { .. }
                            ),
                            Err(_) => false,
                        };
                        if ok {
                            report.checkouts_accepted += 1;
                        } else {
                            report.checkouts_refused += 1;
                        }
                    }
                    other if ok => {
                        batch.push(workload::redate_adobe(&signers, other, app.clock.now())?)
                    }
                    _ => {}
                }
            }
            placed[n] = ok;
        }
        // Some sent twice, all in any order (a return may beat its order).
        let mut sent = Vec::with_capacity(batch.len() * 6 / 5);
        for d in batch {
            if rng.chance(config.duplicate_percent) {
                sent.push(d.clone());
                report.duplicates += 1;
            }
            sent.push(d);
        }
        for k in (1..sent.len()).rev() {
            let j = rng.below(k as u64 + 1) as usize;
            sent.swap(k, j);
        }
        let mut again = Vec::new();
        for d in sent {
            if let Delivery::Webhook {
                path,
                headers,
                body,
                order,
                till,
            } = &d
            {
                report.deliveries += 1;
                let status = send(&app, path, headers, body, till.as_ref()).await;
                if status >= 500 {
                    report.answered_5xx += 1;
                    again.push(d);
                } else if status >= 400 {
                    report.refused_4xx += 1;
                    if report.details.len() < 20 {
                        report
                            .details
                            .push(format!("order {order}: {path} answered {status}"));
                    }
                }
            }
        }
        if i + 1 == chunks {
            lost_messages = lose_messages(&app, crate::local_app::LOYALTY_ACCRUAL_QUEUE, 2);
        }
        absorb(app.drain().await, &mut report);
        // A 5xx is sent again, as the platforms retry, until it is taken.
        for _ in 0..10 {
            if again.is_empty() {
                break;
            }
            app.clock
                .advance_to(app.clock.now() + chrono::Duration::minutes(1));
            let mut still = Vec::new();
            for d in again {
                if let Delivery::Webhook {
                    path,
                    headers,
                    body,
                    till,
                    ..
                } = &d
                {
                    report.deliveries += 1;
                    match send(&app, path, headers, body, till.as_ref()).await {
                        500.. => still.push(d),
                        400.. => report.refused_4xx += 1,
                        _ => {}
                    }
                }
            }
            absorb(app.drain().await, &mut report);
            again = still;
        }
        report.never_accepted += again.len();
        progress.inc(range.len() as u64);
    }
    // The faults are fixed: the crashes stop, the refusal is mended.
    app.store.crash_before_completion_every(0);
    app.sims.clear_faults();
    absorb(app.drain().await, &mut report);
    report.dead_lettered = app.dead_letters().len();
    auth_dead_letters += auth_refused(&app);
    // Each says why and whose it is.
    report.dead_letters_unexplained += unexplained_dead_letters(&app);
    let redrive = app
        .redrive(&DeadLetterFilter::default(), usize::MAX)
        .await?;
    report.redriven = redrive.redriven.len();
    absorb(app.drain().await, &mut report);
    // Drift for reconciliation to find: sales orders deleted in the ERP,
    // and accrual messages lost before they ran (stuck steps).
    let k = (placed.iter().filter(|p| **p).count() / 100).max(1);
    let mut injected = std::collections::BTreeSet::new();
    let open: Vec<_> = app
        .sims
        .netsuite_sales_orders()
        .into_iter()
        .filter(|so| !so.closed && so.order_key.is_some())
        .collect();
    let deleted: Vec<_> = open
        .iter()
        .step_by((open.len() / k).max(1))
        .take(k)
        .cloned()
        .collect();
    for so in &deleted {
        app.sims.netsuite_remove_sales_order(&so.external_id);
        injected.extend(so.order_key.clone());
    }
    for key in &lost_messages {
        // A duplicate of the lost message may have done its work, or the
        // order was cancelled: only an accrual still due and undone is drift.
        let due = match retailflow_core::ports::StateStore::saga(app.store.as_ref(), key).await {
            Ok(Some(saga)) => {
                saga.refund_ledger.cancelled_at.is_none()
                    && saga
                        .step(retailflow_core::steps::loyalty_accrual::STEP)
                        .is_none_or(|r| r.status != retailflow_core::saga::StepStatus::Completed)
            }
            _ => true,
        };
        if due {
            injected.insert(key.clone());
        }
    }
    report.drift_injected = injected.len();
    progress.finish_and_clear();
    // Past every step's SLA, so the lost ones count as stuck.
    app.clock
        .advance_to(app.clock.now() + chrono::Duration::hours(7));
    let window = (window_start, app.clock.now() + chrono::Duration::hours(1));
    let first = app.reconcile_window(window).await?;
    // Dead letters are findings too; they are accounted for below (why
    // each died, then re-driven), so drift is judged on the rest.
    let drift: Vec<_> = first
        .discrepancies
        .iter()
        .filter(|d| {
            !matches!(
                d.kind,
                DiscrepancyKind::DeadLettered | DiscrepancyKind::HeldForReview
            )
        })
        .collect();
    report.reconciliation_found = drift.len() as u64;
    report.reconciliation_redriven = first.redriven;
    let found: std::collections::BTreeSet<String> =
        drift.iter().map(|d| d.order_key.clone()).collect();
    let missed = injected.difference(&found).count();
    let unexplained: Vec<_> = drift
        .iter()
        .filter(|d| !injected.contains(&d.order_key))
        .collect();
    for d in unexplained.iter().take(5) {
        report.details.push(format!("unexplained: {d:?}"));
    }
    for key in injected.difference(&found).take(5) {
        report.details.push(format!("drift not found: {key}"));
    }
    // People put the deleted documents back; the re-driven steps run.
    for so in deleted {
        app.sims.netsuite_restore_sales_order(so);
    }
    absorb(app.drain().await, &mut report);
    // What waited on a re-driven step and gave up meanwhile (a return
    // whose accrual was lost) is re-driven from the DLQ in turn.
    report.dead_lettered += app.dead_letters().len();
    auth_dead_letters += auth_refused(&app);
    report.dead_letters_unexplained += unexplained_dead_letters(&app);
    let again = app
        .redrive(&DeadLetterFilter::default(), usize::MAX)
        .await?;
    report.redriven += again.redriven.len();
    absorb(app.drain().await, &mut report);
    let last = app.reconcile_window(window).await?;
    // Replaying the whole window's orders and refunds posts nothing twice.
    for rule in [
        "OrderPlacedToErpPost",
        "OrderPlacedToLoyaltyAccrual",
        "RefundIssuedToReturnReversal",
    ] {
        report.replayed += app.replay_window(rule, window).await?;
    }
    absorb(app.drain().await, &mut report);

    let finished = Finished {
        app,
        orders,
        placed,
        initial,
    };
    report.orders_placed = finished.placed.iter().filter(|p| **p).count();
    let placed_orders = || {
        finished
            .orders
            .iter()
            .zip(&finished.placed)
            .filter(|(_, p)| **p)
            .map(|(e, _)| e)
    };
    report.returns = placed_orders().map(|e| e.returns.len()).sum();
    report.cancellations = placed_orders()
        .filter(|e| e.afterwards == workload::Afterwards::Cancelled)
        .count();
    let (violations, mut details) = finished.check().await;
    report.violations = violations;
    report.violations.discrepancies_left =
        last.discrepancies.len() as u64 + u64::from(!last.complete);
    report.violations.drift_missed = missed as u64;
    report.violations.drift_unexplained = unexplained.len() as u64;
    report.violations.inputs_refused = (report.refused_4xx
        + report.never_accepted
        + finished.app.store.quarantined().len()) as u64;
    report.violations.queues_stuck = report.drains_gave_up as u64;
    report.violations.dead_letters_unexplained = report.dead_letters_unexplained as u64;
    report.violations.auth_dead_letters = auth_dead_letters as u64;
    let sims = &finished.app.sims;
    report.violations.over_erp_limit = sims.refused_over_limit(System::NetSuite)
        + sims.refused_over_limit(System::BusinessCentral);
    report.token_refreshes = sims.tokens_issued().values().sum();
    report.erp_most_in_flight = sims.most_in_flight(System::NetSuite);
    report.crashes = finished.app.store.crashes();
    for (system, what) in finished.app.sims.faults_fired() {
        *report
            .faults_fired
            .entry(format!("{system:?} {what}"))
            .or_default() += 1;
    }
    for d in last.discrepancies.iter().take(5) {
        details.push(format!("left: {d:?}"));
    }
    report.details.extend(details);
    report.seconds = started.elapsed().as_secs_f64();
    Ok((report, finished))
}
