//! The pages as a browser gets them: escaped, filtered, linked.

use chrono::{DateTime, Utc};
use retailflow_core::money::{Currency, Money};

use crate::inbox::{Exception, ExceptionClass, InboxQuery, Origin};
use crate::pages;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-08T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn viewer() -> pages::Actor {
    pages::Actor {
        user: "victor@example.com".into(),
        operator: false,
        csrf: "token-1".into(),
    }
}

fn exception(customer: &str) -> Exception {
    Exception {
        id: "m-1".into(),
        origin: Origin::DeadLetter {
            queue: "erp-post".into(),
        },
        class: ExceptionClass::Validation,
        step: Some("erp_post".into()),
        system: Some("netsuite".into()),
        since: now() - chrono::Duration::hours(3),
        order_key: Some("shopify:acme.myshopify.com:order:5872301948123".into()),
        order_number: Some("#1042".into()),
        order_value: Some(Money::new(12_808, Currency::from_code("USD").unwrap())),
        customer: Some(customer.into()),
        reason: "netsuite refused the request (HTTP 400): Invalid item".into(),
    }
}

#[test]
fn a_customer_named_like_a_script_is_shown_as_text() {
    let all = [exception("<script>alert('x')</script>")];
    let html = pages::inbox(&viewer(), &all, &InboxQuery::default(), now()).unwrap();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("&#60;script&#62;alert"), "{html}");
}

#[test]
fn the_inbox_shows_each_exception_with_its_class_age_value_and_a_link_to_its_order() {
    let all = [exception("Ana Ruiz")];
    let html = pages::inbox(&viewer(), &all, &InboxQuery::default(), now()).unwrap();
    for expected in [
        "class-validation",
        "erp_post",
        "netsuite",
        "3 h",
        "128.08 USD",
        "Ana Ruiz",
        "#1042",
        // The order key as one path segment: its colons encoded.
        "/console/orders/shopify%3Aacme.myshopify.com%3Aorder%3A5872301948123",
        "validation 1",
    ] {
        assert!(html.contains(expected), "{expected} missing from {html}");
    }
}

#[test]
fn a_query_names_what_it_cannot_read() {
    let err = pages::inbox_query([("class", "fire")]).unwrap_err();
    assert!(err.to_string().contains("rate_limit"), "{err}");
    assert!(pages::inbox_query([("page", "two")]).is_err());
    let q =
        pages::inbox_query([("class", "review"), ("q", " #1042 "), ("sort", "oldest")]).unwrap();
    assert_eq!(q.class, Some(ExceptionClass::Review));
    assert_eq!(q.search.as_deref(), Some("#1042"));
}

#[test]
fn only_an_operator_sees_a_retry_and_its_form_carries_the_sessions_token() {
    let all = [exception("Ana Ruiz")];
    let html = pages::inbox(&viewer(), &all, &InboxQuery::default(), now()).unwrap();
    assert!(!html.contains("/console/actions/retry"), "{html}");
    let operator = pages::Actor {
        operator: true,
        ..viewer()
    };
    let html = pages::inbox(&operator, &all, &InboxQuery::default(), now()).unwrap();
    assert!(html.contains("action=\"/console/actions/retry\""), "{html}");
    assert!(html.contains("name=\"csrf\" value=\"token-1\""), "{html}");
}
