//! An Adobe Commerce order as its store sends it: every save (invoice,
//! shipment, status, comment) is a new I/O event of the whole order, in
//! any order and more than once. One order, one sales order, one accrual.

use retailflow::local_app::LocalApp;

use crate::support::{deliver_adobe, dev_config, repo};

fn fixture() -> serde_json::Value {
    let text =
        std::fs::read_to_string(repo().join("events/payloads/adobe-order-configurable.json"))
            .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["recipient_client_id"] =
        std::fs::read_to_string(repo().join("events/dev-keys/adobe-client-id.txt"))
            .unwrap()
            .trim()
            .into();
    v
}

/// Save `n` of the order: a new I/O event id, the order as `edit` leaves it.
fn save(n: u32, edit: impl Fn(&mut serde_json::Value)) -> serde_json::Value {
    let mut v = fixture();
    v["id"] = format!("5b0a3c1e-41aa-4c55-8e0b-{n:012}").into();
    edit(&mut v["data"]["value"]);
    v
}

#[tokio::test]
async fn an_adobe_order_saved_as_invoiced_and_shipped_each_twice_and_out_of_order_is_one_order() {
    let app = LocalApp::start(dev_config()).await.unwrap();
    let placed = save(1, |_| {});
    let invoiced = save(2, |v| {
        v["total_invoiced"] = v["grand_total"].clone();
        v["updated_at"] = "2026-11-26 11:59:10".into();
    });
    let shipped = save(3, |v| {
        v["state"] = "complete".into();
        v["status"] = "complete".into();
        v["updated_at"] = "2026-11-26 11:59:40".into();
    });
    for body in [&invoiced, &shipped, &placed, &shipped, &invoiced, &placed] {
        let resp = deliver_adobe(&app, body).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        app.drain().await;
    }
    let placed_events: Vec<_> = app
        .bus
        .recorded
        .published()
        .into_iter()
        .filter(|e| e.detail_type == "OrderPlaced")
        .map(|e| e.event_id)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(placed_events.len(), 1, "one order");
    let key = "adobe_commerce:5d8b2f0c1e9a4b7c8d6e3f2a1b0c9d8e:order:214";
    let saga = app.store.saga_of(key).expect("the order's saga");
    for step in ["erp_post", "loyalty_accrual"] {
        assert_eq!(
            saga.steps.get(step).map(|s| s.status),
            Some(retailflow_core::saga::StepStatus::Completed),
            "{step}"
        );
    }
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    // The ERP holds one sales order for it, with the order's total.
    let orders = app.sims.netsuite_sales_orders();
    let ours: Vec<_> = orders
        .iter()
        .filter(|o| o.external_id.contains("adobe_commerce") || o.external_id.contains("-214-"))
        .collect();
    assert_eq!(ours.len(), 1, "{orders:?}");
}
