use super::*;
use crate::adapters::contention::{ContentionModel, ItemContention};
use crate::adapters::in_process::InProcessStock;

fn hold(id: &str, lines: &[(&str, u32)], now: DateTime<Utc>) -> Reservation {
    Reservation {
        id: id.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| ReservationLine {
                sku: (*sku).into(),
                quantity: *quantity,
            })
            .collect(),
        expires_at: now + chrono::Duration::minutes(15),
    }
}

/// Fast service times, the same rules: conflicts are as likely as on
/// DynamoDB relative to the arrivals, and a test runs in milliseconds.
fn contended() -> Arc<InProcessStock> {
    Arc::new(
        InProcessStock::new().with_contention(Arc::new(ItemContention::new(ContentionModel {
            transaction_latency: Duration::from_millis(4),
            write_latency: Duration::from_millis(2),
            read_latency: Duration::from_millis(1),
            item_write_units_per_second: 1_000,
        }))),
    )
}

fn free_per_shard(levels: &[StockLevel]) -> Vec<i64> {
    levels.iter().map(|l| l.available).collect()
}

#[test]
fn hot_skus_are_read_as_sku_equals_shards_and_refused_when_malformed() {
    let hot = HotSkus::parse(" DROP-1=10, DROP-2 = 4 ,").unwrap();
    assert_eq!(hot.shards("DROP-1"), 10);
    assert_eq!(hot.shards("DROP-2"), 4);
    assert_eq!(hot.shards("OTHER"), 1);
    for bad in [
        "DROP",
        "DROP=0",
        "DROP=101",
        "DROP=x",
        "=4",
        "DROP#shard2=4",
    ] {
        assert!(HotSkus::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(HotSkus::from_settings(|_| None).unwrap(), HotSkus::none());
    assert_eq!(base_sku(&shard_sku("A#B", 7)), "A#B");
    assert_eq!(base_sku("A#shardX"), "A#shardX");
}

#[test]
fn a_sale_gets_counters_for_one_conflict_in_ten_tries_within_half_its_units() {
    let l = Duration::from_millis(20);
    // 5,000 shoppers over 60 s for one SKU.
    assert_eq!(recommended_shards(5_000.0 / 60.0, 1, l, 100), 17);
    // 20 SKUs in 3-line carts: 12.5 checkouts a second each.
    assert_eq!(recommended_shards(12.5, 3, l, 100), 8);
    // Over 10 s: capped at half the units.
    assert_eq!(recommended_shards(500.0, 1, l, 100), 50);
    assert_eq!(recommended_shards(5_000.0, 1, l, 10_000), MAX_SHARDS);
    assert_eq!(recommended_shards(0.0, 1, l, 0), 1);
}

#[tokio::test]
async fn a_hot_skus_units_are_spread_evenly_over_its_counters_and_a_count_never_takes_a_held_unit()
{
    let table = Arc::new(InProcessStock::new());
    let stock = HotStock::new(table.clone(), HotSkus::all(["DROP"], 4));
    let now = Utc::now();
    // Marked hot with its units all on its own counter: spread.
    table.set_on_hand("DROP", 10).await.unwrap();
    stock.set_on_hand("DROP", 10).await.unwrap();
    let shards = stock.shards_of("DROP");
    assert_eq!(
        free_per_shard(&table.levels(&shards).await.unwrap()),
        [3, 3, 2, 2]
    );
    for i in 0..6 {
        let out = stock
            .reserve(&hold(&format!("c{i}"), &[("DROP", 1)], now), now)
            .await;
        assert_eq!(out.unwrap(), ReserveOutcome::Reserved);
    }
    assert_eq!(stock.available("DROP", now).await.unwrap(), 4);
    // The ERP counts 5 (nothing unposted): one fewer on hand, taken
    // where it was free; the six holds stay.
    let out = stock.apply_erp_count("DROP", 5, now).await.unwrap();
    assert!(
        matches!(
            out,
            CountOutcome::Applied {
                on_hand: 5,
                changed: true,
                ..
            }
        ),
        "{out:?}"
    );
    let levels = table.levels(&shards).await.unwrap();
    assert_eq!(levels.iter().map(|l| l.on_hand).sum::<i64>(), 5);
    assert!(levels.iter().all(|l| l.available <= 0), "{levels:?}");
    // Below what is held: no new hold fits, and the holds are kept.
    let out = stock
        .reserve(&hold("late", &[("DROP", 1)], now), now)
        .await
        .unwrap();
    assert!(matches!(out, ReserveOutcome::Short { ref sku, available: 0 } if sku == "DROP"));
    assert_eq!(stock.held("c0").await.unwrap().unwrap()[0].sku, "DROP");
}

#[tokio::test]
async fn the_same_cart_validated_again_keeps_its_counter_and_a_changed_cart_moves_it() {
    let table = Arc::new(InProcessStock::new());
    let stock = HotStock::new(table.clone(), HotSkus::all(["DROP"], 4));
    let now = Utc::now();
    stock.set_on_hand("DROP", 4).await.unwrap();
    stock.set_on_hand("TEE", 5).await.unwrap();
    stock
        .reserve(&hold("c", &[("DROP", 1)], now), now)
        .await
        .unwrap();
    let first = table.held("c").await.unwrap().unwrap();
    for _ in 0..10 {
        stock
            .reserve(&hold("c", &[("DROP", 1)], now), now)
            .await
            .unwrap();
        assert_eq!(table.held("c").await.unwrap().unwrap(), first);
    }
    // Three other shoppers take the rest: the held unit is still this
    // checkout's, and a changed cart can use it.
    for i in 0..3 {
        stock
            .reserve(&hold(&format!("o{i}"), &[("DROP", 1)], now), now)
            .await
            .unwrap();
    }
    let out = stock
        .reserve(&hold("c", &[("DROP", 1), ("TEE", 2)], now), now)
        .await;
    assert_eq!(out.unwrap(), ReserveOutcome::Reserved);
    assert_eq!(stock.held("c").await.unwrap().unwrap().len(), 2);
    assert_eq!(stock.available("TEE", now).await.unwrap(), 3);
    assert_eq!(stock.available("DROP", now).await.unwrap(), 0);
}

#[tokio::test]
async fn an_order_without_a_hold_takes_only_free_units_of_a_hot_sku_and_reports_the_rest_oversold()
{
    let table = Arc::new(InProcessStock::new());
    let stock = HotStock::new(table.clone(), HotSkus::all(["DROP"], 3));
    let now = Utc::now();
    stock.set_on_hand("DROP", 6).await.unwrap();
    for i in 0..4 {
        stock
            .reserve(&hold(&format!("c{i}"), &[("DROP", 1)], now), now)
            .await
            .unwrap();
    }
    // A till sale of 2 (what is free) and a SKU retailflow does not count.
    let till = |key: &str, qty| OrderCommit {
        order_key: key.into(),
        reservation_id: None,
        lines: vec![
            ReservationLine {
                sku: "DROP".into(),
                quantity: qty,
            },
            ReservationLine {
                sku: "GIFT-CARD".into(),
                quantity: 1,
            },
        ],
    };
    let out = stock.commit_order(&till("till-1", 2), now).await.unwrap();
    assert_eq!(
        out,
        CommitOutcome::WithoutHold {
            oversold: vec![],
            untracked: vec!["GIFT-CARD".into()]
        }
    );
    assert_eq!(stock.available("DROP", now).await.unwrap(), 0);
    assert!(
        stock.held("order:till-1").await.unwrap().is_none(),
        "its own hold is gone"
    );
    // Nothing free: the next one is oversold, said under the SKU's name,
    // and the four checkouts keep their units.
    let out = stock.commit_order(&till("till-2", 1), now).await.unwrap();
    let CommitOutcome::WithoutHold { oversold, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        oversold,
        vec![ReservationLine {
            sku: "DROP".into(),
            quantity: 1
        }]
    );
    for i in 0..4 {
        assert!(stock.held(&format!("c{i}")).await.unwrap().is_some());
    }
    // A cancelled till sale gives its units back to the counters it took them from.
    assert!(stock.restock_order("till-1", None).await.unwrap());
    assert_eq!(stock.available("DROP", now).await.unwrap(), 1);
}

#[tokio::test]
async fn a_counter_in_debt_is_paid_from_the_others_before_their_units_are_held() {
    let table = Arc::new(InProcessStock::new());
    let stock = HotStock::new(table.clone(), HotSkus::all(["DROP"], 2));
    let now = Utc::now();
    // Shard 0: 2 on hand, both held, then one more sold at the till:
    // one unit in debt. Shard 1: 5 free. Truly free: 4.
    table.set_on_hand("DROP", 2).await.unwrap();
    table.set_on_hand("DROP#shard1", 5).await.unwrap();
    table
        .reserve(&hold("x", &[("DROP", 2)], now), now)
        .await
        .unwrap();
    assert!(table.adjust_on_hand("DROP", -1, false).await.unwrap());
    assert_eq!(stock.available("DROP", now).await.unwrap(), 4);
    let mut held = 0;
    for i in 0..6 {
        match stock
            .reserve(&hold(&format!("c{i}"), &[("DROP", 1)], now), now)
            .await
            .unwrap()
        {
            ReserveOutcome::Reserved => held += 1,
            ReserveOutcome::Short { sku, available } => {
                assert_eq!((sku.as_str(), available), ("DROP", 0));
            }
        }
    }
    assert_eq!(held, 4, "no more than is free");
    let levels = table.levels(&stock.shards_of("DROP")).await.unwrap();
    assert_eq!(levels.iter().map(|l| l.on_hand).sum::<i64>(), 6);
    assert!(levels.iter().all(|l| l.available == 0), "{levels:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_hot_skus_in_multi_line_carts_never_oversell_and_leak_nothing_once_the_holds_expire()
{
    let table = contended();
    let skus: Vec<String> = (0..20).map(|i| format!("HOT-{i}")).collect();
    // A wide budget: under test are the guarantees, not the latency
    // (`retailflow bench-flash-sale` measures that).
    let stock = Arc::new(
        HotStock::new(
            table.clone(),
            HotSkus::all(skus.iter().map(String::as_str), 4),
        )
        .with_budget(Duration::from_secs(30)),
    );
    let now = Utc::now();
    for s in &skus {
        stock.set_on_hand(s, 10).await.unwrap();
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let (stock, skus) = (stock.clone(), skus.clone());
            tokio::spawn(async move {
                tokio::time::sleep_until((start + Duration::from_micros(500 * i)).into()).await;
                // Three distinct SKUs, one to three units each.
                let mut rng = fastrand::Rng::with_seed(i);
                let mut picked = skus.clone();
                rng.shuffle(&mut picked);
                let lines: Vec<(String, u32)> = picked
                    .into_iter()
                    .take(3)
                    .map(|s| (s, rng.u32(1..=3)))
                    .collect();
                let refs: Vec<(&str, u32)> = lines.iter().map(|(s, q)| (s.as_str(), *q)).collect();
                let cart = hold(&format!("cart-{i}"), &refs, now);
                let out = stock.reserve(&cart, now).await;
                (cart, out)
            })
        })
        .collect();
    let mut held_units: BTreeMap<String, u64> = BTreeMap::new();
    let mut placed = 0;
    for t in tasks {
        let (cart, out) = t.await.unwrap();
        match out.unwrap_or_else(|e| panic!("{} got no answer: {e}", cart.id)) {
            ReserveOutcome::Reserved => {
                for l in &cart.lines {
                    *held_units.entry(l.sku.clone()).or_default() += u64::from(l.quantity);
                }
                // Every third held cart becomes an order.
                placed += 1;
                if placed % 3 == 0 {
                    let out = stock
                        .commit_order(
                            &OrderCommit {
                                order_key: format!("order-{}", cart.id),
                                reservation_id: Some(cart.id.clone()),
                                lines: cart.lines.clone(),
                            },
                            now,
                        )
                        .await
                        .unwrap();
                    assert_eq!(out, CommitOutcome::FromHold);
                }
            }
            ReserveOutcome::Short { .. } => {}
        }
    }
    assert!(placed > 20, "the sale sold: {placed} carts held");
    for s in &skus {
        let held = held_units.get(s).copied().unwrap_or(0);
        let free = u64::from(stock.available(s, now).await.unwrap());
        assert!(held <= 10, "{s}: {held} units held of 10");
        assert_eq!(held + free, 10, "{s}: held {held}, free {free}");
    }
    // Nobody else pays: the holds run out and every unit not ordered is back.
    let later = now + chrono::Duration::minutes(16);
    stock.sweep_expired(later).await.unwrap();
    let ordered: u64 = {
        let mut n = 0;
        for s in &skus {
            let shards = stock.shards_of(s);
            let on_hand: i64 = table
                .levels(&shards)
                .await
                .unwrap()
                .iter()
                .map(|l| l.on_hand)
                .sum();
            let free = u64::from(stock.available(s, later).await.unwrap());
            assert_eq!(
                i64::try_from(free).unwrap(),
                on_hand,
                "{s}: nothing held after expiry"
            );
            n += 10 - free;
        }
        n
    };
    assert!(ordered > 0);
    let counts = table.contention().unwrap().counts();
    assert!(
        counts.conflicts.load(Ordering::Relaxed) > 0,
        "the carts met each other's transactions"
    );
}
