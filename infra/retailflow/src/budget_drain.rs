//! A backlog drained through the concurrency budget, on a virtual clock:
//! how close to the budget a backlog drains, and that the ERP never sees
//! more calls at once than the budget.
//!
//! The model is Lambda's: `invocations` pollers (the SQS event source's
//! maximum concurrency) each take batches of up to `batch` messages and run
//! a batch's records at once, each container with its own
//! [`ConcurrencyBudget`] over one set of slots; a record that gets no place
//! returns to the queue with the retry policy's delay (its receive count
//! goes up). Each order makes `calls` ERP calls of `call` each. Time is
//! tokio's paused clock, so 400 virtual seconds take well under one real
//! one, and the budget's own code (leases, waits, polls) runs unchanged.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use retailflow_core::adapters::in_process::InProcessStateStore;
use retailflow_core::budget::{BudgetCalendar, ConcurrencyBudget};
use retailflow_core::ports::budget::BudgetSlots;
use retailflow_core::ports::StoreError;
use retailflow_core::resilience::{ConnectorError, RetryPolicy};
use serde::Serialize;
use tokio::time::Instant;

/// What to drain.
#[derive(Debug, Clone, Copy)]
pub struct DrainSetup {
    pub orders: usize,
    pub budget: u32,
    pub call: Duration,
    pub calls: u32,
    pub invocations: usize,
    pub batch: usize,
}

/// What the drain took.
#[derive(Debug, Clone, Serialize)]
pub struct DrainFigures {
    pub orders: usize,
    pub budget: u32,
    pub invocations: usize,
    /// Virtual seconds from the first receive to the last delete.
    pub seconds: f64,
    /// `orders × calls × call / budget`.
    pub ideal_seconds: f64,
    pub ratio: f64,
    pub most_in_flight: usize,
    /// The most receives one message needed (24 is the DLQ).
    pub most_receives: u32,
    /// Records returned to the queue for want of a place.
    pub returned: usize,
    /// Slot writes (takes, including refused ones, and give-backs).
    pub slot_writes: usize,
    /// Slot reads (a waiting container's looks, one BatchGetItem each).
    pub slot_reads: usize,
}

impl std::fmt::Display for DrainFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "budget drain: {} orders, budget {}, {} invocations at once",
            self.orders, self.budget, self.invocations
        )?;
        writeln!(
            f,
            "  drained in {:.1} virtual s against an ideal of {:.1} s: {:.3} × ideal",
            self.seconds, self.ideal_seconds, self.ratio
        )?;
        writeln!(
            f,
            "  most ERP calls in flight {}; most receives of one message {}; {} records returned for want of a place; {} slot writes ({:.2} per order), {} slot reads ({:.2} per order)",
            self.most_in_flight,
            self.most_receives,
            self.returned,
            self.slot_writes,
            self.slot_writes as f64 / self.orders.max(1) as f64,
            self.slot_reads,
            self.slot_reads as f64 / self.orders.max(1) as f64
        )
    }
}

/// Slots that count their writes.
struct CountedSlots {
    inner: InProcessStateStore,
    writes: AtomicUsize,
    reads: AtomicUsize,
}

#[async_trait]
impl BudgetSlots for CountedSlots {
    async fn take_slot(
        &self,
        account: &str,
        slot: u32,
        holder: &str,
        lease: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner
            .take_slot(account, slot, holder, lease, now, until)
            .await
    }

    async fn give_back_slot(
        &self,
        account: &str,
        slot: u32,
        lease: &str,
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.give_back_slot(account, slot, lease).await
    }

    async fn slots_in_use(
        &self,
        account: &str,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<u32>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.slots_in_use(account, limit, now).await
    }
}

struct Message {
    visible_at: Instant,
    receives: u32,
    done: bool,
}

/// Runs the drain on a fresh single-threaded runtime with paused time.
pub fn drain(setup: DrainSetup) -> std::io::Result<DrainFigures> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    Ok(rt.block_on(run(setup)))
}

async fn run(setup: DrainSetup) -> DrainFigures {
    let start = Instant::now();
    let wall = Utc::now();
    let clock: retailflow_core::credentials::WallClock =
        Arc::new(move || wall + chrono::Duration::from_std(start.elapsed()).unwrap_or_default());
    let slots = Arc::new(CountedSlots {
        inner: InProcessStateStore::new(),
        writes: AtomicUsize::new(0),
        reads: AtomicUsize::new(0),
    });
    let queue: Arc<Mutex<Vec<Message>>> = Arc::new(Mutex::new(
        (0..setup.orders)
            .map(|_| Message {
                visible_at: start,
                receives: 0,
                done: false,
            })
            .collect(),
    ));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let returned = Arc::new(AtomicUsize::new(0));
    let pollers = (0..setup.invocations).map(|_| {
        let budget = ConcurrencyBudget::new(
            "erp:bench",
            BudgetCalendar::constant(setup.budget),
            slots.clone(),
            clock.clone(),
        );
        let (queue, in_flight, most, returned) = (
            queue.clone(),
            in_flight.clone(),
            most.clone(),
            returned.clone(),
        );
        async move {
            loop {
                let now = Instant::now();
                let (batch, left): (Vec<usize>, usize) = {
                    let mut q = lock(&queue);
                    let left = q.iter().filter(|m| !m.done).count();
                    let mut batch = Vec::new();
                    for (i, m) in q.iter_mut().enumerate() {
                        if batch.len() == setup.batch {
                            break;
                        }
                        if !m.done && m.visible_at <= now {
                            m.receives += 1;
                            // Invisible while the invocation has it.
                            m.visible_at = now + Duration::from_secs(180);
                            batch.push(i);
                        }
                    }
                    (batch, left)
                };
                if left == 0 {
                    return;
                }
                if batch.is_empty() {
                    // Long polling: the event source asks again shortly.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let records = batch.iter().map(|&i| {
                    let (budget, queue, in_flight, most, returned) =
                        (&budget, &queue, &in_flight, &most, &returned);
                    async move {
                        for _ in 0..setup.calls {
                            match budget.permit().await {
                                Ok(place) => {
                                    let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                                    most.fetch_max(n, Ordering::SeqCst);
                                    tokio::time::sleep(setup.call).await;
                                    in_flight.fetch_sub(1, Ordering::SeqCst);
                                    drop(place);
                                    budget.after_call().await;
                                }
                                Err(ConnectorError::Throttled { retry_after, .. }) => {
                                    let mut q = lock(queue);
                                    let m = &mut q[i];
                                    let wait =
                                        RetryPolicy::default().delay(m.receives, retry_after);
                                    m.visible_at = Instant::now() + wait;
                                    returned.fetch_add(1, Ordering::Relaxed);
                                    return;
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "budget store failed");
                                    return;
                                }
                            }
                        }
                        lock(queue)[i].done = true;
                    }
                });
                futures::future::join_all(records).await;
                budget.release_all().await;
            }
        }
    });
    futures::future::join_all(pollers).await;
    let seconds = start.elapsed().as_secs_f64();
    let ideal_seconds = setup.orders as f64 * f64::from(setup.calls) * setup.call.as_secs_f64()
        / f64::from(setup.budget.max(1));
    let most_receives = lock(&queue).iter().map(|m| m.receives).max().unwrap_or(0);
    DrainFigures {
        orders: setup.orders,
        budget: setup.budget,
        invocations: setup.invocations,
        seconds,
        ideal_seconds,
        ratio: seconds / ideal_seconds.max(f64::MIN_POSITIVE),
        most_in_flight: most.load(Ordering::SeqCst),
        most_receives,
        returned: returned.load(Ordering::Relaxed),
        slot_writes: slots.writes.load(Ordering::Relaxed),
        slot_reads: slots.reads.load(Ordering::Relaxed),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data; a poisoned lock still holds it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(orders: usize, invocations: usize) -> DrainSetup {
        DrainSetup {
            orders,
            budget: 5,
            call: Duration::from_secs(1),
            calls: 1,
            invocations,
            batch: 10,
        }
    }

    #[test]
    fn a_backlog_drains_close_to_the_budget_and_never_over_it() {
        // The template's setting: 2 invocations for a budget of 5.
        let f = drain(setup(2_000, 2)).unwrap();
        assert!(f.most_in_flight <= 5, "{f}");
        assert!(f.ratio <= 1.15, "{f}");
        assert_eq!(f.returned, 0, "{f}");
    }

    #[test]
    fn more_invocations_than_the_budget_never_exceed_it_nor_dead_letter() {
        for invocations in [5, 10] {
            let f = drain(setup(500, invocations)).unwrap();
            assert!(f.most_in_flight <= 5, "{f}");
            assert!(f.most_receives < 24, "{f}");
        }
    }
}
