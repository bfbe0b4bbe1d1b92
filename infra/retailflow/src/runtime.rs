//! The in-process stand-ins for EventBridge rules and SQS: queues with
//! visibility timeouts, receive counts and DLQ redrive, a bus that routes by
//! rule, and a virtual clock so backoffs of minutes or hours pass instantly.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use retailflow_core::adapters::in_process::InProcessEventBus;
use retailflow_core::ports::journal::{Journal, JournalError, JournalRow};
use retailflow_core::ports::{check_entry_sizes, BusError, BusEvent, EventBus};
use serde::{Deserialize, Serialize};

/// The local app's time. Virtual for `run`, `chaos` and the tests: real
/// time at start, jumped forward when every message is waiting out a delay,
/// so backoffs of minutes or hours pass instantly. Real for `serve`, where
/// a person sends events over minutes and expects holds, replay windows and
/// traces to follow the wall clock.
#[derive(Clone)]
pub struct Clock(Option<Arc<Mutex<DateTime<Utc>>>>);

impl Clock {
    pub fn starting_now() -> Self {
        Clock(Some(Arc::new(Mutex::new(Utc::now()))))
    }

    /// The wall clock: `advance_to` does nothing; a backoff is waited out.
    pub fn real() -> Self {
        Clock(None)
    }

    pub fn is_real(&self) -> bool {
        self.0.is_none()
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Some(t) => *t.lock().unwrap_or_else(|p| p.into_inner()),
            None => Utc::now(),
        }
    }

    pub fn advance_to(&self, t: DateTime<Utc>) {
        let Some(now) = &self.0 else { return };
        let mut now = now.lock().unwrap_or_else(|p| p.into_inner());
        if t > *now {
            *now = t;
        }
    }
}

/// An EventBridge rule: events of these detail types go to `queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    /// The event pattern's `source` (who published the event).
    pub source: &'static str,
    pub detail_types: &'static [&'static str],
    pub queue: &'static str,
}

/// A message on an in-process queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub receive_count: u32,
    visible_at: DateTime<Utc>,
}

/// A message moved to a DLQ, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The message's id on its queue.
    pub id: String,
    pub queue: String,
    pub body: String,
    pub reason: String,
    pub receive_count: u32,
    /// When it was moved (SQS's `SentTimestamp` on the DLQ); kept by
    /// earlier builds without it.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// SQS semantics that matter to the handlers.
pub struct Queue {
    pub name: String,
    pub visibility_timeout: Duration,
    pub max_receive_count: u32,
    messages: VecDeque<Message>,
    next_id: u64,
    /// Where every change is written (the data directory), if anywhere.
    journal: Option<Arc<dyn Journal>>,
}

/// The number a queue gave its message (`<queue>-<n>`), for keeping order.
pub fn seq_of(id: &str) -> u64 {
    id.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Queue {
    pub fn new(name: &str, visibility_timeout: Duration, max_receive_count: u32) -> Self {
        Queue {
            name: name.to_string(),
            visibility_timeout,
            max_receive_count,
            messages: VecDeque::new(),
            next_id: 0,
            journal: None,
        }
    }

    /// A queue written through to `journal`, holding what the journal's
    /// rows (`msg/<queue>/…`, `meta/queue-next/<queue>`) say it held.
    pub fn durable(
        mut self,
        journal: Arc<dyn Journal>,
        rows: &[(String, String)],
    ) -> Result<Self, JournalError> {
        let prefix = format!("msg/{}/", self.name);
        let mut messages = Vec::new();
        for (key, value) in rows {
            if key.starts_with(&prefix) {
                let m: Message =
                    serde_json::from_str(value).map_err(|e| JournalError::unreadable(key, e))?;
                messages.push(m);
            } else if *key == format!("meta/queue-next/{}", self.name) {
                self.next_id = value
                    .parse()
                    .map_err(|e| JournalError::unreadable(key, e))?;
            }
        }
        messages.sort_by_key(|m| seq_of(&m.id));
        self.next_id = self
            .next_id
            .max(messages.last().map_or(0, |m| seq_of(&m.id)));
        self.messages = messages.into();
        self.journal = Some(journal);
        Ok(self)
    }

    fn message_row(&self, m: &Message, present: bool) -> JournalRow {
        let key = format!("msg/{}/{}", self.name, m.id);
        // A message is plain strings, numbers and a time: it always serializes.
        (
            key,
            present.then(|| serde_json::to_string(m).unwrap_or_default()),
        )
    }

    fn dead_letter_row(d: &DeadLetter, present: bool) -> JournalRow {
        let key = format!("dlq/{}/{}", d.queue, d.id);
        // Plain strings and numbers: it always serializes.
        (
            key,
            present.then(|| serde_json::to_string(d).unwrap_or_default()),
        )
    }

    fn journal(&self, rows: &[JournalRow]) -> Result<(), JournalError> {
        match &self.journal {
            Some(j) if !rows.is_empty() => j.write(rows),
            _ => Ok(()),
        }
    }

    /// Like [`Self::journal`], for changes whose loss costs a redelivery at
    /// most (a receive count, a visibility, a delete): a failure is logged.
    fn journal_or_log(&self, rows: &[JournalRow]) {
        if let Err(e) = self.journal(rows) {
            tracing::error!(queue = %self.name, error = %e, "local state file not written");
        }
    }

    /// Sends a message. With a journal, it is on disk when this returns
    /// `Ok`; an `Err` means it was not accepted.
    pub fn send(&mut self, body: String, now: DateTime<Utc>) -> Result<(), JournalError> {
        self.send_rows(body, now, Vec::new())
    }

    /// Sends, writing `extra` rows in the same transaction.
    fn send_rows(
        &mut self,
        body: String,
        now: DateTime<Utc>,
        mut rows: Vec<JournalRow>,
    ) -> Result<(), JournalError> {
        let m = Message {
            id: format!("{}-{}", self.name, self.next_id + 1),
            body,
            receive_count: 0,
            visible_at: now,
        };
        rows.push(self.message_row(&m, true));
        rows.push((
            format!("meta/queue-next/{}", self.name),
            Some((self.next_id + 1).to_string()),
        ));
        self.journal(&rows)?;
        self.next_id += 1;
        self.messages.push_back(m);
        Ok(())
    }

    /// Takes a dead letter off this queue's DLQ for good (an operator
    /// resolved it by other means, or dismissed it).
    pub fn discard(&self, d: &DeadLetter) -> Result<(), JournalError> {
        self.journal(&[Self::dead_letter_row(d, false)])
    }

    /// Moves a dead letter back onto this queue, marked as a replay.
    pub fn redrive(&mut self, d: &DeadLetter, now: DateTime<Utc>) -> Result<(), JournalError> {
        let rows = vec![Self::dead_letter_row(d, false)];
        self.send_rows(retailflow_core::replay::mark_replayed(&d.body), now, rows)
    }

    /// Moves a message to the DLQ with why (the function gave up on it).
    pub fn dead_letter(
        &mut self,
        m: &Message,
        reason: String,
        now: DateTime<Utc>,
        dlq: &mut Vec<DeadLetter>,
    ) {
        let d = DeadLetter {
            id: m.id.clone(),
            queue: self.name.clone(),
            body: m.body.clone(),
            reason,
            receive_count: m.receive_count,
            at: Some(now),
        };
        self.journal_or_log(&[self.message_row(m, false), Self::dead_letter_row(&d, true)]);
        self.messages.retain(|x| x.id != m.id);
        dlq.push(d);
    }

    /// Receives up to `max` visible messages; a message received more than
    /// maxReceiveCount times is redriven to the DLQ instead.
    pub fn receive(
        &mut self,
        max: usize,
        now: DateTime<Utc>,
        dlq: &mut Vec<DeadLetter>,
    ) -> Vec<Message> {
        let mut out = Vec::new();
        let mut keep = VecDeque::new();
        let mut rows = Vec::new();
        while let Some(mut m) = self.messages.pop_front() {
            if out.len() < max && m.visible_at <= now {
                if m.receive_count >= self.max_receive_count {
                    let d = DeadLetter {
                        id: m.id.clone(),
                        queue: self.name.clone(),
                        body: m.body.clone(),
                        reason: format!("maxReceiveCount {} exceeded", self.max_receive_count),
                        receive_count: m.receive_count,
                        at: Some(now),
                    };
                    rows.push(self.message_row(&m, false));
                    rows.push(Self::dead_letter_row(&d, true));
                    dlq.push(d);
                    continue;
                }
                m.receive_count += 1;
                m.visible_at =
                    now + chrono::Duration::from_std(self.visibility_timeout).unwrap_or_default();
                rows.push(self.message_row(&m, true));
                out.push(m.clone());
            }
            keep.push_back(m);
        }
        self.messages = keep;
        self.journal_or_log(&rows);
        out
    }

    pub fn delete(&mut self, id: &str) {
        if let Some(m) = self.messages.iter().find(|m| m.id == id) {
            self.journal_or_log(&[self.message_row(m, false)]);
        }
        self.messages.retain(|m| m.id != id);
    }

    pub fn change_visibility(&mut self, id: &str, visible_at: DateTime<Utc>) {
        if let Some(m) = self.messages.iter_mut().find(|m| m.id == id) {
            m.visible_at = visible_at;
        }
        if let Some(m) = self.messages.iter().find(|m| m.id == id) {
            self.journal_or_log(&[self.message_row(m, true)]);
        }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// The bodies of the messages on the queue (visible or not).
    pub fn bodies(&self) -> impl Iterator<Item = &str> {
        self.messages.iter().map(|m| m.body.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// When the next message becomes visible.
    pub fn next_visible(&self) -> Option<DateTime<Utc>> {
        self.messages.iter().map(|m| m.visible_at).min()
    }
}

pub type Queues = Arc<Mutex<BTreeMap<String, Queue>>>;

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data behind the lock; a poisoned lock still holds it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An EventBus that records like EventBridge and routes like its rules: a
/// published event lands on every matching queue as the EventBridge event
/// SQS would carry.
pub struct RoutingBus {
    pub recorded: Arc<InProcessEventBus>,
    rules: Vec<Rule>,
    queues: Queues,
    clock: Clock,
    /// Where published events are written (`event/<n>`), if anywhere.
    journal: Option<Arc<dyn Journal>>,
    /// The next event row's number (publishers run in parallel).
    next_event: std::sync::atomic::AtomicUsize,
}

impl RoutingBus {
    pub fn new(rules: Vec<Rule>, queues: Queues, clock: Clock) -> Self {
        RoutingBus {
            recorded: Arc::new(InProcessEventBus::new()),
            rules,
            queues,
            clock,
            journal: None,
            next_event: Default::default(),
        }
    }

    /// A bus that writes what it publishes to `journal`, having published
    /// the events its rows (`event/…`) hold.
    pub fn durable(
        mut self,
        journal: Arc<dyn Journal>,
        rows: &[(String, String)],
    ) -> Result<Self, JournalError> {
        let mut events = Vec::new();
        for (key, value) in rows.iter().filter(|(k, _)| k.starts_with("event/")) {
            let e: BusEvent =
                serde_json::from_str(value).map_err(|e| JournalError::unreadable(key, e))?;
            events.push(e);
        }
        // After the highest row, not the count: a gap (a failed write)
        // must not make the next event overwrite a kept one.
        let next = rows
            .iter()
            .filter_map(|(k, _)| k.strip_prefix("event/")?.parse::<usize>().ok())
            .max()
            .map_or(0, |n| n + 1);
        self.next_event = next.into();
        self.recorded = Arc::new(InProcessEventBus::holding(events));
        self.journal = Some(journal);
        Ok(self)
    }

    /// Routes an event by its rules (also for EventBridge events fed from
    /// files): its `source` and `detail-type` must both match, as on AWS.
    /// Returns how many queues it went to, or why one could not take it.
    pub fn route(
        &self,
        detail_type: &str,
        eventbridge_json: String,
    ) -> Result<usize, JournalError> {
        let now = self.clock.now();
        let source = serde_json::from_str::<serde_json::Value>(&eventbridge_json)
            .ok()
            .and_then(|v| v["source"].as_str().map(str::to_string))
            .unwrap_or_default();
        let mut queues = lock(&self.queues);
        let mut routed = 0;
        for rule in self
            .rules
            .iter()
            .filter(|r| r.source == source && r.detail_types.contains(&detail_type))
        {
            if let Some(q) = queues.get_mut(rule.queue) {
                q.send(eventbridge_json.clone(), now)?;
                routed += 1;
            }
        }
        Ok(routed)
    }
}

impl RoutingBus {
    /// Sends the span's recorded events again to these rules' queues, each
    /// once per queue, marked as sent again. Returns how many were sent.
    pub fn replay(
        &self,
        rules: &[Rule],
        span: &retailflow_core::ports::ReplaySpan,
    ) -> Result<usize, JournalError> {
        let now = self.clock.now();
        let mut queues = lock(&self.queues);
        let mut sent = std::collections::BTreeSet::new();
        for e in self.recorded.published().iter().filter(|e| span.covers(e)) {
            for rule in rules.iter().filter(|r| {
                r.source == e.source && r.detail_types.contains(&e.detail_type.as_str())
            }) {
                if !sent.insert((rule.queue, e.event_id)) {
                    continue;
                }
                if let Some(q) = queues.get_mut(rule.queue) {
                    q.send(
                        retailflow_core::replay::mark_replayed(&eventbridge_event(e)),
                        now,
                    )?;
                }
            }
        }
        Ok(sent.len())
    }
}

/// The event as EventBridge delivers it to an SQS target.
pub fn eventbridge_event(e: &BusEvent) -> String {
    let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
    serde_json::json!({
        "version": "0",
        "id": e.event_id.to_string(),
        "detail-type": e.detail_type,
        "source": e.source,
        "account": "000000000000",
        "time": e.time.to_rfc3339(),
        "region": "local",
        "resources": [],
        "detail": detail,
    })
    .to_string()
}

#[async_trait]
impl EventBus for RoutingBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError> {
        if let Some(journal) = &self.journal {
            check_entry_sizes(events)?;
            let first = self
                .next_event
                .fetch_add(events.len(), std::sync::atomic::Ordering::SeqCst);
            let rows: Vec<JournalRow> = events
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    // Strings, a uuid and a time: it always serializes.
                    let row = serde_json::to_string(e).unwrap_or_default();
                    (format!("event/{:012}", first + i), Some(row))
                })
                .collect();
            journal
                .write(&rows)
                .map_err(|e| BusError::Unavailable(format!("local state file: {e}")))?;
        }
        self.recorded.publish(events).await?;
        for e in events {
            self.route(&e.detail_type, eventbridge_event(e))
                .map_err(|e| BusError::Unavailable(format!("local queue: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_invisible_after_receive_and_redriven_after_max_receives() {
        let now = Utc::now();
        let mut q = Queue::new("q", Duration::from_secs(30), 2);
        let mut dlq = Vec::new();
        q.send("m".into(), now).unwrap();
        assert_eq!(q.receive(10, now, &mut dlq).len(), 1);
        assert!(
            q.receive(10, now, &mut dlq).is_empty(),
            "invisible while in flight"
        );
        let later = now + chrono::Duration::seconds(31);
        assert_eq!(q.receive(10, later, &mut dlq)[0].receive_count, 2);
        let much_later = later + chrono::Duration::seconds(31);
        assert!(q.receive(10, much_later, &mut dlq).is_empty());
        assert_eq!(dlq.len(), 1);
        assert!(q.is_empty());
    }
}
