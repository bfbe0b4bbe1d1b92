//! [`EventArchive`] on the bus's EventBridge archive: a re-drive is a
//! `StartReplay` of the seconds its events were published in, to the rules
//! feeding the stuck step's queue only (`FilterArns`), so the other steps
//! of those orders are not run again.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::primitives::DateTime as AwsDateTime;
use aws_sdk_eventbridge::types::ReplayDestination;
use aws_sdk_eventbridge::Client;

use retailflow_core::config::ConfigError;
use retailflow_core::ports::{ArchiveError, EventArchive, ReplaySpan};

pub struct EventBridgeArchive {
    client: Client,
    archive_arn: String,
    bus_arn: String,
    /// Target (a step, or a rule's name) → the ARNs of its rules.
    rules: BTreeMap<String, Vec<String>>,
}

impl EventBridgeArchive {
    pub fn new(
        client: Client,
        archive_arn: impl Into<String>,
        bus_arn: impl Into<String>,
        rules: BTreeMap<String, Vec<String>>,
    ) -> Self {
        EventBridgeArchive {
            client,
            archive_arn: archive_arn.into(),
            bus_arn: bus_arn.into(),
            rules,
        }
    }

    /// `RETAILFLOW_STEP_RULES`: `erp_post=<rule arn>,credit_memo=<arn>|<arn>,…`
    /// (a step fed by several rules lists them with `|`).
    pub fn parse_rules(text: &str) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
        let mut rules: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                ConfigError::Missing(format!(
                    "RETAILFLOW_STEP_RULES as step=rule-arn pairs ({pair:?})"
                ))
            };
            let (step, arns) = pair.split_once('=').ok_or_else(bad)?;
            let arns: Vec<String> = arns.split('|').map(|a| a.trim().to_string()).collect();
            if step.trim().is_empty() || arns.iter().any(|a| !a.starts_with("arn:")) {
                return Err(bad());
            }
            rules
                .entry(step.trim().to_string())
                .or_default()
                .extend(arns);
        }
        Ok(rules)
    }
}

/// A replay name EventBridge takes (`[.\-_A-Za-z0-9]+`, at most 64) and
/// that no other replay has.
fn replay_name(step: &str) -> String {
    let step: String = step
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(24)
        .collect();
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("redrive-{step}-{}", &id[..16])
}

#[async_trait]
impl EventArchive for EventBridgeArchive {
    fn knows(&self, target: &str) -> bool {
        self.rules.get(target).is_some_and(|r| !r.is_empty())
    }

    async fn replay(
        &self,
        targets: &[String],
        span: &ReplaySpan,
    ) -> Result<Option<String>, ArchiveError> {
        let rules: std::collections::BTreeSet<&String> = targets
            .iter()
            .filter_map(|t| self.rules.get(t))
            .flatten()
            .collect();
        if rules.is_empty() {
            return Ok(None);
        }
        let target = targets.join("+");
        let name = replay_name(&target);
        let result = self
            .client
            .start_replay()
            .replay_name(&name)
            .description(format!("retailflow: events again to {target}"))
            .event_source_arn(&self.archive_arn)
            .event_start_time(AwsDateTime::from_millis(span.from.timestamp_millis()))
            .event_end_time(AwsDateTime::from_millis(span.to.timestamp_millis()))
            .destination(
                ReplayDestination::builder()
                    .arn(&self.bus_arn)
                    .set_filter_arns(Some(rules.into_iter().cloned().collect()))
                    .build()
                    .map_err(|e| ArchiveError::Refused(e.to_string()))?,
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(format!("EventBridge replay {name}"))),
            Err(e) => Err(archive_error(e)),
        }
    }
}

fn archive_error<E, R>(e: SdkError<E, R>) -> ArchiveError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = DisplayErrorContext(&e).to_string();
    let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("");
    match code {
        // Too many replays running (10 per account), throttled, EventBridge's own fault.
        "LimitExceededException" | "ThrottlingException" | "InternalException" | "" => {
            ArchiveError::Unavailable(text)
        }
        _ => ArchiveError::Refused(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_rules_are_read_from_pairs_and_a_bad_pair_is_named() {
        let rules = EventBridgeArchive::parse_rules(
            "erp-post=arn:aws:events:us-east-1:1:rule/b/erp, stock-commit=arn:aws:events:us-east-1:1:rule/b/a|arn:aws:events:us-east-1:1:rule/b/c",
        )
        .unwrap();
        assert_eq!(rules["erp-post"].len(), 1);
        assert_eq!(rules["stock-commit"].len(), 2);
        let e = EventBridgeArchive::parse_rules("erp-post=https://x").unwrap_err();
        assert!(e.to_string().contains("RETAILFLOW_STEP_RULES"), "{e}");
    }

    #[test]
    fn replay_names_are_what_eventbridge_takes_and_never_repeat() {
        let a = replay_name("credit_memo/return reversal with a long name");
        assert!(a.len() <= 64, "{a}");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        assert_ne!(
            a,
            replay_name("credit_memo/return reversal with a long name")
        );
    }
}
