//! The support console in a real browser: headless Chromium (Debian's
//! `chromium` and `chromium-driver`, which the test command installs)
//! driven over WebDriver, against the console a local `serve` mounts.

#[path = "../app/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use retailflow::local_app::LocalApp;
use retailflow::local_console::http::{router, ConsoleAuth};
use retailflow_core::ports::dead_letters::DeadLetters;
use simulators::{Fault, FaultKind, System};
use support::{deliver_shopify, dev_config, repo};

/// The console on a free loopback port; its base URL.
async fn serve_console(app: Arc<LocalApp>) -> String {
    let auth = ConsoleAuth::from_dev_keys(&repo().join("events/dev-keys")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(app, Arc::new(auth)))
            .await
            .unwrap()
    });
    format!("http://{addr}")
}

/// A page on another origin that posts a form to the console as soon as
/// it opens: what a forged request looks like.
async fn attacker(console: &str, id: &str) -> String {
    let page = format!(
        "<!doctype html><form method=post action=\"{console}/console/actions/retry\">\
         <input name=id value=\"{id}\"><input name=csrf value=guessed></form>\
         <script>document.forms[0].submit()</script>"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/")
}

struct Browser {
    client: Client,
    _driver: tokio::process::Child,
}

/// Headless Chromium through a chromedriver of its own.
async fn browser() -> Browser {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver (Debian's chromium-driver; infra/scripts/test.sh installs it)");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caps = serde_json::from_value(serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1000"]
        }
    }))
    .unwrap();
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    Browser {
        client,
        _driver: driver,
    }
}

async fn sign_in(c: &Client, base: &str, user: &str, password: &str) {
    c.goto(&format!("{base}/console/login")).await.unwrap();
    let form = c.form(Locator::Css("form")).await.unwrap();
    form.set_by_name("user", user).await.unwrap();
    form.set_by_name("password", password).await.unwrap();
    form.submit().await.unwrap();
    c.wait().for_element(Locator::Id("who")).await.unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// An app whose ERP refuses every sales order, with #1042 (its customer
/// named `first_name`) dead-lettered on the ERP step.
async fn app_with_a_dead_letter(first_name: &str) -> Arc<LocalApp> {
    let app = LocalApp::start(dev_config()).await.unwrap();
    app.sims.inject(Fault {
        system: System::NetSuite,
        method: Some("PUT"),
        path_contains: "salesOrder",
        kind: FaultKind::Refuse,
        count: 1_000,
    });
    let order = std::fs::read_to_string(
        repo().join("events/payloads/shopify-orders-create-discount-code.json"),
    )
    .unwrap();
    let mut order: serde_json::Value = serde_json::from_str(&order).unwrap();
    order["customer"]["first_name"] = first_name.into();
    let resp = deliver_shopify(&app, "orders/create", "ev-browser-1", &order.to_string()).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    app.drain().await;
    assert_eq!(app.list(10).await.unwrap().len(), 1);
    Arc::new(app)
}

fn screenshot(name: &str, png: &[u8]) {
    let dir = repo().join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

#[tokio::test]
async fn a_dead_lettered_order_is_retried_by_an_operator_and_the_retry_shows_on_its_timeline() {
    let app = app_with_a_dead_letter("Ava").await;
    // Support gets to it a few minutes later.
    app.clock
        .advance_to(app.clock.now() + chrono::Duration::minutes(3));
    let base = serve_console(app.clone()).await;
    let b = browser().await;
    let c = &b.client;
    sign_in(c, &base, "olga@example.com", "dev-operator").await;
    c.goto(&format!("{base}/console")).await.unwrap();
    let row = text(c, "#inbox tbody tr").await;
    for expected in [
        "validation",
        "dead letter",
        "erp_post",
        "netsuite",
        "3 min",
        "#1042",
        "128.08 USD",
        "Ava Thompson",
    ] {
        assert!(row.contains(expected), "{expected} missing: {row}");
    }
    screenshot("inbox.png", &c.screenshot().await.unwrap());

    // The ERP takes sales orders again; the operator retries.
    app.sims.clear_faults();
    c.find(Locator::Css("#inbox button.retry"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("timeline")).await.unwrap();
    let heading = text(c, "h1").await;
    assert!(
        heading.contains("#1042") && heading.contains("complete"),
        "{heading}"
    );
    let erp = text(c, "#erp").await;
    assert!(
        erp.contains("Sales order SO") && erp.contains("128.08 USD"),
        "{erp}"
    );
    let timeline = text(c, "#timeline").await;
    assert!(
        timeline.contains("operator: retry")
            && timeline.contains("olga@example.com")
            && timeline.contains("re-driven and done"),
        "{timeline}"
    );
    screenshot("order.png", &c.screenshot().await.unwrap());
    assert_eq!(app.sims.netsuite_sales_orders().len(), 1);
    c.goto(&format!("{base}/console")).await.unwrap();
    assert!(text(c, "#inbox").await.contains("Nothing here"));
    c.clone().close().await.unwrap();
}

#[tokio::test]
async fn a_viewer_has_no_retry_a_forged_retry_is_refused_and_a_scripted_name_is_only_text() {
    let name = "<script>window.pwned=1</script>";
    let app = app_with_a_dead_letter(name).await;
    let base = serve_console(app.clone()).await;
    let b = browser().await;
    let c = &b.client;
    sign_in(c, &base, "victor@example.com", "dev-viewer").await;
    c.goto(&format!("{base}/console")).await.unwrap();
    assert!(c
        .find_all(Locator::Css("button.retry"))
        .await
        .unwrap()
        .is_empty());
    // The name is shown as the text it is, and nothing of it ran.
    let row = text(c, "#inbox tbody tr").await;
    assert!(row.contains(name), "{row}");
    let ran = c
        .execute("return typeof window.pwned;", vec![])
        .await
        .unwrap();
    assert_eq!(ran, serde_json::json!("undefined"));

    // A page elsewhere posts a retry with the signed-in viewer's cookie.
    let id = app.list(10).await.unwrap()[0].id.clone();
    c.goto(&attacker(&base, &id).await).await.unwrap();
    c.wait()
        .for_element(Locator::XPath("//p[contains(., 'refused')]"))
        .await
        .unwrap();
    let refusal = text(c, "main").await;
    assert!(
        refusal.contains("did not come from the console"),
        "{refusal}"
    );
    // And an operator's session fares no better from there.
    sign_in(c, &base, "olga@example.com", "dev-operator").await;
    c.goto(&attacker(&base, &id).await).await.unwrap();
    c.wait()
        .for_element(Locator::XPath("//p[contains(., 'refused')]"))
        .await
        .unwrap();
    assert_eq!(app.list(10).await.unwrap().len(), 1, "nothing was retried");
    assert!(app.sims.netsuite_sales_orders().is_empty());
    c.clone().close().await.unwrap();
}

#[tokio::test]
async fn a_bulk_retry_of_200_dead_letters_completes_them_all_and_never_exceeds_the_erp_budget() {
    // A budget of one call at once: the local drain runs two ERP calls at
    // once when nothing holds it back, so a retry that bypassed the budget
    // would show here. (The other tests of this binary only get slower.)
    std::env::set_var("RETAILFLOW_ERP_BUDGET", "1");
    let app = LocalApp::start(dev_config()).await.unwrap();
    app.sims.inject(Fault {
        system: System::NetSuite,
        method: Some("PUT"),
        path_contains: "salesOrder",
        kind: FaultKind::Refuse,
        count: 10_000,
    });
    let base_order: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("events/payloads/shopify-orders-create-discount-code.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for n in 0..200u64 {
        let mut o = base_order.clone();
        o["id"] = (6_000_000_000_000 + n).into();
        o["name"] = format!("#B{n}").into();
        o["order_number"] = (200_000 + n).into();
        o["checkout_token"] = format!("bulk-{n}").into();
        let resp = deliver_shopify(
            &app,
            "orders/create",
            &format!("ev-bulk-{n}"),
            &o.to_string(),
        )
        .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
    }
    app.drain().await;
    assert_eq!(app.list(1_000).await.unwrap().len(), 200);
    let budget = app.budgets.erp.as_ref().unwrap().limit_now() as usize;
    assert_eq!(budget, 1, "the budget this test set");
    let app = Arc::new(app);
    let base = serve_console(app.clone()).await;
    let b = browser().await;
    let c = &b.client;
    sign_in(c, &base, "olga@example.com", "dev-operator").await;
    c.goto(&format!("{base}/console?step=erp_post"))
        .await
        .unwrap();
    let button = text(c, "#retry-all").await;
    assert!(button.contains("200 dead letters"), "{button}");

    app.sims.clear_faults();
    c.find(Locator::Id("retry-all"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("outcome")).await.unwrap();
    let outcome = text(c, "#outcome").await;
    assert!(
        outcome.contains("200 of 200 dead letters re-driven: 200 done, 0 failed again"),
        "{outcome}"
    );
    assert_eq!(app.sims.netsuite_sales_orders().len(), 200);
    assert!(app.list(1_000).await.unwrap().is_empty());
    let most = app.sims.most_in_flight(System::NetSuite);
    println!("ERP budget {budget}; most NetSuite calls in flight at once: {most}");
    assert!(most <= budget, "{most} calls in flight, budget {budget}");
    c.clone().close().await.unwrap();
}

#[tokio::test]
async fn an_operator_checks_the_erp_before_a_retry_and_takes_a_letter_off_with_a_note() {
    let app = app_with_a_dead_letter("Ava").await;
    let base = serve_console(app.clone()).await;
    let b = browser().await;
    let c = &b.client;
    sign_in(c, &base, "olga@example.com", "dev-operator").await;
    c.goto(&format!("{base}/console")).await.unwrap();
    c.find(Locator::Css("#inbox button.check"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("outcome")).await.unwrap();
    let outcome = text(c, "#outcome").await;
    assert!(
        outcome.contains("netsuite has no sales order so-shopify-5872301948123")
            && outcome.contains("a retry creates it"),
        "{outcome}"
    );

    // The operator fixed it by hand in the ERP: taken off, with why.
    c.goto(&format!("{base}/console")).await.unwrap();
    let form = c.form(Locator::Css("form.resolve")).await.unwrap();
    form.set_by_name("note", "posted by hand in NetSuite as SO-HAND-1")
        .await
        .unwrap();
    form.submit().await.unwrap();
    c.wait().for_element(Locator::Id("inbox")).await.unwrap();
    assert!(text(c, "#inbox").await.contains("Nothing here"));
    assert!(app.list(10).await.unwrap().is_empty());
    assert!(
        c.find(Locator::Css("a[href^='/console/orders/']"))
            .await
            .is_err(),
        "no exception left to link"
    );
    c.goto(&format!(
        "{base}/console/orders/shopify%3Aacme.myshopify.com%3Aorder%3A5872301948123"
    ))
    .await
    .unwrap();
    let timeline = text(c, "#timeline").await;
    for expected in [
        "operator: check",
        "a retry creates it",
        "operator: resolve",
        "posted by hand in NetSuite as SO-HAND-1",
    ] {
        assert!(
            timeline.contains(expected),
            "{expected} missing: {timeline}"
        );
    }
    c.clone().close().await.unwrap();
}
