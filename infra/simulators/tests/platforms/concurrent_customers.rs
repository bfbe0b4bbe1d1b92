//! The ERPs' answers to concurrent work, as they really come: two first
//! orders of one new customer create it at once (NetSuite's "already
//! exists", Business Central's 409), and a record changed by someone else
//! is a conflict to retry, never a dead letter.

use std::time::Duration;

use retailflow_connectors::business_central::{BusinessCentralConfig, BusinessCentralErp};
use retailflow_connectors::netsuite::{NetSuiteConfig, NetSuiteErp};
use retailflow_core::money::Currency;
use retailflow_core::ports::erp::{ErpConnector, ErpCustomer};
use retailflow_core::resilience::ConnectorError;
use retailflow_core::steps::StepOutcome;
use simulators::Simulators;

fn customer(external_id: &str) -> ErpCustomer {
    ErpCustomer {
        external_id: external_id.into(),
        first_name: Some("Jane".into()),
        last_name: Some("Doe".into()),
        email: None,
    }
}

#[tokio::test]
async fn two_first_orders_of_one_new_customer_both_find_it_in_netsuite() {
    let sims = Simulators::start().await.unwrap();
    let erp = NetSuiteErp::new(NetSuiteConfig {
        base_url: sims.netsuite_base(),
        auth: sims.netsuite_auth(),
        subsidiary_id: None,
        timeout: Duration::from_secs(5),
    });
    let c = customer("cu-shopify-42-abcd1234");
    let (a, b) = tokio::join!(erp.upsert_customer(&c), erp.upsert_customer(&c));
    let won = a.as_ref().or(b.as_ref()).unwrap().clone();
    // The one that lost the race met "already exists" while the record was
    // still being created: a conflict, retried, never a dead letter.
    if let Err(lost) = a.and(b) {
        assert!(matches!(lost, ConnectorError::Conflict { .. }), "{lost}");
        assert!(matches!(StepOutcome::from(lost), StepOutcome::Retry { .. }));
    }
    // Its retry finds the customer.
    assert_eq!(erp.upsert_customer(&c).await.unwrap(), won);
    assert_eq!(sims.netsuite_customers().len(), 1);
}

#[tokio::test]
async fn two_first_orders_of_one_new_customer_both_find_it_in_business_central() {
    let sims = Simulators::start().await.unwrap();
    let erp = BusinessCentralErp::new(BusinessCentralConfig {
        company_url: sims.business_central_company(),
        auth: sims.business_central_auth(),
        local_currency: Currency::from_code("USD").unwrap(),
        timeout: Duration::from_secs(5),
    });
    let c = customer("cu-shopify-guest-abcd1234");
    let results = futures::future::join_all((0..4).map(|_| erp.upsert_customer(&c))).await;
    let numbers: Vec<String> = results.into_iter().map(Result::unwrap).collect();
    assert!(numbers.windows(2).all(|w| w[0] == w[1]), "{numbers:?}");
}

#[test]
fn a_record_changed_by_someone_else_is_retried_not_dead_lettered() {
    for status in [409, 412] {
        let e =
            ConnectorError::from_status("business-central", status, None, "Request_EntityChanged");
        assert!(matches!(e, ConnectorError::Conflict { .. }), "{e}");
        assert!(matches!(StepOutcome::from(e), StepOutcome::Retry { .. }));
    }
}
