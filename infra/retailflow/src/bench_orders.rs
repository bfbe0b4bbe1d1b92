//! `retailflow bench-orders`: CPU per order through the whole app in one
//! process. The chaos workload's orders (Shopify and Adobe shapes, several
//! currencies, gift cards, their checkouts, returns and cancellations) with
//! no faults: every checkout, webhook, step, ERP, loyalty and shop call runs
//! on the in-process adapters and the loopback simulators. A benchmark run on
//! demand (build with `--release`), not a timed test.

use std::path::Path;
use std::time::Instant;

use retailflow::chaos::workload::{self, Delivery};
use retailflow::local_app::LocalApp;
use retailflow_core::ports::stock::StockReservations;
use simulators::System;

/// User + system CPU time of this process so far.
#[allow(unsafe_code)] // std has no safe getrusage
fn cpu_time() -> std::time::Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given,
    // which points at one, zeroed, that outlives the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    // SAFETY: zero-initialised above (all-zero is a valid rusage) and
    // filled by getrusage.
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec.max(0) as u64)
            + std::time::Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

pub async fn bench_orders(orders: usize, seed: u64, dev_keys: &Path) -> anyhow::Result<()> {
    let app = LocalApp::start(retailflow::dev_keys::intake_config(dev_keys)?).await?;
    let signers = retailflow::dev_keys::DevSigners::read(dev_keys)?;
    let wl = workload::generate(orders, seed, &signers, chrono::Utc::now())?;
    // Stock for every checkout: this measures work, not refusals.
    let mut demand = std::collections::BTreeMap::<String, u32>::new();
    for o in &wl.orders {
        for (sku, units) in &o.cart {
            *demand.entry(sku.clone()).or_default() += units;
        }
    }
    for (sku, units) in &demand {
        app.stock.set_on_hand(sku, *units).await?;
    }
    let calls = |s| app.sims.calls(s);
    let http0: usize = [
        System::NetSuite,
        System::Salesforce,
        System::Shopify,
        System::AdobeCommerce,
    ]
    .into_iter()
    .map(calls)
    .sum();
    let (writes0, events0) = (app.store.writes(), app.bus.recorded.published().len());
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    let (mut webhooks, mut checkouts, mut refused, mut steps) = (0usize, 0usize, 0usize, 0usize);
    let progress = retailflow::progress::bar(wl.deliveries.len() as u64, "orders");
    for (n, deliveries) in wl.deliveries.iter().enumerate() {
        progress.inc(1);
        for d in deliveries {
            match d {
                Delivery::Checkout { request, .. } => {
                    checkouts += 1;
                    // Trusted in process, as the chaos workload.
                    let parsed: Result<retailflow_core::checkout::validation::CheckoutRequest, _> =
                        serde_json::from_str(request);
                    let answered = match parsed {
                        Ok(req) => {
                            app.checkout.validate(&req, app.clock.now()).await;
                            true
                        }
                        Err(_) => false,
                    };
                    refused += usize::from(!answered);
                }
                Delivery::Webhook {
                    path,
                    headers,
                    body,
                    till,
                    ..
                } => {
                    webhooks += 1;
                    let status =
                        retailflow::chaos::send(&app, path, headers, body, till.as_ref()).await;
                    refused += usize::from(status != 200);
                }
            }
        }
        // Queues drained as they fill, as the Lambdas would.
        if n % 50 == 49 {
            steps += app.drain().await.deliveries;
        }
    }
    progress.finish_and_clear();
    steps += app.drain().await.deliveries;
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    let http: usize = [
        System::NetSuite,
        System::Salesforce,
        System::Shopify,
        System::AdobeCommerce,
    ]
    .into_iter()
    .map(calls)
    .sum::<usize>()
        - http0;
    let incomplete = retailflow::timeline::timelines(&app)
        .iter()
        .filter(|t| !t.complete)
        .count();
    let per = |x: f64| x / orders.max(1) as f64;
    println!(
        "{orders} orders (seed {seed}): {checkouts} checkouts, {webhooks} webhooks and till returns, {} queue deliveries; {refused} refused, {} dead letters, {incomplete} orders not complete",
        steps,
        app.dead_letters().len()
    );
    println!(
        "CPU {:.3} s (user + system, whole process, simulators included) in {:.3} s wall: {:.0} µs CPU per order, {:.0} orders per CPU second",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        per(cpu.as_secs_f64() * 1e6),
        orders as f64 / cpu.as_secs_f64().max(1e-9)
    );
    println!(
        "per order: {:.2} state store writes, {:.2} events, {:.2} HTTP requests to the ERP, loyalty platform and shop (returns and cancellations included)",
        per((app.store.writes() - writes0) as f64),
        per((app.bus.recorded.published().len() - events0) as f64),
        per(http as f64)
    );
    if refused > 0 || !app.dead_letters().is_empty() || incomplete > 0 {
        anyhow::bail!("the run did not go through cleanly: the figures above are not comparable");
    }
    Ok(())
}
