use super::*;
use crate::adapters::in_process::InProcessStateStore;
use std::sync::atomic::{AtomicUsize, Ordering};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn the_calendar_lowers_the_budget_in_business_hours_and_closes_it_for_month_end() {
    let c = BudgetCalendar::parse(
        "5; Mon-Fri 08:00-18:00=2; 2026-12-31T18:00:00Z..2027-01-02T06:00:00Z=0",
    )
    .unwrap();
    assert_eq!(c.limit_at(at("2026-12-07T07:59:00Z")), 5, "Monday before 8");
    assert_eq!(c.limit_at(at("2026-12-07T08:00:00Z")), 2, "Monday 8:00");
    assert_eq!(c.limit_at(at("2026-12-12T12:00:00Z")), 5, "Saturday");
    // Thursday 31 December at noon: business hours, not yet closed.
    assert_eq!(c.limit_at(at("2026-12-31T12:00:00Z")), 2);
    assert_eq!(c.limit_at(at("2026-12-31T18:00:00Z")), 0, "closed");
    assert_eq!(
        c.closed_until(at("2027-01-01T09:00:00Z")),
        Some(at("2027-01-02T06:00:00Z"))
    );
    assert_eq!(c.limit_at(at("2027-01-02T06:00:00Z")), 5);
}

#[test]
fn a_calendar_that_cannot_be_read_says_which_entry() {
    let e = BudgetCalendar::parse("5; Mon-Fry 08:00-18:00=2").unwrap_err();
    assert!(e.to_string().contains("Mon-Fry"), "{e}");
    assert!(BudgetCalendar::parse("five").is_err());
    assert!(BudgetCalendar::parse("5; 2026-01-01..2026-01-02=0").is_err());
    assert!(
        BudgetCalendar::parse("5; Mon-Fri 22:00-06:00=0").is_err(),
        "overnight"
    );
    assert!(BudgetCalendar::parse("500").is_err());
}

fn budget(store: Arc<InProcessStateStore>, limit: u32) -> ConcurrencyBudget {
    ConcurrencyBudget::new(
        "netsuite:1234567",
        BudgetCalendar::constant(limit),
        store,
        crate::credentials::system_clock(),
    )
}

#[tokio::test]
async fn containers_sharing_an_account_never_run_more_calls_than_the_budget() {
    let store = Arc::new(InProcessStateStore::new());
    let containers: Vec<Arc<ConcurrencyBudget>> =
        (0..4).map(|_| Arc::new(budget(store.clone(), 5))).collect();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let calls = (0..80).map(|i| {
        let b = containers[i % 4].clone();
        let (in_flight, most, done) = (in_flight.clone(), most.clone(), done.clone());
        async move {
            loop {
                match b.permit().await {
                    Ok(_p) => {
                        let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        done.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    // Every slot held elsewhere: the record returns to
                    // its queue; here, the invocation ends and tries again.
                    Err(ConnectorError::Throttled { .. }) => {
                        b.release_all().await;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            b.release_all().await;
        }
    });
    futures::future::join_all(calls).await;
    assert_eq!(done.load(Ordering::SeqCst), 80);
    assert!(
        most.load(Ordering::SeqCst) <= 5,
        "{}",
        most.load(Ordering::SeqCst)
    );
    assert_eq!(
        most.load(Ordering::SeqCst),
        5,
        "the budget is used, not left idle"
    );
}

#[tokio::test]
async fn a_wait_for_a_place_ends_before_the_invocations_deadline() {
    let store = Arc::new(InProcessStateStore::new());
    let holder = budget(store.clone(), 1);
    let _held = holder.permit().await.unwrap();
    let waiter = budget(store, 1);
    // 11 s left: 10 s are kept back for the call and the answer, so the
    // wait gives up after about 1 s instead of 8.
    let deadline = Some(Utc::now() + chrono::Duration::seconds(11));
    let started = std::time::Instant::now();
    let answer = within_deadline(deadline, waiter.permit()).await.map(|_| ());
    assert!(
        matches!(answer, Err(ConnectorError::Throttled { .. })),
        "{answer:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_closed_budget_makes_no_call_and_says_when_it_opens() {
    let store = Arc::new(InProcessStateStore::new());
    let now = Utc::now();
    let cal = BudgetCalendar::parse(&format!(
        "5; {}..{}=0",
        (now - chrono::Duration::hours(1)).to_rfc3339(),
        (now + chrono::Duration::hours(2)).to_rfc3339()
    ))
    .unwrap();
    let b = ConcurrencyBudget::new("erp", cal, store, crate::credentials::system_clock());
    let answer = b.permit().await.map(|_| ());
    match answer {
        Err(ConnectorError::Throttled {
            retry_after: Some(d),
            ..
        }) => assert!(
            d > Duration::from_secs(7000) && d <= Duration::from_secs(7200),
            "{d:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_crashed_containers_slot_is_taken_once_its_lease_runs_out() {
    let store = Arc::new(InProcessStateStore::new());
    let t0 = Utc::now();
    let lease = chrono::Duration::seconds(90);
    assert!(store
        .take_slot("erp", 0, "crashed", "l1", t0, t0 + lease)
        .await
        .unwrap());
    assert!(!store
        .take_slot("erp", 0, "other", "l2", t0, t0 + lease)
        .await
        .unwrap());
    let later = t0 + lease + chrono::Duration::seconds(1);
    assert!(store
        .take_slot("erp", 0, "other", "l3", later, later + lease)
        .await
        .unwrap());
    // The crashed holder's late give-back names its own lease: the new
    // lease stands.
    store.give_back_slot("erp", 0, "l1").await.unwrap();
    assert!(!store
        .take_slot("erp", 0, "third", "l4", later, later + lease)
        .await
        .unwrap());
}

#[tokio::test]
async fn a_lowered_limit_is_never_exceeded_by_slots_taken_under_the_old_one() {
    let store = Arc::new(InProcessStateStore::new());
    let now = Arc::new(Mutex::new(Utc::now()));
    let clock_now = now.clone();
    let clock: WallClock = Arc::new(move || *clock_now.lock().unwrap());
    let t0 = *now.lock().unwrap();
    // 5 until t0 + 1 h, then 2.
    let cal = BudgetCalendar::parse(&format!(
        "2; {}..{}=5",
        (t0 - chrono::Duration::hours(1)).to_rfc3339(),
        (t0 + chrono::Duration::hours(1)).to_rfc3339()
    ))
    .unwrap();
    let wait = Duration::from_millis(300);
    let a =
        ConcurrencyBudget::new("erp", cal.clone(), store.clone(), clock.clone()).with_wait(wait);
    let b = ConcurrencyBudget::new("erp", cal, store.clone(), clock).with_wait(wait);
    let held: Vec<_> = futures::future::join_all((0..5).map(|_| a.permit())).await;
    assert!(held.iter().all(Result::is_ok));
    drop(held);
    assert_eq!(a.held(), 5);
    *now.lock().unwrap() = t0 + chrono::Duration::hours(1);
    // A keeps its slots but may use only those under the new limit.
    let mut permits = Vec::new();
    for _ in 0..2 {
        permits.push(a.permit().await.unwrap());
    }
    assert!(
        a.permit().await.is_err(),
        "a third call waits, then returns"
    );
    // B finds no free slot under the new limit either.
    assert!(b.permit().await.is_err());
    drop(permits);
    a.release_all().await;
    assert!(b.permit().await.is_ok());
}
