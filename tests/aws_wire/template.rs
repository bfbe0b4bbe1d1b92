//! template.yaml itself, deployed into moto: its rules route OrderPlaced to
//! both step queues, its queues carry the retry settings the handlers rely
//! on, and an order driven through the deployed resources reaches the ERP
//! and loyalty simulators exactly once. A harness stands in for the event
//! source mappings (moto cannot run the functions).

use std::sync::Arc;

use aws_sdk_sqs::types::QueueAttributeName;
use chrono::Utc;
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_aws::adapters::eventbridge::EventBridgeBus;
use retailflow_core::intake::{IntakeConfig, OrderIntake, WebhookRequest, WebhookRoute};
use retailflow_core::webhook::{HmacSecrets, Secret};
use retailflow_e2e::{
    aws_config, deploy_template, poll_step, saga_steps, signed_shopify_headers, unique, Queue,
};
use simulators::Simulators;

const ORDER: &str = include_str!("../../events/payloads/shopify-orders-create-cad-gift-card.json");

fn out(outputs: &serde_json::Map<String, serde_json::Value>, key: &str) -> String {
    outputs[key]
        .as_str()
        .unwrap_or_else(|| panic!("output {key}"))
        .to_string()
}

#[tokio::test]
async fn the_deployed_template_routes_an_order_to_erp_and_loyalty_once() {
    let outputs = deploy_template(&unique("rf"));
    let cfg = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let erp_q = Queue {
        url: out(&outputs, "ErpPostQueueUrl"),
        dlq_url: out(&outputs, "ErpPostDLQUrl"),
    };
    let loyalty_q = Queue {
        url: out(&outputs, "LoyaltyAccrualQueueUrl"),
        dlq_url: out(&outputs, "LoyaltyAccrualDLQUrl"),
    };

    // The queue settings the retry budget is sized on.
    for q in [&erp_q, &loyalty_q] {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&q.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        let redrive: serde_json::Value =
            serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            "24"
        );
        assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], "180");
    }

    let sims = Simulators::start().await.unwrap();
    let store = Arc::new(DynamoDbStateStore::new(
        aws_sdk_dynamodb::Client::new(&cfg),
        out(&outputs, "StateTableName"),
    ));
    let bus = Arc::new(EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&cfg),
        out(&outputs, "EventBusName"),
    ));
    let intake = OrderIntake::new(
        store.clone(),
        bus.clone(),
        IntakeConfig {
            shopify: Some(HmacSecrets {
                current: Secret::new("s"),
                previous: None,
            }),
            ..IntakeConfig::default()
        },
    );
    let h = signed_shopify_headers("s", "ev-template-1", ORDER);
    let resp = intake
        .handle(WebhookRequest {
            route: WebhookRoute::Shopify,
            headers: &h,
            body: ORDER.as_bytes(),
            received_at: Utc::now(),
            gateway_time: None,
            deadline: None,
        })
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);

    let (erp, loyalty) = saga_steps(store, bus, &sims);
    assert_eq!(
        poll_step(&sqs, &erp_q, &erp).await,
        1,
        "template rule routed OrderPlaced to erp-post"
    );
    assert_eq!(
        poll_step(&sqs, &loyalty_q, &loyalty).await,
        1,
        "and to loyalty-accrual"
    );
    assert_eq!(sims.netsuite_sales_orders().len(), 1);
    assert_eq!(sims.netsuite_sales_orders()[0].total.minor, 16864);
    assert_eq!(sims.loyalty_journals().len(), 1);
    assert_eq!(sims.loyalty_journals()[0].points, 89);
    // Step events are not routed back to the step queues.
    assert_eq!(poll_step(&sqs, &erp_q, &erp).await, 0);
    assert_eq!(poll_step(&sqs, &loyalty_q, &loyalty).await, 0);
}

#[tokio::test]
async fn the_cli_finds_a_deployed_stacks_table_bus_and_queues_by_its_name() {
    let name = unique("rf");
    let outputs = deploy_template(&name);
    let cfg = aws_config().await;
    let stack = retailflow::stack::Stack::describe(&cfg, &name)
        .await
        .unwrap();
    assert_eq!(
        stack.state_table().unwrap(),
        out(&outputs, "StateTableName")
    );
    assert_eq!(stack.event_bus().unwrap(), out(&outputs, "EventBusName"));
    for (queue, key) in [
        ("erp-post", "ErpPost"),
        ("loyalty-accrual", "LoyaltyAccrual"),
        ("return-reversal", "ReturnReversal"),
        ("stock-commit", "StockCommit"),
    ] {
        assert_eq!(
            stack.queue_url(queue).unwrap(),
            out(&outputs, &format!("{key}QueueUrl"))
        );
        assert_eq!(
            stack.dlq_url(queue).unwrap(),
            out(&outputs, &format!("{key}DLQUrl"))
        );
    }
    let missing = retailflow::stack::Stack::describe(&cfg, "no-such-stack").await;
    assert!(missing.is_err());
}
