//! DynamoDB's contention rules, in process, so a load test on the local
//! stores meets what the table would do to it. One lock makes the in-process
//! stores exact; this model puts back what the lock hides:
//!
//! - a transaction keeps each of its items busy for its service time; a
//!   transaction or a single-item write arriving at a busy item fails at once
//!   (`TransactionConflict`: the later request loses, nothing queues);
//! - single-item writes to one item are applied one after another without
//!   error, as DynamoDB applies them in the order received (they are not
//!   marked busy, so a transaction arriving during one is not refused: on
//!   DynamoDB it may be);
//! - each item takes at most `item_write_units_per_second` write units a
//!   second (a partition's 1,000), a transaction costing two per item
//!   (prepare and commit); beyond that, throttling;
//! - reads never conflict (DynamoDB lets a read run beside a transaction and
//!   answers the last committed value).
//!
//! Not modelled: items over 1 KB costing more units, partitions shared by
//! several hot items (split-for-heat gives each its own), the table's warm
//! throughput, the SDK's own retries, and network latency spread (every call
//! takes exactly its modelled time plus the scheduler's).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ports::StoreError;

/// Service times and limits of the modelled table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentionModel {
    /// How long a transaction keeps its items busy (both phases).
    pub transaction_latency: Duration,
    /// A single-item write, and the answer to a refused request.
    pub write_latency: Duration,
    /// A consistent read (one item or one batch).
    pub read_latency: Duration,
    /// Write units one item takes a second.
    pub item_write_units_per_second: u32,
}

impl Default for ContentionModel {
    /// DynamoDB in one region as measured from Lambda in the same region:
    /// single-digit milliseconds a request, a transaction about twice a
    /// write; 1,000 write units a second a partition.
    fn default() -> Self {
        ContentionModel {
            transaction_latency: Duration::from_millis(20),
            write_latency: Duration::from_millis(10),
            read_latency: Duration::from_millis(5),
            item_write_units_per_second: 1_000,
        }
    }
}

/// How a write touches its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// TransactWriteItems: every item busy until it ends, two units each.
    Transaction,
    /// PutItem / UpdateItem / DeleteItem: one unit.
    Single,
}

/// What the model refused, for a benchmark to print.
#[derive(Debug, Default)]
pub struct ContentionCounts {
    pub conflicts: AtomicU64,
    pub throttled: AtomicU64,
    pub writes: AtomicU64,
}

#[derive(Debug)]
struct ItemState {
    /// The transaction keeping it busy, if one runs.
    busy_with: Option<u64>,
    /// Write units left, in millionths, refilled continuously.
    micro_units: u64,
    refilled: Instant,
}

/// The items of one in-process store under [`ContentionModel`].
#[derive(Debug)]
pub struct ItemContention {
    model: ContentionModel,
    items: Mutex<HashMap<String, ItemState>>,
    next_transaction: AtomicU64,
    counts: ContentionCounts,
}

/// A write that was let through: its items stay busy until it is dropped,
/// which the store does once the change is applied.
#[must_use]
pub struct Admitted<'a> {
    contention: &'a ItemContention,
    transaction: Option<u64>,
    keys: Vec<String>,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let Some(id) = self.transaction else {
            return;
        };
        let mut items = self.contention.lock();
        for k in &self.keys {
            if let Some(item) = items.get_mut(k) {
                if item.busy_with == Some(id) {
                    item.busy_with = None;
                }
            }
        }
    }
}

impl Admitted<'_> {
    /// Takes the write's service time, its items busy throughout.
    pub async fn run(&self) {
        let m = self.contention.model;
        let latency = match self.transaction {
            Some(_) => m.transaction_latency,
            None => m.write_latency,
        };
        tokio::time::sleep(latency).await;
    }

    /// A condition failed as the transaction prepared: its items are free
    /// at once, and the answer takes a refusal's time.
    pub async fn cancel(self) {
        let latency = self.contention.model.write_latency;
        drop(self);
        tokio::time::sleep(latency).await;
    }
}

const MICRO: u64 = 1_000_000;

impl ItemContention {
    pub fn new(model: ContentionModel) -> Self {
        ItemContention {
            model,
            items: Mutex::new(HashMap::new()),
            next_transaction: AtomicU64::new(1),
            counts: ContentionCounts::default(),
        }
    }

    pub fn model(&self) -> ContentionModel {
        self.model
    }

    pub fn counts(&self) -> &ContentionCounts {
        &self.counts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ItemState>> {
        // A panic while holding this lock leaves plain counters behind,
        // still consistent: go on with them.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A consistent read: it takes its time and is never refused.
    pub async fn read(&self) {
        tokio::time::sleep(self.model.read_latency).await;
    }

    /// Admits a write to `keys` or refuses it as DynamoDB would; an admitted
    /// write has taken its service time when this returns, and the caller
    /// applies its change before dropping what it got.
    pub async fn write(
        &self,
        kind: WriteKind,
        keys: Vec<String>,
    ) -> Result<Admitted<'_>, StoreError> {
        let admitted = self.prepare(kind, keys).await?;
        admitted.run().await;
        Ok(admitted)
    }

    /// The first half of [`Self::write`]: the write is admitted (its items
    /// busy from now on) or refused, after a refusal's time. What DynamoDB
    /// checks as a transaction prepares (its conditions) the caller checks
    /// now: a failed condition cancels it at once ([`Admitted::cancel`]),
    /// otherwise [`Admitted::run`] takes its service time.
    pub async fn prepare(
        &self,
        kind: WriteKind,
        keys: Vec<String>,
    ) -> Result<Admitted<'_>, StoreError> {
        match self.admit(kind, &keys) {
            Ok(transaction) => Ok(Admitted {
                contention: self,
                transaction,
                keys,
            }),
            Err(e) => {
                tokio::time::sleep(self.model.write_latency).await;
                Err(e)
            }
        }
    }

    /// Marks the items busy (a transaction) and spends their units, or says
    /// why not, touching nothing.
    fn admit(&self, kind: WriteKind, keys: &[String]) -> Result<Option<u64>, StoreError> {
        let units_each = match kind {
            WriteKind::Transaction => 2 * MICRO,
            WriteKind::Single => MICRO,
        };
        let rate = u64::from(self.model.item_write_units_per_second);
        let now = Instant::now();
        let mut items = self.lock();
        for k in keys {
            let item = items.entry(k.clone()).or_insert_with(|| ItemState {
                busy_with: None,
                micro_units: rate * MICRO,
                refilled: now,
            });
            if item.busy_with.is_some() {
                self.counts.conflicts.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::Contended(format!(
                    "TransactionConflict: a transaction is ongoing for {k}"
                )));
            }
            let elapsed =
                u64::try_from(now.duration_since(item.refilled).as_micros()).unwrap_or(u64::MAX);
            item.micro_units = item
                .micro_units
                .saturating_add(elapsed.saturating_mul(rate))
                .min(rate * MICRO);
            item.refilled = now;
            if item.micro_units < units_each {
                self.counts.throttled.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::Contended(format!(
                    "ThrottlingError: {k} is over {rate} write units a second"
                )));
            }
        }
        let id = match kind {
            WriteKind::Transaction => Some(self.next_transaction.fetch_add(1, Ordering::Relaxed)),
            WriteKind::Single => None,
        };
        for k in keys {
            if let Some(item) = items.get_mut(k) {
                item.micro_units -= units_each;
                item.busy_with = id;
            }
        }
        self.counts.writes.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }
}

/// A store's contention model, if it has one: what each of its calls waits
/// for (a store without one lets every call through at once).
pub async fn modelled_read(contention: Option<&ItemContention>) {
    if let Some(c) = contention {
        c.read().await;
    }
}

/// A single-item write to each of `keys` under the model, if there is one:
/// its time taken, or refused when an item is busy or over its units.
pub async fn modelled_write(
    contention: Option<&ItemContention>,
    keys: impl FnOnce() -> Vec<String>,
) -> Result<(), StoreError> {
    match contention {
        Some(c) => c.write(WriteKind::Single, keys()).await.map(drop),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(tx_ms: u64, units: u32) -> ContentionModel {
        ContentionModel {
            transaction_latency: Duration::from_millis(tx_ms),
            write_latency: Duration::from_millis(1),
            read_latency: Duration::from_millis(1),
            item_write_units_per_second: units,
        }
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_string()).collect()
    }

    #[tokio::test]
    async fn a_transaction_arriving_at_an_item_another_transaction_is_changing_fails() {
        let c = ItemContention::new(model(50, 1_000));
        let (first, second) = tokio::join!(
            c.write(WriteKind::Transaction, keys(&["HOLD#a", "STOCK#X"])),
            async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                c.write(WriteKind::Transaction, keys(&["HOLD#b", "STOCK#X"]))
                    .await
            }
        );
        assert!(first.is_ok(), "the earlier one lands");
        let Err(StoreError::Contended(why)) = second else {
            panic!("the later one must fail as a conflict");
        };
        assert!(why.starts_with("TransactionConflict"), "{why}");
        drop(first);
        // Its own item was not left busy by the refusal.
        assert!(c
            .write(WriteKind::Transaction, keys(&["HOLD#b"]))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn a_single_write_to_an_item_inside_a_running_transaction_fails_and_after_it_lands() {
        let c = ItemContention::new(model(40, 1_000));
        let tx = c.write(WriteKind::Transaction, keys(&["STOCK#X"]));
        let (tx, during) = tokio::join!(tx, async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            c.write(WriteKind::Single, keys(&["STOCK#X"])).await.is_ok()
        });
        assert!(!during);
        drop(tx);
        assert!(c.write(WriteKind::Single, keys(&["STOCK#X"])).await.is_ok());
        // Single writes serialize: two at once both land.
        let (a, b) = tokio::join!(
            c.write(WriteKind::Single, keys(&["STOCK#X"])),
            c.write(WriteKind::Single, keys(&["STOCK#X"]))
        );
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(c.counts().conflicts.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn an_item_takes_no_more_write_units_a_second_than_its_partition() {
        let c = ItemContention::new(model(1, 10));
        let mut landed = 0;
        for _ in 0..8 {
            if c.write(WriteKind::Transaction, keys(&["STOCK#X"]))
                .await
                .is_ok()
            {
                landed += 1;
            }
        }
        // Ten units a second, two a transaction: five land, then throttling.
        assert_eq!(landed, 5);
        assert_eq!(c.counts().throttled.load(Ordering::Relaxed), 3);
        // Another item has its own units.
        assert!(c.write(WriteKind::Single, keys(&["STOCK#Y"])).await.is_ok());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            c.write(WriteKind::Transaction, keys(&["STOCK#X"]))
                .await
                .is_ok(),
            "refilled"
        );
    }
}

#[cfg(test)]
mod stores_on_the_model {
    //! The state store and the open-holds count on the model: writes take
    //! their time and their item's units, as on the table.
    use std::sync::Arc;

    use super::*;
    use crate::adapters::in_process::InProcessOpenHolds;
    use crate::adapters::in_process::InProcessStateStore;
    use crate::ports::holds::OpenHolds;
    use crate::ports::StateStore;

    fn model() -> Arc<ItemContention> {
        Arc::new(ItemContention::new(ContentionModel {
            transaction_latency: Duration::from_millis(4),
            write_latency: Duration::from_millis(3),
            read_latency: Duration::from_millis(2),
            item_write_units_per_second: 3,
        }))
    }

    #[tokio::test]
    async fn a_state_store_write_takes_its_time_and_a_hot_item_is_throttled() {
        let store = InProcessStateStore::new().with_contention(model());
        let began = Instant::now();
        for i in 0..3 {
            store.write_cursor("catalog", &i.to_string()).await.unwrap();
        }
        assert!(
            began.elapsed() >= Duration::from_millis(9),
            "three writes of 3 ms"
        );
        let fourth = store.write_cursor("catalog", "3").await;
        assert!(
            matches!(fourth, Err(StoreError::Contended(ref why)) if why.starts_with("ThrottlingError"))
        );
        // Another item has its own units; a read is never refused.
        store.write_cursor("orders", "1").await.unwrap();
        assert_eq!(
            store.read_cursor("catalog").await.unwrap().as_deref(),
            Some("2")
        );
    }

    #[tokio::test]
    async fn an_open_holds_count_is_a_write_on_its_owners_item() {
        let contention = model();
        let holds = InProcessOpenHolds::new().with_contention(contention.clone());
        let now = chrono::Utc::now();
        let until = now + chrono::Duration::minutes(15);
        for i in 0..3 {
            holds
                .admit("c-1", &format!("k{i}"), until, 5, now)
                .await
                .unwrap();
        }
        assert!(holds.admit("c-1", "k3", until, 5, now).await.is_err());
        holds.admit("c-2", "k0", until, 5, now).await.unwrap();
        assert_eq!(contention.counts().writes.load(Ordering::Relaxed), 4);
    }
}
