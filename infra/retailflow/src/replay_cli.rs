//! `retailflow replay`: dead letters listed with their reasons and
//! correlation ids and re-driven, and a window's events replayed to one
//! rule's queue; on the local app (the data directory's, or a running
//! `retailflow serve` named with `--local`) or on a deployed stack's queues
//! and bus archive.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use retailflow_core::ports::dead_letters::DeadLetters;
use retailflow_core::replay::{DeadLetterFilter, DeadLetterView, RedriveReport};

#[derive(Args, Clone)]
pub struct Target {
    /// A running `retailflow serve`, e.g. http://127.0.0.1:8080 (default:
    /// the local app of the data directory).
    #[arg(long, global = true)]
    pub local: Option<String>,
    /// A deployed stack's dead-letter queue URL (e.g. the ErpPostDLQUrl output).
    #[arg(long, global = true)]
    dlq_url: Option<String>,
    /// The queue the dead letters go back to, with --dlq-url (e.g. the
    /// ErpPostQueueUrl output).
    #[arg(long, global = true)]
    queue_url: Option<String>,
    /// For `window` on a deployed stack: the bus archive (the
    /// EventArchiveArn output).
    #[arg(long, global = true)]
    archive_arn: Option<String>,
    /// For `window` on a deployed stack: the bus (the EventBusArn output).
    #[arg(long, global = true)]
    bus_arn: Option<String>,
    /// For `window` on a deployed stack: the ARN of the rule to replay to.
    #[arg(long, global = true)]
    rule_arn: Option<String>,
    /// A deployed stack's name: its outputs name the queues, or for
    /// `window` the archive, bus and rule.
    #[arg(long, global = true)]
    pub stack: Option<String>,
    /// With --stack, for `list` and `redrive`: the step queue (erp-post,
    /// loyalty-accrual, return-reversal, stock-commit).
    #[arg(long, global = true)]
    queue: Option<String>,
    /// Print the dead letters, or what a re-drive did, as JSON.
    #[arg(long, global = true)]
    json: bool,
}

impl Target {
    /// No local app, queue, table or stack named.
    pub fn names_nothing(&self) -> bool {
        self.local.is_none()
            && self.dlq_url.is_none()
            && self.queue_url.is_none()
            && self.archive_arn.is_none()
            && self.stack.is_none()
    }
    /// Fills the URLs and table from a deployed stack's outputs.
    pub fn resolve(
        &mut self,
        stack: &retailflow::stack::Stack,
        action: &ReplayAction,
    ) -> anyhow::Result<()> {
        let queue = match action {
            ReplayAction::Window { rule, .. } => {
                self.archive_arn = Some(stack.output("EventArchiveArn")?.to_string());
                self.bus_arn = Some(stack.output("EventBusArn")?.to_string());
                let rules =
                    retailflow_aws::adapters::eventbridge_archive::EventBridgeArchive::parse_rules(
                        stack.output("ReplayRules")?,
                    )?;
                self.rule_arn = rules.get(rule.as_str()).and_then(|a| a.first()).cloned();
                return Ok(());
            }
            _ => self.queue.clone().with_context(|| {
                format!(
                    "with --stack, name the queue: --queue {}",
                    retailflow::stack::STEP_QUEUES.join("|")
                )
            })?,
        };
        self.queue_url = Some(stack.queue_url(&queue)?.to_string());
        self.dlq_url = Some(stack.dlq_url(&queue)?.to_string());
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum ReplayAction {
    /// List dead letters: queue, id, event type, correlation id, reason.
    List {
        /// Most dead letters to list.
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Send dead letters back to their queue: one (--id), those matching
    /// every filter given, or --all.
    Redrive {
        /// One dead letter's id, as `replay list` shows it.
        #[arg(long)]
        id: Option<String>,
        /// Dead letters of one order: its correlation id (the order key).
        #[arg(long)]
        correlation_id: Option<String>,
        /// Part of the reason (case-insensitive).
        #[arg(long)]
        reason: Option<String>,
        /// Dead letters of one event type, e.g. RefundIssued.
        #[arg(long)]
        event_type: Option<String>,
        /// Every dead letter (needed when no filter is given).
        #[arg(long)]
        all: bool,
        /// Most dead letters to re-drive.
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
    /// Replay the events published in a window, from the bus's archive, to
    /// one rule (e.g. OrderPlacedToErpPost).
    Window {
        /// The EventBridge rule to replay to, e.g. OrderPlacedToErpPost.
        #[arg(long)]
        rule: String,
        /// Events published in the last N hours, 1 to 744 (default: the
        /// last 24).
        #[arg(long, conflicts_with_all = ["from", "to"], value_parser = clap::value_parser!(i64).range(1..=744))]
        hours: Option<i64>,
        /// Window start (RFC 3339), e.g. 2026-11-25T00:00:00Z; default 24
        /// hours before the end.
        #[arg(long, value_parser = crate::reconcile::parse_time)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Window end (RFC 3339); default now.
        #[arg(long, value_parser = crate::reconcile::parse_time)]
        to: Option<chrono::DateTime<chrono::Utc>>,
    },
}

fn print_letters(letters: &[DeadLetterView], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(letters)?);
        return Ok(());
    }
    for d in letters {
        println!(
            "{:<16} {:<38} {:<16} {:<60} {}",
            d.queue,
            d.id,
            d.event_type.as_deref().unwrap_or("-"),
            d.correlation_id.as_deref().unwrap_or("-"),
            d.reason
                .as_deref()
                .unwrap_or("moved after too many receives (no reason recorded)")
        );
    }
    println!(
        "{}",
        crate::reconcile::plural(letters.len() as u64, "dead letter", "dead letters")
    );
    Ok(())
}

fn print_redrive(r: &RedriveReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    for d in &r.redriven {
        println!(
            "re-driven to {}: {} {} {}",
            d.queue,
            d.id,
            d.event_type.as_deref().unwrap_or("-"),
            d.correlation_id.as_deref().unwrap_or("-")
        );
    }
    for d in &r.failed_again {
        println!(
            "FAILED AGAIN on {}: {} {}: {}",
            d.queue,
            d.id,
            d.correlation_id.as_deref().unwrap_or("-"),
            d.reason
                .as_deref()
                .unwrap_or("moved after too many receives")
        );
    }
    println!(
        "{} re-driven, {} failed again, {} left on the DLQ",
        r.redriven.len(),
        r.failed_again.len(),
        r.left
    );
    Ok(())
}

async fn local_call(
    url: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let endpoint = format!("{}{path}", url.trim_end_matches('/'));
    let mut req = reqwest::Client::new().request(method, &endpoint);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .with_context(|| crate::local_target::unreachable(url))?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!(
            "the local app refused: {}",
            crate::local_target::refusal_text(&text)
        );
    }
    serde_json::from_str(&text).with_context(|| format!("the local app answered {text}"))
}

async fn sqs_dead_letters(
    t: &Target,
) -> anyhow::Result<retailflow_aws::adapters::sqs_dead_letters::SqsDeadLetters> {
    let (Some(dlq), Some(queue)) = (&t.dlq_url, &t.queue_url) else {
        bail!("say where: --local <URL of a running `retailflow serve`>, or --dlq-url <…DLQUrl> --queue-url <…QueueUrl>");
    };
    let aws = retailflow::stack::aws_config().await?;
    Ok(
        retailflow_aws::adapters::sqs_dead_letters::SqsDeadLetters::new(
            aws_sdk_sqs::Client::new(&aws),
            dlq,
            queue,
        ),
    )
}

/// `Ok(false)` when a re-driven letter failed again.
pub async fn replay(target: Target, action: ReplayAction) -> anyhow::Result<bool> {
    let json = target.json;
    match action {
        ReplayAction::List { max } => {
            let letters: Vec<DeadLetterView> = match &target.local {
                Some(url) => {
                    let v =
                        local_call(url, reqwest::Method::GET, "/local/dead-letters", None).await?;
                    let mut letters: Vec<DeadLetterView> = serde_json::from_value(v)?;
                    letters.truncate(max);
                    letters
                }
                None => sqs_dead_letters(&target).await?.list(max).await?,
            };
            print_letters(&letters, json)?;
            Ok(true)
        }
        ReplayAction::Redrive {
            id,
            correlation_id,
            reason,
            event_type,
            all,
            max,
        } => {
            let filter = DeadLetterFilter {
                id,
                correlation_id,
                reason_contains: reason,
                event_type,
            };
            if filter == DeadLetterFilter::default() && !all {
                bail!("name what to re-drive (--id, --correlation-id, --reason, --event-type) or say --all");
            }
            let report: RedriveReport = match &target.local {
                Some(url) => {
                    let mut body = serde_json::to_value(&filter)?;
                    body["max"] = max.into();
                    let v = local_call(
                        url,
                        reqwest::Method::POST,
                        "/local/dead-letters/redrive",
                        Some(body),
                    )
                    .await?;
                    serde_json::from_value(v)?
                }
                None => {
                    sqs_dead_letters(&target)
                        .await?
                        .redrive(&filter, max)
                        .await?
                }
            };
            print_redrive(&report, json)?;
            Ok(report.failed_again.is_empty())
        }
        ReplayAction::Window {
            rule,
            hours,
            from,
            to,
        } => {
            let detail = crate::reconcile::window_detail(hours, from, to);
            match &target.local {
                Some(url) => {
                    let mut body = detail;
                    body["rule"] = rule.clone().into();
                    let v =
                        local_call(url, reqwest::Method::POST, "/local/replay", Some(body)).await?;
                    let count = v["replayed"].as_u64().unwrap_or(0);
                    if json {
                        println!("{}", serde_json::json!({"rule": rule, "replayed": count}));
                    } else {
                        println!(
                            "{} replayed to {rule}'s queue",
                            crate::reconcile::plural(count, "event", "events")
                        );
                    }
                }
                None => {
                    let replay = window_on_aws(&target, &rule, &detail).await?;
                    println!("{replay} started: the window's events go again to {rule} (aws events describe-replay to follow it)");
                }
            }
            Ok(true)
        }
    }
}

/// Starts an EventBridge archive replay of the window to the rule.
async fn window_on_aws(
    t: &Target,
    rule: &str,
    detail: &serde_json::Value,
) -> anyhow::Result<String> {
    let (Some(archive), Some(bus), Some(rule_arn)) = (&t.archive_arn, &t.bus_arn, &t.rule_arn)
    else {
        bail!("say where: --local <URL of a running `retailflow serve`>, or --stack <name>, or --archive-arn <EventArchiveArn> --bus-arn <EventBusArn> --rule-arn <the rule's ARN>");
    };
    let window = retailflow_core::reconciliation::request::requested_window(
        detail,
        chrono::Utc::now(),
        chrono::Duration::hours(24),
    )?;
    let span = retailflow_core::replay::window_span(window)?;
    let eb = aws_sdk_eventbridge::Client::new(&retailflow::stack::aws_config().await?);
    let rules = [(rule.to_string(), vec![rule_arn.clone()])]
        .into_iter()
        .collect();
    let archive = retailflow_aws::adapters::eventbridge_archive::EventBridgeArchive::new(
        eb, archive, bus, rules,
    );
    use retailflow_core::ports::EventArchive;
    let started = archive.replay(&[rule.to_string()], &span).await?;
    Ok(started.unwrap_or_default())
}
