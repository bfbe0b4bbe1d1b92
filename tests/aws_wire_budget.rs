//! The concurrency budget over real DynamoDB (moto): containers sharing an
//! ERP account through slots in the state table never run more calls at
//! once than the budget, a crashed container's slot is free again once its
//! lease runs out, and a slot is given back only by its holder.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::Utc;
use common::adapters::dynamodb::DynamoDbStateStore;
use common::budget::{BudgetCalendar, BudgetSlots, ConcurrencyBudget};
use common::resilience::ConnectorError;
use retailflow_e2e::{aws_config, create_state_table, unique};

async fn store() -> Arc<DynamoDbStateStore> {
    let cfg = aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table = create_state_table(&ddb).await;
    Arc::new(DynamoDbStateStore::new(ddb, table))
}

#[tokio::test]
async fn containers_sharing_slots_in_dynamodb_never_exceed_the_budget() {
    let store = store().await;
    let account = unique("erp:netsuite");
    let containers: Vec<Arc<ConcurrencyBudget>> = (0..3)
        .map(|_| {
            Arc::new(ConcurrencyBudget::new(
                account.clone(),
                BudgetCalendar::constant(3),
                store.clone(),
                common::credentials::system_clock(),
            ))
        })
        .collect();
    let (in_flight, most, done) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let calls = (0..18).map(|i| {
        let b = containers[i % 3].clone();
        let (in_flight, most, done) = (in_flight.clone(), most.clone(), done.clone());
        async move {
            for _ in 0..200 {
                let permit = b.permit().await;
                match permit {
                    Ok(_p) => {
                        let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        done.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    Err(ConnectorError::Throttled { .. }) => {
                        b.release_all().await;
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            b.release_all().await;
        }
    });
    futures::future::join_all(calls).await;
    assert_eq!(done.load(Ordering::SeqCst), 18);
    assert!(
        most.load(Ordering::SeqCst) <= 3,
        "{}",
        most.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn a_slot_is_taken_back_only_after_its_lease_and_given_back_only_by_its_holder() {
    let store = store().await;
    let account = unique("erp:netsuite");
    let t0 = Utc::now();
    let lease = chrono::Duration::minutes(6);
    assert!(store
        .take_slot(&account, 0, "a", t0, t0 + lease)
        .await
        .unwrap());
    assert!(!store
        .take_slot(&account, 0, "b", t0, t0 + lease)
        .await
        .unwrap());
    // Renewing one's own slot is allowed.
    assert!(store
        .take_slot(&account, 0, "a", t0, t0 + lease)
        .await
        .unwrap());
    // "b" giving it back changes nothing.
    store.give_back_slot(&account, 0, "b").await.unwrap();
    assert!(!store
        .take_slot(&account, 0, "b", t0, t0 + lease)
        .await
        .unwrap());
    // A crashed "a": free once its lease has run out.
    let later = t0 + lease + chrono::Duration::seconds(1);
    assert!(store
        .take_slot(&account, 0, "b", later, later + lease)
        .await
        .unwrap());
    // Given back by its holder, free at once.
    store.give_back_slot(&account, 0, "b").await.unwrap();
    assert!(store
        .take_slot(&account, 0, "c", later, later + lease)
        .await
        .unwrap());
}
