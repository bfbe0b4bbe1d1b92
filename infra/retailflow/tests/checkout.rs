//! Checkout validation on the local app: prices, promotions, points and
//! stock answered without the ERP, every answer in the shape
//! openapi/checkout.yaml publishes, and a flash sale that never oversells.

use std::sync::Arc;

use chrono::{Duration, Utc};
use common::checkout::catalog::Catalog;
use common::checkout::pricing::CartLine;
use common::checkout::validation::{
    CheckoutConfig, CheckoutRequest, CheckoutResponse, CheckoutValidation, LoyaltyFallback,
};
use common::connectors::{AccrualRequest, Enrollment, LoyaltyConnector};
use common::intake::IntakeConfig;
use common::money::{Currency, Money};
use common::resilience::CircuitBreaker;
use retailflow::local_app::LocalApp;
use simulators::System;

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::from_code("USD").unwrap())
}

fn line(sku: &str, quantity: u32, shown: i64) -> CartLine {
    CartLine {
        sku: sku.into(),
        quantity,
        shown_price: usd(shown),
    }
}

fn request(id: &str, lines: Vec<CartLine>) -> CheckoutRequest {
    CheckoutRequest {
        checkout_id: id.into(),
        customer_id: Some("cust-1".into()),
        loyalty_member: None,
        lines,
        promotion_codes: Vec::new(),
        points_to_redeem: 0,
    }
}

/// The published response schema, as a JSON Schema validator.
fn response_schema() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/checkout.yaml");
    let doc: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let root = serde_json::json!({
        "$ref": "#/components/schemas/CheckoutResponse",
        "components": doc["components"],
    });
    jsonschema::validator_for(&root).unwrap()
}

fn conforms(resp: &CheckoutResponse) {
    let v = serde_json::to_value(resp).unwrap();
    let errors: Vec<String> = response_schema()
        .iter_errors(&v)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{v:#}");
}

async fn start() -> LocalApp {
    LocalApp::start(IntakeConfig::default()).await.unwrap()
}

#[tokio::test]
async fn an_accepted_cart_holds_its_stock_and_its_totals_add_up() {
    let app = start().await;
    let mut req = request(
        "co-1",
        vec![line("MCS-CHR-M", 2, 2499), line("CWB-OLV", 1, 5900)],
    );
    req.promotion_codes = vec!["SOCKS5".into(), "WELCOME10".into()];
    let resp = app.checkout.validate(&req, app.clock.now()).await;
    conforms(&resp);
    let CheckoutResponse::Accepted {
        lines,
        totals,
        promotions,
        ..
    } = &resp
    else {
        panic!("{resp:?}")
    };
    // 49.98 + 59.00 = 108.98; SOCKS5 takes 5.00 off the socks; WELCOME10
    // takes 10 % of the 103.98 left: 10.398 → 10.40 (half up).
    assert_eq!(totals.subtotal, usd(10_898));
    assert_eq!(promotions[0].discount, usd(500));
    assert_eq!(promotions[1].discount, usd(1040));
    assert_eq!(totals.discounts, usd(1540));
    assert_eq!(totals.total, usd(9358));
    let line_totals: i64 = lines.iter().map(|l| l.total.minor).sum();
    assert_eq!(line_totals, 9358, "lines add up to the total");
    assert_eq!(app.stock_available("MCS-CHR-M").await, 118);
    // The same checkout again answers from the same hold.
    let again = app.checkout.validate(&req, app.clock.now()).await;
    assert!(matches!(again, CheckoutResponse::Accepted { .. }));
    assert_eq!(app.stock_available("MCS-CHR-M").await, 118);
}

#[tokio::test]
async fn a_price_changed_since_the_storefront_is_named_and_nothing_is_held() {
    let app = start().await;
    let resp = app
        .checkout
        .validate(
            &request(
                "co-2",
                vec![line("MCS-CHR-M", 1, 2299), line("BLB-01", 1, 1250)],
            ),
            app.clock.now(),
        )
        .await;
    conforms(&resp);
    let CheckoutResponse::Rejected { problems, .. } = &resp else {
        panic!("{resp:?}")
    };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].code, "price_changed");
    assert_eq!(problems[0].line, Some(0));
    assert!(
        problems[0].message.contains("24.99"),
        "{}",
        problems[0].message
    );
    assert_eq!(app.stock_available("BLB-01").await, 400, "nothing held");
}

#[tokio::test]
async fn an_expired_promotion_and_a_used_up_one_are_refused_with_their_reasons() {
    let app = start().await;
    let mut req = request("co-3", vec![line("CWB-OLV", 1, 5900)]);
    req.promotion_codes = vec!["SUMMER25".into()];
    let resp = app.checkout.validate(&req, app.clock.now()).await;
    conforms(&resp);
    let CheckoutResponse::Rejected { problems, .. } = &resp else {
        panic!("{resp:?}")
    };
    assert_eq!(problems[0].code, "promotion_not_eligible");
    assert!(problems[0].message.contains("not valid at this time"));
    // WELCOME10 once per customer.
    app.catalog
        .record_promotion_use("WELCOME10", "cust-1", "shopify:x:order:1")
        .await
        .unwrap();
    req.promotion_codes = vec!["WELCOME10".into()];
    let resp = app.checkout.validate(&req, app.clock.now()).await;
    let CheckoutResponse::Rejected { problems, .. } = &resp else {
        panic!("{resp:?}")
    };
    assert!(
        problems[0].message.contains("already used 1"),
        "{}",
        problems[0].message
    );
    // A guest cannot use it at all; another customer can.
    req.customer_id = None;
    assert!(matches!(
        app.checkout.validate(&req, app.clock.now()).await,
        CheckoutResponse::Rejected { .. }
    ));
    req.customer_id = Some("cust-2".into());
    assert!(matches!(
        app.checkout.validate(&req, app.clock.now()).await,
        CheckoutResponse::Accepted { .. }
    ));
    // A code given twice counts once: the cart is refused, not discounted twice.
    req.checkout_id = "co-3-twice".into();
    req.promotion_codes = vec!["SOCKS5".into(), "SOCKS5".into()];
    req.lines = vec![line("MCS-CHR-M", 1, 2499)];
    let resp = app.checkout.validate(&req, app.clock.now()).await;
    let CheckoutResponse::Rejected { problems, .. } = &resp else {
        panic!("{resp:?}")
    };
    assert!(
        problems[0].message.contains("more than once"),
        "{problems:?}"
    );
}

#[tokio::test]
async fn more_than_is_left_is_out_of_stock_for_that_line() {
    let app = start().await;
    let resp = app
        .checkout
        .validate(
            &request(
                "co-4",
                vec![line("BLB-01", 1, 1250), line("CWB-OLV", 31, 5900)],
            ),
            app.clock.now(),
        )
        .await;
    conforms(&resp);
    let CheckoutResponse::Rejected { problems, .. } = &resp else {
        panic!("{resp:?}")
    };
    assert_eq!(problems[0].code, "out_of_stock");
    assert_eq!(problems[0].line, Some(1));
    assert_eq!(app.stock_available("BLB-01").await, 400);
}

/// A checkout over the app's catalog and stock with its own loyalty rules.
fn checkout_with(app: &LocalApp, fallback: LoyaltyFallback) -> CheckoutValidation {
    CheckoutValidation::new(
        app.catalog.clone(),
        app.stock.clone(),
        app.loyalty.clone(),
        Arc::new(CircuitBreaker::new(
            "loyalty",
            5,
            std::time::Duration::from_secs(60),
        )),
        CheckoutConfig {
            loyalty_fallback: fallback,
            ..CheckoutConfig::default()
        },
    )
}

#[tokio::test]
async fn points_are_checked_against_the_balance_and_a_loyalty_outage_follows_the_fallback() {
    let app = start().await;
    let sf = app.loyalty.clone();
    sf.enroll(&Enrollment {
        membership_number: "M-7".into(),
        first_name: None,
        last_name: None,
        email: None,
        enrolled_at: Utc::now(),
    })
    .await
    .unwrap();
    sf.post_accrual(&AccrualRequest {
        external_transaction_number: "acc-seed".into(),
        membership_number: "M-7".into(),
        activity_at: Utc::now(),
        amount: usd(30_000),
        points: 300,
    })
    .await
    .unwrap();
    let mut req = request("co-5", vec![line("CWB-OLV", 1, 5900)]);
    req.loyalty_member = Some("M-7".into());
    req.points_to_redeem = 250;
    for (fallback, id) in [
        (LoyaltyFallback::Refuse, "refuse"),
        (LoyaltyFallback::AllowUpToCachedBalance, "cached"),
    ] {
        let checkout = checkout_with(&app, fallback);
        req.checkout_id = format!("co-5-{id}-up");
        let resp = checkout.validate(&req, app.clock.now()).await;
        conforms(&resp);
        let CheckoutResponse::Accepted { points, totals, .. } = &resp else {
            panic!("{resp:?}")
        };
        assert_eq!(points.as_ref().unwrap().value, usd(250));
        assert_eq!(totals.total, usd(5650));
        // The loyalty platform goes down.
        app.sims
            .outage(System::Salesforce, app.clock.now() + Duration::hours(1));
        req.checkout_id = format!("co-5-{id}-down");
        let resp = checkout.validate(&req, app.clock.now()).await;
        conforms(&resp);
        match fallback {
            LoyaltyFallback::Refuse => {
                let CheckoutResponse::Rejected { problems, .. } = &resp else {
                    panic!("{resp:?}")
                };
                assert_eq!(problems[0].code, "loyalty_unavailable");
            }
            LoyaltyFallback::AllowUpToCachedBalance => {
                let CheckoutResponse::Accepted { points, .. } = &resp else {
                    panic!("{resp:?}")
                };
                assert!(points.as_ref().unwrap().from_cached_balance);
                // Never beyond the balance last seen.
                req.points_to_redeem = 301;
                req.checkout_id = "co-5-too-many".into();
                let resp = checkout.validate(&req, app.clock.now()).await;
                let CheckoutResponse::Rejected { problems, .. } = &resp else {
                    panic!("{resp:?}")
                };
                assert_eq!(problems[0].code, "not_enough_points");
            }
        }
        // The outage ends.
        app.clock.advance_to(app.clock.now() + Duration::hours(2));
    }
}

#[tokio::test]
async fn a_flash_sale_of_ten_thousand_checkouts_accepts_exactly_the_hundred_in_stock() {
    let app = Arc::new(start().await);
    let now = app.clock.now();
    let tasks: Vec<_> = (0..10_000)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let req = request(&format!("drop-{i}"), vec![line("DROP-JACKET", 1, 19_900)]);
                app.checkout.validate(&req, now).await
            })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            CheckoutResponse::Accepted { .. } => accepted += 1,
            CheckoutResponse::Rejected { problems, .. } => {
                assert_eq!(problems[0].code, "out_of_stock")
            }
        }
    }
    assert_eq!(accepted, 100);
    assert_eq!(app.stock_available("DROP-JACKET").await, 0);
    // Unpaid holds expire back into stock.
    let later = now + Duration::minutes(16);
    app.clock.advance_to(later);
    assert_eq!(app.stock_available("DROP-JACKET").await, 100);
}
