use std::sync::Arc;

use super::*;

fn hold(id: &str, lines: &[(&str, u32)], expires_at: DateTime<Utc>) -> Reservation {
    Reservation {
        id: id.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| ReservationLine {
                sku: (*sku).into(),
                quantity: *quantity,
            })
            .collect(),
        expires_at,
    }
}

#[tokio::test]
async fn a_cart_is_held_whole_or_not_at_all() {
    let s = InProcessStock::new();
    let now = Utc::now();
    s.set_on_hand("A", 5).await.unwrap();
    s.set_on_hand("B", 1).await.unwrap();
    let later = now + chrono::Duration::minutes(15);
    let out = s
        .reserve(&hold("r1", &[("A", 2), ("B", 2)], later), now)
        .await
        .unwrap();
    assert_eq!(
        out,
        ReserveOutcome::Short {
            sku: "B".into(),
            available: 1
        }
    );
    assert_eq!(s.available("A", now).await.unwrap(), 5, "A untouched");
    // The same SKU on two lines counts twice.
    let out = s
        .reserve(&hold("r2", &[("A", 3), ("A", 3)], later), now)
        .await
        .unwrap();
    assert!(matches!(out, ReserveOutcome::Short { .. }));
}

#[tokio::test]
async fn holds_expire_back_into_stock_and_commits_leave_it_for_good() {
    let s = InProcessStock::new();
    let now = Utc::now();
    let ttl = chrono::Duration::minutes(15);
    s.set_on_hand("A", 3).await.unwrap();
    s.reserve(&hold("r1", &[("A", 2)], now + ttl), now)
        .await
        .unwrap();
    s.reserve(&hold("r2", &[("A", 1)], now + ttl), now)
        .await
        .unwrap();
    assert_eq!(s.available("A", now).await.unwrap(), 0);
    let order = |key: &str, hold: &str, qty| OrderCommit {
        order_key: key.into(),
        reservation_id: Some(hold.into()),
        lines: vec![ReservationLine {
            sku: "A".into(),
            quantity: qty,
        }],
    };
    assert_eq!(
        s.commit_order(&order("o1", "r1", 2), now).await.unwrap(),
        CommitOutcome::FromHold
    );
    assert_eq!(
        s.commit_order(&order("o1", "r1", 2), now).await.unwrap(),
        CommitOutcome::AlreadyCommitted,
        "once"
    );
    assert_eq!(s.available("A", now + ttl).await.unwrap(), 1, "r2 expired");
    // The order of an expired hold still sells its unit, from what is free.
    assert_eq!(
        s.commit_order(&order("o2", "r2", 1), now + ttl)
            .await
            .unwrap(),
        CommitOutcome::WithoutHold {
            oversold: vec![],
            untracked: vec![]
        }
    );
    assert_eq!(s.available("A", now + ttl).await.unwrap(), 0);
    // Cancelled: its unit comes back, once.
    assert!(s.restock_order("o2", Some("r2")).await.unwrap());
    assert!(!s.restock_order("o2", Some("r2")).await.unwrap());
    assert_eq!(s.available("A", now + ttl).await.unwrap(), 1);
    // The ERP counts fewer than are held: no new hold fits.
    s.reserve(&hold("r3", &[("A", 1)], now + ttl * 2), now + ttl)
        .await
        .unwrap();
    s.set_on_hand("A", 0).await.unwrap();
    assert_eq!(s.available("A", now + ttl).await.unwrap(), 0);
}

#[tokio::test]
async fn a_flash_sale_of_ten_thousand_checkouts_sells_exactly_the_hundred_units() {
    let s = Arc::new(InProcessStock::new());
    let now = Utc::now();
    let ttl = chrono::Duration::minutes(15);
    s.set_on_hand("DROP", 100).await.unwrap();
    let tasks: Vec<_> = (0..10_000)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.reserve(&hold(&format!("c{i}"), &[("DROP", 1)], now + ttl), now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut reserved = 0;
    for t in tasks {
        if t.await.unwrap() == ReserveOutcome::Reserved {
            reserved += 1;
        }
    }
    assert_eq!(reserved, 100);
    assert_eq!(s.available("DROP", now).await.unwrap(), 0);
    // Nobody paid: the holds run out and the units are back.
    assert_eq!(s.available("DROP", now + ttl).await.unwrap(), 100);
}

#[tokio::test]
async fn a_changed_cart_under_the_same_checkout_gives_its_old_hold_back() {
    let s = InProcessStock::new();
    let now = Utc::now();
    let later = now + chrono::Duration::minutes(15);
    s.set_on_hand("A", 2).await.unwrap();
    s.set_on_hand("B", 2).await.unwrap();
    s.reserve(&hold("co", &[("A", 2)], later), now)
        .await
        .unwrap();
    assert_eq!(s.available("A", now).await.unwrap(), 0);
    s.reserve(&hold("co", &[("B", 1)], later), now)
        .await
        .unwrap();
    assert_eq!(s.available("A", now).await.unwrap(), 2, "old hold back");
    assert_eq!(s.available("B", now).await.unwrap(), 1);
}
