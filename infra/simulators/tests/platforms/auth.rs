//! Each connector authenticates against its simulator the documented way;
//! an expired token is renewed without the record failing; a wrong
//! credential is a retryable failure with the `ConnectorAuthFailing`
//! metric, never a dead letter; a made-up credential gets the platform's
//! 401 on every system.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use retailflow_connectors::business_central::{BusinessCentralConfig, BusinessCentralErp};
use retailflow_connectors::netsuite::{NetSuiteConfig, NetSuiteErp};
use retailflow_connectors::salesforce::{SalesforceLoyalty, SalesforceLoyaltyConfig};
use retailflow_core::config::{
    ConnectorSecretDocument, NetSuiteCredentials, SalesforceCredentials,
};
use retailflow_core::ports::erp::ErpConnector;
use retailflow_core::ports::loyalty::LoyaltyConnector;
use retailflow_core::resilience::ConnectorError;
use retailflow_core::steps::StepOutcome;
use simulators::{Simulators, TokenIssuer, DEV_CONNECTOR_SECRET_ALTERNATIVES};

type Now = Arc<Mutex<DateTime<Utc>>>;

async fn sims_on_a_clock() -> (Simulators, Now) {
    let now: Now = Arc::new(Mutex::new(Utc::now()));
    let clock = now.clone();
    let sims = Simulators::start_with_clock(Arc::new(move || *clock.lock().unwrap()))
        .await
        .unwrap();
    (sims, now)
}

fn advance(now: &Now, by: chrono::Duration) {
    *now.lock().unwrap() += by;
}

fn netsuite(sims: &Simulators) -> NetSuiteErp {
    NetSuiteErp::new(NetSuiteConfig {
        base_url: sims.netsuite_base(),
        auth: sims.netsuite_auth(),
        subsidiary_id: None,
        timeout: Duration::from_secs(5),
    })
}

fn business_central(sims: &Simulators) -> BusinessCentralErp {
    BusinessCentralErp::new(BusinessCentralConfig {
        company_url: sims.business_central_company(),
        auth: sims.business_central_auth(),
        local_currency: retailflow_core::money::Currency::from_code("USD").unwrap(),
        timeout: Duration::from_secs(5),
    })
}

fn salesforce(sims: &Simulators) -> SalesforceLoyalty {
    SalesforceLoyalty::new(SalesforceLoyaltyConfig {
        base_url: sims.salesforce_base(),
        api_version: "v62.0".into(),
        program_name: "RetailflowRewards".into(),
        journal_subtype: "Purchase".into(),
        debit_process: "DebitPointsFromMembers".into(),
        auth: sims.salesforce_auth(),
        timeout: Duration::from_secs(5),
    })
}

fn alternatives() -> ConnectorSecretDocument {
    ConnectorSecretDocument::parse(DEV_CONNECTOR_SECRET_ALTERNATIVES).unwrap()
}

/// `ConnectorAuthFailing` lines emitted so far for `system`, from a sink
/// installed once for this test binary.
fn auth_failing_count(system: &str) -> usize {
    static LINES: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();
    let lines = LINES.get_or_init(|| {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        retailflow_core::observability::set_metrics_sink(Some(Arc::new(move |l: &str| {
            sink.lock().unwrap().push(l.to_string())
        })));
        lines
    });
    lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("ConnectorAuthFailing") && l.contains(&format!("\"{system}\"")))
        .count()
}

fn tokens(sims: &Simulators, issuer: &str) -> u64 {
    sims.tokens_issued().get(issuer).copied().unwrap_or(0)
}

/// A wrong credential: a retryable failure (the record waits with backoff)
/// that emitted the alarm's metric.
fn assert_waits_for_the_operator(err: ConnectorError, system: &str, before: usize) {
    assert!(
        matches!(err, ConnectorError::Unauthorized { .. }),
        "{system}: {err}"
    );
    assert!(
        matches!(StepOutcome::from(err), StepOutcome::Retry { .. }),
        "{system}: a refused credential is retried, never dead-lettered"
    );
    assert!(
        auth_failing_count(system) > before,
        "{system}: ConnectorAuthFailing emitted"
    );
}

#[tokio::test]
async fn netsuite_m2m_tokens_are_renewed_before_and_after_expiry_and_a_wrong_key_waits() {
    let (sims, now) = sims_on_a_clock().await;
    sims.set_token_lifetime(TokenIssuer::NetSuite, chrono::Duration::minutes(60));
    let erp = netsuite(&sims);
    assert_eq!(erp.find_sales_order("so-1").await.unwrap(), None);
    assert_eq!(erp.find_sales_order("so-2").await.unwrap(), None);
    assert_eq!(tokens(&sims, "NetSuite"), 1, "one token for both calls");
    // 57 minutes on: less than a fifth of its life left, renewed first.
    advance(&now, chrono::Duration::minutes(57));
    assert_eq!(erp.find_sales_order("so-3").await.unwrap(), None);
    assert_eq!(tokens(&sims, "NetSuite"), 2);
    // Two hours on: long expired, renewed, the call goes through.
    advance(&now, chrono::Duration::hours(2));
    assert_eq!(erp.find_sales_order("so-4").await.unwrap(), None);
    assert_eq!(tokens(&sims, "NetSuite"), 3);
    // Expired at the platform before the client thought (a revoked
    // session): the 401 renews once and the call goes through.
    sims.expire_tokens();
    assert_eq!(erp.find_sales_order("so-5").await.unwrap(), None);
    assert_eq!(tokens(&sims, "NetSuite"), 4);

    // A certificate the account does not know.
    let mut doc = Simulators::dev_connector_secret();
    if let Some(NetSuiteCredentials::OAuth2M2m { certificate_id, .. }) = doc.netsuite.as_mut() {
        *certificate_id = "revoked-cert".into();
    }
    sims.store_connector_document(&doc);
    advance(&now, chrono::Duration::minutes(10));
    let before = auth_failing_count("netsuite");
    let err = erp.find_sales_order("so-6").await.unwrap_err();
    assert_waits_for_the_operator(err, "netsuite", before);
}

#[tokio::test]
async fn netsuite_tba_signs_every_request_and_a_changed_secret_is_refused() {
    let (sims, now) = sims_on_a_clock().await;
    let mut doc = Simulators::dev_connector_secret();
    doc.netsuite = alternatives().netsuite;
    sims.store_connector_document(&doc);
    let erp = netsuite(&sims);
    assert_eq!(erp.find_sales_order("so-1").await.unwrap(), None);
    assert_eq!(erp.find_sales_order("so-2").await.unwrap(), None);
    assert_eq!(tokens(&sims, "NetSuite"), 0, "TBA asks for no token");

    if let Some(NetSuiteCredentials::Tba { token_secret, .. }) = doc.netsuite.as_mut() {
        *token_secret = "not-the-token-secret".into();
    }
    sims.store_connector_document(&doc);
    advance(&now, chrono::Duration::minutes(6));
    let before = auth_failing_count("netsuite");
    let err = erp.find_sales_order("so-3").await.unwrap_err();
    assert_waits_for_the_operator(err, "netsuite", before);
}

#[tokio::test]
async fn business_central_entra_tokens_renew_and_a_wrong_client_secret_waits() {
    let (sims, now) = sims_on_a_clock().await;
    sims.set_token_lifetime(TokenIssuer::Entra, chrono::Duration::minutes(5));
    let erp = business_central(&sims);
    assert_eq!(erp.find_sales_order("so-1").await.unwrap(), None);
    advance(&now, chrono::Duration::minutes(6));
    assert_eq!(erp.find_sales_order("so-2").await.unwrap(), None);
    assert_eq!(tokens(&sims, "Entra"), 2);

    let mut doc = Simulators::dev_connector_secret();
    if let Some(bc) = doc.business_central.as_mut() {
        bc.client_secret = "an-old-secret".into();
    }
    sims.store_connector_document(&doc);
    advance(&now, chrono::Duration::minutes(6));
    let before = auth_failing_count("business-central");
    let err = erp.find_sales_order("so-3").await.unwrap_err();
    assert_waits_for_the_operator(err, "business-central", before);
}

#[tokio::test]
async fn salesforce_sessions_that_end_are_renewed_on_the_401_with_either_flow() {
    let (sims, now) = sims_on_a_clock().await;
    let loyalty = salesforce(&sims);
    assert_eq!(loyalty.find_member("M-1").await.unwrap(), None);
    // The org ends the session; the answer never said when it would.
    sims.expire_tokens();
    assert_eq!(loyalty.find_member("M-1").await.unwrap(), None);
    assert_eq!(tokens(&sims, "Salesforce"), 2);

    // The JWT bearer flow, after a rotation to it.
    let mut doc = Simulators::dev_connector_secret();
    doc.salesforce = alternatives().salesforce;
    assert!(matches!(
        doc.salesforce,
        Some(SalesforceCredentials::JwtBearer { .. })
    ));
    sims.store_connector_document(&doc);
    sims.expire_tokens();
    advance(&now, chrono::Duration::minutes(1));
    assert_eq!(loyalty.find_member("M-1").await.unwrap(), None);
    assert_eq!(tokens(&sims, "Salesforce"), 3);

    if let Some(SalesforceCredentials::JwtBearer { username, .. }) = doc.salesforce.as_mut() {
        *username = "someone-else@retailflow.dev".into();
    }
    sims.store_connector_document(&doc);
    sims.expire_tokens();
    advance(&now, chrono::Duration::minutes(1));
    let before = auth_failing_count("salesforce-loyalty");
    let err = loyalty.find_member("M-1").await.unwrap_err();
    assert_waits_for_the_operator(err, "salesforce-loyalty", before);
}

#[tokio::test]
async fn a_rotated_credential_reaches_the_connector_without_a_restart() {
    let (sims, now) = sims_on_a_clock().await;
    let erp = business_central(&sims);
    assert_eq!(erp.find_sales_order("so-1").await.unwrap(), None);
    // The operator registers a new client secret, stores it, and the old
    // one (and every token made from it) is revoked.
    let mut doc = Simulators::dev_connector_secret();
    if let Some(bc) = doc.business_central.as_mut() {
        bc.client_secret = "rotated-secret".into();
    }
    sims.revoke_credentials();
    sims.accept_credentials(&doc);
    sims.store_connector_document(&doc);
    advance(&now, chrono::Duration::minutes(1));
    // The 401 drops the token and re-reads the secret: the call goes through.
    assert_eq!(erp.find_sales_order("so-2").await.unwrap(), None);
}

#[tokio::test]
async fn adobe_commerce_requests_are_signed_and_a_bearer_token_is_refused() {
    use retailflow_connectors::shop::{AdobeCommerceAdmin, AdobeCommerceAdminConfig};
    use retailflow_core::ports::shop::EcommerceConnector;
    let (sims, now) = sims_on_a_clock().await;
    let adobe = AdobeCommerceAdmin::new(AdobeCommerceAdminConfig {
        base_url: sims.adobe_rest_base(),
        auth: sims.adobe_auth(),
        timeout: Duration::from_secs(5),
    });
    let refund = retailflow_core::ports::shop::ShopRefund {
        order: retailflow_core::model::OrderRef {
            platform: retailflow_core::model::Platform::AdobeCommerce,
            shop: "default".into(),
            order_id: "7".into(),
        },
        reference: "rf-1".into(),
        lines: vec![],
        shipping: retailflow_core::money::Money::new(
            0,
            retailflow_core::money::Currency::from_code("USD").unwrap(),
        ),
        total: retailflow_core::money::Money::new(
            0,
            retailflow_core::money::Currency::from_code("USD").unwrap(),
        ),
    };
    assert_eq!(adobe.find_refund(&refund).await.unwrap(), None);
    // The integration's access token as a bare bearer token: refused, as
    // Adobe Commerce 2.4.4+ does by default.
    let bearer = reqwest::Client::new()
        .get(format!("{}/V1/creditmemos", sims.adobe_rest_base()))
        .bearer_auth("dev-adobe-access-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);

    let mut doc = Simulators::dev_connector_secret();
    if let Some(a) = doc.adobe_commerce.as_mut() {
        a.access_token_secret = "wrong".into();
    }
    sims.store_connector_document(&doc);
    advance(&now, chrono::Duration::minutes(6));
    let before = auth_failing_count("adobe-commerce-admin");
    let err = adobe.find_refund(&refund).await.unwrap_err();
    assert_waits_for_the_operator(err, "adobe-commerce-admin", before);
}

#[tokio::test]
async fn a_replayed_oauth1_request_is_refused() {
    let sims = Simulators::start().await.unwrap();
    let creds = retailflow_connectors::auth::oauth1::OAuth1Credentials {
        consumer_key: "dev-adobe-consumer-key".into(),
        consumer_secret: "dev-adobe-consumer-secret".into(),
        token: "dev-adobe-access-token".into(),
        token_secret: "dev-adobe-access-token-secret".into(),
    };
    let url = url::Url::parse(&format!("{}/V1/creditmemos", sims.adobe_rest_base())).unwrap();
    let header = retailflow_connectors::auth::oauth1::authorization(
        &creds,
        "GET",
        &url,
        None,
        "nonce-used-once",
        u64::try_from(Utc::now().timestamp()).unwrap(),
    );
    let send = || {
        reqwest::Client::new()
            .get(url.clone())
            .header("authorization", header.clone())
            .send()
    };
    // Past authentication (the search itself wants criteria: 400).
    assert_ne!(send().await.unwrap().status(), 401);
    let replay = send().await.unwrap();
    assert_eq!(replay.status(), 401, "the same nonce again");
}

#[tokio::test]
async fn a_made_up_token_is_refused_with_401_by_every_system() {
    let sims = Simulators::start().await.unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{}", sims.addr);
    let calls = [
        (
            format!("{}/salesOrder/eid:x", sims.netsuite_base()),
            "authorization",
            "Bearer made-up",
            "INVALID_LOGIN",
        ),
        (
            format!("{}/salesOrders", sims.business_central_company()),
            "authorization",
            "Bearer made-up",
            "Authentication_InvalidCredentials",
        ),
        (
            format!("{}/services/data/v62.0/query?q=x", sims.salesforce_base()),
            "authorization",
            "Bearer made-up",
            "INVALID_SESSION_ID",
        ),
        (
            format!("{base}/shopify/acme.myshopify.com/admin/api/2024-10/orders/1/refunds.json"),
            "x-shopify-access-token",
            "shpat_made_up",
            "Invalid API key or access token",
        ),
        (
            format!("{}/V1/creditmemos", sims.adobe_rest_base()),
            "authorization",
            "Bearer made-up",
            "isn't authorized",
        ),
    ];
    for (url, header, value, says) in calls {
        let resp = http.get(&url).header(header, value).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{url}");
        let body = resp.text().await.unwrap();
        assert!(body.contains(says), "{url}: {body}");
        let none = http.get(&url).send().await.unwrap();
        assert_eq!(none.status(), 401, "{url} without a credential");
    }
}

#[tokio::test]
async fn a_revoked_shopify_token_waits_for_the_operator() {
    use retailflow_connectors::shop::{ShopifyAdmin, ShopifyAdminConfig};
    use retailflow_core::ports::shop::EcommerceConnector;
    let (sims, now) = sims_on_a_clock().await;
    let shopify = ShopifyAdmin::new(ShopifyAdminConfig {
        base_url: Some(sims.shopify_admin_base()),
        api_version: "2024-10".into(),
        tokens: sims.shopify_tokens(),
        locations: Default::default(),
        default_location: None,
        timeout: Duration::from_secs(5),
    });
    let usd = retailflow_core::money::Currency::from_code("USD").unwrap();
    let refund = retailflow_core::ports::shop::ShopRefund {
        order: retailflow_core::model::OrderRef {
            platform: retailflow_core::model::Platform::Shopify,
            shop: "acme.myshopify.com".into(),
            order_id: "5872301948123".into(),
        },
        reference: "rf-1".into(),
        lines: vec![],
        shipping: retailflow_core::money::Money::new(0, usd),
        total: retailflow_core::money::Money::new(0, usd),
    };
    assert_eq!(shopify.find_refund(&refund).await.unwrap(), None);
    // The app is reinstalled: its old offline token stops working, and the
    // secret still holds the old one.
    sims.revoke_credentials();
    let mut doc = Simulators::dev_connector_secret();
    doc.shopify_admin_tokens
        .insert("acme.myshopify.com".into(), "shpat_after_reinstall".into());
    sims.accept_credentials(&doc);
    advance(&now, chrono::Duration::minutes(1));
    let before = auth_failing_count("shopify-admin");
    let err = shopify.find_refund(&refund).await.unwrap_err();
    assert_waits_for_the_operator(err, "shopify-admin", before);
    // The operator stores the new token: the next try goes through.
    sims.store_connector_document(&doc);
    advance(&now, chrono::Duration::minutes(1));
    assert_eq!(shopify.find_refund(&refund).await.unwrap(), None);
}
