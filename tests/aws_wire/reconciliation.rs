//! Reconciliation's reads and writes in DynamoDB (moto, real SDK client):
//! sagas by the hour they started through the keys-only time index, page
//! by page across its shards; re-drive counts with their limit; reports;
//! and a whole run over a DynamoDB saga store against the simulators.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_core::adapters::in_process::InProcessEventBus;
use retailflow_core::idempotency::{Completion, IdempotencyKey};
use retailflow_core::ports::StateStore;
use retailflow_core::reconciliation::{DiscrepancyKind, Reconciliation, ReconciliationConfig};
use retailflow_core::resilience::CircuitBreaker;
use retailflow_core::resilience::Guarded;
use retailflow_core::saga::{SagaEvent, SagaUpdate, SAGA_RETENTION};
use retailflow_e2e::{aws_config, create_state_table, RequestCounter};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn record(store: &DynamoDbStateStore, key: &str, at: DateTime<Utc>, replayable: bool) {
    store
        .record_completed(
            &IdempotencyKey::saga_step(key, "intake_test"),
            "h",
            &Completion {
                result: None,
                now: at,
                expires_at: at + Duration::days(1),
                saga: Some(SagaUpdate {
                    saga_key: key.into(),
                    at,
                    event: Some(SagaEvent {
                        event_id: format!("00000000-0000-4000-8000-{:012}", key.len()),
                        event_type: "OrderPlaced".into(),
                        replayable,
                    }),
                    order_facts: None,
                    replace_order_facts: false,
                    case_key: None,
                    expires_at: at + SAGA_RETENTION,
                }),
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn sagas_of_an_hour_are_read_page_by_page_through_the_index_without_a_scan() {
    let cfg = aws_config().await;
    let counter = RequestCounter::default();
    let ddb = retailflow_e2e::counted_dynamodb(&cfg, &counter);
    let table = create_state_table(&aws_sdk_dynamodb::Client::new(&cfg)).await;
    let store = DynamoDbStateStore::new(ddb, &table);
    // 230 sagas in the hour of t0, 7 in the next, 3 the hour before.
    for i in 0..230 {
        record(
            &store,
            &format!("shopify:s:order:{i}"),
            t0() + Duration::seconds(i),
            false,
        )
        .await;
    }
    for i in 0..7 {
        record(
            &store,
            &format!("shopify:s:order:n{i}"),
            t0() + Duration::minutes(70),
            false,
        )
        .await;
    }
    for i in 0..3 {
        record(
            &store,
            &format!("shopify:s:order:p{i}"),
            t0() - Duration::minutes(5),
            false,
        )
        .await;
    }
    // A later update keeps the saga in the hour it started.
    record(
        &store,
        "shopify:s:order:0",
        t0() + Duration::hours(3),
        false,
    )
    .await;
    counter.take();

    let mut keys = Vec::new();
    let mut page = None;
    let mut pages = 0;
    loop {
        let p = store.sagas_started(t0(), page.as_deref()).await.unwrap();
        assert!(p.sagas.len() <= 100);
        keys.extend(p.sagas.into_iter().map(|s| s.saga_key));
        pages += 1;
        match p.next {
            Some(n) => page = Some(n),
            None => break,
        }
    }
    let unique: BTreeSet<_> = keys.iter().cloned().collect();
    assert_eq!(keys.len(), 230, "each saga once");
    assert_eq!(unique.len(), 230);
    assert!(unique
        .iter()
        .all(|k| !k.contains(":order:n") && !k.contains(":order:p")));
    let requests = counter.take();
    println!("230 sagas of one hour: {pages} pages, {requests} DynamoDB requests");
    // One Query per shard page and one BatchGetItem per non-empty page.
    assert!(
        requests <= 2 * pages + 8,
        "{requests} requests for {pages} pages"
    );
    let next_hour = store
        .sagas_started(t0() + Duration::hours(1), None)
        .await
        .unwrap();
    let mut all = next_hour.sagas.len();
    let mut page = next_hour.next;
    while let Some(p) = page {
        let more = store
            .sagas_started(t0() + Duration::hours(1), Some(&p))
            .await
            .unwrap();
        all += more.sagas.len();
        page = more.next;
    }
    assert_eq!(all, 7);
    let bad = store.sagas_started(t0(), Some("not a token")).await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn the_first_event_re_drive_counts_and_reports_round_trip_through_dynamodb() {
    let cfg = aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&cfg);
    let table = create_state_table(&client).await;
    let store = DynamoDbStateStore::new(client, &table);
    let key = "shopify:s:order:env";
    record(&store, key, t0(), true).await;
    record(&store, key, t0() + Duration::minutes(1), true).await;
    let saga = store.saga(key).await.unwrap().unwrap();
    assert_eq!(
        saga.first_event_ids.get("OrderPlaced").map(String::as_str),
        Some("00000000-0000-4000-8000-000000000019"),
        "the first one stays"
    );
    assert_eq!(saga.first_seen["OrderPlaced"], t0());
    for _ in 0..2 {
        assert!(store
            .record_redrive(key, "erp_post", 2, t0())
            .await
            .unwrap());
    }
    assert!(!store
        .record_redrive(key, "erp_post", 2, t0())
        .await
        .unwrap());
    assert!(store
        .record_redrive(key, "return:1:credit_memo", 2, t0())
        .await
        .unwrap());
    // No saga, no count: a re-drive needs the saga it re-drives.
    assert!(!store
        .record_redrive("shopify:s:order:none", "erp_post", 2, t0())
        .await
        .unwrap());
    let saga = store.saga(key).await.unwrap().unwrap();
    assert_eq!(saga.redrives["erp_post"], 2);
    assert_eq!(saga.redrives["return:1:credit_memo"], 1);
    let body = serde_json::json!({"run_id": "r1", "discrepancies": vec!["x"; 5000]}).to_string();
    store
        .put_report("r1", &body, t0() + Duration::days(90))
        .await
        .unwrap();
    assert_eq!(
        store.report("r1").await.unwrap().as_deref(),
        Some(body.as_str())
    );
    assert_eq!(store.report("r2").await.unwrap(), None);
}

#[tokio::test]
async fn a_run_over_dynamodb_sagas_finds_a_sales_order_total_edited_in_netsuite() {
    use retailflow_core::intake::{IntakeConfig, OrderIntake, WebhookRequest, WebhookRoute};
    use retailflow_core::webhook::{HmacSecrets, Secret};
    const ORDER: &str =
        include_str!("../../events/payloads/shopify-orders-create-discount-code.json");
    let cfg = aws_config().await;
    let counter = RequestCounter::default();
    let ddb = retailflow_e2e::counted_dynamodb(&cfg, &counter);
    let table = create_state_table(&aws_sdk_dynamodb::Client::new(&cfg)).await;
    let store = Arc::new(DynamoDbStateStore::new(ddb, &table));
    let bus = Arc::new(InProcessEventBus::new());
    let sims = simulators::Simulators::start().await.unwrap();
    let intake = OrderIntake::new(
        store.clone(),
        bus.clone(),
        IntakeConfig {
            shopify: Some(HmacSecrets {
                current: Secret::new("recon-secret"),
                previous: None,
            }),
            ..IntakeConfig::default()
        },
    );
    let now = Utc::now();
    let h = retailflow_e2e::signed_shopify_headers("recon-secret", "ev-recon-1", ORDER);
    let resp = intake
        .handle(WebhookRequest {
            route: WebhookRoute::Shopify,
            headers: &h,
            body: ORDER.as_bytes(),
            received_at: now,
            gateway_time: None,
            deadline: None,
        })
        .await;
    assert_eq!(resp.status, 200);
    // The steps run from the event as the queues would deliver it.
    let eb = aws_sdk_eventbridge::Client::new(&cfg);
    let bus_name = retailflow_e2e::unique("bus");
    eb.create_event_bus().name(&bus_name).send().await.unwrap();
    let step_bus = Arc::new(retailflow_aws::adapters::eventbridge::EventBridgeBus::new(
        eb, &bus_name,
    ));
    let (erp, loyalty) = retailflow_e2e::saga_steps(store.clone(), step_bus, &sims);
    let placed = bus.published();
    let event = retailflow_core::steps::envelope_from_message(&placed[0].detail).unwrap();
    let inv = retailflow_core::steps::Invocation {
        now,
        deadline: None,
        attempt: 1,
    };
    assert!(matches!(
        erp.handle(&event, inv).await,
        retailflow_core::steps::StepOutcome::Done { .. }
    ));
    assert!(matches!(
        loyalty.handle(&event, inv).await,
        retailflow_core::steps::StepOutcome::Done { .. }
    ));

    // A refund opens its own saga item: time-indexed, remembering its
    // event, so a refund whose steps never ran is found and re-driven.
    const REFUND: &str =
        include_str!("../../events/payloads/shopify-refunds-create-partial-with-shipping.json");
    let h = retailflow_e2e::signed_shopify_topic_headers(
        "recon-secret",
        "refunds/create",
        "ev-recon-2",
        REFUND,
    );
    let resp = intake
        .handle(WebhookRequest {
            route: WebhookRoute::Shopify,
            headers: &h,
            body: REFUND.as_bytes(),
            received_at: now,
            gateway_time: None,
            deadline: None,
        })
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let case = store
        .saga("shopify:acme.myshopify.com:order:5872301948123:return:1023847561234")
        .await
        .unwrap()
        .expect("intake opened the return's saga");
    // Items keep times to the millisecond.
    assert_eq!(
        case.started_at.map(|t| t.timestamp_millis()),
        Some(now.timestamp_millis())
    );
    assert!(case.first_event_ids.contains_key("RefundIssued"));
    let order_saga = store
        .saga("shopify:acme.myshopify.com:order:5872301948123")
        .await
        .unwrap()
        .unwrap();
    assert!(order_saga.event_types.contains("RefundIssued"));
    assert!(
        !order_saga.first_event_ids.contains_key("RefundIssued"),
        "the order remembers only its own event"
    );
    let mut in_hour = Vec::new();
    let mut page = None;
    loop {
        let p = store.sagas_started(now, page.as_deref()).await.unwrap();
        in_hour.extend(p.sagas.into_iter().map(|s| s.saga_key));
        match p.next {
            Some(n) => page = Some(n),
            None => break,
        }
    }
    assert_eq!(in_hour.len(), 2, "{in_hour:?}");

    let findings = Arc::new(InProcessEventBus::new());
    let breaker = |n| {
        Arc::new(CircuitBreaker::new(
            n,
            5,
            std::time::Duration::from_secs(60),
        ))
    };
    // No step is stuck here: no rule is needed for re-drives.
    let archive = Arc::new(
        retailflow_aws::adapters::eventbridge_archive::EventBridgeArchive::new(
            aws_sdk_eventbridge::Client::new(&cfg),
            "arn:aws:events:us-east-1:123456789012:archive/none",
            "arn:aws:events:us-east-1:123456789012:event-bus/none",
            Default::default(),
        ),
    );
    let recon = Reconciliation::new(
        store.clone(),
        findings.clone(),
        archive,
        Some(Guarded {
            connector: Arc::new(retailflow_e2e::netsuite(&sims)),
            breaker: breaker("netsuite"),
        }),
        Some(Guarded {
            connector: Arc::new(retailflow_e2e::salesforce(&sims)),
            breaker: breaker("loyalty"),
        }),
        ReconciliationConfig::default(),
        Arc::new(Utc::now),
    );
    counter.take();
    let clean = recon.run((now, now), None).await.unwrap();
    assert!(clean.complete);
    assert_eq!(clean.orders_checked, 1);
    assert_eq!(clean.returns_checked, 1);
    assert!(clean.discrepancies.is_empty(), "{:#?}", clean.discrepancies);
    println!(
        "reconciling one hour with one order on DynamoDB: {} requests ({:?})",
        counter.take(),
        clean.requests
    );
    let so = &sims.netsuite_sales_orders()[0];
    assert!(sims.netsuite_adjust_total(
        simulators::NetSuiteRecord::SalesOrder,
        &so.external_id,
        100
    ));
    let drift = recon.run((now, now), None).await.unwrap();
    assert_eq!(drift.discrepancies.len(), 1, "{:#?}", drift.discrepancies);
    assert_eq!(drift.discrepancies[0].kind, DiscrepancyKind::AmountMismatch);
    assert_eq!(drift.discrepancies[0].found.as_deref(), Some("129.08 USD"));
    assert_eq!(
        findings
            .published()
            .iter()
            .filter(|e| e.detail_type == "DiscrepancyFound")
            .count(),
        1
    );
    // The report is kept in the table under its run id.
    let kept = store.report(&drift.run_id).await.unwrap().unwrap();
    assert!(kept.contains("amount_mismatch"), "{kept}");
}

#[tokio::test]
async fn a_stuck_steps_event_is_replayed_from_the_bus_archive_to_its_rules_only() {
    use retailflow_aws::adapters::eventbridge::EventBridgeBus;
    use retailflow_aws::adapters::eventbridge_archive::EventBridgeArchive;
    use retailflow_core::ports::{ArchivedEvent, BusEvent, EventArchive, EventBus, ReplaySpan};
    let cfg = aws_config().await;
    let routed = retailflow_e2e::create_routed_bus(&cfg, &["OrderPlaced"]).await;
    let eb = aws_sdk_eventbridge::Client::new(&cfg);
    let bus_arn = eb
        .describe_event_bus()
        .name(&routed.bus)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let archive_arn = eb
        .create_archive()
        .archive_name(retailflow_e2e::unique("archive"))
        .event_source_arn(&bus_arn)
        .send()
        .await
        .unwrap()
        .archive_arn
        .unwrap();
    let rule_arn = eb
        .list_rules()
        .event_bus_name(&routed.bus)
        .send()
        .await
        .unwrap()
        .rules()
        .iter()
        .find(|r| !r.name().unwrap_or_default().starts_with("Events-Archive"))
        .and_then(|r| r.arn().map(str::to_string))
        .unwrap();
    let at = t0() + Duration::milliseconds(250);
    let event_id = uuid::Uuid::new_v4();
    EventBridgeBus::new(eb.clone(), &routed.bus)
        .publish(&[BusEvent {
            event_id,
            detail_type: "OrderPlaced".into(),
            source: retailflow_core::events::INTAKE_SOURCE.into(),
            detail: serde_json::json!({"event_id": event_id, "event_type": "OrderPlaced"})
                .to_string(),
            time: at,
        }])
        .await
        .unwrap();
    let first = retailflow_e2e::drain(&cfg, &routed.queue_url).await;
    assert_eq!(first.len(), 1, "delivered once by its rule");

    let archive = EventBridgeArchive::new(
        eb.clone(),
        &archive_arn,
        &bus_arn,
        [("erp_post".to_string(), vec![rule_arn.clone()])].into(),
    );
    assert!(archive.knows("erp_post") && !archive.knows("loyalty_accrual"));
    let span = ReplaySpan::of(&[ArchivedEvent {
        event_id: event_id.to_string(),
        event_type: "OrderPlaced".into(),
        published_at: at,
    }])
    .unwrap();
    assert_eq!((span.from, span.to), (t0(), t0() + Duration::seconds(1)));
    let replay = archive
        .replay(
            &["erp_post".to_string(), "loyalty_accrual".to_string()],
            &span,
        )
        .await
        .unwrap()
        .expect("a rule is known");
    let name = replay.rsplit(' ').next().unwrap();
    let described = eb.describe_replay().replay_name(name).send().await.unwrap();
    assert_eq!(described.event_source_arn(), Some(archive_arn.as_str()));
    let dest = described.destination().unwrap();
    assert_eq!(dest.arn(), bus_arn);
    assert_eq!(dest.filter_arns(), [rule_arn], "the stuck step's rule only");
    assert_eq!(
        described.event_start_time().map(|t| t.secs()),
        Some(span.from.timestamp())
    );
    assert_eq!(
        described.event_end_time().map(|t| t.secs()),
        Some(span.to.timestamp())
    );
    let again = retailflow_e2e::drain(&cfg, &routed.queue_url).await;
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(again[0]["detail"]["event_id"], event_id.to_string());
    assert!(
        again[0].get("replay-name").is_some(),
        "marked as a replay, so steps look before acting"
    );
    assert!(archive
        .replay(&["nothing".to_string()], &span)
        .await
        .unwrap()
        .is_none());
}
