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

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveTime, Utc, Weekday};

use crate::credentials::WallClock;
use crate::ports::StoreError;
use crate::resilience::ConnectorError;

/// Where the slots are kept: the state table on AWS, memory in process.
#[async_trait]
pub trait BudgetSlots: Send + Sync {
    /// Takes slot `slot` of `account` for `holder` until `until`: succeeds
    /// when the slot is free, its lease has run out by `now`, or `holder`
    /// has it already (a renewal). False when someone else holds it.
    async fn take_slot(
        &self,
        account: &str,
        slot: u32,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Gives the slot back if `holder` still has it.
    async fn give_back_slot(
        &self,
        account: &str,
        slot: u32,
        holder: &str,
    ) -> Result<(), StoreError>;
    /// The slots among `0..limit` held by a lease still running at `now`
    /// (a read, so a waiting container looks before it writes; it may be a
    /// moment stale, which the conditional take settles).
    async fn slots_in_use(
        &self,
        account: &str,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<u32>, StoreError>;
}

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
        let base = first
            .parse()
            .map_err(|_| err(first, "the first entry is the base limit, a whole number"))?;
        let mut windows = Vec::new();
        for entry in entries {
            let (when, limit) = entry
                .rsplit_once('=')
                .ok_or_else(|| err(entry, "a window ends with =limit"))?;
            let limit: u32 = limit
                .trim()
                .parse()
                .map_err(|_| err(entry, "the limit is a whole number"))?;
            let when = when.trim();
            if let Some((from, to)) = when.split_once("..") {
                let at = |s: &str| {
                    DateTime::parse_from_rfc3339(s.trim())
                        .map(|d| d.with_timezone(&Utc))
                        .map_err(|_| err(entry, "dated windows are RFC 3339 times"))
                };
                windows.push(Window::Dated {
                    from: at(from)?,
                    to: at(to)?,
                    limit,
                });
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
                windows.push(Window::Weekly {
                    days: days(day_spec)
                        .ok_or_else(|| err(entry, "days are like Mon-Fri or Sat,Sun"))?,
                    from: time(from)?,
                    to: time(to)?,
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

#[derive(Default)]
struct Held {
    /// Slots this container holds, with their lease ends.
    slots: Vec<(u32, DateTime<Utc>)>,
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

/// How long a call may wait for a place before its record returns to the
/// queue (well inside the functions' timeouts).
const WAIT_FOR_SLOT: Duration = Duration::from_secs(20);

/// How often a waiting container asks the table for a slot again.
const POLL_SLOTS: Duration = Duration::from_millis(100);

/// How long a container that gave its slots back leaves them to others
/// before taking any again: longer than [`POLL_SLOTS`], so a container
/// that was waiting gets them, and one with an endless backlog cannot keep
/// the budget to itself by giving back and taking again at once.
const COURTESY: Duration = Duration::from_millis(150);

/// One account's budget as seen by one container.
pub struct ConcurrencyBudget {
    account: String,
    calendar: BudgetCalendar,
    slots: Arc<dyn BudgetSlots>,
    holder: String,
    clock: WallClock,
    lease_for: chrono::Duration,
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
            // Longer than the longest function timeout (5 minutes): a
            // slot is never taken from under a call in flight, and one a
            // crashed container held is free again soon after.
            lease_for: chrono::Duration::minutes(6),
            held: Mutex::new(Held::default()),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// How long a lease lasts: longer than an invocation (the function's
    /// timeout), so a slot is never taken from under a call in flight.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease_for = chrono::Duration::from_std(lease).unwrap_or(self.lease_for);
        self
    }

    pub fn account(&self) -> &str {
        &self.account
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
        if held.busy < held.slots.len() && held.busy < limit {
            held.busy += 1;
            return Next::Go;
        }
        let polled_lately = held.all_held_at.is_some_and(|at| at.elapsed() < POLL_SLOTS)
            || (held.slots.is_empty()
                && held.gave_back_at.is_some_and(|at| at.elapsed() < COURTESY));
        if held.slots.len() < limit && !held.leasing && !polled_lately {
            held.leasing = true;
            let taken: Vec<u32> = held.slots.iter().map(|(s, _)| *s).collect();
            // Start from a place of this holder's own, so containers do
            // not all try slot 0 first.
            let start = self
                .holder
                .bytes()
                .fold(0u32, |a, b| a.wrapping_add(u32::from(b)));
            let free = (0..limit as u32)
                .map(|i| (start.wrapping_add(i)) % limit as u32)
                .find(|s| !taken.contains(s));
            return match free {
                Some(s) => Next::Lease(s),
                None => {
                    held.leasing = false;
                    Next::Wait
                }
            };
        }
        Next::Wait
    }

    /// A place for one call, waiting (up to 20 s) while this container's
    /// slots are busy and every other slot is held elsewhere, asking the
    /// table again every 250 ms. Closed (budget 0), or still no place:
    /// [`ConnectorError::Throttled`] with when to try again, so the record
    /// returns to its queue.
    pub async fn permit(&self) -> Result<BudgetPermit<'_>, ConnectorError> {
        let started = tokio::time::Instant::now();
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
                    let got = self.lease_one(first, now).await;
                    let mut held = self.lock();
                    held.leasing = false;
                    match got {
                        Ok(Some((slot, until))) => {
                            held.slots.push((slot, until));
                            held.busy += 1;
                            return Ok(BudgetPermit { budget: self });
                        }
                        Ok(None) => held.all_held_at = Some(tokio::time::Instant::now()),
                        Err(e) => {
                            return Err(ConnectorError::Unavailable {
                                system: "budget",
                                reason: e.to_string(),
                                retry_after: None,
                            })
                        }
                    }
                }
                Next::Wait => {}
            }
            if started.elapsed() > WAIT_FOR_SLOT {
                return Err(refused_now());
            }
            let _ = tokio::time::timeout(POLL_SLOTS, self.freed.notified()).await;
        }
    }

    /// Tries the free slots from `first` on; the one taken.
    async fn lease_one(
        &self,
        first: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<(u32, DateTime<Utc>)>, StoreError> {
        let limit = self.calendar.limit_at(now).max(1);
        let until = now + self.lease_for;
        let mine: Vec<u32> = self.lock().slots.iter().map(|(s, _)| *s).collect();
        // Look first: a waiting container polls with reads, and writes only
        // to a slot that looked free.
        let in_use = self.slots.slots_in_use(&self.account, limit, now).await?;
        for i in 0..limit {
            let slot = (first + i) % limit;
            if mine.contains(&slot) || in_use.contains(&slot) {
                continue;
            }
            if self
                .slots
                .take_slot(&self.account, slot, &self.holder, now, until)
                .await?
            {
                return Ok(Some((slot, until)));
            }
        }
        Ok(None)
    }

    /// After a call: slots nothing in this container is using or waiting
    /// for go back at once, so other containers get them without waiting
    /// for this invocation to end (a backlog drains at the budget, not in
    /// steps of whole batches).
    pub async fn after_call(&self) {
        let idle: Vec<u32> = {
            let mut held = self.lock();
            if held.waiting > 0 {
                return;
            }
            let keep = held.busy;
            let n = held.slots.len().saturating_sub(keep);
            held.slots.drain(..n).map(|(s, _)| s).collect()
        };
        self.give_back(idle).await;
    }

    async fn give_back(&self, slots: Vec<u32>) {
        if slots.is_empty() {
            return;
        }
        self.lock().gave_back_at = Some(tokio::time::Instant::now());
        for slot in slots {
            if let Err(e) = self
                .slots
                .give_back_slot(&self.account, slot, &self.holder)
                .await
            {
                tracing::warn!(error = %e, account = %self.account, slot, "budget slot not given back; its lease runs out");
            }
        }
    }

    /// Gives back every slot this container holds: at the end of each
    /// invocation (a frozen container must not keep them).
    pub async fn release_all(&self) {
        let slots: Vec<u32> = {
            let mut held = self.lock();
            if held.busy > 0 {
                // Calls still in flight keep their slots; the next
                // release gives them back.
                return;
            }
            held.slots.drain(..).map(|(s, _)| s).collect()
        };
        self.give_back(slots).await;
        self.freed.notify_waiters();
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
mod tests {
    use super::*;
    use crate::adapters::in_process::InProcessStateStore;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_calendar_lowers_the_budget_in_business_hours_and_closes_it_for_month_end() {
        let c = BudgetCalendar::parse(
            "5; Mon-Fri 08:00-18:00=2; 2026-12-31T18:00:00Z..2027-01-02T06:00:00Z=0",
        )
        .unwrap();
        assert_eq!(c.limit_at(at("2026-12-07T07:59:00Z")), 5, "Monday before 8");
        assert_eq!(c.limit_at(at("2026-12-07T08:00:00Z")), 2, "Monday 8:00");
        assert_eq!(c.limit_at(at("2026-12-12T12:00:00Z")), 5, "Saturday");
        // Thursday 31 December at noon: business hours, not yet closed.
        assert_eq!(c.limit_at(at("2026-12-31T12:00:00Z")), 2);
        assert_eq!(c.limit_at(at("2026-12-31T18:00:00Z")), 0, "closed");
        assert_eq!(
            c.closed_until(at("2027-01-01T09:00:00Z")),
            Some(at("2027-01-02T06:00:00Z"))
        );
        assert_eq!(c.limit_at(at("2027-01-02T06:00:00Z")), 5);
    }

    #[test]
    fn a_calendar_that_cannot_be_read_says_which_entry() {
        let e = BudgetCalendar::parse("5; Mon-Fry 08:00-18:00=2").unwrap_err();
        assert!(e.to_string().contains("Mon-Fry"), "{e}");
        assert!(BudgetCalendar::parse("five").is_err());
        assert!(BudgetCalendar::parse("5; 2026-01-01..2026-01-02=0").is_err());
    }

    fn budget(store: Arc<InProcessStateStore>, limit: u32) -> ConcurrencyBudget {
        ConcurrencyBudget::new(
            "netsuite:1234567",
            BudgetCalendar::constant(limit),
            store,
            crate::credentials::system_clock(),
        )
    }

    #[tokio::test]
    async fn containers_sharing_an_account_never_run_more_calls_than_the_budget() {
        let store = Arc::new(InProcessStateStore::new());
        let containers: Vec<Arc<ConcurrencyBudget>> =
            (0..4).map(|_| Arc::new(budget(store.clone(), 5))).collect();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let calls = (0..80).map(|i| {
            let b = containers[i % 4].clone();
            let (in_flight, most, done) = (in_flight.clone(), most.clone(), done.clone());
            async move {
                loop {
                    match b.permit().await {
                        Ok(_p) => {
                            let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(n, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            done.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        // Every slot held elsewhere: the record returns to
                        // its queue; here, the invocation ends and tries again.
                        Err(ConnectorError::Throttled { .. }) => {
                            b.release_all().await;
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                b.release_all().await;
            }
        });
        futures::future::join_all(calls).await;
        assert_eq!(done.load(Ordering::SeqCst), 80);
        assert!(
            most.load(Ordering::SeqCst) <= 5,
            "{}",
            most.load(Ordering::SeqCst)
        );
        assert_eq!(
            most.load(Ordering::SeqCst),
            5,
            "the budget is used, not left idle"
        );
    }

    #[tokio::test]
    async fn a_closed_budget_makes_no_call_and_says_when_it_opens() {
        let store = Arc::new(InProcessStateStore::new());
        let now = Utc::now();
        let cal = BudgetCalendar::parse(&format!(
            "5; {}..{}=0",
            (now - chrono::Duration::hours(1)).to_rfc3339(),
            (now + chrono::Duration::hours(2)).to_rfc3339()
        ))
        .unwrap();
        let b = ConcurrencyBudget::new("erp", cal, store, crate::credentials::system_clock());
        let answer = b.permit().await.map(|_| ());
        match answer {
            Err(ConnectorError::Throttled {
                retry_after: Some(d),
                ..
            }) => assert!(
                d > Duration::from_secs(7000) && d <= Duration::from_secs(7200),
                "{d:?}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_crashed_containers_slot_is_taken_once_its_lease_runs_out() {
        let store = Arc::new(InProcessStateStore::new());
        let t0 = Utc::now();
        assert!(store
            .take_slot("erp", 0, "crashed", t0, t0 + chrono::Duration::minutes(15))
            .await
            .unwrap());
        assert!(!store
            .take_slot("erp", 0, "other", t0, t0 + chrono::Duration::minutes(15))
            .await
            .unwrap());
        let later = t0 + chrono::Duration::minutes(16);
        assert!(store
            .take_slot(
                "erp",
                0,
                "other",
                later,
                later + chrono::Duration::minutes(15)
            )
            .await
            .unwrap());
    }
}
