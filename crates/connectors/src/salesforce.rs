//! Salesforce Loyalty Management as the loyalty platform.
//!
//! Journals are not deduplicated by `ExternalTransactionNumber`, so the step
//! claims first and looks the journal up before posting. Accruals go through
//! the realtime Transaction Journals Execution resource; partial return
//! reversals through the Debit Points from Members program process (with
//! retailflow's pre-calculated points); whole-order returns through the
//! `cancelAccrual` standard action. Throttling is a 403
//! `REQUEST_LIMIT_EXCEEDED` (or 429).

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::wire::{call_json, http_client, Reply};
use retailflow_core::mappers::DecimalText;
use retailflow_core::ports::loyalty::{
    AccrualJournal, AccrualRequest, Enrollment, LedgerJournal, LoyaltyConnector, LoyaltyMember,
    ReversalRequest,
};
use retailflow_core::resilience::ConnectorError;

const SYSTEM: &str = "salesforce-loyalty";

#[derive(Debug, Clone)]
pub struct SalesforceLoyaltyConfig {
    /// `https://{MyDomain}.my.salesforce.com`
    pub base_url: String,
    /// e.g. `v62.0`
    pub api_version: String,
    pub program_name: String,
    pub journal_subtype: String,
    /// The org's program process of type DebitPointsFromMembers.
    pub debit_process: String,
    pub auth: super::Auth,
    pub timeout: Duration,
}

pub struct SalesforceLoyalty {
    client: reqwest::Client,
    config: SalesforceLoyaltyConfig,
}

impl SalesforceLoyalty {
    pub fn new(config: SalesforceLoyaltyConfig) -> Self {
        SalesforceLoyalty {
            client: http_client(config.timeout),
            config,
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/services/data/{}/{path}",
            self.config.base_url.trim_end_matches('/'),
            self.config.api_version
        )
    }

    async fn call(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, ConnectorError> {
        call_json(SYSTEM, &self.config.auth, req, classify).await
    }

    async fn query(&self, soql: &str) -> Result<Vec<serde_json::Value>, ConnectorError> {
        let v = self
            .call(self.client.get(self.url("query")).query(&[("q", soql)]))
            .await?;
        Ok(v["records"].as_array().cloned().unwrap_or_default())
    }

    /// Every record of a query, following `nextRecordsUrl` (a path on this
    /// instance) for at most `max_pages` pages.
    pub(super) async fn query_all(
        &self,
        soql: &str,
        max_pages: usize,
    ) -> Result<Vec<serde_json::Value>, ConnectorError> {
        let mut records = Vec::new();
        let mut req = self.client.get(self.url("query")).query(&[("q", soql)]);
        for page in 0..max_pages {
            let v = self.call(req).await?;
            records.extend(v["records"].as_array().cloned().unwrap_or_default());
            if page + 1 == max_pages && v["done"].as_bool() == Some(false) {
                // Cut short, what was not read would look missing.
                return Err(ConnectorError::BadResponse {
                    system: SYSTEM,
                    reason: format!("more than {max_pages} pages for one query"),
                });
            }
            match v["nextRecordsUrl"].as_str() {
                Some(next)
                    if v["done"].as_bool() == Some(false)
                        && next.starts_with("/services/data/") =>
                {
                    req = self.client.get(format!(
                        "{}{next}",
                        self.config.base_url.trim_end_matches('/')
                    ));
                }
                _ => break,
            }
        }
        Ok(records)
    }
}

/// Quotes a value for a SOQL string literal.
fn soql_quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Maps a non-2xx answer, reading Salesforce's `[{"errorCode","message"}]`.
fn classify(reply: &Reply) -> ConnectorError {
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
    let code = body[0]["errorCode"].as_str().unwrap_or("");
    if reply.status == 429 || (reply.status == 403 && code == "REQUEST_LIMIT_EXCEEDED") {
        return ConnectorError::Throttled {
            system: SYSTEM,
            retry_after: reply.retry_after(),
        };
    }
    let text = format!(
        "{code}: {}",
        body[0]["message"].as_str().unwrap_or(&reply.body)
    );
    ConnectorError::from_status(SYSTEM, reply.status, reply.retry_after(), &text)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnrollmentBody<'a> {
    enrollment_date: String,
    membership_number: &'a str,
    member_status: &'a str,
    enrollment_channel: &'a str,
    create_transaction_journals: bool,
    associated_contact_details: ContactDetails<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContactDetails<'a> {
    first_name: &'a str,
    last_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    allow_duplicate_records: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RealtimeBody<'a> {
    transaction_journals: Vec<Journal<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Journal<'a> {
    external_transaction_number: &'a str,
    journal_type_name: &'a str,
    journal_sub_type_name: &'a str,
    loyalty_program_name: &'a str,
    membership_number: &'a str,
    activity_date: String,
    transaction_amount: String,
    currency_iso_code: &'a str,
    status: &'a str,
}

impl SalesforceLoyalty {
    /// The first journal with this ExternalTransactionNumber (and `and`,
    /// a further SOQL condition).
    async fn find_journal(
        &self,
        external: &str,
        and: &str,
    ) -> Result<Option<AccrualJournal>, ConnectorError> {
        let soql = format!(
            "SELECT Id,Status,ExternalTransactionNumber FROM TransactionJournal WHERE ExternalTransactionNumber={}{and}",
            soql_quote(external)
        );
        Ok(self.query(&soql).await?.first().map(|r| AccrualJournal {
            journal_id: r["Id"].as_str().unwrap_or_default().to_string(),
            points: None,
        }))
    }

    async fn journal_status(&self, id: &str) -> Result<Option<String>, ConnectorError> {
        let soql = format!(
            "SELECT Id,Status FROM TransactionJournal WHERE Id={}",
            soql_quote(id)
        );
        Ok(self
            .query(&soql)
            .await?
            .first()
            .and_then(|r| r["Status"].as_str().map(str::to_string)))
    }
}

/// The first journal id an action or process answer names.
fn journal_id_in(v: &serde_json::Value) -> Option<String> {
    let results = &v["outputParameters"]["outputParameters"]["results"][0];
    [
        &results["TransactionJournalId"],
        &results["JournalId"],
        &v[0]["outputValues"]["CancellationTransactionJournalId"],
    ]
    .into_iter()
    .find_map(|x| x.as_str().filter(|s| !s.is_empty()).map(str::to_string))
}

#[async_trait]
impl LoyaltyConnector for SalesforceLoyalty {
    fn system(&self) -> &'static str {
        SYSTEM
    }

    async fn find_member(
        &self,
        membership_number: &str,
    ) -> Result<Option<LoyaltyMember>, ConnectorError> {
        let soql = format!(
            "SELECT Id,MembershipNumber,MemberStatus FROM LoyaltyProgramMember WHERE MembershipNumber={} AND Program.Name={}",
            soql_quote(membership_number),
            soql_quote(&self.config.program_name)
        );
        Ok(self.query(&soql).await?.first().map(|r| LoyaltyMember {
            member_id: r["Id"].as_str().unwrap_or_default().to_string(),
            membership_number: membership_number.to_string(),
            tier: None,
        }))
    }

    async fn enroll(&self, e: &Enrollment) -> Result<LoyaltyMember, ConnectorError> {
        let body = EnrollmentBody {
            enrollment_date: e.enrolled_at.format("%Y-%m-%dT%H:%M:%S").to_string(),
            membership_number: &e.membership_number,
            member_status: "Active",
            enrollment_channel: "Web",
            create_transaction_journals: false,
            associated_contact_details: ContactDetails {
                first_name: e.first_name.as_deref().unwrap_or("-"),
                last_name: e.last_name.as_deref().unwrap_or("-"),
                email: e.email.as_deref(),
                allow_duplicate_records: "false",
            },
        };
        let path = format!(
            "loyalty-programs/{}/individual-member-enrollments",
            self.config.program_name
        );
        let v = self
            .call(self.client.post(self.url(&path)).json(&body))
            .await?;
        Ok(LoyaltyMember {
            member_id: v["loyaltyProgramMemberId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            membership_number: e.membership_number.clone(),
            tier: None,
        })
    }

    async fn find_accrual(&self, external: &str) -> Result<Option<AccrualJournal>, ConnectorError> {
        self.find_journal(external, " AND JournalType.Name='Accrual'")
            .await
    }

    async fn post_accrual(&self, a: &AccrualRequest) -> Result<AccrualJournal, ConnectorError> {
        let body = RealtimeBody {
            transaction_journals: vec![Journal {
                external_transaction_number: &a.external_transaction_number,
                journal_type_name: "Accrual",
                journal_sub_type_name: &self.config.journal_subtype,
                loyalty_program_name: &self.config.program_name,
                membership_number: &a.membership_number,
                activity_date: a.activity_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                transaction_amount: a.amount.to_decimal_string(),
                currency_iso_code: a.amount.currency.code(),
                status: "Pending",
            }],
        };
        let path = format!(
            "connect/realtime/loyalty/programs/{}",
            self.config.program_name
        );
        let v = self
            .call(self.client.post(self.url(&path)).json(&body))
            .await?;
        if v["status"].as_bool() != Some(true) {
            return Err(ConnectorError::Rejected {
                system: SYSTEM,
                status: 200,
                reason: v["message"]
                    .as_str()
                    .unwrap_or("journal not processed")
                    .to_string(),
            });
        }
        let result = &v["processResult"]["transactionJournalResult"][0];
        let journal_id = result["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ConnectorError::BadResponse {
                system: SYSTEM,
                reason: "processed journal without an id".into(),
            })?;
        let mut points = 0i64;
        for member in result["changeInMemberPoints"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for cur in member["changeInMemberCurrencies"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let text = DecimalText(cur["changeInPointsBalance"].to_string());
                points += i64::from(text.whole().unwrap_or(0));
            }
        }
        Ok(AccrualJournal {
            journal_id: journal_id.to_string(),
            points: Some(points),
        })
    }

    async fn points_balance(&self, number: &str) -> Result<Option<i64>, ConnectorError> {
        let soql = format!(
            "SELECT PointsBalance FROM LoyaltyMemberCurrency WHERE LoyaltyMember.MembershipNumber={}",
            soql_quote(number)
        );
        let Some(r) = self.query(&soql).await?.into_iter().next() else {
            return Ok(None);
        };
        // A JSON number such as 40.0 or -20.0: whole points, read as text.
        let text = r["PointsBalance"].to_string();
        let whole = text.split('.').next().unwrap_or("");
        whole
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ConnectorError::BadResponse {
                system: SYSTEM,
                reason: format!("PointsBalance {text} is not a number of points"),
            })
    }

    async fn find_reversal(
        &self,
        external: &str,
    ) -> Result<Option<AccrualJournal>, ConnectorError> {
        self.find_journal(external, "").await
    }

    async fn post_reversal(&self, r: &ReversalRequest) -> Result<AccrualJournal, ConnectorError> {
        let body = serde_json::json!({"processParameters": [{
            "TransactionJournal": {
                "ActivityDate": r.activity_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "ExternalTransactionNumber": r.external_transaction_number,
                "JournalTypeName": "Accrual",
                "JournalSubTypeName": "Return",
                "MembershipNumber": r.membership_number,
                "TransactionAmount": r.amount.to_decimal_string(),
                "CurrencyIsoCode": r.amount.currency.code(),
                "Status": "Pending",
            },
            "PointsToDebit": r.points,
        }]});
        let path = format!(
            "connect/loyalty/programs/{}/program-processes/{}",
            self.config.program_name, self.config.debit_process
        );
        let v = self
            .call(self.client.post(self.url(&path)).json(&body))
            .await?;
        if v["status"].as_bool() != Some(true) {
            return Err(ConnectorError::Rejected {
                system: SYSTEM,
                status: 200,
                reason: v["message"]
                    .as_str()
                    .unwrap_or("debit not processed")
                    .to_string(),
            });
        }
        let journal_id = journal_id_in(&v).ok_or_else(|| ConnectorError::BadResponse {
            system: SYSTEM,
            reason: "debit processed without a journal id".into(),
        })?;
        Ok(AccrualJournal {
            journal_id,
            points: Some(-r.points),
        })
    }

    async fn ledger_journals(
        &self,
        external_transaction_numbers: &[String],
    ) -> Result<Vec<LedgerJournal>, ConnectorError> {
        SalesforceLoyalty::ledger_journals(self, external_transaction_numbers).await
    }

    async fn cancel_accrual(
        &self,
        journal_id: &str,
        reason: &str,
    ) -> Result<Option<String>, ConnectorError> {
        // A retry after a lost answer finds the journal cancelled already.
        if self.journal_status(journal_id).await?.as_deref() == Some("Cancelled") {
            return Ok(None);
        }
        let body = serde_json::json!({"inputs": [{
            "TransactionJournalId": journal_id,
            "CancellationReason": reason,
        }]});
        let v = self
            .call(
                self.client
                    .post(self.url("actions/standard/cancelAccrual"))
                    .json(&body),
            )
            .await?;
        if v[0]["isSuccess"].as_bool() != Some(true) {
            // Cancelled meanwhile by another worker: what was asked is done.
            if self.journal_status(journal_id).await?.as_deref() == Some("Cancelled") {
                return Ok(None);
            }
            return Err(ConnectorError::Rejected {
                system: SYSTEM,
                status: 200,
                reason: v[0]["errors"][0]["message"]
                    .as_str()
                    .unwrap_or("accrual not cancelled")
                    .to_string(),
            });
        }
        Ok(journal_id_in(&v))
    }
}
