//! Stock holds over real DynamoDB (moto): checkouts racing for the last
//! units never hold more than there is, a cart is held whole or not at all,
//! expired holds come back by the sweep, and a placed order commits its
//! hold once (or sells from free stock, saying what it oversold).

use std::sync::Arc;

use chrono::{Duration, Utc};
use retailflow_aws::adapters::dynamodb_stock::DynamoDbStock;
use retailflow_core::ports::stock::{
    CommitOutcome, OrderCommit, Reservation, ReservationLine, ReserveOutcome, StockReservations,
};
use retailflow_e2e::{aws_config, create_state_table, unique};

fn hold(id: &str, lines: &[(&str, u32)], expires_at: chrono::DateTime<Utc>) -> Reservation {
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

async fn stock() -> DynamoDbStock {
    let cfg = aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table = create_state_table(&ddb).await;
    DynamoDbStock::new(ddb, table)
}

#[tokio::test]
async fn checkouts_racing_for_twenty_units_hold_exactly_twenty() {
    let s = Arc::new(stock().await);
    let sku = unique("drop");
    let now = Utc::now();
    s.set_on_hand(&sku, 20).await.unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (s, sku) = (s.clone(), sku.clone());
            tokio::spawn(async move {
                // A checkout that meets a conflicting transaction retries.
                for _ in 0..50 {
                    match s
                        .reserve(
                            &hold(&format!("c{i}"), &[(&sku, 1)], now + Duration::minutes(15)),
                            now,
                        )
                        .await
                    {
                        Ok(o) => return o,
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                    }
                }
                panic!("checkout {i} never got an answer")
            })
        })
        .collect();
    let mut held = 0;
    for t in tasks {
        if t.await.unwrap() == ReserveOutcome::Reserved {
            held += 1;
        }
    }
    assert_eq!(held, 20);
    assert_eq!(s.available(&sku, now).await.unwrap(), 0);
}

#[tokio::test]
async fn a_cart_is_held_whole_or_not_at_all_and_holds_end_once() {
    let s = stock().await;
    let (a, b) = (unique("a"), unique("b"));
    let now = Utc::now();
    let later = now + Duration::minutes(15);
    s.set_on_hand(&a, 5).await.unwrap();
    s.set_on_hand(&b, 1).await.unwrap();
    assert_eq!(
        s.reserve(&hold("cart-1", &[(&a, 2), (&b, 2)], later), now)
            .await
            .unwrap(),
        ReserveOutcome::Short {
            sku: b.clone(),
            available: 1
        }
    );
    assert_eq!(
        s.available(&a, now).await.unwrap(),
        5,
        "nothing of the cart held"
    );
    assert_eq!(
        s.reserve(&hold("cart-2", &[(&a, 2), (&b, 1)], later), now)
            .await
            .unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(
        s.reserve(&hold("cart-2", &[(&a, 2), (&b, 1)], later), now)
            .await
            .unwrap(),
        ReserveOutcome::Reserved,
        "the same checkout again holds nothing more"
    );
    assert_eq!(s.available(&a, now).await.unwrap(), 3);
    let order = OrderCommit {
        order_key: unique("order"),
        reservation_id: Some("cart-2".into()),
        lines: hold("cart-2", &[(&b, 1), (&a, 2)], later).lines,
    };
    assert_eq!(
        s.commit_order(&order, now).await.unwrap(),
        CommitOutcome::FromHold
    );
    assert_eq!(
        s.commit_order(&order, now).await.unwrap(),
        CommitOutcome::AlreadyCommitted,
        "once"
    );
    assert_eq!(
        s.available(&a, now).await.unwrap(),
        3,
        "sold: gone from stock"
    );
    // The ERP counts 2 on hand now (it shipped one elsewhere).
    s.set_on_hand(&a, 2).await.unwrap();
    assert_eq!(s.available(&a, now).await.unwrap(), 2);
}

#[tokio::test]
async fn expired_holds_come_back_by_the_sweep() {
    let s = stock().await;
    let sku = unique("exp");
    let now = Utc::now();
    s.set_on_hand(&sku, 3).await.unwrap();
    s.reserve(
        &hold(&unique("h"), &[(&sku, 3)], now + Duration::minutes(15)),
        now,
    )
    .await
    .unwrap();
    assert_eq!(s.available(&sku, now).await.unwrap(), 0);
    let after = now + Duration::minutes(17);
    // A checkout that finds the SKU short sweeps, then holds.
    assert_eq!(
        s.reserve(
            &hold("late", &[(&sku, 1)], after + Duration::minutes(15)),
            after
        )
        .await
        .unwrap(),
        ReserveOutcome::Short {
            sku: sku.clone(),
            available: 0
        }
    );
    assert!(s.sweep_expired(after).await.unwrap() >= 1);
    assert_eq!(s.available(&sku, after).await.unwrap(), 3);
    assert_eq!(
        s.reserve(
            &hold("late", &[(&sku, 1)], after + Duration::minutes(15)),
            after
        )
        .await
        .unwrap(),
        ReserveOutcome::Reserved
    );
}

#[tokio::test]
async fn a_hold_costs_one_dynamodb_request() {
    use retailflow_e2e::RequestCounter;
    let cfg = aws_config().await;
    let table = create_state_table(&aws_sdk_dynamodb::Client::new(&cfg)).await;
    let count = RequestCounter::default();
    let ddb = retailflow_e2e::counted_dynamodb(&cfg, &count);
    let s = DynamoDbStock::new(ddb, table);
    let now = Utc::now();
    let skus: Vec<String> = (0..5).map(|i| unique(&format!("line{i}"))).collect();
    for sku in &skus {
        s.set_on_hand(sku, 10).await.unwrap();
    }
    count.take();
    let lines: Vec<(&str, u32)> = skus.iter().map(|s| (s.as_str(), 1)).collect();
    assert_eq!(
        s.reserve(
            &hold("five-lines", &lines, now + Duration::minutes(15)),
            now
        )
        .await
        .unwrap(),
        ReserveOutcome::Reserved
    );
    let requests = count.take();
    println!("DynamoDB requests to hold a 5-line cart: {requests}");
    assert_eq!(requests, 1, "one TransactWriteItems");
}

#[tokio::test]
async fn a_checkout_over_dynamodb_reads_the_catalog_in_batches_and_holds_in_one_write() {
    use retailflow_aws::adapters::dynamodb_catalog::DynamoDbCatalog;
    use retailflow_connectors::salesforce::{SalesforceLoyalty, SalesforceLoyaltyConfig};
    use retailflow_core::checkout::pricing::{CartLine, PriceEntry};
    use retailflow_core::checkout::promotions::{Discount, Promotion, Scope};
    use retailflow_core::checkout::validation::{
        CheckoutConfig, CheckoutRequest, CheckoutResponse, CheckoutValidation,
    };
    use retailflow_core::money::{Currency, Money};
    use retailflow_e2e::RequestCounter;
    let cfg = aws_config().await;
    let table = create_state_table(&aws_sdk_dynamodb::Client::new(&cfg)).await;
    let count = RequestCounter::default();
    let ddb = retailflow_e2e::counted_dynamodb(&cfg, &count);
    let usd = Currency::from_code("USD").unwrap();
    let catalog = Arc::new(DynamoDbCatalog::new(ddb.clone(), &table));
    let stock = Arc::new(DynamoDbStock::new(ddb, &table));
    let skus: Vec<String> = (0..5).map(|i| unique(&format!("sku{i}"))).collect();
    for sku in &skus {
        let price = |version| PriceEntry {
            sku: sku.clone(),
            price: Money::new(2000, usd),
            version,
            collections: ["all".to_string()].into(),
        };
        assert!(catalog.put_price(&price(2)).await.unwrap());
        assert!(
            !catalog.put_price(&price(1)).await.unwrap(),
            "an older price never overwrites a newer one"
        );
        stock.set_on_hand(sku, 10).await.unwrap();
    }
    catalog
        .put_promotion(&Promotion {
            code: "TEN".into(),
            discount: Discount::Percent { basis_points: 1000 },
            min_spend: None,
            scope: Scope::All,
            starts_at: None,
            ends_at: None,
            per_customer_limit: None,
        })
        .await
        .unwrap();
    let checkout = CheckoutValidation::new(
        catalog,
        stock,
        Arc::new(retailflow_core::adapters::in_process::InProcessOpenHolds::new()),
        // Not called: no points are redeemed.
        Arc::new(SalesforceLoyalty::new(SalesforceLoyaltyConfig {
            base_url: "http://127.0.0.1:9".into(),
            api_version: "v62.0".into(),
            program_name: "P".into(),
            journal_subtype: "Purchase".into(),
            debit_process: "DebitPointsFromMembers".into(),
            auth: retailflow_connectors::auth::SalesforceAuth::from_secret(
                retailflow_core::credentials::ConnectorSecrets::fixed(&Default::default()),
                "http://127.0.0.1:9",
            ),
            timeout: std::time::Duration::from_millis(100),
        })),
        Arc::new(retailflow_core::resilience::CircuitBreaker::new(
            "loyalty",
            5,
            std::time::Duration::from_secs(60),
        )),
        CheckoutConfig::default(),
    );
    let req = CheckoutRequest {
        checkout_id: unique("co"),
        customer_id: Some("c".into()),
        loyalty_member: None,
        lines: skus
            .iter()
            .map(|s| CartLine {
                sku: s.clone(),
                quantity: 1,
                shown_price: Money::new(2000, usd),
            })
            .collect(),
        promotion_codes: vec!["TEN".into()],
        points_to_redeem: 0,
    };
    count.take();
    let resp = checkout.validate(&req, Utc::now()).await;
    let requests = count.take();
    let CheckoutResponse::Accepted { totals, .. } = &resp else {
        panic!("{resp:?}")
    };
    assert_eq!(totals.total.minor, 9000);
    println!("DynamoDB requests per checkout (5 lines, one promotion): {requests}");
    assert_eq!(
        requests, 3,
        "prices in one BatchGetItem, the promotion in one, the hold in one TransactWriteItems"
    );
}

#[tokio::test]
async fn a_changed_cart_gives_its_old_hold_back_and_a_remade_hold_is_not_swept_early() {
    let s = stock().await;
    let (a, b) = (unique("a"), unique("b"));
    let now = Utc::now();
    s.set_on_hand(&a, 2).await.unwrap();
    s.set_on_hand(&b, 2).await.unwrap();
    s.reserve(&hold("co-x", &[(&a, 2)], now + Duration::minutes(5)), now)
        .await
        .unwrap();
    // The customer changes the cart and validates again, later.
    let later = now + Duration::minutes(3);
    assert_eq!(
        s.reserve(
            &hold("co-x", &[(&b, 1)], later + Duration::minutes(15)),
            later
        )
        .await
        .unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(s.available(&a, later).await.unwrap(), 2, "old hold back");
    assert_eq!(s.available(&b, later).await.unwrap(), 1);
    // The old hold's expiry minute passes: the new hold is not swept.
    let swept_at = now + Duration::minutes(7);
    s.sweep_expired(swept_at).await.unwrap();
    assert_eq!(s.available(&b, swept_at).await.unwrap(), 1, "still held");
}

#[tokio::test]
async fn the_same_cart_validated_again_keeps_its_hold_to_the_new_expiry() {
    let s = stock().await;
    let sku = unique("again");
    let now = Utc::now();
    s.set_on_hand(&sku, 1).await.unwrap();
    s.reserve(
        &hold("co-again", &[(&sku, 1)], now + Duration::minutes(2)),
        now,
    )
    .await
    .unwrap();
    // Validated again a minute later, lines in another order do not matter.
    let later = now + Duration::minutes(1);
    assert_eq!(
        s.reserve(
            &hold("co-again", &[(&sku, 1)], later + Duration::minutes(15)),
            later
        )
        .await
        .unwrap(),
        ReserveOutcome::Reserved
    );
    let past_first_expiry = now + Duration::minutes(5);
    s.sweep_expired(past_first_expiry).await.unwrap();
    assert_eq!(
        s.available(&sku, past_first_expiry).await.unwrap(),
        0,
        "still held to the new expiry"
    );
}

#[tokio::test]
async fn an_order_without_a_live_hold_sells_from_free_stock_and_says_what_it_oversold() {
    let cfg = aws_config().await;
    let table = create_state_table(&aws_sdk_dynamodb::Client::new(&cfg)).await;
    let count = retailflow_e2e::RequestCounter::default();
    let s = DynamoDbStock::new(retailflow_e2e::counted_dynamodb(&cfg, &count), table);
    let now = Utc::now();
    let later = now + Duration::minutes(15);
    let (a, untracked) = (unique("free"), unique("nostock"));
    s.set_on_hand(&a, 3).await.unwrap();
    // Another checkout holds 2 of the 3.
    s.reserve(&hold(&unique("other"), &[(&a, 2)], later), now)
        .await
        .unwrap();
    // A till sale of 2 (no checkout) and a SKU retailflow does not stock.
    let order = OrderCommit {
        order_key: unique("till-order"),
        reservation_id: None,
        lines: hold("-", &[(&a, 2), (&untracked, 1)], later).lines,
    };
    assert_eq!(
        s.commit_order(&order, now).await.unwrap(),
        CommitOutcome::WithoutHold {
            oversold: vec![ReservationLine {
                sku: a.clone(),
                quantity: 1
            }],
            untracked: vec![untracked.clone()],
        }
    );
    assert_eq!(s.available(&a, now).await.unwrap(), 0, "no new hold fits");
    assert_eq!(
        s.available(&untracked, now).await.unwrap(),
        0,
        "an unstocked SKU gets no stock record"
    );
    // Cancelled: the 2 units come back, once.
    assert!(s.restock_order(&order.order_key, None).await.unwrap());
    assert!(!s.restock_order(&order.order_key, None).await.unwrap());
    assert_eq!(s.available(&a, now).await.unwrap(), 1);

    // The usual path, counted: a checkout's hold becomes the order's.
    let cart = hold(&unique("paid"), &[(&a, 1)], later);
    s.reserve(&cart, now).await.unwrap();
    count.take();
    let paid = OrderCommit {
        order_key: unique("web-order"),
        reservation_id: Some(cart.id.clone()),
        lines: cart.lines.clone(),
    };
    assert_eq!(
        s.commit_order(&paid, now).await.unwrap(),
        CommitOutcome::FromHold
    );
    let requests = count.take();
    println!("DynamoDB requests to commit a checkout's hold: {requests}");
    assert_eq!(
        requests, 3,
        "commit record read, hold read, one transaction"
    );
    assert_eq!(s.available(&a, now).await.unwrap(), 0);
}

#[tokio::test]
async fn a_hold_swept_while_its_order_commits_still_sells_the_order() {
    let s = stock().await;
    let now = Utc::now();
    let a = unique("swept");
    s.set_on_hand(&a, 2).await.unwrap();
    let cart = hold(&unique("late"), &[(&a, 1)], now + Duration::minutes(1));
    s.reserve(&cart, now).await.unwrap();
    // The payment took longer than the hold: swept back to stock.
    let after = now + Duration::minutes(3);
    assert_eq!(s.sweep_expired(after).await.unwrap(), 1);
    let order = OrderCommit {
        order_key: unique("late-order"),
        reservation_id: Some(cart.id.clone()),
        lines: cart.lines.clone(),
    };
    assert_eq!(
        s.commit_order(&order, after).await.unwrap(),
        CommitOutcome::WithoutHold {
            oversold: vec![],
            untracked: vec![]
        }
    );
    assert_eq!(s.available(&a, after).await.unwrap(), 1, "one unit sold");
}

#[tokio::test]
async fn a_promotion_use_counts_once_per_order() {
    use retailflow_aws::adapters::dynamodb_catalog::DynamoDbCatalog;
    use retailflow_core::ports::catalog::Catalog;
    let cfg = aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table = create_state_table(&ddb).await;
    let c = DynamoDbCatalog::new(ddb, table);
    let code = unique("CODE");
    c.record_promotion_use(&code, "cust-1", "order-1")
        .await
        .unwrap();
    c.record_promotion_use(&code, "cust-1", "order-1")
        .await
        .unwrap();
    assert_eq!(c.promotion_uses(&code, "cust-1").await.unwrap(), 1);
    c.record_promotion_use(&code, "cust-1", "order-2")
        .await
        .unwrap();
    assert_eq!(c.promotion_uses(&code, "cust-1").await.unwrap(), 2);
    assert_eq!(c.promotion_uses(&code, "cust-2").await.unwrap(), 0);
}

#[tokio::test]
async fn an_erp_count_over_dynamodb_takes_off_units_the_erp_has_not_received_and_skips_stale_reads()
{
    use retailflow_core::ports::stock::{CountOutcome, PostedOutcome};
    let s = stock().await;
    let t0 = Utc::now();
    let a = unique("erp");
    assert_eq!(
        s.apply_erp_count(&a, 100, t0).await.unwrap(),
        CountOutcome::Applied {
            on_hand: 100,
            available: 100,
            changed: true
        },
        "a first count starts tracking the SKU"
    );
    let order = OrderCommit {
        order_key: unique("o"),
        reservation_id: None,
        lines: hold("-", &[(&a, 30)], t0).lines,
    };
    s.commit_order(&order, t0).await.unwrap();
    // The ERP has not received the order: its count of 100 is 70 here.
    assert_eq!(
        s.apply_erp_count(&a, 100, t0 + Duration::seconds(1))
            .await
            .unwrap(),
        CountOutcome::Applied {
            on_hand: 70,
            available: 70,
            changed: false
        }
    );
    assert_eq!(s.available(&a, t0).await.unwrap(), 70);
    // Received at t0 + 5 s: a count read at t0 + 3 s is stale, once marked.
    assert_eq!(
        s.mark_posted(&order.order_key, t0 + Duration::seconds(5))
            .await
            .unwrap(),
        PostedOutcome::Marked
    );
    assert_eq!(
        s.mark_posted(&order.order_key, t0 + Duration::seconds(5))
            .await
            .unwrap(),
        PostedOutcome::Unchanged
    );
    assert_eq!(
        s.apply_erp_count(&a, 100, t0 + Duration::seconds(3))
            .await
            .unwrap(),
        CountOutcome::Stale
    );
    assert_eq!(
        s.apply_erp_count(&a, 70, t0 + Duration::seconds(6))
            .await
            .unwrap(),
        CountOutcome::Applied {
            on_hand: 70,
            available: 70,
            changed: false
        }
    );
    assert_eq!(s.available(&a, t0).await.unwrap(), 70);
    assert_eq!(
        s.mark_posted(&unique("never"), t0).await.unwrap(),
        PostedOutcome::NotCommitted
    );
}

#[tokio::test]
async fn an_order_cancelled_before_its_commit_never_takes_stock() {
    let s = stock().await;
    let now = Utc::now();
    let a = unique("cxl");
    s.set_on_hand(&a, 5).await.unwrap();
    let cart = hold(&unique("cart"), &[(&a, 2)], now + Duration::minutes(15));
    s.reserve(&cart, now).await.unwrap();
    let order = OrderCommit {
        order_key: unique("cancelled-first"),
        reservation_id: Some(cart.id.clone()),
        lines: cart.lines.clone(),
    };
    // The cancellation is handled first: nothing to restock, but remembered.
    assert!(!s.restock_order(&order.order_key, None).await.unwrap());
    assert_eq!(
        s.commit_order(&order, now).await.unwrap(),
        CommitOutcome::OrderCancelled
    );
    assert_eq!(s.available(&a, now).await.unwrap(), 5, "hold given back");
}

#[tokio::test]
async fn a_changed_cart_swaps_its_hold_in_one_transaction_and_a_short_one_holds_nothing() {
    let cfg = aws_config().await;
    let table = create_state_table(&aws_sdk_dynamodb::Client::new(&cfg)).await;
    let count = retailflow_e2e::RequestCounter::default();
    let s = DynamoDbStock::new(retailflow_e2e::counted_dynamodb(&cfg, &count), table);
    let now = Utc::now();
    let later = now + Duration::minutes(15);
    let (a, b) = (unique("swapA"), unique("swapB"));
    s.set_on_hand(&a, 3).await.unwrap();
    s.set_on_hand(&b, 3).await.unwrap();
    s.reserve(&hold("co", &[(&a, 2)], later), now)
        .await
        .unwrap();
    s.reserve(&hold("other", &[(&a, 1)], later), now)
        .await
        .unwrap();
    assert_eq!(s.available(&a, now).await.unwrap(), 0);
    count.take();
    // One A less, one B more: swapped atomically.
    assert_eq!(
        s.reserve(&hold("co", &[(&a, 1), (&b, 1)], later), now)
            .await
            .unwrap(),
        ReserveOutcome::Reserved
    );
    let requests = count.take();
    println!("DynamoDB requests to swap a changed cart's hold: {requests}");
    assert_eq!(requests, 3, "failed put, hold read, one swap transaction");
    assert_eq!(s.available(&a, now).await.unwrap(), 1);
    assert_eq!(s.available(&b, now).await.unwrap(), 2);
    // Three A: 1 free plus the 1 it holds is not enough; nothing stays held.
    assert_eq!(
        s.reserve(&hold("co", &[(&a, 3)], later), now)
            .await
            .unwrap(),
        ReserveOutcome::Short {
            sku: a.clone(),
            available: 2
        }
    );
    assert_eq!(s.available(&a, now).await.unwrap(), 2);
    assert_eq!(s.available(&b, now).await.unwrap(), 3);
}
