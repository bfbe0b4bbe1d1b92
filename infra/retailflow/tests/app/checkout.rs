//! Checkout validation on the local app: prices, promotions, points and
//! stock answered without the ERP, every answer in the shape
//! openapi/checkout.yaml publishes, and a flash sale that never oversells.
//! Over HTTP (the answer `retailflow serve` and the Lambda give): only
//! authenticated callers, each acting for its own customer and member, with
//! holds capped and no stock count in a refusal.

use std::sync::Arc;

use chrono::{Duration, Utc};
use retailflow::dev_keys::CheckoutSigners;
use retailflow::local_app::LocalApp;
use retailflow_core::checkout::auth::{session_token, storefront_headers, CheckoutAuth};
use retailflow_core::checkout::pricing::CartLine;
use retailflow_core::checkout::validation::{
    answer, CheckoutConfig, CheckoutHttpRequest, CheckoutRequest, CheckoutResponse,
    CheckoutValidation, LoyaltyFallback,
};
use retailflow_core::intake::IntakeConfig;
use retailflow_core::money::{Currency, Money};
use retailflow_core::ports::catalog::Catalog;
use retailflow_core::ports::loyalty::{AccrualRequest, Enrollment, LoyaltyConnector};
use retailflow_core::resilience::CircuitBreaker;
use retailflow_core::webhook::Secret;
use serde_json::json;
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
    // Over the default unit cap too: a checkout whose cap allows it.
    let checkout = checkout_config(
        &app,
        CheckoutConfig {
            max_units_per_sku: 1000,
            ..CheckoutConfig::default()
        },
    );
    let resp = checkout
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
    // How many are left (30) is not said.
    assert!(
        !problems[0].message.contains("30"),
        "{}",
        problems[0].message
    );
    assert_eq!(app.stock_available("BLB-01").await, 400);
}

/// A checkout over the app's catalog and stock with its own rules.
fn checkout_config(app: &LocalApp, config: CheckoutConfig) -> CheckoutValidation {
    CheckoutValidation::new(
        app.catalog.clone(),
        app.stock.clone(),
        Arc::new(retailflow_core::adapters::in_process::InProcessOpenHolds::new()),
        app.loyalty.clone(),
        Arc::new(CircuitBreaker::new(
            "loyalty",
            5,
            std::time::Duration::from_secs(60),
        )),
        config,
    )
}

/// A checkout over the app's catalog and stock with its own loyalty rules.
fn checkout_with(app: &LocalApp, fallback: LoyaltyFallback) -> CheckoutValidation {
    checkout_config(
        app,
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

// --- Over HTTP: authenticated callers only -------------------------------

fn dev_keys() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/dev-keys"
    ))
}

fn signers() -> CheckoutSigners {
    CheckoutSigners::read(&dev_keys()).unwrap()
}

/// The local app taking what the dev keys sign, as `retailflow run` does.
async fn start_signed() -> LocalApp {
    let mut app = start().await;
    app.checkout_auth = CheckoutAuth::new(
        retailflow::dev_keys::checkout_auth(&dev_keys()).unwrap(),
        app.store.clone(),
    );
    app
}

/// Session token claims of the dev app and shop, valid from `at` for 5
/// minutes; `sub` a customer id (`None`: a guest).
fn claims(at: chrono::DateTime<Utc>, customer: Option<&str>) -> serde_json::Value {
    let s = signers();
    let at = at.timestamp();
    let mut c = json!({
        "iss": format!("https://{}/admin", s.shop),
        "dest": format!("https://{}", s.shop),
        "aud": s.client_id,
        "exp": at + 300, "nbf": at, "iat": at,
        "jti": uuid::Uuid::new_v4().to_string(),
        "sid": "session-1",
    });
    if let Some(id) = customer {
        c["sub"] = json!(format!("gid://shopify/Customer/{id}"));
    }
    c
}

fn bearer(secret: &str, claims: &serde_json::Value) -> Vec<(&'static str, String)> {
    let token = session_token(&Secret::new(secret), claims);
    vec![("authorization", format!("Bearer {token}"))]
}

fn header_map(pairs: &[(&str, String)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// `POST /checkout/validate` as `retailflow serve` answers it.
async fn post(app: &LocalApp, headers: &[(&str, String)], body: &str) -> (u16, serde_json::Value) {
    answer(
        &app.checkout,
        &app.checkout_auth,
        CheckoutHttpRequest {
            headers: &header_map(headers),
            body: body.as_bytes(),
            received_at: app.clock.now(),
            gateway_time: None,
        },
    )
    .await
}

/// A cart of the sample customer's shop, no customer named.
fn cart_body(id: &str, sku: &str, quantity: u32, shown: i64) -> String {
    json!({
        "checkout_id": id,
        "lines": [{"sku": sku, "quantity": quantity, "shown_price": {"minor": shown, "currency": "USD"}}],
    })
    .to_string()
}

fn storefront(app: &LocalApp, body: &str, nonce: &str) -> Vec<(&'static str, String)> {
    let (id, secret) = signers().storefront;
    storefront_headers(
        &id,
        &Secret::new(secret),
        app.clock.now(),
        nonce,
        body.as_bytes(),
    )
}

#[tokio::test]
async fn a_checkout_without_credentials_is_answered_401_and_holds_nothing() {
    let app = start_signed().await;
    let body = cart_body("anon-1", "DROP-JACKET", 1, 19_900);
    let (status, resp) = post(&app, &[("content-type", "application/json".into())], &body).await;
    assert_eq!(status, 401, "{resp}");
    assert!(
        resp["error"].as_str().unwrap().contains("no credentials"),
        "{resp}"
    );
    assert_eq!(app.stock_available("DROP-JACKET").await, 100);
    // Nor does a local app nobody configured answer anyone.
    let unconfigured = start().await;
    let s = signers();
    let (status, _) = post(
        &unconfigured,
        &bearer(&s.shopify_secret, &claims(unconfigured.clock.now(), None)),
        &body,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_valid_session_token_is_answered_200_and_holds_the_cart() {
    let app = start_signed().await;
    let s = signers();
    let body = cart_body("tok-1", "DROP-JACKET", 2, 19_900);
    let (status, resp) = post(
        &app,
        &bearer(&s.shopify_secret, &claims(app.clock.now(), Some("42"))),
        &body,
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["status"], "accepted", "{resp}");
    assert_eq!(app.stock_available("DROP-JACKET").await, 98);
    // A guest's token too.
    let body = cart_body("tok-2", "DROP-JACKET", 1, 19_900);
    let (status, resp) = post(
        &app,
        &bearer(&s.shopify_secret, &claims(app.clock.now(), None)),
        &body,
    )
    .await;
    assert_eq!(
        (status, resp["status"].as_str()),
        (200, Some("accepted")),
        "{resp}"
    );
}

#[tokio::test]
async fn a_forged_session_token_is_answered_401() {
    let app = start_signed().await;
    let body = cart_body("forged-1", "DROP-JACKET", 1, 19_900);
    let (status, resp) = post(
        &app,
        &bearer("not-the-app-secret", &claims(app.clock.now(), Some("42"))),
        &body,
    )
    .await;
    assert_eq!(status, 401, "{resp}");
    assert!(
        resp["error"].as_str().unwrap().contains("signature"),
        "{resp}"
    );
    // The signed token of one customer with another's claims pasted in.
    let s = signers();
    let good = session_token(
        &Secret::new(&s.shopify_secret),
        &claims(app.clock.now(), Some("42")),
    );
    let theirs = session_token(
        &Secret::new(&s.shopify_secret),
        &claims(app.clock.now(), Some("43")),
    );
    let g: Vec<&str> = good.split('.').collect();
    let pasted = format!("{}.{}.{}", g[0], theirs.split('.').nth(1).unwrap(), g[2]);
    let (status, _) = post(
        &app,
        &[("authorization", format!("Bearer {pasted}"))],
        &body,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(app.stock_available("DROP-JACKET").await, 100);
}

#[tokio::test]
async fn an_expired_or_not_yet_valid_session_token_is_answered_401() {
    let app = start_signed().await;
    let s = signers();
    let body = cart_body("late-1", "DROP-JACKET", 1, 19_900);
    // Issued 6 minutes ago: expired a minute ago, beyond the 10 s leeway.
    let old = claims(app.clock.now() - Duration::minutes(6), Some("42"));
    let (status, resp) = post(&app, &bearer(&s.shopify_secret, &old), &body).await;
    assert_eq!(status, 401, "{resp}");
    assert!(
        resp["error"].as_str().unwrap().contains("expired"),
        "{resp}"
    );
    let early = claims(app.clock.now() + Duration::minutes(1), Some("42"));
    let (status, resp) = post(&app, &bearer(&s.shopify_secret, &early), &body).await;
    assert_eq!(status, 401, "{resp}");
    assert!(resp["error"].as_str().unwrap().contains("nbf"), "{resp}");
    assert_eq!(app.stock_available("DROP-JACKET").await, 100);
}

#[tokio::test]
async fn a_session_token_for_another_app_or_shop_is_answered_401() {
    let app = start_signed().await;
    let s = signers();
    let body = cart_body("other-1", "DROP-JACKET", 1, 19_900);
    let mut c = claims(app.clock.now(), Some("42"));
    c["aud"] = json!("another-apps-client-id");
    let (status, resp) = post(&app, &bearer(&s.shopify_secret, &c), &body).await;
    assert_eq!(status, 401, "{resp}");
    assert!(resp["error"].as_str().unwrap().contains("aud"), "{resp}");
    let mut c = claims(app.clock.now(), Some("42"));
    c["dest"] = json!("https://someone-else.myshopify.com");
    c.as_object_mut().unwrap().remove("iss");
    let (status, resp) = post(&app, &bearer(&s.shopify_secret, &c), &body).await;
    assert_eq!(status, 401, "{resp}");
    assert!(resp["error"].as_str().unwrap().contains("dest"), "{resp}");
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_answered_401() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    let app = start_signed().await;
    let body = cart_body("none-1", "DROP-JACKET", 1, 19_900);
    let payload = B64.encode(claims(app.clock.now(), Some("42")).to_string());
    for alg in ["none", "HS384", "RS256"] {
        let header = B64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        let (status, resp) = post(
            &app,
            &[("authorization", format!("Bearer {header}.{payload}."))],
            &body,
        )
        .await;
        assert_eq!(status, 401, "{alg}: {resp}");
    }
    assert_eq!(app.stock_available("DROP-JACKET").await, 100);
}

#[tokio::test]
async fn a_signed_storefront_request_is_answered_200_once_and_a_replay_or_stale_one_401() {
    let app = start_signed().await;
    let body = r#"{"checkout_id":"web-1","customer_id":"eu-77","lines":[{"sku":"BLB-01","quantity":1,"shown_price":{"minor":1250,"currency":"USD"}}]}"#;
    let signed = storefront(&app, body, "web-nonce-00000000000001");
    let (status, resp) = post(&app, &signed, body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["status"], "accepted", "{resp}");
    // The same request again (a replay captured on the wire).
    let (status, resp) = post(&app, &signed, body).await;
    assert_eq!(status, 401, "{resp}");
    assert!(
        resp["error"]
            .as_str()
            .unwrap()
            .contains("nonce already used"),
        "{resp}"
    );
    // Signed 6 minutes ago with a fresh nonce: stale.
    let (id, secret) = signers().storefront;
    let stale = storefront_headers(
        &id,
        &Secret::new(secret),
        app.clock.now() - Duration::minutes(6),
        "web-nonce-00000000000002",
        body.as_bytes(),
    );
    let (status, resp) = post(&app, &stale, body).await;
    assert_eq!(status, 401, "{resp}");
    assert!(resp["error"].as_str().unwrap().contains("stale"), "{resp}");
    // The body changed after signing.
    let tampered = body.replace("\"quantity\":1", "\"quantity\":9");
    let signed = storefront(&app, body, "web-nonce-00000000000003");
    let (status, _) = post(&app, &signed, &tampered).await;
    assert_eq!(status, 401);
    assert_eq!(app.stock_available("BLB-01").await, 399);
}

#[tokio::test]
async fn a_cart_over_the_unit_cap_is_refused_and_holds_nothing() {
    let app = start_signed().await;
    let s = signers();
    let cap = app.checkout.config().max_units_per_sku;
    // Over the cap on two lines of the same SKU, as much as on one.
    let body = json!({
        "checkout_id": "cap-1",
        "lines": [
            {"sku": "DROP-JACKET", "quantity": cap, "shown_price": {"minor": 19_900, "currency": "USD"}},
            {"sku": "DROP-JACKET", "quantity": 1, "shown_price": {"minor": 19_900, "currency": "USD"}},
        ],
    })
    .to_string();
    let (status, resp) = post(
        &app,
        &bearer(&s.shopify_secret, &claims(app.clock.now(), Some("42"))),
        &body,
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["status"], "rejected", "{resp}");
    let problems = resp["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{resp}");
    assert!(
        problems.iter().all(|p| p["code"] == "quantity_limit"),
        "{resp}"
    );
    assert_eq!(
        app.stock_available("DROP-JACKET").await,
        100,
        "nothing held"
    );
    conforms(&serde_json::from_value(resp).unwrap());
    // At the cap: held.
    let body = cart_body("cap-2", "DROP-JACKET", cap, 19_900);
    let (_, resp) = post(
        &app,
        &bearer(&s.shopify_secret, &claims(app.clock.now(), Some("42"))),
        &body,
    )
    .await;
    assert_eq!(resp["status"], "accepted", "{resp}");
    assert_eq!(app.stock_available("DROP-JACKET").await, 100 - cap);
}

#[tokio::test]
async fn a_customer_holds_stock_under_at_most_the_open_hold_cap() {
    let app = start_signed().await;
    let s = signers();
    let max = app.checkout.config().max_open_holds;
    let as_customer = |id: &str| bearer(&s.shopify_secret, &claims(app.clock.now(), Some(id)));
    for i in 0..max {
        let body = cart_body(&format!("made-up-{i}"), "DROP-JACKET", 1, 19_900);
        let (_, resp) = post(&app, &as_customer("42"), &body).await;
        assert_eq!(resp["status"], "accepted", "{resp}");
    }
    // One more made-up checkout id of the same customer: refused, nothing held.
    let body = cart_body("made-up-more", "DROP-JACKET", 1, 19_900);
    let (status, resp) = post(&app, &as_customer("42"), &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["status"], "rejected", "{resp}");
    assert_eq!(resp["problems"][0]["code"], "too_many_holds", "{resp}");
    conforms(&serde_json::from_value(resp).unwrap());
    assert_eq!(app.stock_available("DROP-JACKET").await, 100 - max);
    // A checkout already held validates again; another customer holds its own.
    let again = cart_body("made-up-0", "DROP-JACKET", 1, 19_900);
    let (_, resp) = post(&app, &as_customer("42"), &again).await;
    assert_eq!(resp["status"], "accepted", "{resp}");
    let (_, resp) = post(&app, &as_customer("43"), &body).await;
    assert_eq!(resp["status"], "accepted", "{resp}");
    // A refused cart takes no place: out of stock, then a fitting cart.
    let (_, resp) = post(
        &app,
        &as_customer("44"),
        &cart_body("big", "CWB-OLV", 10, 5900),
    )
    .await;
    assert_eq!(resp["status"], "accepted", "{resp}");
    let (_, resp) = post(
        &app,
        &as_customer("44"),
        &cart_body("big-2", "CWB-OLV", 10, 5900),
    )
    .await;
    assert_eq!(resp["status"], "accepted", "{resp}");
    let (_, resp) = post(
        &app,
        &as_customer("45"),
        &cart_body("big-3", "CWB-OLV", 10, 5900),
    )
    .await;
    assert_eq!(resp["status"], "accepted", "{resp}");
    let (_, resp) = post(
        &app,
        &as_customer("44"),
        &cart_body("short", "CWB-OLV", 1, 5900),
    )
    .await;
    assert_eq!(resp["problems"][0]["code"], "out_of_stock", "{resp}");
    let (_, resp) = post(
        &app,
        &as_customer("44"),
        &cart_body("fits", "BLB-01", 1, 1250),
    )
    .await;
    assert_eq!(
        resp["status"], "accepted",
        "the refused cart kept no place: {resp}"
    );
    // Holds expire: the customer's places come back.
    app.clock
        .advance_to(app.clock.now() + Duration::minutes(16));
    let (_, resp) = post(
        &app,
        &as_customer("42"),
        &cart_body("later", "DROP-JACKET", 1, 19_900),
    )
    .await;
    assert_eq!(resp["status"], "accepted", "{resp}");
}

#[tokio::test]
async fn an_out_of_stock_refusal_does_not_say_how_many_are_left() {
    let app = start_signed().await;
    let s = signers();
    // 30 bags; another checkout holds 7, so 23 are left.
    let (_, resp) = post(
        &app,
        &bearer(&s.shopify_secret, &claims(app.clock.now(), Some("1"))),
        &cart_body("seven", "CWB-OLV", 7, 5900),
    )
    .await;
    assert_eq!(resp["status"], "accepted", "{resp}");
    let checkout = checkout_config(
        &app,
        CheckoutConfig {
            max_units_per_sku: 100,
            ..CheckoutConfig::default()
        },
    );
    let req: CheckoutRequest =
        serde_json::from_str(&cart_body("probe", "CWB-OLV", 24, 5900)).unwrap();
    let resp = checkout.validate(&req, app.clock.now()).await;
    let CheckoutResponse::Rejected { problems, .. } = &resp else {
        panic!("{resp:?}")
    };
    assert_eq!(problems[0].code, "out_of_stock");
    let text = serde_json::to_string(&resp).unwrap();
    for count in ["23", "30", "7 "] {
        assert!(!text.contains(count), "{count} in {text}");
    }
}

#[tokio::test]
async fn another_members_points_balance_is_not_disclosed() {
    let app = start_signed().await;
    let s = signers();
    let shop = s.shop.clone();
    // Customer 42's membership (the number loyalty accrual enrols under)
    // and member M-7, both with 300 points.
    let own = retailflow_core::checkout::auth::member_number("shopify", &shop, "42");
    for m in [own.as_str(), "M-7"] {
        app.loyalty
            .enroll(&Enrollment {
                membership_number: m.into(),
                first_name: None,
                last_name: None,
                email: None,
                enrolled_at: Utc::now(),
            })
            .await
            .unwrap();
        app.loyalty
            .post_accrual(&AccrualRequest {
                external_transaction_number: format!("acc-{m}"),
                membership_number: m.into(),
                activity_at: Utc::now(),
                amount: usd(30_000),
                points: 300,
            })
            .await
            .unwrap();
    }
    let points = |id: &str, member: Option<&str>, n: u64| {
        json!({
            "checkout_id": id, "loyalty_member": member, "points_to_redeem": n,
            "lines": [{"sku": "CWB-OLV", "quantity": 1, "shown_price": {"minor": 5900, "currency": "USD"}}],
        })
        .to_string()
    };
    let as_42 = bearer(&s.shopify_secret, &claims(app.clock.now(), Some("42")));
    // Customer 42 asks with M-7's number: refused before any balance is read.
    let (status, resp) = post(&app, &as_42, &points("p-1", Some("M-7"), 5000)).await;
    assert_eq!(status, 403, "{resp}");
    assert!(!resp.to_string().contains("300"), "{resp}");
    // Its own membership, named or not: its own balance, and only it.
    let (status, resp) = post(&app, &as_42, &points("p-2", None, 250)).await;
    assert_eq!(
        (status, resp["status"].as_str()),
        (200, Some("accepted")),
        "{resp}"
    );
    assert_eq!(resp["points"]["points"], 250);
    let (status, resp) = post(&app, &as_42, &points("p-3", Some(&own), 5000)).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["problems"][0]["code"], "not_enough_points", "{resp}");
    // A guest redeems nothing, and names no member.
    let guest = bearer(&s.shopify_secret, &claims(app.clock.now(), None));
    let (status, resp) = post(&app, &guest, &points("p-4", Some("M-7"), 5000)).await;
    assert_eq!(status, 403, "{resp}");
    let (status, resp) = post(&app, &guest, &points("p-5", None, 100)).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["problems"][0]["code"], "not_enough_points", "{resp}");
    assert!(!resp.to_string().contains("300"), "{resp}");
    // Nor may a token's customer act as another customer.
    let mut other =
        serde_json::from_str::<serde_json::Value>(&cart_body("p-6", "BLB-01", 1, 1250)).unwrap();
    other["customer_id"] = json!("43");
    let (status, _) = post(&app, &as_42, &other.to_string()).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_sample_checkout_event_is_signed_with_the_dev_keys() {
    let app = start_signed().await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/14-checkout-validate.json"
    );
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let headers: Vec<(&str, String)> = event["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap().to_string()))
        .collect();
    let body = event["body"].as_str().unwrap();
    let recorded = chrono::DateTime::from_timestamp_millis(
        event["requestContext"]["timeEpoch"].as_i64().unwrap(),
    );
    let map = header_map(&headers);
    let request = |gateway_time| CheckoutHttpRequest {
        headers: &map,
        body: body.as_bytes(),
        received_at: app.clock.now(),
        gateway_time,
    };
    // Judged at the time it was recorded, as `retailflow run` plays it.
    let (status, resp) = answer(&app.checkout, &app.checkout_auth, request(recorded)).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["status"], "accepted", "{resp}");
    // The same token today is long expired.
    let (status, _) = answer(&app.checkout, &app.checkout_auth, request(None)).await;
    assert_eq!(status, 401);
}
