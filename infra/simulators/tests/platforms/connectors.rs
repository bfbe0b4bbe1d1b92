//! The HTTP connectors against the simulators: the same documented shapes on
//! both sides, and every failure classified as the retry policy expects.

use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use retailflow_connectors::netsuite::{NetSuiteConfig, NetSuiteErp};
use retailflow_connectors::salesforce::{SalesforceLoyalty, SalesforceLoyaltyConfig};
use retailflow_core::money::{Currency, Money};
use retailflow_core::ports::erp::{ErpConnector, ErpCustomer, ErpLine, ErpSalesOrder};
use retailflow_core::ports::loyalty::{AccrualRequest, Enrollment, LoyaltyConnector};
use retailflow_core::resilience::ConnectorError;
use simulators::{Fault, FaultKind, Simulators, System};

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::from_code("USD").unwrap())
}

fn netsuite(sims: &Simulators, timeout: Duration) -> NetSuiteErp {
    NetSuiteErp::new(NetSuiteConfig {
        base_url: sims.netsuite_base(),
        auth: sims.netsuite_auth(),
        subsidiary_id: Some("1".into()),
        timeout,
    })
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

fn order() -> ErpSalesOrder {
    ErpSalesOrder {
        external_id: "so-shopify-1001-abcd1234".into(),
        customer_external_id: "cu-shopify-7-abcd1234".into(),
        order_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        memo: "shopify #1001".into(),
        lines: vec![
            ErpLine {
                item: "SKU-1".into(),
                description: "Tee".into(),
                quantity: 2,
                unit_price: usd(1999),
                amount: usd(3598),
                restock: None,
            },
            ErpLine {
                item: "SHIPPING".into(),
                description: "Shipping".into(),
                quantity: 1,
                unit_price: usd(1000),
                amount: usd(1000),
                restock: None,
            },
        ],
        total: usd(4598),
        order_key: None,
    }
}

fn customer() -> ErpCustomer {
    ErpCustomer {
        external_id: "cu-shopify-7-abcd1234".into(),
        first_name: Some("Ada".into()),
        last_name: None,
        email: None,
    }
}

#[tokio::test]
async fn netsuite_upserts_are_idempotent_by_external_id() {
    let sims = Simulators::start().await.unwrap();
    let erp = netsuite(&sims, Duration::from_secs(2));
    let c1 = erp.upsert_customer(&customer()).await.unwrap();
    let c2 = erp.upsert_customer(&customer()).await.unwrap();
    assert_eq!(c1, c2);
    assert!(erp
        .find_sales_order(&order().external_id)
        .await
        .unwrap()
        .is_none());
    let d1 = erp.post_sales_order(&order(), &c1).await.unwrap();
    let d2 = erp.post_sales_order(&order(), &c1).await.unwrap();
    assert_eq!(d1, d2);
    assert_eq!(d1.total, usd(4598));
    assert!(d1.number.starts_with("SO"));
    let orders = sims.netsuite_sales_orders();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].upserts, 2);
    assert_eq!(
        erp.find_sales_order(&order().external_id).await.unwrap(),
        Some(d1)
    );
}

#[tokio::test]
async fn netsuite_failures_are_classified_for_the_retry_policy() {
    let sims = Simulators::start().await.unwrap();
    let erp = netsuite(&sims, Duration::from_millis(300));
    let c = erp.upsert_customer(&customer()).await.unwrap();
    let fault = |kind| Fault {
        system: System::NetSuite,
        method: Some("PUT"),
        path_contains: "salesOrder",
        kind,
        count: 1,
    };

    sims.inject(fault(FaultKind::Throttle { retry_after: None }));
    let e = erp.post_sales_order(&order(), &c).await.unwrap_err();
    assert!(
        matches!(
            e,
            ConnectorError::Throttled {
                retry_after: None,
                ..
            }
        ),
        "{e}"
    );

    sims.inject(fault(FaultKind::Unavailable));
    let e = erp.post_sales_order(&order(), &c).await.unwrap_err();
    assert!(
        matches!(e, ConnectorError::Unavailable { .. }) && e.counts_as_outage(),
        "{e}"
    );

    sims.inject(fault(FaultKind::Slow(Duration::from_millis(800))));
    let e = erp.post_sales_order(&order(), &c).await.unwrap_err();
    assert!(
        e.is_retryable() && e.to_string().contains("timed out"),
        "{e}"
    );

    // The effect lands but the answer is lost: a retry finds one document.
    sims.inject(fault(FaultKind::LoseResponse));
    assert!(erp
        .post_sales_order(&order(), &c)
        .await
        .unwrap_err()
        .is_retryable());
    erp.post_sales_order(&order(), &c).await.unwrap();
    assert_eq!(sims.netsuite_sales_orders().len(), 1);

    // Validation errors are permanent and say why.
    let mut bad = order();
    bad.lines[0].item = String::new();
    let e = erp.post_sales_order(&bad, &c).await.unwrap_err();
    assert!(
        matches!(e, ConnectorError::Rejected { status: 400, .. }) && !e.is_retryable(),
        "{e}"
    );
    assert!(e.to_string().contains("INVALID_CONTENT"), "{e}");
}

#[tokio::test]
async fn netsuite_outage_window_is_unavailable_until_it_ends() {
    let sims = Simulators::start().await.unwrap();
    let erp = netsuite(&sims, Duration::from_secs(2));
    sims.outage(
        System::NetSuite,
        Utc::now() + chrono::Duration::milliseconds(300),
    );
    assert!(erp
        .upsert_customer(&customer())
        .await
        .unwrap_err()
        .counts_as_outage());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(erp.upsert_customer(&customer()).await.is_ok());
}

fn accrual(ext: &str) -> AccrualRequest {
    AccrualRequest {
        external_transaction_number: ext.into(),
        membership_number: "shopify-7".into(),
        activity_at: Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap(),
        amount: usd(5850),
        points: 58,
    }
}

#[tokio::test]
async fn salesforce_members_are_found_or_enrolled_and_accruals_posted() {
    let sims = Simulators::start().await.unwrap();
    let sf = loyalty(&sims);
    assert!(sf.find_member("shopify-7").await.unwrap().is_none());
    let m = sf
        .enroll(&Enrollment {
            membership_number: "shopify-7".into(),
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            email: None,
            enrolled_at: Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(
        sf.find_member("shopify-7")
            .await
            .unwrap()
            .unwrap()
            .member_id,
        m.member_id
    );
    assert!(sf.find_accrual("acc-1").await.unwrap().is_none());
    let j = sf.post_accrual(&accrual("acc-1")).await.unwrap();
    assert_eq!(j.points, Some(58));
    assert_eq!(
        sf.find_accrual("acc-1").await.unwrap().unwrap().journal_id,
        j.journal_id
    );
    // The platform does not deduplicate: that is why the step claims and looks up.
    sf.post_accrual(&accrual("acc-1")).await.unwrap();
    assert_eq!(sims.loyalty_journals().len(), 2);
}

#[tokio::test]
async fn salesforce_request_limits_are_throttling_not_refusals() {
    let sims = Simulators::start().await.unwrap();
    let sf = loyalty(&sims);
    sims.inject(Fault {
        system: System::Salesforce,
        method: None,
        path_contains: "query",
        kind: FaultKind::Throttle {
            retry_after: Some(7),
        },
        count: 1,
    });
    let e = sf.find_member("x").await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert!(matches!(e, ConnectorError::Throttled { .. }), "{e}");
    // Posting for an unknown member is a permanent refusal with the reason.
    let e = sf.post_accrual(&accrual("acc-2")).await.unwrap_err();
    assert!(
        !e.is_retryable() && e.to_string().contains("Member not found"),
        "{e}"
    );
}
