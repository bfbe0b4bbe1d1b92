//! The fuzz targets, one module each: `fuzz_targets/` only hands them
//! libFuzzer's input, and a workspace test replays the seed corpus through
//! the same functions on stable Rust. They share the real intake on
//! in-process adapters, the dev keys, and the rule every answer must
//! follow: no panic, and every refusal a 4xx with a reason (a 5xx only when
//! a dependency is down, which in process it never is).

use std::sync::{Arc, OnceLock};

use retailflow_core::adapters::in_process::{InProcessEventBus, InProcessStateStore};
use retailflow_core::config::WebhookSecretDocument;
use retailflow_core::intake::{
    IntakeConfig, OrderIntake, WebhookRequest, WebhookResponse, WebhookRoute,
};

pub const SHOPIFY_SECRET: &str = "fuzz-shopify-secret";
pub const POS_STORE: &str = "store-042";
pub const POS_SECRET: &str = "fuzz-pos-secret";

const ADOBE_PUBLIC_KEYS: [&str; 2] = [
    include_str!("../../events/dev-keys/adobe-public-1.pem"),
    include_str!("../../events/dev-keys/adobe-public-2.pem"),
];
const ADOBE_CLIENT_ID: &str = include_str!("../../events/dev-keys/adobe-client-id.txt");

/// One runtime for the process (the intake is async; nothing in it sleeps).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime builds with no I/O driver")
    })
}

/// The intake with the fuzz secrets and the dev Adobe keys, on a fresh
/// in-process store per input (so inputs do not deduplicate each other).
pub fn intake() -> OrderIntake {
    static CONFIG: OnceLock<IntakeConfig> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        WebhookSecretDocument {
            shopify_secret: SHOPIFY_SECRET.into(),
            shopify_previous_secret: String::new(),
            adobe_public_keys: ADOBE_PUBLIC_KEYS.concat(),
            adobe_client_id: ADOBE_CLIENT_ID.into(),
            pos_store_secrets: [(POS_STORE.to_string(), POS_SECRET.to_string())]
                .into_iter()
                .collect(),
        }
        .apply(IntakeConfig::default())
        .expect("the fuzz secrets and the dev keys make a valid config")
    });
    OrderIntake::new(
        Arc::new(InProcessStateStore::new()),
        Arc::new(InProcessEventBus::new()),
        config.clone(),
    )
}

/// Sends one request through the intake.
pub fn deliver(route: WebhookRoute, headers: &[(&str, String)], body: &[u8]) -> WebhookResponse {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            map.append(k, v);
        }
    }
    let intake = intake();
    runtime().block_on(intake.handle(WebhookRequest {
        route,
        headers: &map,
        body,
        received_at: chrono::Utc::now(),
        gateway_time: None,
        deadline: None,
    }))
}

/// The rule: a 2xx, or a 4xx that says why. Anything else is a finding.
pub fn assert_answered(status: u16, body: &serde_json::Value) {
    assert!(
        (200..300).contains(&status) || (400..500).contains(&status),
        "answered {status}: {body}"
    );
    if status >= 400 {
        let reason = body["reason"]
            .as_str()
            .or_else(|| body["error"].as_str())
            .or_else(|| body["message"].as_str())
            .unwrap_or_default();
        assert!(
            !reason.trim().is_empty(),
            "a {status} without a reason: {body}"
        );
    }
}

/// Splits fuzz input into a selector byte and the rest.
pub fn split(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((b, rest)) => (*b, rest),
        None => (0, &[]),
    }
}

pub mod shopify_webhook {
    #[allow(unused_imports)]
    use super::*;
    use retailflow_core::intake::WebhookRoute;
    use retailflow_core::webhook::{shopify_signature, Secret};

    const TOPICS: [&str; 6] = [
        "orders/create",
        "orders/updated",
        "orders/cancelled",
        "refunds/create",
        "customers/create",
        "",
    ];

    /// Shopify webhooks: any body under any topic, signed (so parsing and mapping
    /// are reached) or with a wrong signature, through the real intake.
    pub fn run(data: &[u8]) {
        let (selector, body) = split(data);
        let topic = TOPICS[usize::from(selector) % TOPICS.len()];
        let signature = if selector & 0x80 == 0 {
            shopify_signature(&Secret::new(SHOPIFY_SECRET), body)
        } else {
            shopify_signature(&Secret::new("not-the-secret"), body)
        };
        let resp = deliver(
            WebhookRoute::Shopify,
            &[
                ("content-type", "application/json".into()),
                ("x-shopify-topic", topic.into()),
                ("x-shopify-shop-domain", "fuzz.myshopify.com".into()),
                ("x-shopify-event-id", format!("ev-{}", body.len())),
                ("x-shopify-hmac-sha256", signature),
            ],
            body,
        );
        assert_answered(resp.status, &resp.body);
        if selector & 0x80 != 0 {
            assert_eq!(
                resp.status, 401,
                "a wrong signature was let in: {}",
                resp.body
            );
        }
    }
}

pub mod pos_return {
    #[allow(unused_imports)]
    use super::*;
    use retailflow_core::intake::WebhookRoute;
    use retailflow_core::webhook::{shopify_signature, Secret};

    /// The point-of-sale return API: any body, signed with the store's secret
    /// (or not), stamped with a timestamp and nonce or as an unstamped till,
    /// through the real intake.
    pub fn run(data: &[u8]) {
        let (selector, body) = split(data);
        let secret = Secret::new(if selector & 0x80 == 0 {
            POS_SECRET
        } else {
            "wrong"
        });
        let headers: Vec<(&str, String)> = if selector & 0x40 == 0 {
            retailflow_core::mappers::pos::signed_headers(
                POS_STORE,
                &secret,
                chrono::Utc::now(),
                "fuzz-nonce-0123456789",
                body,
            )
        } else {
            vec![
                ("content-type", "application/json".into()),
                ("x-retailflow-store", POS_STORE.into()),
                ("x-retailflow-signature", shopify_signature(&secret, body)),
            ]
        };
        let resp = deliver(WebhookRoute::PosReturn, &headers, body);
        assert_answered(resp.status, &resp.body);
        if selector & 0x80 != 0 {
            assert_eq!(
                resp.status, 401,
                "a wrong signature was let in: {}",
                resp.body
            );
        }
    }
}

pub mod adobe_webhook {
    #[allow(unused_imports)]
    use super::*;
    use retailflow_core::intake::WebhookRoute;
    use retailflow_core::mappers::adobe;

    /// Adobe Commerce (I/O Events) webhooks: any body with any signature
    /// headers through the real intake (refused unless signed by the dev keys),
    /// and the same body parsed and mapped directly, as a signed one would be.
    pub fn run(data: &[u8]) {
        let (selector, body) = split(data);
        let sig =
            String::from_utf8_lossy(&body[..body.len().min(usize::from(selector))]).into_owned();
        let resp = deliver(
            WebhookRoute::Adobe,
            &[
                ("content-type", "application/json".into()),
                (
                    "x-adobe-event-code",
                    "observer.sales_order_save_after".into(),
                ),
                ("x-adobe-digital-signature-1", sig.clone()),
                ("x-adobe-digital-signature-2", sig),
                (
                    "x-adobe-public-key1-path",
                    "/prod/keys/pub-key-dev-1.pem".into(),
                ),
                (
                    "x-adobe-public-key2-path",
                    "/prod/keys/pub-key-dev-2.pem".into(),
                ),
            ],
            body,
        );
        assert_answered(resp.status, &resp.body);
        // Past the signature: parse and map never panic, they refuse with a reason.
        if let Ok(delivery) = adobe::AdobeDelivery::parse(body) {
            if let Err(e) = adobe::map("fuzz-instance", &delivery) {
                assert!(!e.to_string().trim().is_empty());
            }
        }
    }
}

pub mod checkout_request {
    #[allow(unused_imports)]
    use super::*;
    use std::sync::{Arc, OnceLock};

    use retailflow_core::adapters::in_process::InProcessStateStore;
    use retailflow_core::adapters::in_process::InProcessStock;
    use retailflow_core::adapters::in_process::{CatalogSeed, InProcessCatalog};
    use retailflow_core::checkout::auth::{
        session_token, storefront_headers, CheckoutAuth, CheckoutAuthConfig, CheckoutSecretDocument,
    };
    use retailflow_core::checkout::validation::{
        answer, CheckoutConfig, CheckoutHttpRequest, CheckoutValidation,
    };
    use retailflow_core::ports::loyalty::{
        AccrualJournal, AccrualRequest, Enrollment, LedgerJournal, LoyaltyConnector, LoyaltyMember,
        ReversalRequest,
    };
    use retailflow_core::resilience::CircuitBreaker;
    use retailflow_core::resilience::ConnectorError;
    use retailflow_core::webhook::Secret;

    const SEED: &str = include_str!("../../events/catalog/seed.json");
    pub const CLIENT_ID: &str = "fuzz-client-id";
    pub const SHOP: &str = "acme-outdoor.myshopify.com";
    /// The sample checkout's customer: the session tokens sign in as it.
    pub const CUSTOMER: &str = "7301928374651";
    pub const STOREFRONT: &str = "web-fuzz";
    pub const STOREFRONT_SECRET: &str = "fuzz-storefront-secret";

    /// The loyalty platform out of reach, as a refused connection answers:
    /// checkout then takes its fallback path, which the fuzzer explores too,
    /// without a network or an HTTP client.
    struct UnreachableLoyalty;

    fn unreachable<T>() -> Result<T, ConnectorError> {
        Err(ConnectorError::Unavailable {
            system: "fuzz-loyalty",
            reason: "connection refused".into(),
            retry_after: None,
        })
    }

    #[async_trait::async_trait]
    impl LoyaltyConnector for UnreachableLoyalty {
        fn system(&self) -> &'static str {
            "fuzz-loyalty"
        }
        async fn find_member(&self, _: &str) -> Result<Option<LoyaltyMember>, ConnectorError> {
            unreachable()
        }
        async fn enroll(&self, _: &Enrollment) -> Result<LoyaltyMember, ConnectorError> {
            unreachable()
        }
        async fn find_accrual(&self, _: &str) -> Result<Option<AccrualJournal>, ConnectorError> {
            unreachable()
        }
        async fn post_accrual(&self, _: &AccrualRequest) -> Result<AccrualJournal, ConnectorError> {
            unreachable()
        }
        async fn points_balance(&self, _: &str) -> Result<Option<i64>, ConnectorError> {
            unreachable()
        }
        async fn find_reversal(&self, _: &str) -> Result<Option<AccrualJournal>, ConnectorError> {
            unreachable()
        }
        async fn post_reversal(
            &self,
            _: &ReversalRequest,
        ) -> Result<AccrualJournal, ConnectorError> {
            unreachable()
        }
        async fn ledger_journals(
            &self,
            _: &[String],
        ) -> Result<Vec<LedgerJournal>, ConnectorError> {
            unreachable()
        }
        async fn cancel_accrual(&self, _: &str, _: &str) -> Result<Option<String>, ConnectorError> {
            unreachable()
        }
    }

    fn checkout() -> &'static CheckoutValidation {
        static CHECKOUT: OnceLock<CheckoutValidation> = OnceLock::new();
        CHECKOUT.get_or_init(|| {
            let catalog = Arc::new(InProcessCatalog::new());
            let stock = Arc::new(InProcessStock::new());
            let seed = CatalogSeed::parse(SEED).expect("the sample catalog parses");
            runtime()
                .block_on(seed.load(&catalog, stock.as_ref()))
                .expect("the sample catalog loads");
            let loyalty = Arc::new(UnreachableLoyalty);
            CheckoutValidation::new(
                catalog,
                stock,
                Arc::new(retailflow_core::adapters::in_process::InProcessOpenHolds::new()),
                loyalty,
                Arc::new(CircuitBreaker::new(
                    "fuzz",
                    1,
                    std::time::Duration::from_secs(3600),
                )),
                CheckoutConfig {
                    // One signed-in customer sends every input: the cap
                    // would soon answer every cart before its stock.
                    max_open_holds: u32::MAX,
                    ..CheckoutConfig::default()
                },
            )
        })
    }

    pub fn auth_config() -> CheckoutAuthConfig {
        CheckoutSecretDocument {
            shopify_secret: SHOPIFY_SECRET.into(),
            shopify_client_id: CLIENT_ID.into(),
            shopify_shop_domains: vec![SHOP.into()],
            storefront_secrets: [(STOREFRONT.to_string(), STOREFRONT_SECRET.to_string())].into(),
            ..CheckoutSecretDocument::default()
        }
        .apply(CheckoutAuthConfig::default())
    }

    /// Checkout's authentication with a fresh nonce store per input (so
    /// inputs do not replay each other).
    pub fn auth() -> CheckoutAuth {
        CheckoutAuth::new(auth_config(), Arc::new(InProcessStateStore::new()))
    }

    /// A session token of the sample customer, valid now.
    pub fn token(now: chrono::DateTime<chrono::Utc>) -> String {
        let at = now.timestamp();
        session_token(
            &Secret::new(SHOPIFY_SECRET),
            &serde_json::json!({
                "dest": format!("https://{SHOP}"), "aud": CLIENT_ID,
                "sub": format!("gid://shopify/Customer/{CUSTOMER}"),
                "exp": at + 300, "nbf": at, "iat": at, "jti": "fuzz", "sid": "fuzz-session",
            }),
        )
    }

    fn header_map(pairs: &[(&str, String)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                map.append(k, v);
            }
        }
        map
    }

    /// The checkout API request: any body through checkout validation on
    /// the sample catalog, under credentials chosen by the input's length:
    /// a valid session token of the sample customer (0), a valid
    /// storefront signature (1), the input's first line as the
    /// Authorization header (2), none (3). Answered 200 (accepted or
    /// refused with reasons), a 4xx with a reason, or 503 when the loyalty
    /// platform (unreachable here) is needed for a points redemption;
    /// valid credentials are never refused, and the others always are.
    pub fn run(data: &[u8]) {
        let now = chrono::Utc::now();
        let mode = data.len() % 4;
        let headers = match mode {
            0 => header_map(&[("authorization", format!("Bearer {}", token(now)))]),
            1 => {
                let nonce = format!("fuzz-{}", retailflow_core::idempotency::payload_hash(data));
                header_map(&storefront_headers(
                    STOREFRONT,
                    &Secret::new(STOREFRONT_SECRET),
                    now,
                    &nonce[..32],
                    data,
                ))
            }
            2 => {
                let line = data.split(|b| *b == b'\n').next().unwrap_or_default();
                header_map(&[("authorization", String::from_utf8_lossy(line).into_owned())])
            }
            _ => http::HeaderMap::new(),
        };
        let (status, body) = runtime().block_on(answer(
            checkout(),
            &auth(),
            CheckoutHttpRequest {
                headers: &headers,
                body: data,
                received_at: now,
                gateway_time: None,
            },
        ));
        match mode {
            0 | 1 => assert_ne!(status, 401, "valid credentials refused: {body}"),
            _ => assert_eq!(status, 401, "let in without valid credentials: {body}"),
        }
        if status == 503 {
            return;
        }
        assert_answered(status, &body);
    }
}

pub mod checkout_auth {
    #[allow(unused_imports)]
    use super::*;
    use retailflow_core::checkout::auth::verify_session_token;

    /// Checkout's credentials parser on raw input: header lines (`name:
    /// value`), a blank line, the body, through authentication (refused
    /// with a reason, never a panic: nothing here is signed), and the
    /// whole input as a session token.
    pub fn run(data: &[u8]) {
        let now = chrono::Utc::now();
        let text = String::from_utf8_lossy(data);
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut headers = http::HeaderMap::new();
        for line in head.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            ) {
                headers.append(k, v);
            }
        }
        let auth = super::checkout_request::auth();
        match runtime().block_on(auth.authenticate(&headers, body.as_bytes(), now)) {
            Ok(caller) => panic!("unsigned input authenticated as {caller:?}"),
            Err(e) => assert!(!e.to_string().trim().is_empty()),
        }
        let config = super::checkout_request::auth_config();
        let keys = config
            .shopify
            .as_ref()
            .expect("the fuzz keys configure Shopify");
        if let Ok(buyer) = verify_session_token(keys, &text, now, config.leeway) {
            panic!("unsigned input verified as {buyer:?}");
        }
    }
}
