//! [`DeadLetters`] on SQS: a DLQ and its source queue, by receive and
//! resend (see [`retailflow_core::replay`]). Messages looked at are hidden for a
//! short while and given back at once when left on the DLQ.

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::Message;
use aws_sdk_sqs::Client;

use retailflow_core::observability::mask_personal_data;
use retailflow_core::ports::dead_letters::DeadLetters;
use retailflow_core::replay::{
    mark_replayed, DeadLetterFilter, DeadLetterView, RedriveReport, ReplayError,
};

/// Seconds a message looked at stays hidden (it is given back sooner).
const LOOK_SECONDS: i32 = 60;

/// A scan stops well inside the look, before the first messages it hid
/// come round again.
const SCAN_LIMIT: std::time::Duration = std::time::Duration::from_secs(40);

pub struct SqsDeadLetters {
    client: Client,
    dlq_url: String,
    source_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: Client, dlq_url: impl Into<String>, source_url: impl Into<String>) -> Self {
        SqsDeadLetters {
            client,
            dlq_url: dlq_url.into(),
            source_url: source_url.into(),
        }
    }

    fn queue_name(&self) -> String {
        self.source_url
            .rsplit('/')
            .next()
            .unwrap_or(&self.source_url)
            .to_string()
    }

    fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
        e: aws_sdk_sqs::error::SdkError<E, R>,
    ) -> ReplayError {
        ReplayError::Unavailable(DisplayErrorContext(&e).to_string())
    }

    /// The next few messages, hidden while looked at; empty when none.
    async fn receive(&self, max: usize) -> Result<Vec<Message>, ReplayError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .visibility_timeout(LOOK_SECONDS)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(Self::unavailable)?;
        Ok(out.messages.unwrap_or_default())
    }

    fn view(&self, m: &Message) -> DeadLetterView {
        let attr = |k: &str| {
            m.message_attributes()
                .and_then(|a| a.get(k))
                .and_then(|v| v.string_value())
                .map(str::to_string)
        };
        // Reasons are masked when written (see `Disposition::DeadLetter`);
        // masked again as read, for letters sent before that or by hand.
        let reason = attr("reason").map(|r| mask_personal_data(&r).into_owned());
        let mut v = DeadLetterView::from_body(
            m.message_id().unwrap_or_default().to_string(),
            self.queue_name(),
            reason,
            m.body().unwrap_or_default().to_string(),
        );
        if v.correlation_id.is_none() {
            v.correlation_id = attr("correlation_id");
        }
        v
    }

    /// Makes looked-at messages visible again at once, as far as it can: a
    /// handle that fails becomes visible by itself within LOOK_SECONDS.
    async fn give_back(&self, handles: &[String]) {
        for h in handles {
            if let Err(e) = self
                .client
                .change_message_visibility()
                .queue_url(&self.dlq_url)
                .receipt_handle(h)
                .visibility_timeout(0)
                .send()
                .await
            {
                tracing::warn!(error = %DisplayErrorContext(&e), "a dead letter stays hidden until its look ends");
            }
        }
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn list(&self, max: usize) -> Result<Vec<DeadLetterView>, ReplayError> {
        let mut out = Vec::new();
        let mut handles = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let started = std::time::Instant::now();
        let result = async {
            // Stops at an empty receive, at a message seen before, or well
            // inside the look.
            let mut stop = false;
            while !stop && out.len() < max && started.elapsed() < SCAN_LIMIT {
                let batch = self.receive(max - out.len()).await?;
                if batch.is_empty() {
                    break;
                }
                for m in batch {
                    handles.extend(m.receipt_handle().map(str::to_string));
                    // A message seen before: a look ended and it came round.
                    stop |= !seen.insert(m.message_id().unwrap_or_default().to_string());
                    if !stop {
                        out.push(self.view(&m));
                    }
                }
            }
            Ok::<_, ReplayError>(())
        }
        .await;
        self.give_back(&handles).await;
        result.map(|()| out)
    }

    async fn redrive(
        &self,
        filter: &DeadLetterFilter,
        max: usize,
    ) -> Result<RedriveReport, ReplayError> {
        let mut report = RedriveReport::default();
        let mut keep = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let started = std::time::Instant::now();
        let result = async {
            let mut stop = false;
            while !stop && report.redriven.len() < max && started.elapsed() < SCAN_LIMIT {
                let batch = self.receive(10).await?;
                if batch.is_empty() {
                    break;
                }
                for m in batch {
                    let view = self.view(&m);
                    let handle = m.receipt_handle().unwrap_or_default().to_string();
                    // Came round again: every message has been looked at.
                    stop |= !seen.insert(view.id.clone());
                    if stop || !filter.matches(&view) || report.redriven.len() >= max {
                        report.left += usize::from(!stop);
                        keep.push(handle);
                        continue;
                    }
                    // Sent first, deleted after: a crash between delivers
                    // it twice, never loses it.
                    self.client
                        .send_message()
                        .queue_url(&self.source_url)
                        .message_body(mark_replayed(&view.body))
                        .send()
                        .await
                        .map_err(Self::unavailable)?;
                    self.client
                        .delete_message()
                        .queue_url(&self.dlq_url)
                        .receipt_handle(&handle)
                        .send()
                        .await
                        .map_err(Self::unavailable)?;
                    report.redriven.push(view);
                    // The one asked for by id is sent: nothing more to look at.
                    stop |= filter.id.is_some();
                }
            }
            Ok::<_, ReplayError>(())
        }
        .await;
        // What was looked at and left goes back at once, even after a failure.
        self.give_back(&keep).await;
        result.map(|()| report)
    }
}
