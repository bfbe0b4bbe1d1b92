//! `retailflow bench-reconcile`: N orders (and a refund of every fifth)
//! through the whole app in process against the simulators, then one
//! reconciliation of their hour: run time, pages, requests to each system,
//! and a check that it finds nothing on the clean run and every sales
//! order deleted afterwards. A benchmark run on demand (build with
//! `--release`), not a timed test.

use std::time::Instant;

use anyhow::{bail, ensure};
use http::HeaderMap;
use retailflow_core::intake::{IntakeConfig, WebhookRequest, WebhookRoute};
use retailflow_core::reconciliation::DiscrepancyKind;
use retailflow_core::webhook::{shopify_signature, HmacSecrets, Secret};
use simulators::{NetSuiteRecord, System};

use crate::local_app::LocalApp;

const ORDER: &str =
    include_str!("../../../events/payloads/shopify-orders-create-discount-code.json");
const REFUND: &str =
    include_str!("../../../events/payloads/shopify-refunds-create-partial-with-shipping.json");
const SECRET: &str = "bench-secret";

fn headers(topic: &str, event_id: &str, body: &str) -> anyhow::Result<HeaderMap> {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("content-type", "application/json".to_string()),
        ("x-shopify-topic", topic.to_string()),
        ("x-shopify-shop-domain", "bench.myshopify.com".to_string()),
        ("x-shopify-event-id", event_id.to_string()),
        (
            "x-shopify-hmac-sha256",
            shopify_signature(&Secret::new(SECRET), body.as_bytes()),
        ),
    ] {
        h.insert(k, v.parse()?);
    }
    Ok(h)
}

async fn deliver(app: &LocalApp, topic: &str, event_id: &str, body: &str) -> anyhow::Result<()> {
    let h = headers(topic, event_id, body)?;
    let resp = app
        .intake
        .handle(WebhookRequest {
            route: WebhookRoute::Shopify,
            headers: &h,
            body: body.as_bytes(),
            received_at: app.clock.now(),
            gateway_time: None,
            deadline: None,
        })
        .await;
    ensure!(
        resp.status == 200,
        "{topic} {event_id}: {} {}",
        resp.status,
        resp.body
    );
    Ok(())
}

pub async fn bench_reconcile(orders: usize) -> anyhow::Result<()> {
    let app = LocalApp::start(IntakeConfig {
        shopify: Some(HmacSecrets {
            current: Secret::new(SECRET),
            previous: None,
        }),
        ..IntakeConfig::default()
    })
    .await?;
    let order: serde_json::Value = serde_json::from_str(ORDER)?;
    let refund: serde_json::Value = serde_json::from_str(REFUND)?;
    let loading = Instant::now();
    // The local clock jumps over retry delays while the queues drain: the
    // window is from the first order to the end.
    let first = app.clock.now();
    let mut refunds = 0;
    let progress = retailflow::progress::bar(orders as u64, "orders");
    for i in 0..orders {
        progress.inc(1);
        let id = 9_000_000_000_000u64 + i as u64;
        let mut o = order.clone();
        o["id"] = id.into();
        deliver(
            &app,
            "orders/create",
            &format!("bench-o-{i}"),
            &o.to_string(),
        )
        .await?;
        if i % 5 == 4 {
            let mut r = refund.clone();
            r["id"] = (8_000_000_000_000u64 + i as u64).into();
            r["order_id"] = id.into();
            deliver(
                &app,
                "refunds/create",
                &format!("bench-r-{i}"),
                &r.to_string(),
            )
            .await?;
            refunds += 1;
        }
        if i % 200 == 199 {
            app.drain().await;
        }
    }
    progress.finish_and_clear();
    let drained = app.drain().await;
    ensure!(
        app.dead_letters().is_empty(),
        "dead letters: {:?}",
        app.dead_letters().first()
    );
    ensure!(!drained.gave_up, "the queues did not drain");
    println!(
        "loaded {orders} orders and {refunds} refunds through the app in {:.1} s",
        loading.elapsed().as_secs_f64()
    );

    let calls = |s| app.sims.calls(s);
    let (ns0, sf0) = (calls(System::NetSuite), calls(System::Salesforce));
    let started = Instant::now();
    let window = (first, app.clock.now());
    let report = app.reconcile_window(window).await?;
    let took = started.elapsed();
    let (ns, sf) = (
        calls(System::NetSuite) - ns0,
        calls(System::Salesforce) - sf0,
    );
    println!(
        "reconciled {} sagas ({} orders, {} returns) in {:.2} s over {} invocation(s): {} discrepancies",
        report.sagas_checked,
        report.orders_checked,
        report.returns_checked,
        took.as_secs_f64(),
        report.invocations,
        report.counts.values().sum::<u64>()
    );
    println!(
        "requests: state store {} (saga pages and reads), NetSuite {ns} HTTP, Salesforce {sf} HTTP, bus {}; per 1,000 orders: NetSuite {:.1}, Salesforce {:.1}",
        report.requests.get("state_store").copied().unwrap_or(0),
        report.requests.get("bus").copied().unwrap_or(0),
        ns as f64 * 1000.0 / orders.max(1) as f64,
        sf as f64 * 1000.0 / orders.max(1) as f64,
    );
    if !report.discrepancies.is_empty() {
        bail!("a clean run found {:?}", report.discrepancies.first());
    }

    // The same run finds sales orders deleted in the ERP, every one.
    let deleted: Vec<String> = app
        .sims
        .netsuite_sales_orders()
        .iter()
        .step_by(1000)
        .map(|s| s.external_id.clone())
        .collect();
    for ext in &deleted {
        app.sims.netsuite_delete(NetSuiteRecord::SalesOrder, ext);
    }
    let again = app.reconcile_window(window).await?;
    let missing = again
        .counts
        .get(&DiscrepancyKind::Missing)
        .copied()
        .unwrap_or(0);
    println!(
        "after deleting {} sales orders in the ERP: {missing} missing found",
        deleted.len()
    );
    ensure!(missing == deleted.len() as u64, "{:?}", again.counts);
    Ok(())
}
