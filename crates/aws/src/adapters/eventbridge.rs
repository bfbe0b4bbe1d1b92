//! [`EventBus`] on an EventBridge custom bus. PutEvents takes at most 10
//! entries per call; an answer with FailedEntryCount > 0 is a failure naming
//! the refused entries, never treated as success.

use async_trait::async_trait;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::primitives::DateTime as AwsDateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use retailflow_core::ports::check_entry_sizes;
use retailflow_core::ports::{BusError, BusEvent, EventBus, FailedEntry};

const MAX_ENTRIES_PER_CALL: usize = 10;

pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        EventBridgeBus {
            client,
            bus_name: bus_name.into(),
        }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError> {
        check_entry_sizes(events)?;
        for chunk in events.chunks(MAX_ENTRIES_PER_CALL) {
            let entries = chunk
                .iter()
                .map(|e| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus_name)
                        .source(&e.source)
                        .detail_type(&e.detail_type)
                        .detail(&e.detail)
                        .time(AwsDateTime::from_millis(e.time.timestamp_millis()))
                        .build()
                })
                .collect();
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| BusError::Unavailable(DisplayErrorContext(&e).to_string()))?;
            if out.failed_entry_count() > 0 {
                let failed = chunk
                    .iter()
                    .zip(out.entries())
                    .filter(|(_, r)| r.error_code().is_some())
                    .map(|(e, r)| FailedEntry {
                        event_id: e.event_id,
                        code: r.error_code().unwrap_or_default().to_string(),
                        message: r.error_message().unwrap_or_default().to_string(),
                    })
                    .collect();
                return Err(BusError::Rejected { failed });
            }
        }
        Ok(())
    }
}
