use super::*;
use retailflow_core::money::Currency;
use retailflow_core::resilience::ConnectorError;

#[test]
fn each_connector_failure_is_put_in_the_class_support_acts_on() {
    let class = |e: ConnectorError| ExceptionClass::of_reason(Some(&e.to_string()));
    let netsuite = "netsuite";
    assert_eq!(
        class(ConnectorError::Rejected {
            system: netsuite,
            status: 400,
            reason: "Invalid item SKU-1".into()
        }),
        ExceptionClass::Validation
    );
    assert_eq!(
        class(ConnectorError::Unauthorized {
            system: netsuite,
            reason: "invalid_client".into()
        }),
        ExceptionClass::Credentials
    );
    assert_eq!(
        class(ConnectorError::Throttled {
            system: netsuite,
            retry_after: Some(std::time::Duration::from_secs(30))
        }),
        ExceptionClass::RateLimit
    );
    assert_eq!(
        class(ConnectorError::Unavailable {
            system: netsuite,
            reason: "HTTP 503".into(),
            retry_after: None
        }),
        ExceptionClass::Outage
    );
    assert_eq!(
        class(ConnectorError::CircuitOpen {
            system: netsuite,
            retry_after: None
        }),
        ExceptionClass::Outage
    );
    assert_eq!(
        class(ConnectorError::Conflict {
            system: netsuite,
            reason: "record has been changed".into()
        }),
        ExceptionClass::Duplicate
    );
    assert_eq!(
        class(ConnectorError::BadResponse {
            system: netsuite,
            reason: "no id".into()
        }),
        ExceptionClass::Validation
    );
}

#[test]
fn money_held_for_review_is_review_and_a_dead_letter_without_a_reason_ran_out_of_retries() {
    assert_eq!(
        ExceptionClass::of_reason(Some(
            "refund 9 of 50.00 USD would bring the order's refunds to 150.00 USD, over its total 128.08 USD: needs review"
        )),
        ExceptionClass::Review
    );
    assert_eq!(
        ExceptionClass::of_reason(Some(
            "credit memo 41 may be the echo of till return pos-1: kept for review"
        )),
        ExceptionClass::Review
    );
    assert_eq!(ExceptionClass::of_reason(None), ExceptionClass::Outage);
    assert_eq!(
        ExceptionClass::of_reason(Some("maxReceiveCount 24 exceeded")),
        ExceptionClass::Outage
    );
    assert_eq!(
        ExceptionClass::of_reason(Some("payload does not map: totals do not reconcile")),
        ExceptionClass::Validation
    );
    for c in ExceptionClass::ALL {
        assert_eq!(ExceptionClass::parse(c.as_str()), Some(c));
    }
}

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::from_code("USD").unwrap())
}

fn exception(
    id: &str,
    class: ExceptionClass,
    step: &str,
    value: i64,
    minutes_ago: i64,
) -> Exception {
    let now = DateTime::parse_from_rfc3339("2026-12-08T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    Exception {
        id: id.into(),
        origin: Origin::DeadLetter {
            queue: "erp-post".into(),
        },
        class,
        step: Some(step.into()),
        system: Some("netsuite".into()),
        since: now - chrono::Duration::minutes(minutes_ago),
        order_key: Some(format!("shopify:acme.myshopify.com:order:{id}")),
        order_number: Some(format!("#{id}")),
        order_value: Some(usd(value)),
        customer: Some(format!("Customer {id}")),
        reason: "x".into(),
    }
}

fn ids(page: &InboxPage<'_>) -> Vec<String> {
    page.items.iter().map(|e| e.id.clone()).collect()
}

#[test]
fn the_costliest_orders_come_first_and_each_sort_is_stable() {
    let all = vec![
        exception("1", ExceptionClass::Outage, "erp_post", 1_000, 10),
        exception("2", ExceptionClass::Review, "credit_memo", 90_000, 5),
        exception("3", ExceptionClass::Outage, "erp_post", 90_000, 60),
    ];
    let page = query(&all, &InboxQuery::default());
    assert_eq!(ids(&page), ["3", "2", "1"], "equal values: the older first");
    let oldest = InboxQuery {
        sort: Sort::Oldest,
        ..Default::default()
    };
    assert_eq!(ids(&query(&all, &oldest)), ["3", "1", "2"]);
    let newest = InboxQuery {
        sort: Sort::Newest,
        ..Default::default()
    };
    assert_eq!(ids(&query(&all, &newest)), ["2", "1", "3"]);
}

#[test]
fn filters_narrow_the_list_while_the_counts_show_what_each_filter_would_show() {
    let all = vec![
        exception("1042", ExceptionClass::Outage, "erp_post", 12_808, 10),
        exception("1043", ExceptionClass::Review, "credit_memo", 14_011, 5),
        exception(
            "2187",
            ExceptionClass::Outage,
            "loyalty_accrual",
            16_864,
            60,
        ),
    ];
    let outages = InboxQuery {
        class: Some(ExceptionClass::Outage),
        ..Default::default()
    };
    let page = query(&all, &outages);
    assert_eq!(ids(&page), ["2187", "1042"]);
    assert_eq!(
        page.by_class[&ExceptionClass::Review],
        1,
        "not filtered away"
    );
    assert_eq!(page.by_step["erp_post"], 1);
    let step = InboxQuery {
        step: Some("credit_memo".into()),
        ..Default::default()
    };
    assert_eq!(ids(&query(&all, &step)), ["1043"]);
    // Search by customer, order number or correlation id, in any case;
    // the counts follow the search.
    for needle in ["customer 2187", "#2187", "ORDER:2187"] {
        let q = InboxQuery {
            search: Some(needle.into()),
            ..Default::default()
        };
        let page = query(&all, &q);
        assert_eq!(ids(&page), ["2187"], "{needle}");
        assert_eq!(page.by_class.values().sum::<usize>(), 1);
    }
}

#[test]
fn pages_split_the_list_and_a_page_past_the_end_shows_the_last() {
    let all: Vec<Exception> = (0..120)
        .map(|n| exception(&n.to_string(), ExceptionClass::Outage, "erp_post", 1_000, n))
        .collect();
    let q = |page| InboxQuery {
        sort: Sort::Newest,
        page,
        per_page: 50,
        ..Default::default()
    };
    let first = query(&all, &q(1));
    assert_eq!(
        (first.matching, first.pages, first.items.len()),
        (120, 3, 50)
    );
    assert_eq!(first.items[0].id, "0");
    let last = query(&all, &q(9));
    assert_eq!((last.page, last.items.len()), (3, 20));
    assert_eq!(last.items[19].id, "119");
    assert_eq!(query(&[], &q(1)).pages, 1);
}
