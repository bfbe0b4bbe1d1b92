//! Replay on the local app: its dead letters re-driven to their queues,
//! and a window of the bus's archive replayed to one rule's queue, with the
//! same logic as on AWS (`retailflow_core::replay`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use retailflow_core::ports::dead_letters::DeadLetters;
use retailflow_core::replay::{
    window_span, DeadLetterFilter, DeadLetterView, RedriveReport, ReplayError,
};

use crate::local_app::{rules, LocalApp};
use crate::runtime::lock;

fn view(d: &crate::runtime::DeadLetter) -> DeadLetterView {
    DeadLetterView::from_body(
        d.id.clone(),
        d.queue.clone(),
        Some(d.reason.clone()),
        d.body.clone(),
    )
}

/// The local app's dead-letter queues, beside the queues their letters go
/// back to: what `replay` re-drives and reconciliation reports.
pub struct LocalDeadLetters {
    pub(crate) queues: crate::runtime::Queues,
    pub(crate) dead_letters: std::sync::Arc<std::sync::Mutex<Vec<crate::runtime::DeadLetter>>>,
    pub(crate) clock: crate::runtime::Clock,
}

#[async_trait]
impl DeadLetters for LocalDeadLetters {
    async fn list(&self, max: usize) -> Result<Vec<DeadLetterView>, ReplayError> {
        Ok(lock(&self.dead_letters)
            .iter()
            .take(max)
            .map(view)
            .collect())
    }

    async fn redrive(
        &self,
        filter: &DeadLetterFilter,
        max: usize,
    ) -> Result<RedriveReport, ReplayError> {
        let now = self.clock.now();
        // The drain's lock order: queues, then dead letters.
        let mut queues = lock(&self.queues);
        let mut dlq = lock(&self.dead_letters);
        let mut report = RedriveReport::default();
        let mut left = Vec::new();
        let mut failed = None;
        for d in dlq.drain(..) {
            let v = view(&d);
            match queues.get_mut(&d.queue) {
                Some(q)
                    if failed.is_none() && report.redriven.len() < max && filter.matches(&v) =>
                {
                    // Sent and taken off the DLQ in one write, or neither.
                    match q.redrive(&d, now) {
                        Ok(()) => report.redriven.push(v),
                        Err(e) => {
                            failed = Some(e);
                            left.push(d);
                        }
                    }
                }
                _ => {
                    report.left += 1;
                    left.push(d);
                }
            }
        }
        *dlq = left;
        match failed {
            Some(e) => Err(ReplayError::Unavailable(format!("local state file: {e}"))),
            None => Ok(report),
        }
    }
}

#[async_trait]
impl DeadLetters for LocalApp {
    async fn list(&self, max: usize) -> Result<Vec<DeadLetterView>, ReplayError> {
        self.dead_letter_queues().list(max).await
    }

    async fn redrive(
        &self,
        filter: &DeadLetterFilter,
        max: usize,
    ) -> Result<RedriveReport, ReplayError> {
        self.dead_letter_queues().redrive(filter, max).await
    }
}

impl LocalApp {
    /// Takes dead letter `id` off its DLQ for good; `None` when it is not
    /// there (retried or resolved already).
    pub fn discard_dead_letter(
        &self,
        id: &str,
    ) -> Result<Option<crate::runtime::DeadLetter>, retailflow_core::ports::journal::JournalError>
    {
        // The drain's lock order: queues, then dead letters.
        let queues = lock(&self.queues);
        let mut dlq = lock(&self.dead_letters);
        let Some(at) = dlq.iter().position(|d| d.id == id) else {
            return Ok(None);
        };
        if let Some(q) = queues.get(&dlq[at].queue) {
            q.discard(&dlq[at])?;
        }
        Ok(Some(dlq.remove(at)))
    }

    pub fn dead_letter_queues(&self) -> LocalDeadLetters {
        LocalDeadLetters {
            queues: self.queues.clone(),
            dead_letters: self.dead_letters.clone(),
            clock: self.clock.clone(),
        }
    }

    /// Replays the events published in `window` that the rule takes, from
    /// the bus's archive onto the rule's queue. Returns how many.
    pub async fn replay_window(
        &self,
        rule_name: &str,
        window: (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<usize, ReplayError> {
        let all = rules();
        let Some(rule) = all.iter().find(|r| r.name == rule_name) else {
            return Err(ReplayError::Invalid(format!(
                "no rule {rule_name}; the rules are {}",
                all.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
            )));
        };
        let span = window_span(window)?;
        self.bus
            .replay(std::slice::from_ref(rule), &span)
            .map_err(|e| ReplayError::Unavailable(format!("local state file: {e}")))
    }
}
