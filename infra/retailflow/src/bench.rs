//! `retailflow bench-checkout`: checkout validation in process, one task on
//! one core, for a cart of N lines with a promotion: latency percentiles and
//! throughput. A benchmark run on demand (build with `--release`), not a
//! timed test.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use retailflow_core::adapters::in_process::InProcessCatalog;
use retailflow_core::adapters::in_process::InProcessStock;
use retailflow_core::checkout::pricing::{CartLine, PriceEntry};
use retailflow_core::checkout::promotions::{Discount, Promotion, Scope};
use retailflow_core::checkout::validation::{
    CheckoutConfig, CheckoutRequest, CheckoutResponse, CheckoutValidation,
};
use retailflow_core::money::{Currency, Money};
use retailflow_core::ports::stock::StockReservations;
use retailflow_core::resilience::CircuitBreaker;

pub async fn bench_checkout(iterations: usize, lines: usize) -> anyhow::Result<()> {
    let usd = Currency::from_code("USD")?;
    let catalog = Arc::new(InProcessCatalog::new());
    let stock = Arc::new(InProcessStock::new());
    for i in 0..lines {
        catalog.set_price(PriceEntry {
            sku: format!("SKU-{i}"),
            price: Money::new(1999 + i as i64, usd),
            version: 1,
            collections: BTreeSet::from(["all".to_string()]),
        });
        stock
            .set_on_hand(&format!("SKU-{i}"), u32::MAX)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    catalog.add_promotion(Promotion {
        code: "BENCH10".into(),
        discount: Discount::Percent { basis_points: 1000 },
        min_spend: None,
        scope: Scope::Collections(BTreeSet::from(["all".to_string()])),
        starts_at: None,
        ends_at: None,
        per_customer_limit: None,
    });
    // Not called: the carts redeem no points.
    let loyalty = retailflow::bench_flash_sale::loyalty_never_called();
    let checkout = CheckoutValidation::new(
        catalog,
        stock,
        Arc::new(retailflow_core::adapters::in_process::InProcessOpenHolds::new()),
        loyalty,
        Arc::new(CircuitBreaker::new("bench", 5, Duration::from_secs(60))),
        CheckoutConfig::default(),
    );
    let cart: Vec<CartLine> = (0..lines)
        .map(|i| CartLine {
            sku: format!("SKU-{i}"),
            quantity: 1 + (i as u32 % 3),
            shown_price: Money::new(1999 + i as i64, usd),
        })
        .collect();
    let now = Utc::now();
    let mut samples = Vec::with_capacity(iterations);
    // Warm up, then measure.
    for i in 0..iterations.min(1000) {
        run(&checkout, &cart, &format!("warm-{i}"), now).await?;
    }
    let started = Instant::now();
    let progress = retailflow::progress::bar(iterations as u64, "checkouts");
    for i in 0..iterations {
        let t = Instant::now();
        run(&checkout, &cart, &format!("bench-{i}"), now).await?;
        samples.push(t.elapsed());
        progress.inc(1);
    }
    progress.finish_and_clear();
    let total = started.elapsed();
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "checkout validation, {lines}-line cart with a promotion, in process, one task: \
         {iterations} validations in {:.2} s",
        total.as_secs_f64()
    );
    println!(
        "  p50 {:?}  p99 {:?}  max {:?}  throughput {:.0} validations/s on one core",
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1],
        iterations as f64 / total.as_secs_f64()
    );
    Ok(())
}

async fn run(
    checkout: &CheckoutValidation,
    cart: &[CartLine],
    id: &str,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    let req = CheckoutRequest {
        checkout_id: id.to_string(),
        customer_id: Some("bench".into()),
        loyalty_member: None,
        lines: cart.to_vec(),
        promotion_codes: vec!["BENCH10".into()],
        points_to_redeem: 0,
    };
    match checkout.validate(&req, now).await {
        CheckoutResponse::Accepted { .. } => Ok(()),
        CheckoutResponse::Rejected { problems, .. } => {
            anyhow::bail!("benchmark cart rejected: {problems:?}")
        }
    }
}
