//! [`QueueControl`] on SQS: retry delays by ChangeMessageVisibility, and
//! dead letters sent to the queue's DLQ with their reason and correlation id
//! as message attributes.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;

use retailflow_core::queue_batch::correlation_id;

use retailflow_core::ports::queue::{QueueControl, QueueError, QueueRecord};
use retailflow_core::resilience::MAX_VISIBILITY;

pub struct SqsQueueControl {
    client: Client,
    queue_url: String,
    dlq_url: String,
}

impl SqsQueueControl {
    pub fn new(client: Client, queue_url: impl Into<String>, dlq_url: impl Into<String>) -> Self {
        SqsQueueControl {
            client,
            queue_url: queue_url.into(),
            dlq_url: dlq_url.into(),
        }
    }
}

fn text(v: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| QueueError(e.to_string()))
}

#[async_trait]
impl QueueControl for SqsQueueControl {
    async fn delay(&self, receipt_handle: &str, by: Duration) -> Result<(), QueueError> {
        let secs = by.min(MAX_VISIBILITY).as_secs();
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(secs).unwrap_or(i32::MAX))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(DisplayErrorContext(&e).to_string()))
    }

    async fn dead_letter(&self, record: &QueueRecord, reason: &str) -> Result<(), QueueError> {
        // SQS attribute values are limited; reasons are short, but be safe.
        let reason: String = reason.chars().take(1000).collect();
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(&record.body)
            .message_attributes("reason", text(&reason)?)
            .message_attributes("source_message_id", text(&record.message_id)?);
        if let Some(c) = correlation_id(&record.body) {
            send = send.message_attributes("correlation_id", text(&c)?);
        }
        send.send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(DisplayErrorContext(&e).to_string()))
    }
}
