//! Checkout's authentication and hold caps over real DynamoDB (moto): a
//! storefront's nonce is claimed once on the state table (a replay is
//! refused by any container), each customer's open holds are one item
//! that racing requests never push past the cap, and an authenticated
//! checkout costs two more requests than before (the owner's item read
//! and written).

use std::sync::Arc;

use chrono::{Duration, Utc};
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_aws::adapters::dynamodb_catalog::DynamoDbCatalog;
use retailflow_aws::adapters::dynamodb_stock::DynamoDbStock;
use retailflow_connectors::salesforce::{SalesforceLoyalty, SalesforceLoyaltyConfig};
use retailflow_core::checkout::auth::{
    session_token, storefront_headers, CheckoutAuth, CheckoutAuthConfig, CheckoutSecretDocument,
};
use retailflow_core::checkout::pricing::PriceEntry;
use retailflow_core::checkout::validation::{
    answer, CheckoutConfig, CheckoutHttpRequest, CheckoutValidation,
};
use retailflow_core::money::{Currency, Money};
use retailflow_core::ports::holds::{Admission, OpenHolds};
use retailflow_core::ports::stock::StockReservations;
use retailflow_core::webhook::Secret;
use retailflow_e2e::{aws_config, create_state_table, unique, RequestCounter};

async fn state() -> Arc<DynamoDbStateStore> {
    let cfg = aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table = create_state_table(&ddb).await;
    Arc::new(DynamoDbStateStore::new(ddb, table))
}

#[tokio::test]
async fn racing_checkouts_of_one_customer_never_hold_past_the_cap() {
    let s = state().await;
    let owner = unique("customer");
    let now = Utc::now();
    let until = now + Duration::minutes(15);
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (s, owner) = (s.clone(), owner.clone());
            tokio::spawn(async move {
                // A request that keeps meeting others' writes tries again.
                for _ in 0..50 {
                    match s.admit(&owner, &format!("c{i}"), until, 3, now).await {
                        Ok(a) => return a,
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                    }
                }
                panic!("checkout {i} never got an answer")
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap() == Admission::Admitted {
            admitted.push(format!("c{i}"));
        }
    }
    assert_eq!(admitted.len(), 3, "{admitted:?}");
    // One of them again: no new place. Another checkout: full.
    assert_eq!(
        s.admit(&owner, &admitted[0], until, 3, now).await.unwrap(),
        Admission::Admitted
    );
    assert_eq!(
        s.admit(&owner, "late", until, 3, now).await.unwrap(),
        Admission::Full
    );
    // A refused cart gives its place back; expired holds give theirs.
    s.forget(&owner, &admitted[1]).await.unwrap();
    assert_eq!(
        s.admit(&owner, "late", until, 3, now).await.unwrap(),
        Admission::Admitted
    );
    let later = until + Duration::seconds(1);
    for c in ["x", "y", "z"] {
        assert_eq!(
            s.admit(&owner, c, later + Duration::minutes(15), 3, later)
                .await
                .unwrap(),
            Admission::Admitted
        );
    }
}

#[tokio::test]
async fn an_authenticated_checkout_over_dynamodb_refuses_replays_and_caps_holds() {
    let cfg = aws_config().await;
    let table = create_state_table(&aws_sdk_dynamodb::Client::new(&cfg)).await;
    let count = RequestCounter::default();
    let ddb = retailflow_e2e::counted_dynamodb(&cfg, &count);
    let usd = Currency::from_code("USD").unwrap();
    let catalog = Arc::new(DynamoDbCatalog::new(ddb.clone(), &table));
    let stock = Arc::new(DynamoDbStock::new(ddb.clone(), &table));
    let state = Arc::new(DynamoDbStateStore::new(ddb, &table));
    let sku = unique("sku");
    catalog
        .put_price(&PriceEntry {
            sku: sku.clone(),
            price: Money::new(2000, usd),
            version: 1,
            collections: ["all".to_string()].into(),
        })
        .await
        .unwrap();
    stock.set_on_hand(&sku, 10).await.unwrap();
    let checkout = CheckoutValidation::new(
        catalog,
        stock.clone(),
        state.clone(),
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
        CheckoutConfig {
            max_open_holds: 1,
            ..CheckoutConfig::default()
        },
    );
    let config = CheckoutSecretDocument {
        shopify_secret: "app-secret".into(),
        shopify_client_id: "client-1".into(),
        shopify_shop_domains: vec!["acme.myshopify.com".into()],
        storefront_secrets: [("web".to_string(), "web-secret".to_string())].into(),
        ..CheckoutSecretDocument::default()
    }
    .apply(CheckoutAuthConfig::default());
    let auth = CheckoutAuth::new(config, state);
    let cart = |id: &str| {
        serde_json::json!({"checkout_id": id, "lines": [{"sku": sku, "quantity": 1,
            "shown_price": {"minor": 2000, "currency": "USD"}}]})
        .to_string()
    };
    let headers = |pairs: Vec<(&str, String)>| {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(&v).unwrap(),
            );
        }
        h
    };
    let post = |h: http::HeaderMap, body: String| {
        let (checkout, auth) = (&checkout, &auth);
        async move {
            answer(
                checkout,
                auth,
                CheckoutHttpRequest {
                    headers: &h,
                    body: body.as_bytes(),
                    received_at: Utc::now(),
                    gateway_time: None,
                },
            )
            .await
        }
    };

    // A storefront's signed request: held once, its replay refused.
    let body = cart(&unique("web"));
    let signed = headers(storefront_headers(
        "web",
        &Secret::new("web-secret"),
        Utc::now(),
        &unique("nonce").replace('-', "_"),
        body.as_bytes(),
    ));
    count.take();
    let (status, resp) = post(signed.clone(), body.clone()).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["status"], "accepted", "{resp}");
    println!(
        "DynamoDB requests per storefront checkout (guest, one line): {}",
        count.take()
    );
    let (status, resp) = post(signed, body).await;
    assert_eq!(status, 401, "{resp}");
    assert!(resp["error"]
        .as_str()
        .unwrap()
        .contains("nonce already used"));

    // A signed-in Shopify customer: one checkout holds, a second is capped.
    let at = Utc::now().timestamp();
    let token = session_token(
        &Secret::new("app-secret"),
        &serde_json::json!({"dest": "https://acme.myshopify.com", "aud": "client-1",
            "sub": "gid://shopify/Customer/42", "exp": at + 300, "nbf": at}),
    );
    let bearer = || headers(vec![("authorization", format!("Bearer {token}"))]);
    count.take();
    let (status, resp) = post(bearer(), cart(&unique("shop"))).await;
    assert_eq!(
        (status, resp["status"].as_str()),
        (200, Some("accepted")),
        "{resp}"
    );
    println!(
        "DynamoDB requests per signed-in checkout (one line): {}",
        count.take()
    );
    let (_, resp) = post(bearer(), cart(&unique("shop"))).await;
    assert_eq!(resp["problems"][0]["code"], "too_many_holds", "{resp}");
    assert_eq!(stock.available(&sku, Utc::now()).await.unwrap(), 8);
    // No credentials at all.
    let (status, _) = post(http::HeaderMap::new(), cart(&unique("anon"))).await;
    assert_eq!(status, 401);
}
