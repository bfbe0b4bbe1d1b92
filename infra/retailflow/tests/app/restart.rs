//! The local app on a data directory: what it accepted, what it did and
//! what the systems of record hold outlive the process. Each test drops the
//! app where a crash would stop it (every write is durable before the call
//! returns, so dropping loses exactly what a kill would) and opens the
//! directory again.

use std::path::PathBuf;
use std::sync::Arc;

use retailflow::data_dir::DataDir;
use retailflow::local_app::LocalApp;
use retailflow::runtime::lock;
use retailflow_core::ports::dead_letters::DeadLetters;
use retailflow_core::replay::DeadLetterFilter;
use simulators::{Fault, FaultKind, System};

use crate::support;
use support::{assert_exactly_once, deliver, dev_config, ORDERS};

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch() -> Scratch {
    Scratch(std::env::temp_dir().join(format!("retailflow-restart-{}", uuid::Uuid::new_v4())))
}

async fn open(dir: &Scratch) -> LocalApp {
    let data = Arc::new(DataDir::open(&dir.0).unwrap());
    LocalApp::open(dev_config(), Some(data)).await.unwrap()
}

fn queued(app: &LocalApp) -> usize {
    lock(&app.queues).values().map(|q| q.len()).sum()
}

#[tokio::test]
async fn orders_accepted_before_the_process_died_are_posted_once_after_a_restart() {
    let dir = scratch();
    {
        let app = open(&dir).await;
        for f in ORDERS {
            assert_eq!(deliver(&app, f).await, 200, "{f}");
        }
        // Accepted (200) and queued, no step run: the process dies here.
        assert_eq!(queued(&app), 12);
        assert!(app.sims.netsuite_sales_orders().is_empty());
    }
    let app = open(&dir).await;
    assert_eq!(queued(&app), 12, "every accepted event is still queued");
    assert_eq!(app.store.sagas().len(), 4);
    // The platforms redeliver what they sent during the outage: known, and
    // published again under the same event ids (recorded is not published).
    for f in ORDERS {
        assert_eq!(deliver(&app, f).await, 200, "{f}");
    }
    assert_eq!(queued(&app), 24, "the same events once more each");
    app.drain().await;
    assert_exactly_once(&app);
}

#[tokio::test]
async fn a_restart_between_an_erp_effect_and_its_completion_posts_nothing_twice() {
    let dir = scratch();
    {
        let app = open(&dir).await;
        // The ERP and loyalty platform apply each first call and lose the
        // answer: the steps' retries wait out a backoff.
        for (system, path) in [
            (System::NetSuite, "salesOrder"),
            (System::Salesforce, "realtime"),
        ] {
            app.sims.inject(Fault {
                system,
                method: None,
                path_contains: path,
                kind: FaultKind::LoseResponse,
                count: 4,
            });
        }
        for f in ORDERS {
            deliver(&app, f).await;
        }
        // The first attempts only; the retries are still waiting when the
        // process dies.
        let now = app.clock.now();
        let report = app.drain_until(now + chrono::Duration::seconds(1)).await;
        assert!(report.retries >= 4, "{report:?}");
        assert!(queued(&app) >= 4);
        assert_eq!(
            app.sims.netsuite_sales_orders().len(),
            4,
            "the effects were applied"
        );
    }
    let app = open(&dir).await;
    assert_eq!(
        app.sims.netsuite_sales_orders().len(),
        4,
        "the ERP keeps its records across the restart"
    );
    app.drain().await;
    assert_exactly_once(&app);
    // And the books agree with the sagas.
    let report = app.reconcile(chrono::Duration::hours(2)).await.unwrap();
    assert!(
        report.complete && report.discrepancies.is_empty(),
        "{report:?}"
    );
}

#[tokio::test]
async fn dead_letters_survive_a_restart_and_are_redriven_once_after_it() {
    let dir = scratch();
    {
        let app = open(&dir).await;
        app.sims.inject(Fault {
            system: System::NetSuite,
            method: Some("PUT"),
            path_contains: "salesOrder",
            kind: FaultKind::Refuse,
            count: 1,
        });
        assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
        app.drain().await;
        assert_eq!(app.dead_letters().len(), 1);
    }
    let app = open(&dir).await;
    let letters = app.list(10).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].queue, "erp-post");
    let report = app
        .redrive(
            &DeadLetterFilter {
                id: Some(letters[0].id.clone()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(report.redriven.len(), 1);
    app.drain().await;
    assert!(app.dead_letters().is_empty());
    assert_eq!(app.sims.netsuite_sales_orders().len(), 1);
    drop(app);
    // The re-drive itself was kept: the dead letter does not come back.
    let app = open(&dir).await;
    assert!(app.dead_letters().is_empty());
    assert_eq!(queued(&app), 0);
    assert_eq!(app.sims.netsuite_sales_orders().len(), 1);
}

async fn available(app: &LocalApp) -> [u32; 3] {
    [
        app.stock_available("MCS-CHR-M").await,
        app.stock_available("CWB-OLV").await,
        app.stock_available("BLB-01").await,
    ]
}

#[tokio::test]
async fn a_checkout_hold_and_its_order_s_stock_commit_outlive_restarts() {
    let dir = scratch();
    {
        let app = open(&dir).await;
        assert_eq!(available(&app).await, [120, 30, 400]);
        let checkout: retailflow_core::checkout::validation::CheckoutRequest =
            serde_json::from_slice(&support::sample("14-checkout-validate.json").body).unwrap();
        let resp = app.checkout.validate(&checkout, app.clock.now()).await;
        assert!(
            matches!(
                resp,
                retailflow_core::checkout::validation::CheckoutResponse::Accepted { .. }
            ),
            "{resp:?}"
        );
        // Killed straight after answering the checkout.
    }
    {
        let app = open(&dir).await;
        assert_eq!(available(&app).await, [118, 29, 399], "the hold is kept");
        assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
        // Only the stock commit runs before the process dies.
        let msgs = lock(&app.queues).get_mut("stock-commit").unwrap().receive(
            10,
            app.clock.now(),
            &mut Vec::new(),
        );
        assert_eq!(msgs.len(), 1);
        let outcome = retailflow_core::steps::stock_commit::handle_stock_message(
            &app.stock_commit,
            &msgs[0].body,
            retailflow_core::steps::Invocation {
                now: app.clock.now(),
                deadline: None,
                attempt: 1,
            },
        )
        .await;
        assert!(outcome.summary().contains("done"), "{}", outcome.summary());
    }
    let app = open(&dir).await;
    // Far past the hold's expiry: the units are the order's for good, not
    // given back as an abandoned hold's would be.
    let later = app.clock.now() + chrono::Duration::days(2);
    app.clock.advance_to(later);
    app.sweep_holds().await;
    assert_eq!(
        available(&app).await,
        [118, 29, 399],
        "committed, not released"
    );
    app.drain().await;
    assert_eq!(available(&app).await, [118, 29, 399]);
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
}

#[tokio::test]
async fn a_held_directory_is_refused_to_a_second_app() {
    let dir = scratch();
    let _app = open(&dir).await;
    let Err(e) = DataDir::open(&dir.0) else {
        panic!("a second opener got the file");
    };
    assert!(e.to_string().contains("in use"), "{e}");
}
