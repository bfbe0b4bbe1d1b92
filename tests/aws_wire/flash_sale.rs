//! A flash sale over the wire: the DynamoDB stock adapter through the real
//! SDK against a moto that answers as DynamoDB does under contention
//! (`deploy/moto_serialized.py --contention`): transactions on a busy item
//! cancelled with `TransactionConflict`, single writes refused with
//! `TransactionConflictException`, items over their write rate throttled.
//! The adapter must call all of these contention, and checkout's stock must
//! ride them out into real answers: held or sold out, never unavailable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use retailflow_aws::adapters::dynamodb_stock::DynamoDbStock;
use retailflow_core::checkout::hot_stock::{HotSkus, HotStock};
use retailflow_core::ports::stock::{
    Reservation, ReservationLine, ReserveOutcome, StockReservations,
};
use retailflow_core::ports::StoreError;
use retailflow_e2e::{contended_moto, create_state_table, Moto};

/// The table's stock as the checkout Lambda builds it: the SDK's own
/// retries off, so every conflict and throttle reaches the adapter.
async fn table_stock(moto: &Moto) -> Arc<DynamoDbStock> {
    let cfg = moto.sdk_config().await;
    let setup = aws_sdk_dynamodb::Client::new(&cfg);
    let table = create_state_table(&setup).await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&cfg)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
            .build(),
    );
    Arc::new(DynamoDbStock::new(client, table))
}

fn cart(id: &str, sku: &str) -> Reservation {
    Reservation {
        id: id.into(),
        lines: vec![ReservationLine {
            sku: sku.into(),
            quantity: 1,
        }],
        expires_at: Utc::now() + chrono::Duration::minutes(15),
    }
}

/// Shoppers arriving `gap` apart, each holding one unit; what each was told
/// and how long it took.
async fn sale(
    stock: Arc<dyn StockReservations>,
    sku: &str,
    shoppers: usize,
    gap: Duration,
) -> Vec<(Result<ReserveOutcome, StoreError>, Duration)> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..shoppers)
        .map(|i| {
            let (stock, sku) = (stock.clone(), sku.to_string());
            tokio::spawn(async move {
                tokio::time::sleep_until((start + gap * i as u32).into()).await;
                let began = Instant::now();
                let out = stock
                    .reserve(&cart(&format!("shopper-{i}"), &sku), Utc::now())
                    .await;
                (out, began.elapsed())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

fn tally(answers: &[(Result<ReserveOutcome, StoreError>, Duration)]) -> (usize, usize, usize) {
    let held = answers
        .iter()
        .filter(|(a, _)| matches!(a, Ok(ReserveOutcome::Reserved)))
        .count();
    let sold_out = answers
        .iter()
        .filter(|(a, _)| matches!(a, Ok(ReserveOutcome::Short { .. })))
        .count();
    (held, sold_out, answers.len() - held - sold_out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflict_or_a_throttle_reaches_the_caller_as_contention_not_as_an_outage() {
    // Each transaction keeps its items busy 300 ms: the second checkout of
    // the SKU arrives while the first runs.
    let moto = contended_moto(300, 0);
    let stock = table_stock(&moto).await;
    stock.set_on_hand("DROP", 5).await.unwrap();
    let first = {
        let stock = stock.clone();
        tokio::spawn(async move { stock.reserve(&cart("a", "DROP"), Utc::now()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = stock.reserve(&cart("b", "DROP"), Utc::now()).await;
    assert!(
        matches!(&second, Err(StoreError::Contended(why)) if why.contains("TransactionConflict")),
        "a transaction on a busy item: {second:?}"
    );
    // A single write to the item inside the running transaction.
    let plain = stock.adjust_on_hand("DROP", 1, false).await;
    assert!(
        matches!(&plain, Err(StoreError::Contended(why)) if why.contains("TransactionConflictException")),
        "a single write on a busy item: {plain:?}"
    );
    assert_eq!(first.await.unwrap().unwrap(), ReserveOutcome::Reserved);
    assert!(second.unwrap_err().is_retryable());

    // An item over its write rate: 4 units a second, 2 a transaction item.
    let moto = contended_moto(1, 4);
    let stock = table_stock(&moto).await;
    stock.set_on_hand("DROP", 5).await.unwrap();
    let mut throttled = None;
    for i in 0..4 {
        if let Err(e) = stock
            .reserve(&cart(&format!("t{i}"), "DROP"), Utc::now())
            .await
        {
            throttled = Some(e);
            break;
        }
    }
    assert!(
        matches!(&throttled, Some(StoreError::Contended(why)) if why.contains("ThrottlingError")),
        "a throttled transaction: {throttled:?}"
    );
    let mut plain = Ok(true);
    for _ in 0..10 {
        plain = stock.adjust_on_hand("DROP", 1, false).await;
        if plain.is_err() {
            break;
        }
    }
    assert!(
        matches!(&plain, Err(StoreError::Contended(why)) if why.contains("ThrottlingException")),
        "a throttled single write: {plain:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checkouts_of_one_sku_ride_out_conflicts_and_throttling_into_held_or_sold_out() {
    // 20 ms transactions, and an item takes 20 write units a second: 10
    // transactions, so shoppers arriving every 5 ms on one counter meet
    // both conflicts and throttling.
    let moto = contended_moto(20, 20);
    let table = table_stock(&moto).await;
    // Not sharded: every checkout contends on the one counter. The budget
    // is wider than a shopper's (moto on a shared machine is slower than
    // DynamoDB); what is under test is that contention is retried.
    let stock: Arc<dyn StockReservations> = Arc::new(
        HotStock::new(table.clone(), HotSkus::none()).with_budget(Duration::from_secs(20)),
    );
    stock.set_on_hand("DROP", 8).await.unwrap();
    let answers = sale(stock.clone(), "DROP", 30, Duration::from_millis(5)).await;
    let (conflicts, throttled) = moto.contention_counts();
    let (held, sold_out, unavailable) = tally(&answers);
    println!(
        "one counter on moto: held {held}, sold out {sold_out}, unavailable {unavailable}; conflicts {conflicts}, throttled {throttled}"
    );
    assert!(conflicts > 0, "the shoppers met conflicts");
    assert!(throttled > 0, "the counter was throttled");
    assert_eq!(unavailable, 0, "{answers:?}");
    assert_eq!((held, sold_out), (8, 22));
    assert_eq!(stock.available("DROP", Utc::now()).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sharded_hot_sku_on_moto_sells_every_unit_once() {
    let moto = contended_moto(20, 0);
    let table = table_stock(&moto).await;
    let stock = Arc::new(
        HotStock::new(table.clone(), HotSkus::all(["DROP"], 5))
            .with_budget(Duration::from_secs(20)),
    );
    stock.set_on_hand("DROP", 20).await.unwrap();
    // Spread over the five counters, four units each.
    let shards: Vec<String> = (0..5)
        .map(|k| retailflow_core::checkout::hot_stock::shard_sku("DROP", k))
        .collect();
    let levels = table.levels(&shards).await.unwrap();
    assert!(levels.iter().all(|l| l.available == 4), "{levels:?}");
    let answers = sale(stock.clone(), "DROP", 80, Duration::from_millis(3)).await;
    let (conflicts, _) = moto.contention_counts();
    let (held, sold_out, unavailable) = tally(&answers);
    let mut took: Vec<Duration> = answers.iter().map(|(_, d)| *d).collect();
    took.sort();
    println!(
        "five counters on moto: held {held}, sold out {sold_out}, unavailable {unavailable}; conflicts {conflicts}, retries {}; p50 {} ms, p99 {} ms",
        stock.retries(),
        took[took.len() / 2].as_millis(),
        took[took.len() * 99 / 100].as_millis()
    );
    assert_eq!(unavailable, 0, "{answers:?}");
    assert_eq!((held, sold_out), (20, 60));
    let levels = table.levels(&shards).await.unwrap();
    assert!(levels.iter().all(|l| l.available == 0), "{levels:?}");
    // Every hold given back: each counter has its units again.
    for i in 0..80 {
        stock.release(&format!("shopper-{i}")).await.unwrap();
    }
    assert_eq!(stock.available("DROP", Utc::now()).await.unwrap(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_order_without_a_hold_redelivered_after_its_commit_is_already_committed() {
    use retailflow_core::ports::stock::{CommitOutcome, OrderCommit};
    let moto = contended_moto(1, 0);
    let table = table_stock(&moto).await;
    let stock = HotStock::new(table.clone(), HotSkus::all(["DROP"], 3));
    stock.set_on_hand("DROP", 9).await.unwrap();
    let till = OrderCommit {
        order_key: "shopify:1#1001".into(),
        reservation_id: None,
        lines: vec![ReservationLine {
            sku: "DROP".into(),
            quantity: 4,
        }],
    };
    let first = stock.commit_order(&till, Utc::now()).await.unwrap();
    assert!(
        matches!(first, CommitOutcome::WithoutHold { ref oversold, .. } if oversold.is_empty())
    );
    // Its own hold ended committed: a redelivery answers from the commit.
    let again = stock.commit_order(&till, Utc::now()).await.unwrap();
    assert_eq!(again, CommitOutcome::AlreadyCommitted);
    assert_eq!(stock.available("DROP", Utc::now()).await.unwrap(), 5);
    assert!(stock.restock_order(&till.order_key, None).await.unwrap());
    assert_eq!(stock.available("DROP", Utc::now()).await.unwrap(), 9);
}
