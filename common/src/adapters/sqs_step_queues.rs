//! [`StepQueues`] on SQS: reconciliation's re-drives go straight to the
//! stuck step's queue (`SendMessage` of the EventBridge event its rule
//! would deliver), so the other steps of the order are not run again.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::Client;

use crate::config::ConfigError;
use crate::queue_batch::QueueError;
use crate::reconciliation::run::StepQueues;

pub struct SqsStepQueues {
    client: Client,
    /// Step name → queue URL.
    urls: BTreeMap<String, String>,
}

impl SqsStepQueues {
    pub fn new(client: Client, urls: BTreeMap<String, String>) -> Self {
        SqsStepQueues { client, urls }
    }

    /// `RETAILFLOW_STEP_QUEUES`: `erp_post=<url>,loyalty_accrual=<url>,…`.
    pub fn parse_urls(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        text.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((step, url)) if !step.trim().is_empty() && url.trim().starts_with("http") => {
                    Ok((step.trim().to_string(), url.trim().to_string()))
                }
                _ => Err(ConfigError::Missing(format!(
                    "RETAILFLOW_STEP_QUEUES as step=queue-url pairs ({pair:?})"
                ))),
            })
            .collect()
    }
}

#[async_trait]
impl StepQueues for SqsStepQueues {
    fn queue_of(&self, step: &str) -> Option<String> {
        self.urls.get(step).cloned()
    }

    async fn send(&self, step: &str, delivery: &str) -> Result<bool, QueueError> {
        let Some(url) = self.urls.get(step) else {
            return Ok(false);
        };
        self.client
            .send_message()
            .queue_url(url)
            .message_body(delivery)
            .send()
            .await
            .map_err(|e| QueueError(DisplayErrorContext(&e).to_string()))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_queue_urls_are_read_from_pairs_and_a_bad_pair_is_named() {
        let urls = SqsStepQueues::parse_urls(
            "erp_post=https://sqs.us-east-1.amazonaws.com/1/erp, credit_memo=https://sqs.us-east-1.amazonaws.com/1/rr",
        )
        .unwrap();
        assert_eq!(urls.len(), 2);
        assert!(urls["credit_memo"].ends_with("/rr"));
        let e = SqsStepQueues::parse_urls("erp_post").unwrap_err();
        assert!(e.to_string().contains("RETAILFLOW_STEP_QUEUES"), "{e}");
    }
}
