//! One SQS batch, the way every queue-fed function handles it: records run
//! concurrently; each outcome becomes a [`Disposition`]; retries get their
//! visibility timeout set from the retry policy (never an immediate retry
//! storm); permanent failures go to the DLQ with their reason and
//! correlation id, then leave the queue. What could not be handled is
//! reported as a batch item failure (`ReportBatchItemFailures`).

use std::future::Future;

use crate::ports::queue::{QueueControl, QueueRecord};
use crate::queue_dispositions::{disposition, Disposition};
use crate::resilience::RetryPolicy;
use crate::steps::StepOutcome;

/// The correlation id inside a message, for the DLQ entry.
pub fn correlation_id(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let env = if v.get("detail-type").is_some() {
        &v["detail"]
    } else {
        &v
    };
    env["correlation_id"].as_str().map(str::to_string)
}

/// Runs every record through `handle` concurrently and returns the message
/// ids to report as batch item failures.
pub async fn process_batch<F, Fut>(
    records: &[QueueRecord],
    control: &dyn QueueControl,
    policy: &RetryPolicy,
    handle: F,
) -> Vec<String>
where
    F: Fn(QueueRecord) -> Fut,
    Fut: Future<Output = StepOutcome>,
{
    use tracing::Instrument;
    let timed = records.iter().cloned().map(|r| {
        let span = crate::correlation_span!(correlation_id(&r.body).unwrap_or_default());
        let work = handle(r);
        async move {
            let started = std::time::Instant::now();
            let outcome = work.await;
            (outcome, started.elapsed())
        }
        .instrument(span)
    });
    let outcomes = futures::future::join_all(timed).await;
    let mut failed = Vec::new();
    for (record, (outcome, took)) in records.iter().zip(outcomes) {
        let span = crate::correlation_span!(correlation_id(&record.body).unwrap_or_default());
        if let Some(id) = dispose(record, outcome, took, control, policy)
            .instrument(span)
            .await
        {
            failed.push(id);
        }
    }
    failed
}

/// Logs and counts one record's outcome and applies its disposition (retry
/// delay or dead letter); the message id when it must be reported failed.
async fn dispose(
    record: &QueueRecord,
    outcome: StepOutcome,
    took: std::time::Duration,
    control: &dyn QueueControl,
    policy: &RetryPolicy,
) -> Option<String> {
    let class = outcome.class();
    crate::observability::emit(
        &[
            ("Records", 1.0, crate::observability::Unit::Count),
            (
                "StepLatency",
                took.as_secs_f64() * 1000.0,
                crate::observability::Unit::Milliseconds,
            ),
        ],
        Some(("Outcome", class)),
    );
    let summary = outcome.summary();
    tracing::info!(
        message_id = %record.message_id,
        receive_count = record.receive_count,
        correlation_id = correlation_id(&record.body).unwrap_or_default(),
        outcome = %summary,
        "record"
    );
    match disposition(&outcome, record.receive_count, policy) {
        Disposition::Delete => {}
        Disposition::RetryAfter(by) => {
            if let Err(e) = control.delay(&record.receipt_handle, by).await {
                // The queue's own visibility timeout still spaces the retry.
                tracing::warn!(error = %e, "could not set the retry delay");
            }
            return Some(record.message_id.clone());
        }
        Disposition::DeadLetter(reason) => {
            if let Err(e) = control.dead_letter(record, &reason).await {
                tracing::error!(error = %e, "could not dead-letter; leaving the message for redrive");
                return Some(record.message_id.clone());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::ports::queue::QueueError;

    #[derive(Default)]
    struct Recorder {
        delays: Mutex<Vec<(String, Duration)>>,
        dead: Mutex<Vec<(String, String)>>,
        fail_dead_letters: bool,
    }

    #[async_trait]
    impl QueueControl for Recorder {
        async fn delay(&self, receipt: &str, by: Duration) -> Result<(), QueueError> {
            self.delays.lock().unwrap().push((receipt.into(), by));
            Ok(())
        }
        async fn dead_letter(&self, r: &QueueRecord, reason: &str) -> Result<(), QueueError> {
            if self.fail_dead_letters {
                return Err(QueueError("down".into()));
            }
            self.dead
                .lock()
                .unwrap()
                .push((r.message_id.clone(), reason.into()));
            Ok(())
        }
    }

    fn rec(id: &str, body: &str, receive_count: u32) -> QueueRecord {
        QueueRecord {
            message_id: id.into(),
            receipt_handle: format!("rh-{id}"),
            body: body.into(),
            receive_count,
        }
    }

    async fn run(control: &Recorder, records: &[QueueRecord]) -> Vec<String> {
        process_batch(
            records,
            control,
            &RetryPolicy::default(),
            |r: QueueRecord| async move {
                match r.body.as_str() {
                    "ok" => StepOutcome::Done {
                        summary: serde_json::Value::Null,
                    },
                    "busy" => StepOutcome::Retry {
                        reason: "429".into(),
                        retry_after: Some(Duration::from_secs(45)),
                    },
                    _ => StepOutcome::Reject {
                        reason: "bad order".into(),
                    },
                }
            },
        )
        .await
    }

    #[tokio::test]
    async fn each_record_is_counted_by_outcome_with_its_latency_in_emf() {
        let lines = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        crate::observability::set_metrics_sink(Some(std::sync::Arc::new(move |l: &str| {
            sink.lock().unwrap().push(l.to_string())
        })));
        run(
            &Recorder::default(),
            &[rec("1", "ok", 1), rec("2", "busy", 1), rec("3", "bad", 1)],
        )
        .await;
        crate::observability::set_metrics_sink(None);
        let lines = lines.lock().unwrap().clone();
        for outcome in ["done", "retry", "rejected"] {
            let line = lines
                .iter()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .find(|v| v["Outcome"] == outcome && v["Records"] == 1.0)
                .unwrap_or_else(|| panic!("no {outcome} record in {lines:?}"));
            assert!(line["StepLatency"].as_f64().unwrap() >= 0.0);
            assert_eq!(
                line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
                "Retailflow"
            );
        }
    }

    #[tokio::test]
    async fn only_retries_are_reported_and_they_are_delayed_not_stormed() {
        let c = Recorder::default();
        let failed = run(
            &c,
            &[rec("1", "ok", 1), rec("2", "busy", 3), rec("3", "bad", 1)],
        )
        .await;
        assert_eq!(failed, vec!["2".to_string()]);
        assert_eq!(
            *c.delays.lock().unwrap(),
            vec![("rh-2".to_string(), Duration::from_secs(120))]
        );
        assert_eq!(
            *c.dead.lock().unwrap(),
            vec![("3".to_string(), "bad order".to_string())]
        );
    }

    #[tokio::test]
    async fn a_dead_letter_that_cannot_be_sent_stays_on_the_queue() {
        let c = Recorder {
            fail_dead_letters: true,
            ..Recorder::default()
        };
        assert_eq!(run(&c, &[rec("3", "bad", 1)]).await, vec!["3".to_string()]);
    }

    #[test]
    fn the_correlation_id_is_read_from_eventbridge_or_bare_envelopes() {
        assert_eq!(
            correlation_id(r#"{"detail-type":"X","detail":{"correlation_id":"c1"}}"#).as_deref(),
            Some("c1")
        );
        assert_eq!(
            correlation_id(r#"{"correlation_id":"c2"}"#).as_deref(),
            Some("c2")
        );
        assert_eq!(correlation_id("nope"), None);
    }
}
