//! The return side of the connectors against the simulators: credit memos
//! and order cancellation in both ERPs, points debits and accrual
//! cancellation in Salesforce Loyalty, refunds recorded in Shopify and Adobe
//! Commerce; each idempotent where the vendor lets it be, and each failure
//! classified for the retry policy.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use retailflow_connectors::business_central::{BusinessCentralConfig, BusinessCentralErp};
use retailflow_connectors::netsuite::{NetSuiteConfig, NetSuiteErp};
use retailflow_connectors::salesforce::{SalesforceLoyalty, SalesforceLoyaltyConfig};
use retailflow_connectors::shop::{
    AdobeCommerceAdmin, AdobeCommerceAdminConfig, ShopifyAdmin, ShopifyAdminConfig,
};
use retailflow_core::model::{OrderRef, Platform, RestockType};
use retailflow_core::money::{Currency, Money};
use retailflow_core::ports::erp::{ErpConnector, ErpCreditMemo, ErpCustomer, ErpLine};
use retailflow_core::ports::loyalty::{
    AccrualRequest, Enrollment, LoyaltyConnector, ReversalRequest,
};
use retailflow_core::ports::shop::{EcommerceConnector, ShopRefund, ShopRefundLine};
use retailflow_core::resilience::ConnectorError;
use simulators::{Fault, FaultKind, Simulators, System};

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::from_code("USD").unwrap())
}

fn memo(external_id: &str) -> ErpCreditMemo {
    ErpCreditMemo {
        external_id: external_id.into(),
        customer_external_id: String::new(),
        order_date: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
        memo: "shopify refund 1".into(),
        lines: vec![
            ErpLine {
                item: "SKU-1".into(),
                description: "Return of line 1".into(),
                quantity: 1,
                unit_price: usd(2000),
                amount: usd(2000),
                restock: Some(RestockType::Damaged),
            },
            ErpLine {
                item: "SALES-TAX".into(),
                description: "Tax refunded".into(),
                quantity: 1,
                unit_price: usd(160),
                amount: usd(160),
                restock: None,
            },
        ],
        total: usd(2160),
        order_key: None,
    }
}

fn customer() -> ErpCustomer {
    ErpCustomer {
        external_id: "cu-shopify-7-abcd1234".into(),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        email: None,
    }
}

#[tokio::test]
async fn netsuite_credit_memos_upsert_by_external_id_and_cancelling_closes_every_line() {
    let sims = Simulators::start().await.unwrap();
    let ns = NetSuiteErp::new(NetSuiteConfig {
        base_url: sims.netsuite_base(),
        auth: sims.netsuite_auth(),
        subsidiary_id: None,
        timeout: Duration::from_secs(2),
    });
    let customer_id = ns.upsert_customer(&customer()).await.unwrap();
    let first = ns
        .post_credit_memo(&memo("cm-1"), &customer_id)
        .await
        .unwrap();
    let again = ns
        .post_credit_memo(&memo("cm-1"), &customer_id)
        .await
        .unwrap();
    assert_eq!(first, again, "one document per external id");
    assert_eq!(first.total, usd(2160));
    assert!(first.number.starts_with("CM"));
    let memos = sims.netsuite_credit_memos();
    assert_eq!(memos.len(), 1);
    assert_eq!(memos[0].dispositions[0].as_deref(), Some("damaged"));
    assert_eq!(ns.find_credit_memo("cm-1").await.unwrap(), Some(first));
    assert_eq!(ns.find_credit_memo("cm-2").await.unwrap(), None);

    // A sales order, cancelled: every line closed; cancelling again or an
    // order that is not there is fine.
    let mut so = memo("so-1");
    so.lines[0].restock = None;
    ns.post_sales_order(&so, &customer_id).await.unwrap();
    assert_eq!(
        ns.find_sales_order("so-1")
            .await
            .unwrap()
            .unwrap()
            .customer_id,
        Some(customer_id.clone()),
        "a sales order says whose it is"
    );
    assert!(ns.cancel_sales_order("so-1").await.unwrap());
    assert!(sims.netsuite_sales_orders()[0].closed);
    assert!(ns.cancel_sales_order("so-1").await.unwrap());
    assert!(!ns.cancel_sales_order("so-missing").await.unwrap());

    sims.inject(Fault {
        system: System::NetSuite,
        method: Some("PUT"),
        path_contains: "creditMemo",
        kind: FaultKind::Throttle {
            retry_after: Some(7),
        },
        count: 1,
    });
    let err = ns
        .post_credit_memo(&memo("cm-3"), &customer_id)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn business_central_credit_memos_are_created_then_posted_and_a_crashed_draft_is_finished() {
    let sims = Simulators::start().await.unwrap();
    let bc = BusinessCentralErp::new(BusinessCentralConfig {
        company_url: sims.business_central_company(),
        auth: sims.business_central_auth(),
        local_currency: Currency::from_code("USD").unwrap(),
        timeout: Duration::from_secs(2),
    });
    let number = bc.upsert_customer(&customer()).await.unwrap();
    // The post action fails once after the credit memo was created: the
    // retry finds the draft and posts it instead of creating another.
    sims.inject(Fault {
        system: System::BusinessCentral,
        method: Some("POST"),
        path_contains: "Microsoft.NAV.post",
        kind: FaultKind::Unavailable,
        count: 1,
    });
    let err = bc
        .post_credit_memo(&memo("cm-bc-1"), &number)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(sims.business_central_credit_memos()[0].status, "Draft");
    let doc = bc
        .post_credit_memo(&memo("cm-bc-1"), &number)
        .await
        .unwrap();
    let memos = sims.business_central_credit_memos();
    assert_eq!(memos.len(), 1, "{memos:?}");
    assert_eq!(memos[0].status, "Open", "posted");
    assert_eq!(doc.total, usd(2160));
    assert_eq!(bc.find_credit_memo("cm-bc-1").await.unwrap(), Some(doc));

    let mut so = memo("so-bc-1");
    so.lines[0].restock = None;
    bc.post_sales_order(&so, &number).await.unwrap();
    assert!(bc.cancel_sales_order("so-bc-1").await.unwrap());
    assert!(sims.business_central_sales_orders().is_empty(), "deleted");
    assert!(!bc.cancel_sales_order("so-bc-1").await.unwrap());
}

fn loyalty(sims: &Simulators) -> SalesforceLoyalty {
    SalesforceLoyalty::new(SalesforceLoyaltyConfig {
        base_url: sims.salesforce_base(),
        api_version: "v62.0".into(),
        program_name: "Program1".into(),
        journal_subtype: "Purchase".into(),
        debit_process: "DebitPointsFromMembers".into(),
        auth: sims.salesforce_auth(),
        timeout: Duration::from_secs(2),
    })
}

#[tokio::test]
async fn salesforce_debits_exact_points_and_cancels_an_accrual_once() {
    let sims = Simulators::start().await.unwrap();
    let sf = loyalty(&sims);
    let at = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap();
    sf.enroll(&Enrollment {
        membership_number: "M-1".into(),
        first_name: None,
        last_name: None,
        email: None,
        enrolled_at: at,
    })
    .await
    .unwrap();
    let accrual = sf
        .post_accrual(&AccrualRequest {
            external_transaction_number: "acc-1".into(),
            membership_number: "M-1".into(),
            activity_at: at,
            amount: usd(6000),
            points: 60,
        })
        .await
        .unwrap();
    let debit = ReversalRequest {
        external_transaction_number: "rev-1".into(),
        membership_number: "M-1".into(),
        activity_at: at,
        amount: usd(2000),
        points: 20,
    };
    assert_eq!(sf.find_reversal("rev-1").await.unwrap(), None);
    let posted = sf.post_reversal(&debit).await.unwrap();
    assert_eq!(posted.points, Some(-20));
    assert_eq!(
        sf.find_reversal("rev-1")
            .await
            .unwrap()
            .map(|j| j.journal_id),
        Some(posted.journal_id)
    );
    assert_eq!(sims.loyalty_members()[0].points_balance, 40);

    // Whole-order cancellation of the accrual: once, then found cancelled.
    assert!(sf
        .cancel_accrual(&accrual.journal_id, "Order returned")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        sf.cancel_accrual(&accrual.journal_id, "Order returned")
            .await
            .unwrap(),
        None,
        "a retry after a lost answer finds it cancelled"
    );
    assert_eq!(sims.loyalty_members()[0].points_balance, -20);

    sims.inject(Fault {
        system: System::Salesforce,
        method: Some("POST"),
        path_contains: "program-processes",
        kind: FaultKind::Throttle { retry_after: None },
        count: 1,
    });
    let err = sf.post_reversal(&debit).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Throttled { .. }), "{err}");
}

fn shop_refund(platform: Platform, shop: &str, order: &str, line: &str) -> ShopRefund {
    ShopRefund {
        order: OrderRef {
            platform,
            shop: shop.into(),
            order_id: order.into(),
        },
        reference: "rf-pos-1-abcdef12".into(),
        lines: vec![ShopRefundLine {
            line_id: line.into(),
            quantity: 1,
            restock: RestockType::Return,
            location_id: Some("store-042".into()),
        }],
        shipping: usd(0),
        total: usd(2429),
    }
}

#[tokio::test]
async fn shopify_records_a_till_return_once_and_finds_it_by_its_reference() {
    let sims = Simulators::start().await.unwrap();
    let shopify = |locations: BTreeMap<String, String>| {
        ShopifyAdmin::new(ShopifyAdminConfig {
            base_url: Some(sims.shopify_admin_base()),
            api_version: "2024-10".into(),
            tokens: sims.shopify_tokens(),
            locations,
            default_location: None,
            timeout: Duration::from_secs(2),
        })
    };
    let refund = shop_refund(
        Platform::Shopify,
        "acme.myshopify.com",
        "5872301948123",
        "14820035190875",
    );
    let unmapped = shopify(BTreeMap::new());
    let err = unmapped.record_refund(&refund).await.unwrap_err();
    assert!(
        !err.is_retryable(),
        "an unmapped store needs configuration: {err}"
    );
    let admin = shopify(BTreeMap::from([("store-042".into(), "68123456789".into())]));
    assert_eq!(admin.find_refund(&refund).await.unwrap(), None);
    let id = admin.record_refund(&refund).await.unwrap();
    assert_eq!(admin.find_refund(&refund).await.unwrap(), Some(id));
    let recorded = sims.shop_refunds();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0].lines,
        vec![("14820035190875".to_string(), 1, "return".to_string())]
    );
    let other_shop = shop_refund(
        Platform::Shopify,
        "other.myshopify.com",
        "5872301948123",
        "1",
    );
    assert!(
        !admin
            .record_refund(&other_shop)
            .await
            .unwrap_err()
            .is_retryable(),
        "no token"
    );

    sims.inject(Fault {
        system: System::Shopify,
        method: Some("POST"),
        path_contains: "refunds.json",
        kind: FaultKind::Throttle {
            retry_after: Some(2),
        },
        count: 1,
    });
    let err = admin.record_refund(&refund).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(
        sims.shop_refunds().len(),
        1,
        "the throttled call did nothing"
    );
}

#[tokio::test]
async fn adobe_commerce_records_an_offline_credit_memo_and_finds_it_by_its_comment() {
    let sims = Simulators::start().await.unwrap();
    let adobe = AdobeCommerceAdmin::new(AdobeCommerceAdminConfig {
        base_url: sims.adobe_rest_base(),
        auth: sims.adobe_auth(),
        timeout: Duration::from_secs(2),
    });
    let refund = shop_refund(Platform::AdobeCommerce, "acme", "214", "431");
    assert_eq!(adobe.find_refund(&refund).await.unwrap(), None);
    let id = adobe.record_refund(&refund).await.unwrap();
    assert_eq!(adobe.find_refund(&refund).await.unwrap(), Some(id));
    assert_eq!(
        sims.shop_refunds()[0].lines,
        vec![("431".to_string(), 1, "return_to_stock".to_string())]
    );
    sims.inject(Fault {
        system: System::AdobeCommerce,
        method: None,
        path_contains: "",
        kind: FaultKind::Unavailable,
        count: 1,
    });
    assert!(adobe.find_refund(&refund).await.unwrap_err().is_retryable());
    let bad = shop_refund(Platform::AdobeCommerce, "acme", "not-a-number", "431");
    assert!(!adobe.record_refund(&bad).await.unwrap_err().is_retryable());
}
