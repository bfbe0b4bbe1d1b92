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

use common::checkout::stock::StockReservations;
use common::intake::{WebhookRequest, WebhookRoute};
use common::replay::{DeadLetterFilter, DeadLetters};
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
    pub checkouts_accepted: usize,
    pub checkouts_refused: usize,
    pub deliveries: usize,
    pub duplicates: usize,
    /// Webhooks answered 5xx (sent again after the next drain, as the
    /// platforms retry) and 4xx (refused: details say why).
    pub answered_5xx: usize,
    pub refused_4xx: usize,
    pub queue_deliveries: usize,
    pub retries: usize,
    pub faults: BTreeMap<String, u32>,
    pub dead_lettered: usize,
    pub redriven: usize,
    pub reconciliation_found: u64,
    pub reconciliation_redriven: u64,
    pub seconds: f64,
    pub violations: Violations,
    pub details: Vec<String>,
}

impl std::fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "chaos run, seed {}, in {:.1} s", self.seed, self.seconds)?;
        writeln!(
            f,
            "  workload: {} orders ({} placed; checkouts {} accepted, {} refused for stock), {} returns, {} cancellations",
            self.orders, self.orders_placed, self.checkouts_accepted, self.checkouts_refused, self.returns, self.cancellations
        )?;
        writeln!(
            f,
            "  deliveries: {} ({} duplicates, reordered), {} answered 5xx and sent again, {} refused",
            self.deliveries, self.duplicates, self.answered_5xx, self.refused_4xx
        )?;
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(f, "  faults: {}", faults.join(", "))?;
        writeln!(
            f,
            "  queues: {} deliveries, {} retried; {} dead-lettered, {} re-driven after the fix",
            self.queue_deliveries, self.retries, self.dead_lettered, self.redriven
        )?;
        writeln!(
            f,
            "  reconciliation: {} found and {} re-driven on the first run",
            self.reconciliation_found, self.reconciliation_redriven
        )?;
        let v = &self.violations;
        writeln!(
            f,
            "  orders lost {}, effects doubled {}, points mismatched {}, refunds over total {}, oversold units {}, amounts wrong {}, discrepancies left {}, dead letters left {}",
            v.orders_lost, v.effects_doubled, v.points_mismatched, v.refunds_over_total, v.oversold_units, v.amounts_wrong, v.discrepancies_left, v.dead_letters_left
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
            add(
                fault(System::NetSuite, "salesOrder", FaultKind::LoseResponse, 3),
                "ERP answer lost after the effect",
            );
            add(
                fault(System::Salesforce, "realtime", FaultKind::LoseResponse, 2),
                "loyalty answer lost after the effect",
            );
        }
        _ => add(
            fault(System::NetSuite, "salesOrder", FaultKind::Refuse, 1),
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

/// Sends one webhook; its status.
async fn send(app: &LocalApp, path: &str, headers: &[(String, String)], body: &str) -> u16 {
    let Some(route) = WebhookRoute::from_path(path) else {
        return 404;
    };
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
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
        let sagas: Vec<String> = self
            .app
            .store
            .sagas()
            .into_iter()
            .map(|s| s.saga_key)
            .collect();
        let placed: Vec<Placed<'_>> = self
            .orders
            .iter()
            .zip(&self.placed)
            .filter(|(_, p)| **p)
            .map(|(e, _)| {
                let suffix = format!(":order:{}", e.order_id);
                Placed {
                    expected: e,
                    key: sagas
                        .iter()
                        .find(|k| k.starts_with(e.platform) && k.ends_with(&suffix))
                        .cloned()
                        .unwrap_or_else(|| format!("{}:?{suffix}", e.platform)),
                }
            })
            .collect();
        let mut available = BTreeMap::new();
        for sku in self.initial.keys() {
            available.insert(sku.clone(), self.app.stock_available(sku).await);
        }
        let mut details = Vec::new();
        let mut v = model::check(&self.app, &placed, &self.initial, &available, &mut details);
        v.dead_letters_left = self.app.dead_letters().len() as u64;
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
    let signers = crate::dev_keys::DevSigners::read(dev_keys)?;
    let Workload { orders, deliveries } = workload::generate(config.orders, config.seed, &signers)?;
    let mut report = ChaosReport {
        seed: config.seed,
        orders: orders.len(),
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
    let chunks = orders.len().div_ceil(config.chunk.max(1));
    let absorb = |r: crate::local_app::DrainReport, report: &mut ChaosReport| {
        report.queue_deliveries += r.deliveries;
        report.retries += r.retries;
    };
    for (i, range) in (0..orders.len())
        .collect::<Vec<_>>()
        .chunks(config.chunk.max(1))
        .enumerate()
    {
        inject(&app, i, chunks, &mut report);
        // Checkouts first, in order: a refused one's order is never placed.
        let mut batch = Vec::new();
        for &n in range {
            let mut ok = true;
            for d in &deliveries[n] {
                match d {
                    Delivery::Checkout { request, .. } => {
                        let (_, answer) = common::checkout::validation::answer(
                            &app.checkout,
                            request.as_bytes(),
                            app.clock.now(),
                        )
                        .await;
                        ok = answer["status"] == "accepted";
                        if ok {
                            report.checkouts_accepted += 1;
                        } else {
                            report.checkouts_refused += 1;
                        }
                    }
                    other if ok => batch.push(other.clone()),
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
            } = &d
            {
                report.deliveries += 1;
                let status = send(&app, path, headers, body).await;
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
        absorb(app.drain().await, &mut report);
        for d in again {
            if let Delivery::Webhook {
                path,
                headers,
                body,
                ..
            } = &d
            {
                report.deliveries += 1;
                if send(&app, path, headers, body).await >= 400 {
                    report.refused_4xx += 1;
                }
            }
        }
    }
    // The faults are fixed: the crashes stop, the refusal is mended.
    app.store.crash_before_completion_every(0);
    app.sims.clear_faults();
    absorb(app.drain().await, &mut report);
    report.dead_lettered = app.dead_letters().len();
    let redrive = app
        .redrive(&DeadLetterFilter::default(), usize::MAX)
        .await?;
    report.redriven = redrive.redriven.len();
    absorb(app.drain().await, &mut report);
    let window = (window_start, app.clock.now() + chrono::Duration::hours(1));
    let first = app.reconcile_window(window).await?;
    report.reconciliation_found = first.discrepancies.len() as u64;
    report.reconciliation_redriven = first.redriven;
    absorb(app.drain().await, &mut report);
    let last = app.reconcile_window(window).await?;

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
    for d in last.discrepancies.iter().take(5) {
        details.push(format!("left: {d:?}"));
    }
    report.details.extend(details);
    report.seconds = started.elapsed().as_secs_f64();
    Ok((report, finished))
}
