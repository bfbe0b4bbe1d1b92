//! One concurrency budget per external account, shared by every function
//! that calls it: at no moment more calls in flight than the budget,
//! whatever the batch sizes and the number of invocations.
//!
//! # Why leased slots
//!
//! An ERP account's limit (NetSuite: 5 on Standard tier; Business Central:
//! 5 per user) is shared by erp-post, return-reversal, catalog-sync,
//! fulfillment-sync and reconciliation, and each Lambda invocation runs its
//! whole batch at once. Dividing the budget statically between functions
//! would leave most of it idle (a backlog in erp-post would drain at its
//! share, not the budget), and Lambda's concurrency settings count
//! invocations, not calls. So the budget is `limit` slots in the state
//! table (`BUDGET#<account>#<n>`), each taken by a conditional write with a
//! lease that expires (a crashed container cannot keep a slot), and given
//! back by a conditional delete.
//!
//! A container leases slots as its calls need them and keeps them for the
//! rest of the invocation, where a local count lets its records share them
//! without a write per call; the batch gives them all back when it ends
//! ([`ConcurrencyBudget::release_all`]). The cost is two writes per slot per
//! invocation, not per call. A call that finds every slot held elsewhere
//! waits in the container while it holds some, or answers
//! [`ConnectorError::Throttled`] so its record returns after a short delay.
//!
//! # The calendar
//!
//! Retailers align ERP integration with their trading calendar: the budget
//! can be lower in business hours and 0 during a maintenance window or a
//! month-end close. At 0 no call is made; records wait with a delay up to
//! the window's end (at most SQS's 12 hours per receive), so a two-day close
//! costs a record four of its 24 receives and dead-letters nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveTime, Utc, Weekday};

use crate::credentials::WallClock;
use crate::ports::budget::BudgetSlots;
use crate::ports::StoreError;
use crate::resilience::ConnectorError;

/// A window of the week (UTC) or of the calendar with its own limit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Window {
    Weekly {
        days: Vec<Weekday>,
        from: NaiveTime,
        to: NaiveTime,
        limit: u32,
    },
    Dated {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    },
}

impl Window {
    fn limit(&self) -> u32 {
        match self {
            Window::Weekly { limit, .. } | Window::Dated { limit, .. } => *limit,
        }
    }

    /// The end of this window if `now` is in it.
    fn ends(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Window::Dated { from, to, .. } => (*from <= now && now < *to).then_some(*to),
            Window::Weekly { days, from, to, .. } => {
                let t = now.time();
                (days.contains(&now.weekday()) && *from <= t && t < *to)
                    .then(|| now.date_naive().and_time(*to).and_utc())
            }
        }
    }
}

/// An account's budget over time: a base limit, and windows that lower
/// (or raise) it; where windows overlap the lowest limit holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetCalendar {
    base: u32,
    windows: Vec<Window>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("budget calendar entry {entry:?}: {reason} (e.g. \"5; Mon-Fri 08:00-18:00=2; 2026-12-31T18:00:00Z..2027-01-02T06:00:00Z=0\")")]
pub struct CalendarError {
    entry: String,
    reason: String,
}

fn weekday(s: &str) -> Option<Weekday> {
    s.trim().parse().ok()
}

fn days(spec: &str) -> Option<Vec<Weekday>> {
    let mut out = Vec::new();
    for part in spec.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (mut d, end) = (weekday(a)?, weekday(b)?);
                loop {
                    out.push(d);
                    if d == end {
                        break;
                    }
                    d = d.succ();
                }
            }
            None => out.push(weekday(part)?),
        }
    }
    Some(out)
}

impl BudgetCalendar {
    /// A budget that never changes.
    pub fn constant(limit: u32) -> Self {
        BudgetCalendar {
            base: limit,
            windows: Vec::new(),
        }
    }

    /// Reads `5; Mon-Fri 08:00-18:00=2; 2026-12-31T18:00:00Z..2027-01-02T06:00:00Z=0`:
    /// the base limit, then weekly windows (UTC; days as `Mon-Fri` or
    /// `Sat,Sun`) and dated windows, each `=limit`.
    pub fn parse(text: &str) -> Result<Self, CalendarError> {
        let mut entries = text.split(';').map(str::trim).filter(|e| !e.is_empty());
        let err = |entry: &str, reason: &str| CalendarError {
            entry: entry.to_string(),
            reason: reason.to_string(),
        };
        let first = entries.next().ok_or_else(|| err(text, "no base limit"))?;
        let base: u32 = first
            .parse()
            .map_err(|_| err(first, "the first entry is the base limit, a whole number"))?;
        if base > MAX_BUDGET {
            return Err(err(first, "a budget is at most 100"));
        }
        let mut windows = Vec::new();
        for entry in entries {
            let (when, limit) = entry
                .rsplit_once('=')
                .ok_or_else(|| err(entry, "a window ends with =limit"))?;
            let limit: u32 = limit
                .trim()
                .parse()
                .map_err(|_| err(entry, "the limit is a whole number"))?;
            if limit > MAX_BUDGET {
                return Err(err(entry, "a budget is at most 100"));
            }
            let when = when.trim();
            if let Some((from, to)) = when.split_once("..") {
                let at = |s: &str| {
                    DateTime::parse_from_rfc3339(s.trim())
                        .map(|d| d.with_timezone(&Utc))
                        .map_err(|_| err(entry, "dated windows are RFC 3339 times"))
                };
                let (from, to) = (at(from)?, at(to)?);
                if from >= to {
                    return Err(err(entry, "a window ends after it starts"));
                }
                windows.push(Window::Dated { from, to, limit });
            } else {
                let (day_spec, hours) = when
                    .split_once(' ')
                    .ok_or_else(|| err(entry, "a weekly window is `Mon-Fri 08:00-18:00`"))?;
                let (from, to) = hours
                    .trim()
                    .split_once('-')
                    .ok_or_else(|| err(entry, "hours are `HH:MM-HH:MM`"))?;
                let time = |s: &str| {
                    NaiveTime::parse_from_str(s.trim(), "%H:%M")
                        .map_err(|_| err(entry, "hours are `HH:MM-HH:MM` (UTC)"))
                };
                let (from, to) = (time(from)?, time(to)?);
                if from >= to {
                    return Err(err(
                        entry,
                        "a weekly window ends after it starts on the same day (split one across midnight in two)",
                    ));
                }
                windows.push(Window::Weekly {
                    days: days(day_spec)
                        .ok_or_else(|| err(entry, "days are like Mon-Fri or Sat,Sun"))?,
                    from,
                    to,
                    limit,
                });
            }
        }
        Ok(BudgetCalendar { base, windows })
    }

    /// The budget at `now`.
    pub fn limit_at(&self, now: DateTime<Utc>) -> u32 {
        self.windows
            .iter()
            .filter(|w| w.ends(now).is_some())
            .map(Window::limit)
            .min()
            .unwrap_or(self.base)
    }

    /// When a budget of 0 at `now` may open again: the earliest end of the
    /// closed windows `now` is in.
    pub fn closed_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.windows
            .iter()
            .filter(|w| w.limit() == 0)
            .filter_map(|w| w.ends(now))
            .min()
    }
}

tokio::task_local! {
    /// The invocation's deadline, for the calls of the record running in
    /// this task: a wait for a place never outlasts it.
    static DEADLINE: Option<DateTime<Utc>>;
}

/// Runs `work` with its calls' waits for a place bounded by `deadline`
/// (less a margin for the calls and the answer).
pub async fn within_deadline<F: std::future::Future>(
    deadline: Option<DateTime<Utc>>,
    work: F,
) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// Time kept back from the deadline for the call itself and the answer.
const DEADLINE_MARGIN: chrono::Duration = chrono::Duration::seconds(10);

/// A slot this container holds: its number, its lease's id and end.
#[derive(Clone)]
struct HeldSlot {
    slot: u32,
    lease: String,
    until: DateTime<Utc>,
}

#[derive(Default)]
struct Held {
    /// Slots this container holds.
    slots: Vec<HeldSlot>,
    /// Calls in flight on them.
    busy: usize,
    /// Calls waiting for a place.
    waiting: usize,
    /// A lease write is under way (one at a time per container).
    leasing: bool,
    /// When the last try to lease found every slot held elsewhere.
    all_held_at: Option<tokio::time::Instant>,
    /// When this container last gave slots back.
    gave_back_at: Option<tokio::time::Instant>,
}

impl Held {
    /// Slots a call may run on now: under the current limit, with enough
    /// lease left to outlast a call (so a slot is never used while another
    /// container may take it).
    fn usable(&self, limit: usize, now: DateTime<Utc>) -> usize {
        self.slots
            .iter()
            .filter(|h| (h.slot as usize) < limit && h.until - now > LEASE_MARGIN)
            .count()
    }

    /// Takes out the slots no call may run on any more (over a lowered
    /// limit, or near their lease's end) beyond what calls in flight need.
    fn take_unusable(&mut self, limit: usize, now: DateTime<Utc>) -> Vec<HeldSlot> {
        let (keep, out): (Vec<HeldSlot>, Vec<HeldSlot>) = self
            .slots
            .drain(..)
            .partition(|h| (h.slot as usize) < limit && h.until - now > LEASE_MARGIN);
        self.slots = keep;
        out
    }
}

/// How long a call may wait for a place before its record returns to the
/// queue: a record makes two or three ERP calls, and erp-post's timeout is
/// 30 s.
const WAIT_FOR_SLOT: Duration = Duration::from_secs(8);

/// How often a waiting container asks the table for a slot again.
const POLL_SLOTS: Duration = Duration::from_millis(100);

/// How long a container that gave its slots back leaves them to others
/// before taking any again: longer than [`POLL_SLOTS`], so a container
/// that was waiting gets them, and one with an endless backlog cannot keep
/// the budget to itself by giving back and taking again at once.
const COURTESY: Duration = Duration::from_millis(150);

/// A slot is not used for a new call once less than this is left of its
/// lease: longer than any one call with its token renewal and retry
/// (two 4-second attempts and a 5-second token request).
const LEASE_MARGIN: chrono::Duration = chrono::Duration::seconds(30);

/// The most slots a budget has: one read looks at all of them.
pub const MAX_BUDGET: u32 = 100;

/// One account's budget as seen by one container.
pub struct ConcurrencyBudget {
    account: String,
    calendar: BudgetCalendar,
    slots: Arc<dyn BudgetSlots>,
    holder: String,
    clock: WallClock,
    lease_for: chrono::Duration,
    wait_for_slot: Duration,
    courtesy: Duration,
    held: Mutex<Held>,
    freed: tokio::sync::Notify,
}

/// A call's place in the budget, given back when dropped.
pub struct BudgetPermit<'a> {
    budget: &'a ConcurrencyBudget,
}

impl Drop for BudgetPermit<'_> {
    fn drop(&mut self) {
        let mut held = self.budget.lock();
        held.busy = held.busy.saturating_sub(1);
        drop(held);
        self.budget.freed.notify_one();
    }
}

enum Next {
    Go,
    Lease(u32),
    Wait,
    Closed(Option<DateTime<Utc>>),
}

/// Counts a call as waiting while it is in [`ConcurrencyBudget::permit`].
struct Waiting<'a>(&'a ConcurrencyBudget);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut held = self.0.lock();
        held.waiting = held.waiting.saturating_sub(1);
    }
}

/// Clears the container's `leasing` flag however the lease attempt ends,
/// cancelled included, so the container can lease again.
struct Leasing<'a>(&'a ConcurrencyBudget);

impl Drop for Leasing<'_> {
    fn drop(&mut self) {
        self.0.lock().leasing = false;
        self.0.freed.notify_one();
    }
}

impl ConcurrencyBudget {
    /// `holder` names this container (a fresh id per container).
    pub fn new(
        account: impl Into<String>,
        calendar: BudgetCalendar,
        slots: Arc<dyn BudgetSlots>,
        clock: WallClock,
    ) -> Self {
        ConcurrencyBudget {
            account: account.into(),
            calendar,
            slots,
            holder: uuid::Uuid::new_v4().to_string(),
            clock,
            // Long enough to serve a busy period without a renewal, short
            // enough that a slot a timed-out or crashed container held is
            // free again within two minutes.
            lease_for: chrono::Duration::seconds(90),
            wait_for_slot: WAIT_FOR_SLOT,
            courtesy: COURTESY,
            held: Mutex::new(Held::default()),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// The only holder of its slots (the local app, one process): no
    /// courtesy pause after giving slots back, since nobody else waits.
    pub fn alone(mut self) -> Self {
        self.courtesy = Duration::ZERO;
        self
    }

    /// How long a call waits for a place before its record goes back.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait_for_slot = wait;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // Plain counters; a poisoned lock still holds them.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next(&self, now: DateTime<Utc>) -> Next {
        let limit = self.calendar.limit_at(now) as usize;
        let mut held = self.lock();
        if limit == 0 {
            return Next::Closed(self.calendar.closed_until(now));
        }
        if held.busy < held.usable(limit, now) {
            held.busy += 1;
            return Next::Go;
        }
        let polled_lately = held.all_held_at.is_some_and(|at| at.elapsed() < POLL_SLOTS)
            || (held.slots.is_empty()
                && held
                    .gave_back_at
                    .is_some_and(|at| at.elapsed() < self.courtesy));
        if held.usable(limit, now) < limit && !held.leasing && !polled_lately {
            held.leasing = true;
            // Start from a place of this holder's own, so containers do
            // not all try slot 0 first.
            let start = self
                .holder
                .bytes()
                .fold(0u32, |a, b| a.wrapping_add(u32::from(b)));
            return Next::Lease(start % limit as u32);
        }
        Next::Wait
    }

    /// A place for one call, waiting (up to 8 s) while this container's
    /// slots are busy and every other slot is held elsewhere, reading the
    /// table again every 100 ms. Closed (budget 0), or still no place:
    /// [`ConnectorError::Throttled`] with when to try again, so the record
    /// returns to its queue.
    pub async fn permit(&self) -> Result<BudgetPermit<'_>, ConnectorError> {
        let started = tokio::time::Instant::now();
        // Inside an invocation, never wait past its deadline (less the
        // time the call and the answer need).
        let wait_for_slot = match DEADLINE.try_with(|d| *d).ok().flatten() {
            Some(deadline) => (deadline - DEADLINE_MARGIN - (self.clock)())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(self.wait_for_slot),
            None => self.wait_for_slot,
        };
        self.lock().waiting += 1;
        let _waiting = Waiting(self);
        loop {
            let now = (self.clock)();
            match self.next(now) {
                Next::Go => return Ok(BudgetPermit { budget: self }),
                Next::Closed(until) => {
                    let wait = until
                        .and_then(|u| (u - now).to_std().ok())
                        .unwrap_or(Duration::from_secs(15 * 60));
                    return Err(ConnectorError::Throttled {
                        system: "budget",
                        retry_after: Some(wait.max(Duration::from_secs(1))),
                    });
                }
                Next::Lease(first) => {
                    let leasing = Leasing(self);
                    let got = self.lease_one(first, now).await;
                    let mut held = self.lock();
                    match got {
                        Ok(Some(slot)) => {
                            held.slots.push(slot);
                            held.all_held_at = None;
                        }
                        Ok(None) => held.all_held_at = Some(tokio::time::Instant::now()),
                        // The budget's own store failed: the record waits a
                        // moment, the ERP's health untouched.
                        Err(e) => {
                            tracing::warn!(error = %e, account = %self.account, "budget slots unreadable");
                            return Err(refused_now());
                        }
                    }
                    drop(held);
                    drop(leasing);
                    continue;
                }
                Next::Wait => {}
            }
            if started.elapsed() >= wait_for_slot {
                return Err(refused_now());
            }
            let _ = tokio::time::timeout(POLL_SLOTS, self.freed.notified()).await;
        }
    }

    /// Takes a free slot, trying from `first` on, with a lease of its own id.
    async fn lease_one(
        &self,
        first: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<HeldSlot>, StoreError> {
        let limit = self.calendar.limit_at(now).clamp(1, MAX_BUDGET);
        let until = now + self.lease_for;
        let mine: Vec<u32> = self
            .lock()
            .slots
            .iter()
            .filter(|h| h.until - now > LEASE_MARGIN)
            .map(|h| h.slot)
            .collect();
        // Look first: a waiting container polls with reads, and writes only
        // to a slot that looked free (or its own, near its lease's end).
        let in_use = self.slots.slots_in_use(&self.account, limit, now).await?;
        for i in 0..limit {
            let slot = (first + i) % limit;
            let renewal = !mine.contains(&slot) && self.lock().slots.iter().any(|h| h.slot == slot);
            if mine.contains(&slot) || (in_use.contains(&slot) && !renewal) {
                continue;
            }
            let lease = format!("{}/{}", self.holder, uuid::Uuid::new_v4().simple());
            if self
                .slots
                .take_slot(&self.account, slot, &self.holder, &lease, now, until)
                .await?
            {
                // A renewal replaces the old lease of the same slot.
                self.lock().slots.retain(|h| h.slot != slot);
                return Ok(Some(HeldSlot { slot, lease, until }));
            }
        }
        Ok(None)
    }

    /// After a call: slots nothing in this container is using or waiting
    /// for go back at once, so other containers get them without waiting
    /// for this invocation to end (a backlog drains at the budget, not in
    /// steps of whole batches); so do slots over a lowered limit or near
    /// their lease's end.
    pub async fn after_call(&self) {
        let now = (self.clock)();
        let limit = self.calendar.limit_at(now) as usize;
        let out: Vec<HeldSlot> = {
            let mut held = self.lock();
            let mut out = held.take_unusable(limit, now);
            if held.waiting == 0 {
                let idle = held.slots.len().saturating_sub(held.busy);
                out.extend(held.slots.drain(..idle));
            }
            out
        };
        self.give_back(out).await;
    }

    async fn give_back(&self, slots: Vec<HeldSlot>) {
        if slots.is_empty() {
            return;
        }
        self.lock().gave_back_at = Some(tokio::time::Instant::now());
        for h in slots {
            // Conditional on this lease's id: a later lease of the same
            // slot (ours or another container's) is never deleted.
            if let Err(e) = self
                .slots
                .give_back_slot(&self.account, h.slot, &h.lease)
                .await
            {
                tracing::warn!(error = %e, account = %self.account, slot = h.slot, "budget slot not given back; its lease runs out");
            }
        }
        self.freed.notify_waiters();
    }

    /// Gives back every slot no call is using: at the end of each
    /// invocation (a frozen container must not keep them).
    pub async fn release_all(&self) {
        let out: Vec<HeldSlot> = {
            let mut held = self.lock();
            let idle = held.slots.len().saturating_sub(held.busy);
            held.slots.drain(..idle).collect()
        };
        self.give_back(out).await;
    }

    /// The most calls the budget lets run at once now (its calendar's
    /// limit; 0 while it is closed).
    pub fn limit_now(&self) -> u32 {
        self.calendar.limit_at((self.clock)())
    }

    /// Slots this container holds now.
    pub fn held(&self) -> usize {
        self.lock().slots.len()
    }
}

fn refused_now() -> ConnectorError {
    ConnectorError::Throttled {
        system: "budget",
        retry_after: Some(Duration::from_secs(10)),
    }
}

#[cfg(test)]
mod tests;
