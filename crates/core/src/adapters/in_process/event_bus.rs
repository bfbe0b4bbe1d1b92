//! [`EventBus`] in memory, with EventBridge's entry limit and its partial
//! failures on demand.

use super::*;

/// Faults the in-process bus can be told to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusFault {
    /// The call fails outright (network, 5xx).
    Unavailable,
    /// PutEvents answers 200 with every entry failed (FailedEntryCount > 0).
    RejectEntries,
}

#[derive(Default)]
struct BusState {
    published: Vec<BusEvent>,
    faults: Vec<BusFault>,
}

/// An [`EventBus`] that keeps what was published, in order.
#[derive(Default)]
pub struct InProcessEventBus {
    state: Mutex<BusState>,
}

impl InProcessEventBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A bus that has already published `events` (restored from a journal).
    pub fn holding(events: Vec<BusEvent>) -> Self {
        InProcessEventBus {
            state: Mutex::new(BusState {
                published: events,
                faults: Vec::new(),
            }),
        }
    }

    /// Queues faults for the next calls, one per call.
    pub fn inject(&self, faults: impl IntoIterator<Item = BusFault>) {
        self.lock().faults.extend(faults);
    }

    pub fn published(&self) -> Vec<BusEvent> {
        self.lock().published.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BusState> {
        // See InProcessStateStore::lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl EventBus for InProcessEventBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError> {
        check_entry_sizes(events)?;
        let mut st = self.lock();
        let fault = if st.faults.is_empty() {
            None
        } else {
            Some(st.faults.remove(0))
        };
        match fault {
            Some(BusFault::Unavailable) => Err(BusError::Unavailable("injected fault".into())),
            Some(BusFault::RejectEntries) => Err(BusError::Rejected {
                failed: events
                    .iter()
                    .map(|e| FailedEntry {
                        event_id: e.event_id,
                        code: "InternalFailure".into(),
                        message: "injected fault".into(),
                    })
                    .collect(),
            }),
            None => {
                st.published.extend_from_slice(events);
                Ok(())
            }
        }
    }
}
