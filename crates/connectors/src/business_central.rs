//! Dynamics 365 Business Central API v2.0 as the ERP.
//!
//! BC does not enforce unique `externalDocumentNumber`s, so the step claims
//! first and this connector looks the order up before POSTing (deep insert
//! of the lines). Customers have no external-id field: the customer `number`
//! is derived from the shop customer's external id (20 characters). Throttling
//! is 429 with Retry-After.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::wire::{call_json, http_client, money_from_json, Reply, WireDecimal};
use retailflow_core::money::Currency;
use retailflow_core::ports::erp::{
    ErpConnector, ErpCreditMemo, ErpCustomer, ErpDocument, ErpDocumentKind, ErpLine, ErpSalesOrder,
    LedgerDocument, LedgerQuery,
};
use retailflow_core::resilience::ConnectorError;

const SYSTEM: &str = "business-central";

#[derive(Debug, Clone)]
pub struct BusinessCentralConfig {
    /// `https://api.businesscentral.dynamics.com/v2.0/{tenant}/{env}/api/v2.0/companies({id})`
    pub company_url: String,
    pub auth: super::Auth,
    /// The company's local currency (LCY): BC leaves `currencyCode` blank for it.
    pub local_currency: Currency,
    pub timeout: Duration,
}

pub struct BusinessCentralErp {
    client: reqwest::Client,
    config: BusinessCentralConfig,
}

/// BC customer numbers are at most 20 characters.
pub fn customer_number(external_id: &str) -> String {
    let hash = retailflow_core::idempotency::payload_hash(external_id.as_bytes());
    format!("RF{}", &hash[..18]).to_uppercase()
}

fn odata_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

fn classify(reply: &Reply) -> ConnectorError {
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
    let text = format!(
        "{}: {}",
        body["error"]["code"].as_str().unwrap_or(""),
        body["error"]["message"].as_str().unwrap_or(&reply.body)
    );
    ConnectorError::from_status(SYSTEM, reply.status, reply.retry_after(), &text)
}

/// Business Central's answer to inserting a key that exists.
fn already_exists(e: &ConnectorError) -> bool {
    match e {
        ConnectorError::Conflict { reason, .. } | ConnectorError::Rejected { reason, .. } => {
            reason.contains("EntityWithSameKeyExists") || reason.contains("already exists")
        }
        _ => false,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomerBody<'a> {
    number: &'a str,
    display_name: String,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SalesOrderBody<'a> {
    customer_number: &'a str,
    external_document_number: &'a str,
    order_date: String,
    currency_code: &'a str,
    sales_order_lines: Vec<LineBody<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreditMemoBody<'a> {
    customer_number: &'a str,
    external_document_number: &'a str,
    credit_memo_date: String,
    currency_code: &'a str,
    sales_credit_memo_lines: Vec<LineBody<'a>>,
}

/// BC lines carry gross unit price and the discount amount.
fn line_bodies(lines: &[ErpLine]) -> Vec<LineBody<'_>> {
    lines
        .iter()
        .map(|l| {
            let gross = l
                .unit_price
                .checked_mul(i64::from(l.quantity))
                .unwrap_or(l.amount);
            let discount = gross.checked_sub(l.amount).unwrap_or(l.amount);
            LineBody {
                line_type: "Item",
                line_object_number: &l.item,
                description: &l.description,
                quantity: l.quantity,
                unit_price: l.unit_price.into(),
                discount_amount: discount.into(),
            }
        })
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LineBody<'a> {
    line_type: &'a str,
    line_object_number: &'a str,
    description: &'a str,
    quantity: u32,
    unit_price: WireDecimal,
    discount_amount: WireDecimal,
}

impl BusinessCentralErp {
    pub fn new(config: BusinessCentralConfig) -> Self {
        BusinessCentralErp {
            client: http_client(config.timeout),
            config,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.company_url.trim_end_matches('/'))
    }

    /// A page of `items`: the first, or the one a `@odata.nextLink` names.
    pub(crate) async fn items(
        &self,
        next: Option<&str>,
    ) -> Result<serde_json::Value, ConnectorError> {
        let url = match next {
            // Only follow links into this company's API.
            Some(link) if link.starts_with(self.config.company_url.trim_end_matches('/')) => {
                link.to_string()
            }
            Some(link) => {
                return Err(ConnectorError::BadResponse {
                    system: SYSTEM,
                    reason: format!("next page link outside the company: {link}"),
                })
            }
            None => format!("{}?$select=number,type,unitPrice", self.url("items")),
        };
        self.call(self.client.get(url)).await
    }

    async fn call(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, ConnectorError> {
        call_json(SYSTEM, &self.config.auth, req, classify).await
    }

    pub(super) fn local_currency(&self) -> Currency {
        self.config.local_currency
    }

    /// A page of `entity` matching `filter`, or the page a
    /// `@odata.nextLink` names (only links into this company are followed).
    pub(super) async fn list(
        &self,
        entity: &str,
        filter: &str,
        next: Option<&str>,
    ) -> Result<serde_json::Value, ConnectorError> {
        let req = match next {
            Some(link) if link.starts_with(self.config.company_url.trim_end_matches('/')) => {
                self.client.get(link)
            }
            Some(link) => {
                return Err(ConnectorError::BadResponse {
                    system: SYSTEM,
                    reason: format!("next page link outside the company: {link}"),
                })
            }
            None => self
                .client
                .get(self.url(entity))
                .query(&[("$filter", filter)]),
        };
        self.call(req).await
    }

    async fn first(
        &self,
        entity: &str,
        field: &str,
        value: &str,
    ) -> Result<Option<serde_json::Value>, ConnectorError> {
        let filter = format!("{field} eq {}", odata_quote(value));
        let v = self
            .call(
                self.client
                    .get(self.url(entity))
                    .query(&[("$filter", filter)]),
            )
            .await?;
        Ok(v["value"].as_array().and_then(|a| a.first()).cloned())
    }

    pub(super) fn document(
        v: &serde_json::Value,
        fallback: Currency,
    ) -> Result<ErpDocument, ConnectorError> {
        let currency = v["currencyCode"]
            .as_str()
            .filter(|c| !c.is_empty())
            .and_then(|c| Currency::from_code(c).ok())
            .unwrap_or(fallback);
        let id = v["id"].as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
            ConnectorError::BadResponse {
                system: SYSTEM,
                reason: "sales order without an id".into(),
            }
        })?;
        Ok(ErpDocument {
            id: id.to_string(),
            number: v["number"].as_str().unwrap_or_default().to_string(),
            total: money_from_json(SYSTEM, &v["totalAmountIncludingTax"], currency)?,
            customer_id: v["customerNumber"].as_str().map(str::to_string),
        })
    }
}

#[async_trait]
impl ErpConnector for BusinessCentralErp {
    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn dedups_natively(&self) -> bool {
        false
    }

    async fn upsert_customer(&self, c: &ErpCustomer) -> Result<String, ConnectorError> {
        let number = customer_number(&c.external_id);
        if let Some(found) = self.first("customers", "number", &number).await? {
            return Ok(found["number"].as_str().unwrap_or(&number).to_string());
        }
        let name = [c.first_name.as_deref(), c.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let body = CustomerBody {
            number: &number,
            display_name: if name.is_empty() {
                number.clone()
            } else {
                name
            },
            kind: "Person",
            email: c.email.as_deref(),
        };
        let created = match self
            .call(self.client.post(self.url("customers")).json(&body))
            .await
        {
            Ok(created) => created,
            // Created by another order of the same new customer since the
            // look-up above (BC: 409 Internal_EntityWithSameKeyExists).
            Err(e) if already_exists(&e) => {
                return match self.first("customers", "number", &number).await? {
                    Some(found) => Ok(found["number"].as_str().unwrap_or(&number).to_string()),
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        Ok(created["number"].as_str().unwrap_or(&number).to_string())
    }

    async fn find_sales_order(
        &self,
        external_id: &str,
    ) -> Result<Option<ErpDocument>, ConnectorError> {
        match self
            .first("salesOrders", "externalDocumentNumber", external_id)
            .await?
        {
            Some(v) => Ok(Some(Self::document(&v, self.config.local_currency)?)),
            None => Ok(None),
        }
    }

    async fn post_sales_order(
        &self,
        o: &ErpSalesOrder,
        customer_number: &str,
    ) -> Result<ErpDocument, ConnectorError> {
        let lines = line_bodies(&o.lines);
        let body = SalesOrderBody {
            customer_number,
            external_document_number: &o.external_id,
            order_date: o.order_date.format("%Y-%m-%d").to_string(),
            currency_code: o.total.currency.code(),
            sales_order_lines: lines,
        };
        let v = self
            .call(self.client.post(self.url("salesOrders")).json(&body))
            .await?;
        Self::document(&v, o.total.currency)
    }

    async fn find_credit_memo(
        &self,
        external_id: &str,
    ) -> Result<Option<ErpDocument>, ConnectorError> {
        match self
            .first("salesCreditMemos", "externalDocumentNumber", external_id)
            .await?
        {
            Some(v) => Ok(Some(Self::document(&v, self.config.local_currency)?)),
            None => Ok(None),
        }
    }

    async fn post_credit_memo(
        &self,
        m: &ErpCreditMemo,
        customer_number: &str,
    ) -> Result<ErpDocument, ConnectorError> {
        // A draft left by a crash between create and post is finished, not
        // created again.
        let memo = match self
            .first("salesCreditMemos", "externalDocumentNumber", &m.external_id)
            .await?
        {
            Some(v) => v,
            None => {
                let body = CreditMemoBody {
                    customer_number,
                    external_document_number: &m.external_id,
                    credit_memo_date: m.order_date.format("%Y-%m-%d").to_string(),
                    currency_code: m.total.currency.code(),
                    sales_credit_memo_lines: line_bodies(&m.lines),
                };
                self.call(self.client.post(self.url("salesCreditMemos")).json(&body))
                    .await?
            }
        };
        let doc = Self::document(&memo, m.total.currency)?;
        if memo["status"].as_str() == Some("Draft") {
            let action = format!("salesCreditMemos({})/Microsoft.NAV.post", doc.id);
            self.call(self.client.post(self.url(&action))).await?;
        }
        Ok(doc)
    }

    async fn ledger_documents(
        &self,
        kind: ErpDocumentKind,
        wanted: &[LedgerQuery],
    ) -> Result<Vec<LedgerDocument>, ConnectorError> {
        BusinessCentralErp::ledger_documents(self, kind, wanted).await
    }

    async fn cancel_sales_order(&self, external_id: &str) -> Result<bool, ConnectorError> {
        let Some(v) = self
            .first("salesOrders", "externalDocumentNumber", external_id)
            .await?
        else {
            return Ok(false);
        };
        let id = v["id"].as_str().unwrap_or_default();
        let req = self
            .client
            .delete(self.url(&format!("salesOrders({id})")))
            .header("If-Match", v["@odata.etag"].as_str().unwrap_or("*"));
        match self.call(req).await {
            // Deleted concurrently: gone is what was asked.
            Err(ConnectorError::Rejected { status: 404, .. }) | Ok(_) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::wire::test_server::{no_auth, serve};

    #[tokio::test(flavor = "current_thread")]
    async fn a_refusal_echoing_the_customer_name_keeps_its_code_and_correlation_id() {
        let base = serve(vec![
            // No customer with that number yet...
            (200, r#"{"value":[]}"#.into()),
            // ... and creating it is refused, echoing the name and email.
            (
                400,
                serde_json::json!({"error": {
                    "code": "BadRequest",
                    "message": "The field Name of table Customer contains a value (Jane Doe) \
                        that cannot be found in the related table (Contact). E-Mail \
                        jane.doe@example.com. CorrelationId: 3fa85f64-5717-4562-b3fc-2c963f66afa6.",
                }})
                .to_string(),
            ),
        ]);
        let erp = BusinessCentralErp::new(BusinessCentralConfig {
            company_url: format!("{base}/api/v2.0/companies(1)"),
            auth: no_auth(),
            local_currency: Currency::from_code("USD").unwrap(),
            timeout: Duration::from_secs(5),
        });
        let e = erp
            .upsert_customer(&ErpCustomer {
                external_id: "cu-shopify-7-abcd1234".into(),
                first_name: Some("Jane".into()),
                last_name: Some("Doe".into()),
                email: Some("jane.doe@example.com".into()),
            })
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "business-central refused the request (HTTP 400): BadRequest: The field Name of \
             table Customer contains a value (***) that cannot be found in the related table \
             (Contact). E-Mail ***. CorrelationId: 3fa85f64-5717-4562-b3fc-2c963f66afa6."
        );
    }
}
