//! NetSuite SuiteTalk REST (record API v1) as the ERP.
//!
//! Sales orders and customers are upserted by external id
//! (`PUT /salesOrder/eid:{id}`), so posting twice yields one document: this
//! connector needs no claim write before posting. Authentication: Token-Based
//! Authentication or OAuth 2.0 M2M (see [`super::auth`]).

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::wire::{call_json, http_client, money_from_json, send, Reply, WireDecimal};
use super::Auth;
use retailflow_core::money::Currency;
use retailflow_core::ports::erp::{
    ErpConnector, ErpCreditMemo, ErpCustomer, ErpDocument, ErpDocumentKind, ErpSalesOrder,
    LedgerDocument, LedgerQuery,
};
use retailflow_core::resilience::ConnectorError;

const SYSTEM: &str = "netsuite";

/// Error codes NetSuite uses for its concurrency / request limits.
const LIMIT_CODES: [&str; 3] = [
    "SSS_REQUEST_LIMIT_EXCEEDED",
    "WS_REQUEST_BLOCKED",
    "CONCURRENCY_LIMIT_EXCEEDED",
];

#[derive(Debug, Clone)]
pub struct NetSuiteConfig {
    /// `https://{account}.suitetalk.api.netsuite.com/services/rest/record/v1`
    pub base_url: String,
    /// TBA or OAuth 2.0 M2M ([`super::auth::NetSuiteAuth`]).
    pub auth: Auth,
    /// Needed on customers in OneWorld accounts.
    pub subsidiary_id: Option<String>,
    pub timeout: Duration,
}

pub struct NetSuiteErp {
    client: reqwest::Client,
    config: NetSuiteConfig,
}

impl NetSuiteErp {
    pub fn new(config: NetSuiteConfig) -> Self {
        NetSuiteErp {
            client: http_client(config.timeout),
            config,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.base_url.trim_end_matches('/'))
    }

    /// One page of a SuiteQL query (`Prefer: transient`, as the REST
    /// query service requires).
    pub(crate) async fn suiteql(
        &self,
        query: &str,
        limit: usize,
        offset: usize,
    ) -> Result<serde_json::Value, ConnectorError> {
        let base = self.config.base_url.trim_end_matches('/');
        let root = base.strip_suffix("/record/v1").unwrap_or(base);
        let req = self
            .client
            .post(format!("{root}/query/v1/suiteql"))
            .query(&[("limit", limit), ("offset", offset)])
            .header("Prefer", "transient")
            .json(&serde_json::json!({ "q": query }));
        call_json(SYSTEM, &self.config.auth, req, classify).await
    }

    /// The internal id at the end of a `Location` header.
    fn location_id(reply: &Reply) -> Result<String, ConnectorError> {
        reply
            .header("location")
            .and_then(|l| l.rsplit('/').next())
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ConnectorError::BadResponse {
                system: SYSTEM,
                reason: format!("HTTP {} without a usable Location header", reply.status),
            })
    }
}

/// Maps a non-2xx answer, reading NetSuite's `o:errorDetails`.
fn classify(reply: &Reply) -> ConnectorError {
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
    let detail = &body["o:errorDetails"][0];
    let code = detail["o:errorCode"].as_str().unwrap_or("");
    if reply.status == 429 || (reply.status == 400 && LIMIT_CODES.contains(&code)) {
        return ConnectorError::Throttled {
            system: SYSTEM,
            retry_after: reply.retry_after(),
        };
    }
    let text = format!(
        "{code}: {}",
        detail["detail"].as_str().unwrap_or(&reply.body)
    );
    // Another session changed the record between our read and write.
    if code == "RCRD_HAS_BEEN_CHANGED" || text.contains("has been changed") {
        return ConnectorError::Conflict {
            system: SYSTEM,
            reason: text,
        };
    }
    ConnectorError::from_status(SYSTEM, reply.status, reply.retry_after(), &text)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomerBody<'a> {
    is_person: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subsidiary: Option<Ref<'a>>,
}

#[derive(Serialize)]
struct Ref<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "externalId", skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a str>,
    #[serde(rename = "refName", skip_serializing_if = "Option::is_none")]
    ref_name: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SalesOrderBody<'a> {
    entity: Ref<'a>,
    tran_date: String,
    currency: Ref<'a>,
    memo: &'a str,
    item: Items<'a>,
    /// retailflow's order key, so item fulfillments lead back to the shop
    /// order (a transaction body custom field; see API-SHAPES.md).
    #[serde(
        rename = "custbody_retailflow_order_key",
        skip_serializing_if = "Option::is_none"
    )]
    order_key: Option<&'a str>,
}

#[derive(Serialize)]
struct Items<'a> {
    items: Vec<ItemLine<'a>>,
}

#[derive(Serialize)]
struct ItemLine<'a> {
    item: Ref<'a>,
    description: &'a str,
    quantity: u32,
    rate: WireDecimal,
    amount: WireDecimal,
    /// Stock disposition of a returned line (a transaction line custom
    /// field the account defines; see API-SHAPES.md).
    #[serde(
        rename = "custcol_retailflow_disposition",
        skip_serializing_if = "Option::is_none"
    )]
    disposition: Option<&'static str>,
}

fn disposition(r: retailflow_core::model::RestockType) -> &'static str {
    use retailflow_core::model::RestockType::*;
    match r {
        Return => "restock",
        Cancel => "restock_unshipped",
        NoRestock => "no_restock",
        Damaged => "damaged",
    }
}

#[async_trait]
impl ErpConnector for NetSuiteErp {
    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn dedups_natively(&self) -> bool {
        true
    }

    async fn upsert_customer(&self, c: &ErpCustomer) -> Result<String, ConnectorError> {
        let body = CustomerBody {
            is_person: true,
            first_name: c.first_name.as_deref(),
            last_name: c.last_name.as_deref(),
            email: c.email.as_deref(),
            subsidiary: self.config.subsidiary_id.as_deref().map(|id| Ref {
                id: Some(id),
                external_id: None,
                ref_name: None,
            }),
        };
        let req = self
            .client
            .put(self.url(&format!("customer/eid:{}", c.external_id)))
            .json(&body);
        let reply = send(SYSTEM, &self.config.auth, req).await?;
        if reply.status == 400 && reply.body.contains("already exists") {
            // Two first orders of one new customer (or the guest
            // customer's first uses) upserted it at once and the other
            // created it: read it; still being created, a conflict the
            // retry policy tries again.
            return match self.customer_id(&c.external_id).await? {
                Some(id) => Ok(id),
                None => Err(ConnectorError::Conflict {
                    system: SYSTEM,
                    reason: format!(
                        "customer {} is being created by another request",
                        c.external_id
                    ),
                }),
            };
        }
        if !reply.is_success() {
            return Err(classify(&reply));
        }
        Self::location_id(&reply)
    }

    async fn find_sales_order(
        &self,
        external_id: &str,
    ) -> Result<Option<ErpDocument>, ConnectorError> {
        self.find("salesOrder", external_id).await
    }

    async fn post_sales_order(
        &self,
        o: &ErpSalesOrder,
        customer_id: &str,
    ) -> Result<ErpDocument, ConnectorError> {
        self.upsert_transaction("salesOrder", o, customer_id).await
    }

    async fn find_credit_memo(
        &self,
        external_id: &str,
    ) -> Result<Option<ErpDocument>, ConnectorError> {
        self.find("creditMemo", external_id).await
    }

    async fn post_credit_memo(
        &self,
        m: &ErpCreditMemo,
        customer_id: &str,
    ) -> Result<ErpDocument, ConnectorError> {
        self.upsert_transaction("creditMemo", m, customer_id).await
    }

    async fn ledger_documents(
        &self,
        kind: ErpDocumentKind,
        wanted: &[LedgerQuery],
    ) -> Result<Vec<LedgerDocument>, ConnectorError> {
        NetSuiteErp::ledger_documents(self, kind, wanted).await
    }

    async fn cancel_sales_order(&self, external_id: &str) -> Result<bool, ConnectorError> {
        let url = self.url(&format!("salesOrder/eid:{external_id}"));
        let reply = send(SYSTEM, &self.config.auth, self.client.get(&url)).await?;
        if reply.status == 404 {
            return Ok(false);
        }
        if !reply.is_success() {
            return Err(classify(&reply));
        }
        let v: serde_json::Value =
            serde_json::from_str(&reply.body).map_err(|e| ConnectorError::BadResponse {
                system: SYSTEM,
                reason: format!("sales order is not JSON: {e}"),
            })?;
        // Billed: no longer an open order to cancel; it gets credited.
        if v["status"]["refName"].as_str() == Some("Billed") {
            return Ok(false);
        }
        let lines: Vec<serde_json::Value> = v["item"]["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["isClosed"].as_bool() != Some(true))
            .map(|l| serde_json::json!({"line": l["line"], "isClosed": true}))
            .collect();
        if lines.is_empty() {
            return Ok(true);
        }
        let body = serde_json::json!({"item": {"items": lines}});
        let reply = send(
            SYSTEM,
            &self.config.auth,
            self.client.patch(&url).json(&body),
        )
        .await?;
        if !reply.is_success() {
            return Err(classify(&reply));
        }
        Ok(true)
    }
}

impl NetSuiteErp {
    /// The internal id of the customer with this external id, if NetSuite
    /// has it yet.
    async fn customer_id(&self, external_id: &str) -> Result<Option<String>, ConnectorError> {
        let req = self
            .client
            .get(self.url(&format!("customer/eid:{external_id}")))
            .query(&[("fields", "id")]);
        let reply = send(SYSTEM, &self.config.auth, req).await?;
        if reply.status == 404 {
            return Ok(None);
        }
        if !reply.is_success() {
            return Err(classify(&reply));
        }
        let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
        match v["id"].as_str() {
            Some(id) if !id.is_empty() => Ok(Some(id.to_string())),
            _ => Err(ConnectorError::BadResponse {
                system: SYSTEM,
                reason: "customer read without an id".into(),
            }),
        }
    }

    async fn find(
        &self,
        record: &str,
        external_id: &str,
    ) -> Result<Option<ErpDocument>, ConnectorError> {
        let req = self
            .client
            .get(self.url(&format!("{record}/eid:{external_id}")));
        let reply = send(SYSTEM, &self.config.auth, req).await?;
        if reply.status == 404 {
            return Ok(None);
        }
        if !reply.is_success() {
            return Err(classify(&reply));
        }
        let v: serde_json::Value =
            serde_json::from_str(&reply.body).map_err(|e| ConnectorError::BadResponse {
                system: SYSTEM,
                reason: format!("{record} is not JSON: {e}"),
            })?;
        let currency = v["currency"]["refName"]
            .as_str()
            .and_then(|c| Currency::from_code(c).ok())
            .ok_or_else(|| ConnectorError::BadResponse {
                system: SYSTEM,
                reason: format!("{record} has no currency refName"),
            })?;
        Ok(Some(ErpDocument {
            id: v["id"].as_str().unwrap_or_default().to_string(),
            number: v["tranId"].as_str().unwrap_or_default().to_string(),
            total: money_from_json(SYSTEM, &v["total"], currency)?,
            customer_id: v["entity"]["id"].as_str().map(str::to_string),
        }))
    }

    /// Upserts a sales order or credit memo by its external id, then reads
    /// back the number and the total NetSuite computed.
    async fn upsert_transaction(
        &self,
        record: &str,
        o: &ErpSalesOrder,
        customer_id: &str,
    ) -> Result<ErpDocument, ConnectorError> {
        let currency = o.total.currency.code();
        let body = SalesOrderBody {
            entity: Ref {
                id: Some(customer_id),
                external_id: None,
                ref_name: None,
            },
            tran_date: o.order_date.format("%Y-%m-%d").to_string(),
            currency: Ref {
                id: None,
                external_id: None,
                ref_name: Some(currency),
            },
            memo: &o.memo,
            order_key: o.order_key.as_deref(),
            item: Items {
                items: o
                    .lines
                    .iter()
                    .map(|l| ItemLine {
                        item: Ref {
                            id: None,
                            external_id: Some(&l.item),
                            ref_name: None,
                        },
                        description: &l.description,
                        quantity: l.quantity,
                        rate: l.unit_price.into(),
                        amount: l.amount.into(),
                        disposition: l.restock.map(disposition),
                    })
                    .collect(),
            },
        };
        // replace=item: a re-post sends the full line list, never appends.
        let url = self.url(&format!("{record}/eid:{}?replace=item", o.external_id));
        let reply = send(SYSTEM, &self.config.auth, self.client.put(url).json(&body)).await?;
        if !reply.is_success() {
            return Err(classify(&reply));
        }
        let id = Self::location_id(&reply)?;
        match self.find(record, &o.external_id).await? {
            Some(doc) => Ok(doc),
            None => Err(ConnectorError::BadResponse {
                system: SYSTEM,
                reason: format!("{record} {id} was upserted but cannot be read back"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::wire::test_server::{no_auth, serve};
    use retailflow_core::ports::queue::{QueueControl, QueueError, QueueRecord};
    use retailflow_core::queue_batch::process_batch;
    use retailflow_core::queue_dispositions::{disposition, Disposition};
    use retailflow_core::resilience::RetryPolicy;
    use retailflow_core::steps::StepOutcome;

    /// NetSuite's documented error body, with `detail` and `o:errorCode`.
    fn refusal(code: &str, detail: &str) -> String {
        serde_json::json!({
            "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
            "title": "Bad Request",
            "status": 400,
            "o:errorDetails": [{"detail": detail, "o:errorCode": code}],
        })
        .to_string()
    }

    fn erp(base: String) -> NetSuiteErp {
        NetSuiteErp::new(NetSuiteConfig {
            base_url: base,
            auth: no_auth(),
            subsidiary_id: None,
            timeout: Duration::from_secs(5),
        })
    }

    /// Log lines as the functions write them.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    /// The DLQ: the reasons dead letters were sent with.
    #[derive(Default)]
    struct Dlq(Mutex<Vec<String>>);

    #[async_trait]
    impl QueueControl for Dlq {
        async fn delay(&self, _: &str, _: Duration) -> Result<(), QueueError> {
            Ok(())
        }
        async fn dead_letter(&self, _: &QueueRecord, reason: &str) -> Result<(), QueueError> {
            self.0.lock().unwrap().push(reason.to_string());
            Ok(())
        }
    }

    /// The step's outcome through one SQS batch: the log text and the
    /// dead-letter reason.
    async fn through_the_queue(outcome: StepOutcome) -> (String, String) {
        let capture = Capture::default();
        let subscriber = retailflow_core::observability::json_subscriber(
            capture.clone(),
            tracing_subscriber::EnvFilter::new("info"),
        );
        let _guard = tracing::subscriber::set_default(subscriber);
        let dlq = Dlq::default();
        let record = QueueRecord {
            message_id: "m-1".into(),
            receipt_handle: "rh-1".into(),
            body: r#"{"correlation_id":"shopify:acme.myshopify.com:order:5872301948123"}"#.into(),
            receive_count: 1,
        };
        let failed = process_batch(&[record], &dlq, &RetryPolicy::default(), |_| {
            let outcome = outcome.clone();
            async move { outcome }
        })
        .await;
        assert!(failed.is_empty(), "dead-lettered, not left: {failed:?}");
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let reason = dlq.0.lock().unwrap().pop().expect("a dead letter");
        (text, reason)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refusal_echoing_the_customer_reaches_the_log_and_the_dead_letter_masked() {
        let base = serve(vec![(
            400,
            refusal(
                "INVALID_FLD_VALUE",
                "Error while accessing a resource. You have entered an Invalid Field Value \
                 DOE, Jane for the following field: entityid. Invalid Field Value \
                 jane.doe@example.com for the following field: email. A duplicate of \
                 Jane Doe, phone +44 20 7946 0958, was found.",
            ),
        )]);
        let customer = ErpCustomer {
            external_id: "cu-shopify-7-abcd1234".into(),
            first_name: Some("Jane".into()),
            last_name: Some("Doe".into()),
            email: Some("jane.doe@example.com".into()),
        };
        let e = erp(base).upsert_customer(&customer).await.unwrap_err();
        assert!(!e.is_retryable(), "{e}");

        let (log, reason) = through_the_queue(StepOutcome::from(e)).await;
        for told in [&log, &reason] {
            for personal in ["Jane", "DOE", "Doe", "jane.doe", "7946 0958"] {
                assert!(!told.contains(personal), "{personal} in {told}");
            }
            // What was wrong, and with which record, still reads.
            for kept in [
                "netsuite refused the request (HTTP 400): INVALID_FLD_VALUE",
                "Invalid Field Value ***, *** for the following field: entityid",
                "for the following field: email",
            ] {
                assert!(told.contains(kept), "{kept} not in {told}");
            }
        }
        assert!(
            log.contains(r#""correlation_id":"shopify:acme.myshopify.com:order:5872301948123""#)
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_address_the_request_carried_is_masked_where_netsuite_echoes_it() {
        let base = serve(vec![(
            400,
            refusal(
                "USER_ERROR",
                "Invalid Field Value 12 Baker Street for the following field: addr1. \
                 Invalid Field Value NW1 6XE for the following field: zip. \
                 Please enter value(s) for: Phone",
            ),
        )]);
        // A customer with an address book, as NetSuite's customer record has it.
        let body = serde_json::json!({
            "isPerson": true,
            "firstName": "Jane",
            "lastName": "Doe",
            "phone": "+44 20 7946 0958",
            "addressBook": {"items": [{"defaultBilling": true, "addressBookAddress": {
                "addressee": "Jane Doe", "addr1": "12 Baker Street", "city": "London",
                "zip": "NW1 6XE", "country": "GB",
            }}]},
        });
        let req = reqwest::Client::new()
            .put(format!("{base}/customer/eid:cu-shopify-7-abcd1234"))
            .json(&body);
        let reply = send(SYSTEM, &no_auth(), req).await.unwrap();
        let outcome = StepOutcome::from(classify(&reply));
        let Disposition::DeadLetter(reason) = disposition(&outcome, 1, &RetryPolicy::default())
        else {
            panic!("not dead-lettered: {outcome:?}");
        };
        assert_eq!(
            reason,
            "netsuite refused the request (HTTP 400): USER_ERROR: \
             Invalid Field Value *** for the following field: addr1. \
             Invalid Field Value *** for the following field: zip. \
             Please enter value(s) for: Phone"
        );
    }
}
