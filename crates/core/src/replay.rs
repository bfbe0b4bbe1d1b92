//! Replay: what operators do once a fault is fixed.
//!
//! - Dead letters are listed with their reason and correlation id, and
//!   re-driven to their source queue: one (by message id), those matching a
//!   filter, or all. On SQS this is receive-and-resend (not
//!   `StartMessageMoveTask`, which moves every message and cannot filter):
//!   each matching message is sent to the source queue, then deleted from
//!   the DLQ; the rest are made visible again at once. A message sent but
//!   not deleted (a crash between) is delivered twice, which the steps'
//!   idempotency absorbs.
//! - Events of a time window are replayed to one rule from the bus's
//!   archive ([`crate::ports::EventArchive`]): every event published in the
//!   window that the rule takes, delivered again as EventBridge would.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::ports::{ArchiveError, ReplaySpan, StoreError};
use crate::queue_batch::correlation_id;

/// The top-level field marking a message sent again by replay, redrive or
/// reconciliation: it is a new SQS message (receive count 1), but not the
/// first delivery of its event, so steps that skip their look-before-acting
/// on a first delivery must look.
pub const REPLAYED: &str = "retailflow-replayed";

/// The body with the replay mark (unchanged when it is not a JSON object).
pub fn mark_replayed(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.insert(REPLAYED.into(), true.into());
            serde_json::Value::Object(m).to_string()
        }
        _ => body.to_string(),
    }
}

/// The delivery attempt a step should assume: at least the second for a
/// message sent again.
pub fn attempt_of(body: &str, receive_count: u32) -> u32 {
    // EventBridge marks what an archive replays with `replay-name`.
    let replayed = serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| {
        v[REPLAYED] == serde_json::Value::Bool(true) || v.get("replay-name").is_some()
    });
    if replayed {
        receive_count.max(2)
    } else {
        receive_count
    }
}

/// What a step's reason says when it gives a message up for a person to
/// decide (a refund over the order's total, an ERP that would not cancel):
/// such a dead letter is held for review, and re-driving it as it is fails
/// again.
pub const NEEDS_REVIEW: &str = "needs review";

/// Whether a dead letter's reason holds it for review ([`NEEDS_REVIEW`]).
pub fn held_for_review(reason: Option<&str>) -> bool {
    reason.is_some_and(|r| r.contains(NEEDS_REVIEW))
}

/// A dead letter as an operator sees it (the body is kept for re-driving,
/// never printed: it can hold personal data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterView {
    /// The DLQ's message id (SQS) or position (local app).
    pub id: String,
    /// The source queue's name.
    pub queue: String,
    /// Why the step gave up; `None` when SQS moved it after too many
    /// receives without one.
    pub reason: Option<String>,
    pub correlation_id: Option<String>,
    pub event_type: Option<String>,
    #[serde(skip_serializing, default)]
    pub body: String,
}

impl DeadLetterView {
    /// What the body says of itself: its correlation id and event type.
    pub fn from_body(id: String, queue: String, reason: Option<String>, body: String) -> Self {
        let event_type = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v["detail-type"]
                    .as_str()
                    .or(v["event_type"].as_str())
                    .map(str::to_string)
            });
        DeadLetterView {
            id,
            queue,
            reason,
            correlation_id: correlation_id(&body),
            event_type,
            body,
        }
    }
}

/// Which dead letters to re-drive: every given condition must hold; none
/// given matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterFilter {
    pub id: Option<String>,
    pub correlation_id: Option<String>,
    /// Case-insensitive part of the reason.
    pub reason_contains: Option<String>,
    pub event_type: Option<String>,
}

impl DeadLetterFilter {
    pub fn matches(&self, d: &DeadLetterView) -> bool {
        let eq = |want: &Option<String>, got: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| got.as_deref() == Some(w.as_str()))
        };
        self.id.as_ref().is_none_or(|i| *i == d.id)
            && eq(&self.correlation_id, &d.correlation_id)
            && eq(&self.event_type, &d.event_type)
            && self.reason_contains.as_ref().is_none_or(|r| {
                d.reason
                    .as_deref()
                    .is_some_and(|reason| reason.to_lowercase().contains(&r.to_lowercase()))
            })
    }
}

/// What a re-drive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveReport {
    /// Sent back to the source queue and taken off the DLQ.
    pub redriven: Vec<DeadLetterView>,
    /// Left on the DLQ (not matching).
    pub left: usize,
    /// Re-driven and back on the DLQ already, with the new reason: where
    /// the queues are drained before answering (the local app). A letter
    /// still in its backoff (serve's real clock) or on AWS, where the steps
    /// run later, is not here: `replay list` shows it if it dies again.
    #[serde(default)]
    pub failed_again: Vec<DeadLetterView>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The queue service failed: retryable; nothing is lost (a message is
    /// deleted only after it was sent).
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Archive(#[from] ArchiveError),
    /// The request cannot be done as asked: not retryable.
    #[error("replay refused: {0}")]
    Invalid(String),
}

/// The longest window one replay may cover.
pub const MAX_REPLAY_WINDOW: Duration = Duration::days(31);

/// An operator's window `[from, to]` as a span of the archive to replay.
pub fn window_span((from, to): (DateTime<Utc>, DateTime<Utc>)) -> Result<ReplaySpan, ReplayError> {
    if from > to {
        return Err(ReplayError::Invalid(format!(
            "from ({from}) is after to ({to})"
        )));
    }
    if to - from > MAX_REPLAY_WINDOW {
        return Err(ReplayError::Invalid(format!(
            "the window is longer than {} days: replay it in parts",
            MAX_REPLAY_WINDOW.num_days()
        )));
    }
    Ok(ReplaySpan {
        from,
        to: to + Duration::seconds(1),
        only: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(reason: Option<&str>) -> DeadLetterView {
        DeadLetterView::from_body(
            "m-1".into(),
            "erp-post".into(),
            reason.map(str::to_string),
            serde_json::json!({"detail-type": "OrderPlaced",
                "detail": {"correlation_id": "shopify:s:order:1", "event_type": "OrderPlaced"}})
            .to_string(),
        )
    }

    #[test]
    fn a_message_sent_again_is_never_taken_for_a_first_delivery() {
        let body = letter(None).body;
        assert_eq!(attempt_of(&body, 1), 1);
        let again = mark_replayed(&body);
        assert_eq!(attempt_of(&again, 1), 2);
        assert_eq!(attempt_of(&again, 5), 5);
        // Still the event the step reads.
        let v: serde_json::Value = serde_json::from_str(&again).unwrap();
        assert_eq!(v["detail"]["correlation_id"], "shopify:s:order:1");
        assert_eq!(mark_replayed("not json"), "not json");
        // What an EventBridge archive replays carries its replay's name.
        let archived =
            r#"{"replay-name":"redrive-erp-post-1","detail-type":"OrderPlaced","detail":{}}"#;
        assert_eq!(attempt_of(archived, 1), 2);
    }

    #[test]
    fn a_dead_letter_reads_its_correlation_id_and_type_from_its_body() {
        let d = letter(Some("NetSuite refused: INVALID_FLD_VALUE"));
        assert_eq!(d.correlation_id.as_deref(), Some("shopify:s:order:1"));
        assert_eq!(d.event_type.as_deref(), Some("OrderPlaced"));
        // The body is never printed.
        assert!(!serde_json::to_string(&d).unwrap().contains("detail-type"));
    }

    #[test]
    fn a_filter_matches_on_every_condition_given_and_reasons_case_insensitively() {
        let d = letter(Some("NetSuite refused: INVALID_FLD_VALUE"));
        assert!(DeadLetterFilter::default().matches(&d));
        let by_reason = DeadLetterFilter {
            reason_contains: Some("invalid_fld".into()),
            ..Default::default()
        };
        assert!(by_reason.matches(&d));
        assert!(!by_reason.matches(&letter(None)));
        let wrong_order = DeadLetterFilter {
            reason_contains: Some("invalid_fld".into()),
            correlation_id: Some("shopify:s:order:2".into()),
            ..Default::default()
        };
        assert!(!wrong_order.matches(&d));
        let by_id = DeadLetterFilter {
            id: Some("m-1".into()),
            ..Default::default()
        };
        assert!(by_id.matches(&d));
    }
}
