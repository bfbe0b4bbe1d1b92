//! Draining the queues as Lambda's SQS event source would: batches of
//! visible messages through their steps, retries made invisible for their
//! backoff, dead letters after the last receive.

use super::*;

impl LocalApp {
    /// Runs one queue message through its function, as the SQS event source would.
    pub(super) async fn handle(&self, queue: &str, body: &str, attempt: u32) -> StepOutcome {
        let attempt = retailflow_core::replay::attempt_of(body, attempt);
        // An event that came by reference gets its detail back first.
        let body = match retailflow_core::claim_check::resolve(self.claims.as_ref(), body).await {
            Ok(body) => body,
            Err(e) => return StepOutcome::from(e),
        };
        let body = body.as_ref();
        let inv = Invocation {
            now: self.clock.now(),
            deadline: None,
            attempt,
        };
        if queue == RETURN_REVERSAL_QUEUE {
            return handle_return_message(&self.return_reversal, body, inv).await;
        }
        if queue == STOCK_COMMIT_QUEUE {
            return handle_stock_message(&self.stock_commit, body, inv).await;
        }
        let step: &dyn OrderStep = match queue {
            ERP_POST_QUEUE => &self.erp_posting,
            LOYALTY_ACCRUAL_QUEUE => &self.loyalty_accrual,
            other => {
                return StepOutcome::Reject {
                    reason: format!("no function consumes queue {other}"),
                }
            }
        };
        handle_message(step, body, inv).await
    }

    /// Delivers queue messages in batches until every queue is empty,
    /// jumping a virtual clock over backoff delays (on the real clock, until
    /// nothing is visible). Bounded so it always returns.
    pub async fn drain(&self) -> DrainReport {
        self.drain_bounded(None).await
    }

    /// Like [`Self::drain`], but stops once the clock would pass `until`
    /// (leaving later messages queued), with the clock at `until`.
    pub async fn drain_until(&self, until: chrono::DateTime<chrono::Utc>) -> DrainReport {
        let report = self.drain_bounded(Some(until)).await;
        if self.clock.now() < until {
            self.clock.advance_to(until);
        }
        report
    }

    /// Saves the virtual clock (everything else is written through):
    /// after every drained batch. A failure is logged; the next save
    /// catches up, and a clock restored a little behind only makes a
    /// backoff wait again.
    pub fn save_clock(&self) {
        let Some(data) = &self.data else { return };
        if self.clock.is_real() {
            return;
        }
        let now = serde_json::json!(self.clock.now()).to_string();
        if let Err(e) = data.write(&[("meta/clock".to_string(), Some(now))]) {
            tracing::error!(error = %e, "local state file not written");
        }
    }

    pub(super) async fn drain_bounded(
        &self,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> DrainReport {
        // One drain at a time: on the real clock a drain stops at the first
        // message it cannot see, and one another drain holds is unseen.
        let _turn = self.drain_turn.lock().await;
        let report = self.drain_batches(until).await;
        // The clock as the drain left it (it may have jumped over backoffs).
        self.save_clock();
        report
    }

    pub(super) async fn drain_batches(
        &self,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> DrainReport {
        let mut report = DrainReport::default();
        for _ in 0..100_000 {
            let now = self.clock.now();
            let mut batches = Vec::new();
            {
                let mut queues = lock(&self.queues);
                let mut dlq = lock(&self.dead_letters);
                for (name, q) in queues.iter_mut() {
                    let msgs = q.receive(BATCH_SIZE, now, &mut dlq);
                    if !msgs.is_empty() {
                        batches.push((name.clone(), msgs));
                    }
                }
            }
            if batches.is_empty() {
                let next = lock(&self.queues)
                    .values()
                    .filter_map(Queue::next_visible)
                    .min();
                match next {
                    // On the real clock a delay is waited out: whoever
                    // drains next (serve's ticker) finds the message.
                    Some(_) if self.clock.is_real() => return report,
                    Some(t) if until.is_some_and(|u| t > u) => return report,
                    Some(t) => {
                        self.clock.advance_to(t);
                        continue;
                    }
                    None => return report,
                }
            }
            for (queue, msgs) in batches {
                // Records of a batch are processed concurrently, as the Lambda does.
                // One line per record, in the record's correlation span, as
                // the functions log them.
                let outcomes = futures::future::join_all(msgs.iter().map(|m| {
                    use tracing::Instrument;
                    let id =
                        retailflow_core::queue_batch::correlation_id(&m.body).unwrap_or_default();
                    let queue = &queue;
                    async move {
                        let outcome = self.handle(queue, &m.body, m.receive_count).await;
                        tracing::info!(
                            queue = %queue,
                            receive_count = m.receive_count,
                            outcome = %outcome.summary(),
                            "record"
                        );
                        outcome
                    }
                    .instrument(retailflow_core::correlation_span!(id))
                }))
                .await;
                // The batch's invocation ends: its budget slots go back.
                self.budgets.release_all().await;
                if !self.batch_tick.is_zero() {
                    let tick = chrono::Duration::from_std(self.batch_tick).unwrap_or_default();
                    self.clock.advance_to(self.clock.now() + tick);
                }
                let mut queues = lock(&self.queues);
                let mut dlq = lock(&self.dead_letters);
                let Some(q) = queues.get_mut(&queue) else {
                    continue;
                };
                for (m, outcome) in msgs.iter().zip(outcomes) {
                    report.deliveries += 1;
                    match disposition(&outcome, m.receive_count, &self.retry) {
                        Disposition::Delete => q.delete(&m.id),
                        Disposition::RetryAfter(d) => {
                            report.retries += 1;
                            q.change_visibility(
                                &m.id,
                                now + chrono::Duration::from_std(d).unwrap_or_default(),
                            );
                        }
                        Disposition::DeadLetter(reason) => q.dead_letter(m, reason, now, &mut dlq),
                    }
                }
            }
            self.save_clock();
        }
        report.gave_up = true;
        report
    }
}
