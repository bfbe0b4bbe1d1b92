//! `retailflow bench-flash-sale`: shoppers arriving over a sale's seconds
//! for a few hot SKUs, each through checkout validation in process, on the
//! stock store with DynamoDB's contention rules (transaction conflicts, the
//! per-item write rate, service latency; the open-holds count on the same
//! rules). Prints what every shopper was
//! told and how long it took, then checks the sale against the units: none
//! oversold, none leaked once the holds expire. Runs in real time (a 60 s
//! sale takes a minute): the latencies are measured, not computed.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use retailflow_connectors::salesforce::{SalesforceLoyalty, SalesforceLoyaltyConfig};
use retailflow_core::adapters::contention::{ContentionModel, ItemContention};
use retailflow_core::adapters::in_process::InProcessCatalog;
use retailflow_core::adapters::in_process::InProcessOpenHolds;
use retailflow_core::adapters::in_process::InProcessStock;
use retailflow_core::checkout::auth::Caller;
use retailflow_core::checkout::hot_stock::{
    recommended_shards, HotSkus, HotStock, CHECKOUT_BUDGET,
};
use retailflow_core::checkout::pricing::{CartLine, PriceEntry};
use retailflow_core::checkout::validation::{
    CheckoutConfig, CheckoutRequest, CheckoutResponse, CheckoutValidation, Problem,
};
use retailflow_core::money::{Currency, Money};
use retailflow_core::ports::stock::StockReservations;
use retailflow_core::resilience::CircuitBreaker;

/// What one benchmark run is asked for.
#[derive(Debug, Clone)]
pub struct FlashSale {
    pub shoppers: usize,
    /// Units of each hot SKU.
    pub units: u32,
    pub skus: usize,
    pub seconds: f64,
    /// Lines a cart has (distinct hot SKUs, one unit each).
    pub cart_lines: usize,
    /// Counters per hot SKU (1: not sharded; `None`: as recommended for
    /// the sale, [`recommended_shards`]).
    pub shards: Option<u16>,
    pub model: ContentionModel,
    pub seed: u64,
}

/// What the shoppers were told, and what the stock says after.
#[derive(Debug, Default)]
pub struct SaleFigures {
    pub held: usize,
    pub sold_out: usize,
    pub unavailable: usize,
    pub latencies: Vec<Duration>,
    /// Units the accepted carts hold, per SKU: never over the units.
    pub units_held: Vec<u64>,
    /// Units the store says are free at the end, per SKU: the units less
    /// those held.
    pub units_free: Vec<u64>,
    /// Units free once every hold expired (all of them: none leaked).
    pub units_back: Vec<u64>,
    pub conflicts: u64,
    pub throttled: u64,
    pub retries: u64,
    /// One refusal that was neither, to say why.
    pub first_unavailable: Option<String>,
}

fn sku(i: usize) -> String {
    format!("DROP-{i}")
}

impl FlashSale {
    /// The counters each hot SKU gets: as asked, or as recommended for this
    /// many shoppers a second per SKU.
    pub fn shards(&self) -> u16 {
        let skus = self.skus.max(1);
        let lines = self.cart_lines.clamp(1, skus);
        let per_sku = self.shoppers as f64 * lines as f64 / skus as f64 / self.seconds.max(0.001);
        self.shards
            .unwrap_or_else(|| {
                recommended_shards(
                    per_sku,
                    u32::try_from(lines).unwrap_or(u32::MAX),
                    self.model.transaction_latency,
                    self.units,
                )
            })
            .max(1)
    }
}

/// Runs the sale and returns its figures (the CLI prints them; tests read
/// them).
pub async fn run(sale: &FlashSale) -> anyhow::Result<SaleFigures> {
    let usd = Currency::from_code("USD")?;
    let catalog = Arc::new(InProcessCatalog::new());
    // One table: the stock and the open holds meet the same rules.
    let contention = Arc::new(ItemContention::new(sale.model));
    let table = Arc::new(InProcessStock::new().with_contention(contention.clone()));
    let skus: Vec<String> = (0..sale.skus.max(1)).map(sku).collect();
    let stock = Arc::new(HotStock::new(
        table.clone(),
        HotSkus::all(skus.iter().map(String::as_str), sale.shards()),
    ));
    for s in &skus {
        catalog.set_price(PriceEntry {
            sku: s.clone(),
            price: Money::new(4_999, usd),
            version: 1,
            collections: BTreeSet::new(),
        });
        stock
            .set_on_hand(s, sale.units)
            .await
            .map_err(|e| anyhow::anyhow!("seeding {s}: {e}"))?;
    }
    let config = CheckoutConfig::default();
    let hold_for = config.hold_for;
    let checkout = Arc::new(CheckoutValidation::new(
        catalog,
        stock.clone(),
        Arc::new(InProcessOpenHolds::new().with_contention(contention.clone())),
        loyalty_never_called(),
        Arc::new(CircuitBreaker::new("bench", 5, Duration::from_secs(60))),
        config,
    ));
    let mut rng = fastrand::Rng::with_seed(sale.seed);
    let span = Duration::from_secs_f64(sale.seconds.max(0.0));
    let mut arrivals: Vec<Duration> = (0..sale.shoppers)
        .map(|_| span.mul_f64(rng.f64()))
        .collect();
    arrivals.sort();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(sale.shoppers);
    for (i, at) in arrivals.into_iter().enumerate() {
        let mut cart: Vec<String> = skus.clone();
        rng.shuffle(&mut cart);
        cart.truncate(sale.cart_lines.clamp(1, skus.len()));
        let checkout = checkout.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until((start + at).into()).await;
            let req = CheckoutRequest {
                checkout_id: format!("shopper-{i}"),
                customer_id: Some(format!("customer-{i}")),
                loyalty_member: None,
                lines: cart
                    .into_iter()
                    .map(|sku| CartLine {
                        sku,
                        quantity: 1,
                        shown_price: Money::new(4_999, usd),
                    })
                    .collect(),
                promotion_codes: Vec::new(),
                points_to_redeem: 0,
            };
            let began = Instant::now();
            // As a storefront's server asks for a signed-in shopper: the
            // customer's open holds are counted (a write on the table).
            let caller = Caller::Storefront { id: "web".into() };
            let answer = match checkout.validate_for(&caller, &req, Utc::now()).await {
                Ok(answer) => answer,
                Err(not_yours) => CheckoutResponse::Rejected {
                    checkout_id: req.checkout_id.clone(),
                    problems: vec![Problem {
                        line: None,
                        sku: None,
                        code: "forbidden".into(),
                        message: not_yours.to_string(),
                    }],
                },
            };
            (answer, began.elapsed())
        }));
    }
    let mut f = SaleFigures {
        units_held: vec![0; skus.len()],
        ..SaleFigures::default()
    };
    let progress = crate::progress::bar(sale.shoppers as u64, "shoppers");
    for t in tasks {
        let (answer, took) = t.await?;
        progress.inc(1);
        f.latencies.push(took);
        match answer {
            CheckoutResponse::Accepted { lines, .. } => {
                f.held += 1;
                for l in lines {
                    if let Some(i) = skus.iter().position(|s| *s == l.sku) {
                        f.units_held[i] += u64::from(l.quantity);
                    }
                }
            }
            CheckoutResponse::Rejected { problems, .. }
                if problems.iter().all(|p| p.code == "out_of_stock") =>
            {
                f.sold_out += 1
            }
            CheckoutResponse::Rejected { problems, .. } => {
                f.unavailable += 1;
                f.first_unavailable.get_or_insert_with(|| {
                    problems
                        .iter()
                        .map(|p| format!("{}: {}", p.code, p.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                });
            }
        }
    }
    progress.finish_and_clear();
    f.latencies.sort();
    let counts = contention.counts();
    f.conflicts = counts.conflicts.load(Ordering::Relaxed);
    f.throttled = counts.throttled.load(Ordering::Relaxed);
    f.retries = stock.retries();
    let now = Utc::now();
    for s in &skus {
        let free = stock.available(s, now).await.map_err(anyhow::Error::msg)?;
        f.units_free.push(u64::from(free));
    }
    // Nobody pays: every hold runs out, and each unit must be back.
    let later = now + hold_for + chrono::Duration::seconds(1);
    stock
        .sweep_expired(later)
        .await
        .map_err(anyhow::Error::msg)?;
    for s in &skus {
        let free = stock
            .available(s, later)
            .await
            .map_err(anyhow::Error::msg)?;
        f.units_back.push(u64::from(free));
    }
    Ok(f)
}

/// A loyalty connector for carts that redeem no points (benchmarks): it is
/// never asked, and points nowhere.
pub fn loyalty_never_called() -> Arc<SalesforceLoyalty> {
    Arc::new(SalesforceLoyalty::new(SalesforceLoyaltyConfig {
        base_url: "http://127.0.0.1:9".into(),
        api_version: "v62.0".into(),
        program_name: "P".into(),
        journal_subtype: "Purchase".into(),
        debit_process: "DebitPointsFromMembers".into(),
        auth: retailflow_connectors::auth::SalesforceAuth::from_secret(
            retailflow_core::credentials::ConnectorSecrets::fixed(&Default::default()),
            "http://127.0.0.1:9",
        ),
        timeout: Duration::from_millis(100),
    }))
}

/// The figures at rank `p` (0..1) of sorted `samples`.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let i = ((samples.len() as f64 * p) as usize).min(samples.len() - 1);
    samples[i]
}

pub async fn bench_flash_sale(sale: FlashSale) -> anyhow::Result<()> {
    let m = sale.model;
    println!(
        "flash sale: {} shoppers over {} s for {} unit(s) of each of {} hot SKU(s), {}-line carts, {} counter(s) a SKU",
        sale.shoppers, sale.seconds, sale.units, sale.skus, sale.cart_lines, sale.shards()
    );
    println!(
        "  contention model: transaction {} ms, write {} ms, read {} ms, {} write units/s an item; checkout stock budget {} ms",
        m.transaction_latency.as_millis(),
        m.write_latency.as_millis(),
        m.read_latency.as_millis(),
        m.item_write_units_per_second,
        CHECKOUT_BUDGET.as_millis()
    );
    let f = run(&sale).await?;
    println!("held {}", f.held);
    println!("sold out {}", f.sold_out);
    println!("unavailable {}", f.unavailable);
    println!(
        "p50 {} ms  p99 {} ms  max {} ms",
        percentile(&f.latencies, 0.50).as_millis(),
        percentile(&f.latencies, 0.99).as_millis(),
        f.latencies.last().copied().unwrap_or_default().as_millis()
    );
    println!(
        "  conflicts {}  throttled {}  retries {}",
        f.conflicts, f.throttled, f.retries
    );
    if let Some(why) = &f.first_unavailable {
        println!("  first unavailable answer: {why}");
    }
    let units = u64::from(sale.units);
    let oversold = f.units_held.iter().any(|h| *h > units)
        || f.units_held
            .iter()
            .zip(&f.units_free)
            .any(|(h, free)| h + free != units);
    let leaked = f.units_back.iter().any(|b| *b != units);
    println!(
        "  units held per SKU at the end: {:?}; after every hold expired, free: {:?} ({}{})",
        f.units_held,
        f.units_back,
        if oversold {
            "OVERSOLD"
        } else {
            "none oversold"
        },
        if leaked { ", LEAKED" } else { ", none leaked" }
    );
    if oversold || leaked {
        anyhow::bail!("the sale broke the stock's guarantees");
    }
    Ok(())
}
