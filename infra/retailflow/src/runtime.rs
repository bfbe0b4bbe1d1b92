//! The in-process stand-ins for EventBridge rules and SQS: queues with
//! visibility timeouts, receive counts and DLQ redrive, a bus that routes by
//! rule, and a virtual clock so backoffs of minutes or hours pass instantly.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use common::adapters::in_process::InProcessEventBus;
use common::ports::{BusError, BusEvent, EventBus};

/// Virtual time for the local app: real time at start, jumped forward when
/// every message is waiting out a delay.
#[derive(Clone)]
pub struct Clock(Arc<Mutex<DateTime<Utc>>>);

impl Clock {
    pub fn starting_now() -> Self {
        Clock(Arc::new(Mutex::new(Utc::now())))
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn advance_to(&self, t: DateTime<Utc>) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
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
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub receive_count: u32,
    visible_at: DateTime<Utc>,
}

/// A message moved to a DLQ, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The message's id on its queue.
    pub id: String,
    pub queue: String,
    pub body: String,
    pub reason: String,
    pub receive_count: u32,
}

/// SQS semantics that matter to the handlers.
pub struct Queue {
    pub name: String,
    pub visibility_timeout: Duration,
    pub max_receive_count: u32,
    messages: VecDeque<Message>,
    next_id: u64,
}

impl Queue {
    pub fn new(name: &str, visibility_timeout: Duration, max_receive_count: u32) -> Self {
        Queue {
            name: name.to_string(),
            visibility_timeout,
            max_receive_count,
            messages: VecDeque::new(),
            next_id: 0,
        }
    }

    pub fn send(&mut self, body: String, now: DateTime<Utc>) {
        self.next_id += 1;
        self.messages.push_back(Message {
            id: format!("{}-{}", self.name, self.next_id),
            body,
            receive_count: 0,
            visible_at: now,
        });
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
        while let Some(mut m) = self.messages.pop_front() {
            if out.len() < max && m.visible_at <= now {
                if m.receive_count >= self.max_receive_count {
                    dlq.push(DeadLetter {
                        id: m.id,
                        queue: self.name.clone(),
                        body: m.body,
                        reason: format!("maxReceiveCount {} exceeded", self.max_receive_count),
                        receive_count: m.receive_count,
                    });
                    continue;
                }
                m.receive_count += 1;
                m.visible_at =
                    now + chrono::Duration::from_std(self.visibility_timeout).unwrap_or_default();
                out.push(m.clone());
            }
            keep.push_back(m);
        }
        self.messages = keep;
        out
    }

    pub fn delete(&mut self, id: &str) {
        self.messages.retain(|m| m.id != id);
    }

    pub fn change_visibility(&mut self, id: &str, visible_at: DateTime<Utc>) {
        if let Some(m) = self.messages.iter_mut().find(|m| m.id == id) {
            m.visible_at = visible_at;
        }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
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
}

impl RoutingBus {
    pub fn new(rules: Vec<Rule>, queues: Queues, clock: Clock) -> Self {
        RoutingBus {
            recorded: Arc::new(InProcessEventBus::new()),
            rules,
            queues,
            clock,
        }
    }

    /// Routes an event by its rules (also for EventBridge events fed from
    /// files): its `source` and `detail-type` must both match, as on AWS.
    /// Returns how many queues it went to.
    pub fn route(&self, detail_type: &str, eventbridge_json: String) -> usize {
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
                q.send(eventbridge_json.clone(), now);
                routed += 1;
            }
        }
        routed
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
        self.recorded.publish(events).await?;
        for e in events {
            self.route(&e.detail_type, eventbridge_event(e));
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
        q.send("m".into(), now);
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
