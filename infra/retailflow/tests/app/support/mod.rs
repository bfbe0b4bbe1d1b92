//! What the local-app tests share: the sample events' dev keys and feeding
//! a sample webhook to the app as API Gateway would.
// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

use retailflow::api_event::ApiRequest;
use retailflow::local_app::LocalApp;
use retailflow_core::config::WebhookSecretDocument;
use retailflow_core::intake::{IntakeConfig, WebhookRequest, WebhookRoute};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn dev_config() -> IntakeConfig {
    let k = |n: &str| std::fs::read_to_string(repo().join("events/dev-keys").join(n)).unwrap();
    WebhookSecretDocument {
        shopify_secret: k("shopify-secret.txt"),
        shopify_previous_secret: String::new(),
        adobe_public_keys: k("adobe-public-1.pem") + &k("adobe-public-2.pem"),
        adobe_client_id: k("adobe-client-id.txt"),
        pos_store_secrets: serde_json::from_str(&k("pos-store-secrets.json")).unwrap(),
    }
    .apply(IntakeConfig::default())
    .unwrap()
}

pub fn sample(file: &str) -> ApiRequest {
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("events").join(file)).unwrap())
            .unwrap();
    ApiRequest::from_event(&event).unwrap()
}

pub async fn deliver(app: &LocalApp, file: &str) -> u16 {
    let req = sample(file);
    app.intake
        .handle(WebhookRequest {
            route: WebhookRoute::from_path(&req.path).unwrap(),
            headers: &req.headers,
            body: &req.body,
            received_at: app.clock.now(),
            // Recorded samples are judged at the time they were recorded.
            gateway_time: req.gateway_time,
            deadline: None,
        })
        .await
        .status
}

/// The sample webhook events that place orders.
pub const ORDERS: [&str; 4] = [
    "01-shopify-orders-create.json",
    "04-shopify-orders-create-eur-vat-inclusive.json",
    "05-shopify-orders-create-cad-gift-card.json",
    "11-adobe-order-configurable.json",
];

/// (order total in minor units, points) each sample order must end with.
pub fn expected() -> Vec<(i64, i64)> {
    // #1042 128.08 USD: 109.33 merchandise → 109 points; #1043 140.11 USD
    // (VAT-inclusive, 111.42 net of VAT) → 111; #2187 168.64 CAD with a 50.00
    // gift card → 89; Adobe 000000214 95.30 USD, 78.80 merchandise → 78.
    vec![(12808, 109), (14011, 111), (16864, 89), (9530, 78)]
}

pub fn assert_exactly_once(app: &LocalApp) {
    let mut totals: Vec<i64> = app
        .sims
        .netsuite_sales_orders()
        .iter()
        .map(|s| s.total.minor)
        .collect();
    totals.sort();
    let mut want: Vec<i64> = expected().iter().map(|e| e.0).collect();
    want.sort();
    assert_eq!(
        totals, want,
        "one ERP sales order per order, with the order total"
    );
    let mut points: Vec<i64> = app
        .sims
        .loyalty_journals()
        .iter()
        .map(|j| j.points)
        .collect();
    points.sort();
    let mut want: Vec<i64> = expected().iter().map(|e| e.1).collect();
    want.sort();
    assert_eq!(
        points, want,
        "one loyalty journal per order, with the rules' points"
    );
    assert!(app.dead_letters().is_empty(), "{:?}", app.dead_letters());
    let timelines = retailflow::timeline::timelines(app);
    assert_eq!(timelines.len(), 4);
    assert!(timelines.iter().all(|t| t.complete), "{timelines:?}");
}

/// A Shopify delivery of `body` under `topic`, signed with the dev secret
/// as Shopify signs it, answered by the app's intake.
pub async fn deliver_shopify(
    app: &LocalApp,
    topic: &str,
    event_id: &str,
    body: &str,
) -> retailflow_core::intake::WebhookResponse {
    use retailflow_core::webhook::{shopify_signature, Secret};
    let secret =
        std::fs::read_to_string(repo().join("events/dev-keys/shopify-secret.txt")).unwrap();
    let mut h = http::HeaderMap::new();
    for (k, v) in [
        ("content-type", "application/json".to_string()),
        ("x-shopify-topic", topic.to_string()),
        ("x-shopify-shop-domain", "acme.myshopify.com".to_string()),
        ("x-shopify-event-id", event_id.to_string()),
        (
            "x-shopify-hmac-sha256",
            shopify_signature(&Secret::new(secret.as_str()), body.as_bytes()),
        ),
    ] {
        h.insert(k, v.parse().unwrap());
    }
    app.intake
        .handle(WebhookRequest {
            route: WebhookRoute::Shopify,
            headers: &h,
            body: body.as_bytes(),
            received_at: app.clock.now(),
            gateway_time: None,
            deadline: None,
        })
        .await
}

/// An Adobe I/O Events delivery of `body` (the envelope, dated now), signed
/// with the dev keys as Adobe signs it, answered by the app's intake.
pub async fn deliver_adobe(
    app: &LocalApp,
    body: &serde_json::Value,
) -> retailflow_core::intake::WebhookResponse {
    use retailflow_core::webhook::adobe_signature;
    let mut body = body.clone();
    body["time"] = app.clock.now().to_rfc3339().into();
    let body = body.to_string();
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-adobe-event-code",
        "observer.sales_order_save_after".parse().unwrap(),
    );
    for n in 1..=2 {
        let key =
            std::fs::read_to_string(repo().join(format!("events/dev-keys/adobe-private-{n}.pem")))
                .unwrap();
        let name: http::HeaderName = format!("x-adobe-digital-signature-{n}").parse().unwrap();
        h.insert(
            name,
            adobe_signature(&key, body.as_bytes())
                .unwrap()
                .parse()
                .unwrap(),
        );
    }
    app.intake
        .handle(WebhookRequest {
            route: WebhookRoute::Adobe,
            headers: &h,
            body: body.as_bytes(),
            received_at: app.clock.now(),
            gateway_time: None,
            deadline: None,
        })
        .await
}
