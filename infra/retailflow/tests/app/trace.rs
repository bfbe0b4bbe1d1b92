//! `retailflow trace` reads an order's whole story back from the saga
//! store: its events, each step with its result, its returns.

use retailflow::local_app::LocalApp;
use retailflow_core::saga::StepStatus;

use crate::support;
use support::{deliver, dev_config};

const ORDER: &str = "shopify:acme-outdoor.myshopify.com:order:5872301948123";

#[tokio::test]
async fn a_trace_shows_every_step_of_an_order_and_its_return_with_their_documents() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
    assert_eq!(
        deliver(&app, "08-shopify-refunds-create-partial.json").await,
        200
    );
    app.drain().await;
    let t = retailflow_core::trace::trace_order(app.store.as_ref(), ORDER)
        .await
        .unwrap()
        .unwrap();
    let step = |name: &str| {
        t.steps
            .iter()
            .find(|s| s.step == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", t.steps))
    };
    for name in [
        "erp_post",
        "loyalty_accrual",
        "stock_commit",
        "loyalty_reversal",
        "credit_memo",
    ] {
        assert_eq!(step(name).status, StepStatus::Completed, "{name}");
    }
    assert!(step("credit_memo").saga_key.contains(":return:"));
    assert_eq!(t.refunds, vec!["1023847561234".to_string()]);
    assert!(t.open_steps.is_empty(), "{:?}", t.open_steps);
    let events: Vec<&str> = t.events.iter().map(|e| e.event_type.as_str()).collect();
    for e in [
        "OrderPlaced",
        "RefundIssued",
        "OrderPostedToErp",
        "CreditMemoPosted",
    ] {
        assert!(events.contains(&e), "{e} in {events:?}");
    }
    let text = retailflow_core::trace::render(&t);
    let so = step("erp_post").result.as_ref().unwrap()["document_number"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains(&format!("document_number={so}")), "{text}");
    assert!(text.contains("every recorded step is done"), "{text}");
}

#[tokio::test]
async fn a_trace_of_an_unknown_order_says_so_and_an_unfinished_one_shows_the_step_not_done() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    assert!(
        retailflow_core::trace::trace_order(app.store.as_ref(), "shopify:x:order:1")
            .await
            .unwrap()
            .is_none()
    );
    // The ERP is down: the order is accepted, its ERP step is not done.
    app.sims.outage(
        simulators::System::NetSuite,
        app.clock.now() + chrono::Duration::hours(1),
    );
    assert_eq!(deliver(&app, "01-shopify-orders-create.json").await, 200);
    app.drain_until(app.clock.now() + chrono::Duration::minutes(5))
        .await;
    let t = retailflow_core::trace::trace_order(app.store.as_ref(), ORDER)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !t.steps
            .iter()
            .any(|s| s.step == "erp_post" && s.status == StepStatus::Completed),
        "{:?}",
        t.steps
    );
    assert!(
        t.steps
            .iter()
            .any(|s| s.step == "loyalty_accrual" && s.status == StepStatus::Completed),
        "{:?}",
        t.steps
    );
    let events: Vec<&str> = t.events.iter().map(|e| e.event_type.as_str()).collect();
    assert!(!events.contains(&"OrderPostedToErp"), "{events:?}");
}
