//! What happens to a queue message after its step ran: the one mapping from
//! [`StepOutcome`] to SQS behaviour, shared by the Lambda handlers and the
//! local app's in-process queues.

use std::time::Duration;

use crate::observability::mask_personal_data;
use crate::resilience::RetryPolicy;
use crate::steps::StepOutcome;

/// The message's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done: delete it.
    Delete,
    /// Leave it on the queue, invisible for this long (a batch item failure
    /// with its visibility timeout changed).
    RetryAfter(Duration),
    /// Send it to the DLQ with the reason, then delete it: no point in
    /// waiting out maxReceiveCount for something that will never work. The
    /// reason is masked of personal data
    /// ([`crate::observability::mask_personal_data`]): it becomes a message
    /// attribute operators list, which no log masking reaches.
    DeadLetter(String),
}

/// Maps a step's outcome for a message received `receive_count` times.
pub fn disposition(outcome: &StepOutcome, receive_count: u32, policy: &RetryPolicy) -> Disposition {
    match outcome {
        StepOutcome::Done { .. } | StepOutcome::Cancelled { .. } => Disposition::Delete,
        StepOutcome::Retry { retry_after, .. } => {
            Disposition::RetryAfter(policy.delay(receive_count, *retry_after))
        }
        StepOutcome::Reject { reason } => {
            Disposition::DeadLetter(mask_personal_data(reason).into_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_delete_delay_or_dead_letter() {
        let p = RetryPolicy::default();
        let done = StepOutcome::Done {
            summary: serde_json::Value::Null,
        };
        assert_eq!(disposition(&done, 1, &p), Disposition::Delete);
        let retry = StepOutcome::Retry {
            reason: "429".into(),
            retry_after: Some(Duration::from_secs(90)),
        };
        assert_eq!(
            disposition(&retry, 1, &p),
            Disposition::RetryAfter(Duration::from_secs(90))
        );
        let retry = StepOutcome::Retry {
            reason: "503".into(),
            retry_after: None,
        };
        assert_eq!(
            disposition(&retry, 3, &p),
            Disposition::RetryAfter(Duration::from_secs(120))
        );
        let reject = StepOutcome::Reject {
            reason: "bad".into(),
        };
        assert_eq!(
            disposition(&reject, 1, &p),
            Disposition::DeadLetter("bad".into())
        );
    }

    #[test]
    fn a_dead_letter_reason_names_the_error_without_the_personal_data_it_echoed() {
        let reject = StepOutcome::Reject {
            reason: r#"business-central refused the request (HTTP 400): BadRequest: {"email":"jane.doe@example.com","phoneNumber":"+44 20 7946 0958"} for order #1001 (129.99 USD)"#.into(),
        };
        assert_eq!(
            disposition(&reject, 1, &RetryPolicy::default()),
            Disposition::DeadLetter(
                r#"business-central refused the request (HTTP 400): BadRequest: {"email":"***","phoneNumber":"***"} for order #1001 (129.99 USD)"#.into()
            )
        );
    }
}
