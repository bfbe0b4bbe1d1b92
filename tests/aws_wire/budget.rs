//! The concurrency budget over real DynamoDB (moto): containers sharing an
//! ERP account through slots in the state table never run more calls at
//! once than the budget, a crashed container's slot is free again once its
//! lease runs out, and a slot is given back only by its holder.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::Utc;
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_core::budget::{BudgetCalendar, ConcurrencyBudget};
use retailflow_core::ports::budget::BudgetSlots;
use retailflow_core::resilience::ConnectorError;
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
                retailflow_core::credentials::system_clock(),
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
async fn a_slot_is_taken_back_only_after_its_lease_and_given_back_only_under_its_lease() {
    let store = store().await;
    let account = unique("erp:netsuite");
    let t0 = Utc::now();
    let lease = chrono::Duration::seconds(90);
    assert!(store
        .take_slot(&account, 0, "a", "a1", t0, t0 + lease)
        .await
        .unwrap());
    assert!(!store
        .take_slot(&account, 0, "b", "b1", t0, t0 + lease)
        .await
        .unwrap());
    // Renewing one's own slot is allowed, under a new lease id.
    assert!(store
        .take_slot(&account, 0, "a", "a2", t0, t0 + lease)
        .await
        .unwrap());
    // A give-back naming another lease changes nothing.
    store.give_back_slot(&account, 0, "a1").await.unwrap();
    store.give_back_slot(&account, 0, "b1").await.unwrap();
    assert!(!store
        .take_slot(&account, 0, "b", "b2", t0, t0 + lease)
        .await
        .unwrap());
    assert_eq!(store.slots_in_use(&account, 3, t0).await.unwrap(), vec![0]);
    // A crashed "a": free once its lease has run out.
    let later = t0 + lease + chrono::Duration::seconds(1);
    assert!(store
        .slots_in_use(&account, 3, later)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .take_slot(&account, 0, "b", "b3", later, later + lease)
        .await
        .unwrap());
    // Given back under its lease, free at once.
    store.give_back_slot(&account, 0, "b3").await.unwrap();
    assert!(store
        .take_slot(&account, 0, "c", "c1", later, later + lease)
        .await
        .unwrap());
}
